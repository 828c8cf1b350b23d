# ctest cuda_linkage (CUDA builds only): does libscion_core really carry the CUDA backend?
# Run as: cmake -DLIB=<path to libscion_core.so> -DMIN_ENTRY_POINTS=<n> -P CheckCudaLinkage.cmake
#  1. `ldd` must list libcublasLt and libcudart (a static kernel archive whose objects nobody
#     referenced used to be dropped by the linker, taking the cuBLASLt dependency with it);
#  2. `nm --defined-only -C` (the full symbol table: gemm.cpp is compiled with hidden
#     visibility like all C++ here, so its symbols are local, not dynamic) must show at least
#     MIN_ENTRY_POINTS functions of namespace scion::cuda (the kernels' host entry points), and
#     the backend table.
if(NOT LIB OR NOT EXISTS "${LIB}")
  message(FATAL_ERROR "cuda_linkage: library '${LIB}' not found")
endif()
if(NOT MIN_ENTRY_POINTS)
  set(MIN_ENTRY_POINTS 60)
endif()
execute_process(COMMAND ldd "${LIB}" OUTPUT_VARIABLE ldd_out RESULT_VARIABLE ldd_rc)
if(NOT ldd_rc EQUAL 0)
  message(FATAL_ERROR "cuda_linkage: ldd failed on ${LIB}")
endif()
foreach(dep libcublasLt libcudart)
  if(NOT ldd_out MATCHES "${dep}\\.so")
    message(FATAL_ERROR "cuda_linkage: ${LIB} does not link ${dep} (ldd):\n${ldd_out}")
  endif()
endforeach()
execute_process(COMMAND nm --defined-only -C "${LIB}" OUTPUT_VARIABLE nm_out RESULT_VARIABLE nm_rc)
if(NOT nm_rc EQUAL 0)
  message(FATAL_ERROR "cuda_linkage: nm failed on ${LIB}")
endif()
string(REGEX MATCHALL "[^\n]* [Tt] scion::cuda::[A-Za-z0-9_]+\\(" entries "${nm_out}")
set(names)
foreach(e ${entries})
  string(REGEX REPLACE ".* [Tt] scion::cuda::([A-Za-z0-9_]+)\\(" "\\1" n "${e}")
  list(APPEND names ${n})
endforeach()
list(REMOVE_DUPLICATES names)
list(LENGTH names count)
foreach(must gemm gemm_ex attention_forward attention_backward cross_entropy_forward layernorm_forward
        embedding_backward adamw adamw_multi index_select strided_assign strided_copy sum_all)
  list(FIND names ${must} at)
  if(at LESS 0)
    message(FATAL_ERROR "cuda_linkage: scion::cuda::${must} is not in ${LIB}")
  endif()
endforeach()
if(NOT nm_out MATCHES "scion::ops::detail::backend_cuda\\(\\)")
  message(FATAL_ERROR "cuda_linkage: the CUDA backend table (scion::ops::detail::backend_cuda) is not in ${LIB}")
endif()
if(count LESS MIN_ENTRY_POINTS)
  message(FATAL_ERROR "cuda_linkage: only ${count} scion::cuda entry points in ${LIB} (want >= ${MIN_ENTRY_POINTS})")
endif()
message(STATUS "cuda_linkage: ${LIB} links libcublasLt and libcudart and carries ${count} scion::cuda entry points")
