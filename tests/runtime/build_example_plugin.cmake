# Configures and builds sdk/example against this build's SDK package, then asks `scion
# plugins` to describe the plugins it made (test_example_op then runs them: a fixture). With
# this build's compiler (CXX): Scion refuses a plugin built by another toolchain.
file(REMOVE_RECURSE ${BIN})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${BIN} -G Ninja -DScion_DIR=${SCION_DIR} -DCMAKE_BUILD_TYPE=Release
                        -DCMAKE_CXX_COMPILER=${CXX}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the example plugin failed:\n${out}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BIN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the example plugin failed:\n${out}")
endif()
# Each of the example's libraries: a loss and a structural op.
foreach(plugin loss.hidden_l2 op.drop_layers)
  execute_process(COMMAND ${SCION_EXE} plugins ${plugin} --plugin-dir ${BIN}/plugins
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${plugin} 0.1.0")
    message(FATAL_ERROR "scion does not see the example plugin ${plugin}:\n${out}\n${err}")
  endif()
  message(STATUS "example plugin built and loaded:\n${out}")
endforeach()
