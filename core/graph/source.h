// The graph's TOML source (internal to core/graph): the text parsed, --set overrides applied,
// and dotted paths ("stages.0.eval", "stage_files.teacher") walked to the value they name.
#pragma once
#include <string>

#include <toml++/toml.h>

#include "graph/validator.h"

namespace scion::runtime {

// The file's text, or a GraphError saying why it cannot be read (a directory, a missing file).
std::string read_graph_file(const std::string& file);

// `text` as TOML; a syntax error is thrown as a GraphError at its place.
toml::table parse_graph(const std::string& file, const std::string& text);

// Applies one --set override ("a.b.0.c=value") to the parsed table. The value is read as TOML
// when it parses as TOML (numbers, booleans, arrays, quoted strings), as a plain string
// otherwise; it is marked as the override's (Validator::mark_override) so that a problem with
// it is reported at the override. A path that does not exist is an error of `v`.
void apply_override(toml::table& root, const std::string& override_text, Validator& v);

// The value at a dotted path inside `base` (table keys, array indices): the deepest part that
// exists, so that a path into a default names its enclosing table; `base` for "".
const toml::node* deepest_at(const toml::node* base, const std::string& path);

}  // namespace scion::runtime
