// A deliberately small JSON reader: just what vocabulary files need.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scion::text::json {

// Parses `text`, which must be one JSON object whose values are all integers (the shape of
// GPT-2's encoder.json / Hugging Face vocab.json), into (key, value) pairs in file order.
// Keys are returned as UTF-8 with escapes resolved (\uXXXX surrogate pairs included).
// On malformed input throws std::runtime_error "<source>:<line>:<column>: <what> (<hint>)".
std::vector<std::pair<std::string, int64_t>> parse_string_int_object(std::string_view text,
                                                                     const std::string& source);

} // namespace scion::text::json
