# scion_add_plugin(NAME sources... [LIBS libs...]): one plugin library, built exactly as a third
# party builds one: a shared module against the SDK headers and libscion_core, hidden
# visibility (only the descriptor alias is exported), written to the plugin folder.
function(scion_add_plugin name)
  cmake_parse_arguments(P "" "" "LIBS" ${ARGN})
  add_library(${name} MODULE ${P_UNPARSED_ARGUMENTS})
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${SCION_PLUGIN_OUTPUT_DIR})
  # Never unmapped once loaded (DF_1_NODELETE): code and type data of a plugin (an error it
  # threw, whose vtable is emitted in the plugin under hidden visibility) must outlive the
  # registry, because an error is printed after the run's nodes and libraries are released.
  # A small library such as loss.inherit's was otherwise unmapped and `scion` crashed printing
  # its error.
  target_link_options(${name} PRIVATE -Wl,-z,nodelete)
  # `cmake --install` puts the library where Scion looks for plugins without flags: in-tree,
  # the install's plugin folder (<prefix>/lib/scion/plugins, RUNPATH back to libscion_core);
  # out of tree, SCION_PLUGIN_INSTALL_DIR, by default the plugin folder of the Scion that
  # find_package(Scion) found (set it to a relative path to install under your own prefix).
  if(TARGET scion_core)
    target_link_libraries(${name} PRIVATE scion_core Boost::boost ${P_LIBS})
    file(RELATIVE_PATH _to_lib /p/${SCION_INSTALL_PLUGINDIR} /p/${SCION_INSTALL_LIBDIR})
    set_target_properties(${name} PROPERTIES INSTALL_RPATH "$ORIGIN/${_to_lib}" INSTALL_RPATH_USE_LINK_PATH ON)
    install(TARGETS ${name} LIBRARY DESTINATION ${SCION_INSTALL_PLUGINDIR})
  else()  # an out-of-tree plugin: find_package(Scion)
    target_link_libraries(${name} PRIVATE Scion::scion_core Boost::boost ${P_LIBS})
    set_target_properties(${name} PROPERTIES INSTALL_RPATH "${SCION_LIBRARY_DIR}")
    install(TARGETS ${name} LIBRARY DESTINATION "${SCION_PLUGIN_INSTALL_DIR}")
  endif()
endfunction()
