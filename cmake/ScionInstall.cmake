# What `cmake --install build --prefix P` adds to the SDK (CMakeLists.txt), so that P/bin/scion
# runs from any prefix and any directory (README "Install"):
#   P/bin/scion                     RUNPATH $ORIGIN/../lib: finds libscion_core wherever P is
#   P/lib/scion/plugins/lib*.so     every plugin library (scion_add_plugin installs each one)
#   P/share/scion/data, graphs      the bundled vocabularies and corpora, the shipped graphs
#   P/share/scion/sdk/example       the template of a third-party plugin (builds out of tree)
# libscion_core finds the plugin and data folders from its own location (core/runtime/install.cpp),
# so nothing absolute is compiled in and the tree can be moved after installing.

if(TARGET scion)
  file(RELATIVE_PATH _scion_bin_to_lib /p/bin /p/${SCION_INSTALL_LIBDIR})
  # Libraries linked from outside the system folders (CUDA's) stay found after the install.
  set_target_properties(scion PROPERTIES INSTALL_RPATH "$ORIGIN/${_scion_bin_to_lib}" INSTALL_RPATH_USE_LINK_PATH ON)
endif()
set_target_properties(scion_core PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

# data/corpus-full (scripts/fetch-corpora.sh --full, not committed) is a local download.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/data/ DESTINATION ${SCION_INSTALL_DATADIR}/data PATTERN corpus-full EXCLUDE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/graphs/ DESTINATION ${SCION_INSTALL_DATADIR}/graphs FILES_MATCHING PATTERN "*.toml")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sdk/example/ DESTINATION ${SCION_INSTALL_DATADIR}/sdk/example)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/scion)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/scion/docs FILES_MATCHING PATTERN "*.md")

# The build tree is laid out like an install where the runtime looks (<build>/share/scion
# links to the source tree), so a graph's relative paths resolve the same way from
# build/bin/scion and from an installed scion.
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/${SCION_INSTALL_DATADIR}/sdk)
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/data ${CMAKE_BINARY_DIR}/${SCION_INSTALL_DATADIR}/data SYMBOLIC)
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/graphs ${CMAKE_BINARY_DIR}/${SCION_INSTALL_DATADIR}/graphs SYMBOLIC)
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/sdk/example ${CMAKE_BINARY_DIR}/${SCION_INSTALL_DATADIR}/sdk/example SYMBOLIC)
