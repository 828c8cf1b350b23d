# ctest plugin_boundaries_checker: the boundary checker passes a clean tree of two plugin
# folders and fails, naming the breach, on each one planted in it.
# usage: cmake -DCHECKER=<check_plugin_boundaries.cmake> -DWORK=<scratch folder> -P test_checker.cmake
cmake_minimum_required(VERSION 3.25)

# A clean tree: folders a and b, each with its own header, library and plugin; both use the
# SDK and the standard library. a also has a header of its own named like one of b's, in a
# sub-folder (its own file wins).
function(write_clean root)
  file(REMOVE_RECURSE "${root}")
  file(WRITE "${root}/a/a.h" "#pragma once\n")
  file(WRITE "${root}/a/sub/common.h" "#pragma once\n")
  file(WRITE "${root}/a/a.cpp" "#include \"a.h\"\n#include \"common.h\"\n#include \"sub/common.h\"\n#include <vector>\n#include \"scion/plugin.h\"\n")
  file(WRITE "${root}/a/CMakeLists.txt" "# a_methods: a's algorithms\nadd_library(a_methods STATIC a.cpp)\nscion_add_plugin(a_plugin a.cpp LIBS a_methods)\n")
  file(WRITE "${root}/b/b.h" "#pragma once\n")
  file(WRITE "${root}/b/common.h" "#pragma once\n")
  file(WRITE "${root}/b/b.cpp" "#include \"b.h\"\n#include \"common.h\"\n#include <faiss/Index.h>\n")
  file(WRITE "${root}/b/CMakeLists.txt" "add_library(b_methods STATIC b.cpp)\nscion_add_plugin(b_plugin b.cpp LIBS b_methods)\n")
endfunction()

function(check root expect_ok expect_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DPLUGINS=${root} -P ${CHECKER}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  string(REGEX REPLACE "[ \t\r\n]+" " " flat "${out}")
  if(expect_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "the checker refused a clean tree:\n${out}")
  endif()
  if(NOT expect_ok AND rc EQUAL 0)
    message(FATAL_ERROR "the checker passed a tree with a breach (${expect_text}):\n${out}")
  endif()
  string(FIND "${flat}" "${expect_text}" at)
  if(at LESS 0)
    message(FATAL_ERROR "the checker's output lacks '${expect_text}':\n${out}")
  endif()
  message(STATUS "as expected: ${expect_text}")
endfunction()

set(T "${WORK}/plugins")
write_clean("${T}")
check("${T}" TRUE "2 plugin folders, none includes")

# A bare include found through another folder's include directory.
write_clean("${T}")
file(APPEND "${T}/b/b.cpp" "#include \"a.h\"\n")
check("${T}" FALSE "plugins/b/b.cpp: includes \"a.h\", a file of plugins/a (plugins/a/a.h)")

# The same from a header, with angle brackets.
write_clean("${T}")
file(APPEND "${T}/b/b.h" "#include <a.h>\n")
check("${T}" FALSE "plugins/b/b.h: includes \"a.h\", a file of plugins/a")

# A relative include into another folder.
write_clean("${T}")
file(APPEND "${T}/b/b.cpp" "#include \"../a/sub/common.h\"\n")
check("${T}" FALSE "plugins/b/b.cpp: includes \"../a/sub/common.h\", which is a/sub/common.h (outside plugins/b)")

# Linking another folder's static library.
write_clean("${T}")
file(APPEND "${T}/b/CMakeLists.txt" "target_link_libraries(b_methods PUBLIC a_methods)\n")
check("${T}" FALSE "plugins/b/CMakeLists.txt: names a_methods, a target of plugins/a")

# Compiling another folder's source.
write_clean("${T}")
file(APPEND "${T}/b/CMakeLists.txt" "target_sources(b_plugin PRIVATE ../a/a.cpp)\n")
check("${T}" FALSE "plugins/b/CMakeLists.txt: names a path out of plugins/b")

# A target named only in a comment is no breach.
write_clean("${T}")
file(APPEND "${T}/b/CMakeLists.txt" "# unlike a_methods, b needs nothing of a\n")
check("${T}" TRUE "2 plugin folders, none includes")

file(REMOVE_RECURSE "${WORK}")
