# Tokenizer throughput benchmark (single thread). Include from bench/CMakeLists.txt:
#   include(${CMAKE_CURRENT_LIST_DIR}/text.cmake)
# Run: bench_tokenize [DATA_DIR]   (default: the source tree's data/)
add_executable(bench_tokenize ${CMAKE_CURRENT_LIST_DIR}/bench_tokenize.cpp)
target_link_libraries(bench_tokenize PRIVATE scion_text)
target_compile_definitions(bench_tokenize PRIVATE
  SCION_TEXT_DATA_DIR="${CMAKE_CURRENT_LIST_DIR}/../data")
