# Forward tokens/s of a saved GPT (dense or pruned by op.cofi_prune): the CoFi experiment's
# speed-up column.
add_executable(bench_prune_forward ${CMAKE_CURRENT_LIST_DIR}/bench_prune_forward.cpp)
target_link_libraries(bench_prune_forward PRIVATE scion_lm_models scion_core)
