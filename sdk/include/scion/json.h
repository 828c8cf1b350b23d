// JSON in Scion is nlohmann-json's ordered_json (objects keep their insertion or file order),
// plus a few helpers for what nlohmann leaves to the caller. Used for safetensors headers,
// training state, metrics lines, model configs and resolved parameters.
//
// Two conventions on top of nlohmann:
//   * Non-finite numbers: json_dump writes NaN, Infinity and -Infinity as bare tokens, as
//     Python's json module writes them (and reads them back), and json_parse reads them back
//     as the doubles they were. nlohmann's own dump() would write null for them: write with
//     json_dump wherever a value may be non-finite (metrics, state).
//   * Integers are exact over 64 bits: nlohmann keeps integers as int64/uint64, and
//     json_int refuses a number that is not an integer or does not fit int64.
// The accessors throw scion::Error naming what they got; nlohmann's own get<>() and at()
// throw nlohmann::json::exception (a std::exception), which is fine where that is enough.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace scion {

using Json = nlohmann::ordered_json;

// Parses one JSON document. `source` names it in errors ("<source>:<line>:<column>: <what>").
Json json_parse(std::string_view text, const std::string& source = "JSON");
// Compact, one line; numbers round-trip exactly (shortest form that reads back the same
// double); non-finite numbers as NaN / Infinity / -Infinity.
std::string json_dump(const Json& j);

double json_number(const Json& j);              // any number (int64, uint64 or double)
int64_t json_int(const Json& j);                // exact: refuses 1.5, 2^63, "3"
bool json_bool(const Json& j);
const std::string& json_string(const Json& j);
const Json::array_t& json_array(const Json& j);
const Json::object_t& json_object(const Json& j);

// "<line>:<column>" (both from 1) of byte `offset` in `text`; columns count UTF-8 characters.
std::string json_position(std::string_view text, size_t offset);

}  // namespace scion
