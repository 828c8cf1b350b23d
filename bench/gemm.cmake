# The CPU GEMM kernels themselves (not through the core library, whose kernel symbols are
# hidden): f32 against bf16 products, side by side.
add_executable(bench_gemm_precision ${CMAKE_CURRENT_LIST_DIR}/bench_gemm_precision.cpp)
target_link_libraries(bench_gemm_precision PRIVATE scion_kernels_cpu)
