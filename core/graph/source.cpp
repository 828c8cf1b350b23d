#include "graph/source.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace scion::runtime {

std::string read_graph_file(const std::string& file) {
  // Said in words, with the file: the C++ library's own messages ("basic_filebuf::underflow
  // error reading the file: Is a directory") name neither.
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw GraphError({{{file, 0, 0}, "this is a directory, not a graph file", "name a .toml graph file (graphs/*.toml)"}});
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw GraphError({{{file, 0, 0},
                       std::string("cannot open the graph file") + (err ? std::string(": ") + std::strerror(err) : ""),
                       err == ENAMETOOLONG ? "the path (or one of its folder names) is longer than the system allows"
                                           : "check the path"}});
  }
  std::string text;
  try {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {
    text.clear();
  }
  if (in.bad()) throw GraphError({{{file, 0, 0}, "cannot read the graph file", "is it a regular, readable file?"}});
  return text;
}


toml::table parse_graph(const std::string& file, const std::string& text) {
  try {
    return toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw GraphError({{{file, int(s.begin.line), int(s.begin.column)}, "TOML syntax: " + std::string(e.description()),
                       "see https://toml.io for the syntax"}});
  }
}

void apply_override(toml::table& root, const std::string& ov, Validator& v) {
  const SourcePos p{"--set " + ov, 0, 0};
  const size_t eq = ov.find('=');
  if (eq == std::string::npos || eq == 0) {
    v.error(p, "an override must look like path.to.key=value");
    return;
  }
  const std::string path = ov.substr(0, eq), value = ov.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  // [run] is optional with every key defaulted: --set run.seed=3 (and `scion run --device`)
  // works on a graph without one.
  if (parts.size() == 2 && parts[0] == "run" && !root.contains("run")) root.insert("run", toml::table{});
  toml::node* cur = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string& k = parts[i];
    toml::node* next = nullptr;
    if (auto t = cur->as_table()) {
      next = t->get(k);
      if (!next) {
        std::vector<std::string> keys;
        for (auto&& [kk, vv] : *t) keys.push_back(std::string(kk.str()));
        const std::string g = did_you_mean(k, keys);
        v.error(p, "--set " + path + ": '" + k + "' does not exist in the graph",
                g.empty() ? "existing keys: " + Validator::join(keys) : "did you mean '" + g + "'?");
        return;
      }
    } else if (auto a = cur->as_array()) {
      char* end = nullptr;
      const long idx = std::strtol(k.c_str(), &end, 10);
      if (*end || idx < 0 || size_t(idx) >= a->size()) {
        v.error(p, "--set " + path + ": '" + k + "' is not an index of an array of " + std::to_string(a->size()));
        return;
      }
      next = a->get(size_t(idx));
    } else {
      v.error(p, "--set " + path + ": '" + parts[i - 1] + "' is not a table or an array");
      return;
    }
    cur = next;
  }
  auto t = cur->as_table();
  if (!t) {
    v.error(p, "--set " + path + ": the parent of '" + parts.back() + "' is not a table");
    return;
  }
  // The value is read as TOML when it parses as TOML (numbers, booleans, arrays, quoted
  // strings) and as a plain string otherwise.
  // Either way the value inserted is marked as the override's, so that a problem with it is
  // reported at the override (Validator::pos), not at a place in the file.
  const std::string source = "--set " + ov;
  auto put = [&](toml::table& parsed) {
    if (!t->contains(parts.back())) v.mark_override_key(parts.back(), source);
    t->insert_or_assign(parts.back(), *parsed.get("v"));
    if (const toml::node* n = t->get(parts.back())) v.mark_override(*n, source);
  };
  try {
    toml::table parsed = toml::parse("v = " + value, source);
    put(parsed);
  } catch (const toml::parse_error&) {
    std::string quoted = "v = \"";
    for (const unsigned char c : value) {
      if (c == '"' || c == '\\') quoted += '\\', quoted += char(c);
      else if (c < 0x20 || c == 0x7f) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", c);
        quoted += esc;
      } else quoted += char(c);
    }
    try {
      toml::table parsed = toml::parse(quoted + "\"", source);
      put(parsed);
    } catch (const toml::parse_error& e) {  // not UTF-8: TOML strings cannot hold it
      v.error(p, "--set " + path + ": the value is not valid UTF-8 text (" + std::string(e.description()) + ")");
    }
  }
}

const toml::node* deepest_at(const toml::node* base, const std::string& path) {
  const toml::node* cur = base;
  std::stringstream ss(path);
  std::string part;
  while (cur && !path.empty() && std::getline(ss, part, '.')) {
    const toml::node* next = nullptr;
    if (auto t = cur->as_table()) next = t->get(part);
    else if (auto a = cur->as_array(); a && !part.empty() && part.find_first_not_of("0123456789") == std::string::npos)
      next = a->get(size_t(std::stoul(part)));
    if (!next) break;
    cur = next;
  }
  return cur;
}

}  // namespace scion::runtime
