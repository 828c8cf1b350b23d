# bench_allreduce: the gradient buckets against one MPI_Allreduce (needs MPI's C API).
add_executable(bench_allreduce ${CMAKE_CURRENT_SOURCE_DIR}/bench_allreduce.cpp)
target_link_libraries(bench_allreduce PRIVATE scion_core MPI::MPI_C)
target_include_directories(bench_allreduce PRIVATE ${PROJECT_SOURCE_DIR}/core)
target_compile_definitions(bench_allreduce PRIVATE OMPI_SKIP_MPICXX=1)
