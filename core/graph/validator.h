// The validator the passes of load_graph share (internal to core/graph): positions of TOML
// values (in the file, or the --set override that gave them), the collected diagnostics, and
// the schema check of a table of parameters (ParamSpec: types, choices, ranges, file paths,
// defaults written into the resolved graph).
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "graph/diagnostics.h"
#include "runtime/paths.h"
#include "runtime/registry.h"

namespace scion::runtime {

class Validator {
 public:
  Validator(std::string file, const PluginRegistry& reg);

  const std::string& file() const { return file_; }
  const PluginRegistry& registry() const { return reg_; }
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }
  bool ok() const { return diags_.empty(); }

  // A value a --set override gave carries the override as its source: its problems name the
  // override, not a place in the file it never came from.
  SourcePos pos(const toml::node& n) const;
  SourcePos pos(const toml::key& k) const;
  // Records `n` and everything inside it as given by the override `source` ("--set a.b=1"),
  // and `key` as a key that override added to its table (toml++ gives such a key no place).
  void mark_override(const toml::node& n, const std::string& source);
  void mark_override_key(const std::string& key, const std::string& source) { override_keys_[key] = source; }

  void error(SourcePos p, std::string msg, std::string hint = "");
  // What a plugin's check computed for the user (GraphProblem::note): kept in the GraphSpec.
  void note(SourcePos p, std::string msg, std::string hint = "") { notes_.push_back({std::move(p), std::move(msg), std::move(hint)}); }
  const std::vector<Diagnostic>& notes() const { return notes_; }
  void unknown_key(const toml::key& k, const std::string& where, const std::vector<std::string>& allowed);

  // Checks a table of parameters against a schema; returns the validated values (defaults
  // filled) and writes the defaults into `t` for the resolved graph. `extra` keys are allowed
  // and skipped (ports, references, keys checked elsewhere).
  Json check_params(toml::table& t, const std::vector<ParamSpec>& schema, const std::string& where,
                    const std::set<std::string>& extra, const SourcePos& table_pos);

  // A string key outside a schema (an optimizer's `plugin`): a value of another type is an
  // error at the value, never silently replaced by the default (which is returned then).
  std::string string(const toml::table& t, const char* key, const std::string& def, const std::string& where);

  static std::string join(const std::vector<std::string>& v);
  static const char* toml_type(const toml::node& n);  // "an integer", "a table", ...

 private:
  void resolve_paths(toml::node& v, const std::string& key, const std::string& where);
  Json resolve_default(const ParamSpec& p, const std::string& where, const SourcePos& table_pos);
  void check_value(const ParamSpec& spec, const toml::node& v, const std::string& where);

  std::string file_;
  const PluginRegistry& reg_;
  std::vector<PathBase> bases_;  // where a relative file path is looked for (runtime/paths.h)
  std::vector<Diagnostic> diags_, notes_;
  std::map<const toml::node*, std::string> from_override_;  // value -> "--set path=value"
  std::map<std::string, std::string> override_keys_;        // key an override added -> "--set path=value"
};

// A name that becomes one file or folder name inside the run root: non-empty, at most 100
// characters of [A-Za-z0-9_-] (and '.' where `dots`), not starting with '.'.
bool file_name_ok(const std::string& name, bool dots);

}  // namespace scion::runtime
