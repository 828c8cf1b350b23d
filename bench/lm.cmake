# Benchmarks that need the language-model library.
add_executable(bench_gpt_train ${CMAKE_CURRENT_LIST_DIR}/bench_gpt_train.cpp)
target_link_libraries(bench_gpt_train PRIVATE scion_lm_models scion_core)
