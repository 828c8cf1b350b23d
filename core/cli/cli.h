// What the `scion` command's subcommands share (defined in cli/main.cpp): the plugin
// registry, loading a model node from a checkpoint, parsing a subcommand's options.
#pragma once
#include <boost/program_options.hpp>
#include <memory>
#include <string>
#include <vector>

#include "runtime/registry.h"
#include "scion/plugin.h"

namespace scion::cli {

// The plugins found on the search path (and `extra` folders); their problems printed unless quiet.
runtime::PluginRegistry load_registry(const std::vector<std::string>& extra, bool quiet = false);

// A model node made from a Scion checkpoint file (plugin and config from its metadata, or
// `plugin_override`), frozen, its weights loaded by the node.
std::shared_ptr<Model> model_from_checkpoint(const runtime::PluginRegistry& reg, const std::string& file,
                                            const std::string& plugin_override);

// Parses a subcommand's options; false after printing help.
bool parse(int argc, char** argv, boost::program_options::options_description& d,
           boost::program_options::positional_options_description* pos, const char* usage);

// `scion export` (cli/export.cpp).
int cmd_export(int argc, char** argv);
// `scion teacher-cache` (cli/teacher_cache.cpp).
int cmd_teacher_cache(int argc, char** argv);
// "key=<value as a TOML string>" for --set (a path is data, never TOML).
std::string set_override(const std::string& key, const std::string& value);

}  // namespace scion::cli
