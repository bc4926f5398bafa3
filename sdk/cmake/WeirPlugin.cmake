# weir_add_plugin(<name> SOURCES <files>... [LIBRARIES <libs>...])
#
# Builds a Weir job plugin: a shared module `<name>.so` linked only against the SDK, with hidden
# visibility so that the only exported symbol is the versioned plugin entry, and with undefined
# symbols refused at link time (a plugin must not depend on the engine's symbols).
function(weir_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "weir_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Weir::sdk ${ARG_LIBRARIES})
  target_compile_features(${name} PRIVATE cxx_std_20)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_link_options(${name} PRIVATE -Wl,-z,defs)
    # Export the versioned entry only, not the default-visibility std/Boost template code.
    set(_weir_exports ${CMAKE_CURRENT_BINARY_DIR}/${name}.weir-exports.map)
    file(CONFIGURE OUTPUT ${_weir_exports} CONTENT "{ global: weir_plugin_v*; local: *; };\n")
    target_link_options(${name} PRIVATE -Wl,--version-script=${_weir_exports})
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${_weir_exports})
  endif()
endfunction()
