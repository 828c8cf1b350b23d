// A test plugin whose file parameter's default matches no file anywhere: a graph that leaves
// the parameter out is refused at validation, the hint naming every base tried
// (tests/install/test_paths.cpp). Its factory is never called.
#include "scion/plugin.h"

namespace {

scion::PluginEntry missing_default_entry() {
  scion::PluginEntry e;
  e.name = "test.missing_default";
  e.kind = scion::PluginKind::tokenizer;
  e.version = "1.0.0";
  e.description = "a tokenizer whose default vocabulary does not exist";
  e.params = {scion::str_param("vocab", "no/such/vocab.txt", "vocabulary file").file()};
  e.factory = [](const scion::Params&, const scion::NodeResolver&) -> std::shared_ptr<scion::Plugin> { return nullptr; };
  return e;
}

}  // namespace

SCION_REGISTER_PLUGIN(missing_default_entry)
SCION_PLUGIN_LIBRARY()
