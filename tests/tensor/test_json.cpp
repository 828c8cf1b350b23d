// scion/json.h: nlohmann's ordered_json plus Scion's conventions (exact 64-bit integers,
// non-finite numbers that read back, doubles that round-trip, positions in errors).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "scion/error.h"
#include "scion/json.h"

using namespace scion;

namespace {
std::string error_of(std::string_view text) {
  try {
    json_parse(text, "f.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Json, IntegersAreExactOver64Bits) {
  const int64_t big = std::numeric_limits<int64_t>::max(), small = std::numeric_limits<int64_t>::min();
  const uint64_t seed = 0xfedcba9876543211ull;  // a seed as the executor passes it: its int64 bit pattern
  Json j;
  j["big"] = big, j["small"] = small, j["seed"] = int64_t(seed);
  const Json back = json_parse(json_dump(j));
  EXPECT_EQ(json_int(back.at("big")), big);
  EXPECT_EQ(json_int(back.at("small")), small);
  EXPECT_EQ(uint64_t(json_int(back.at("seed"))), seed);
  EXPECT_EQ(json_dump(j), "{\"big\":9223372036854775807,\"small\":-9223372036854775808,\"seed\":-81985529216486895}");
  EXPECT_EQ(json_int(json_parse("4.0")), 4);  // a double holding an integer is one
  EXPECT_THROW(json_int(json_parse("1.5")), Error);
  EXPECT_THROW(json_int(json_parse("9223372036854775808")), Error);  // 2^63 does not fit int64
  EXPECT_THROW(json_int(json_parse("\"3\"")), Error);
}

TEST(Json, DoublesRoundTripExactly) {
  // FLOP and token counters in state.json: all their digits survive a write and a read.
  for (const double v : {3.197123456789e12, 0.1 + 0.2, 1e-300, -2.5e-7, 123456789.123456789}) {
    Json j;
    j["v"] = v;
    EXPECT_EQ(json_number(json_parse(json_dump(j)).at("v")), v) << json_dump(j);
  }
}

TEST(Json, NonFiniteNumbersAreWrittenAndReadBack) {
  Json j;
  j["loss"] = std::numeric_limits<double>::quiet_NaN();
  j["up"] = std::numeric_limits<double>::infinity();
  j["down"] = -std::numeric_limits<double>::infinity();
  j["list"] = Json::array({1.5, std::numeric_limits<double>::quiet_NaN()});
  j["name"] = "NaN";  // a string that reads "NaN" stays a string
  const std::string text = json_dump(j);
  EXPECT_EQ(text, "{\"loss\":NaN,\"up\":Infinity,\"down\":-Infinity,\"list\":[1.5,NaN],\"name\":\"NaN\"}");
  const Json back = json_parse(text);
  EXPECT_TRUE(std::isnan(json_number(back.at("loss"))));
  EXPECT_EQ(json_number(back.at("up")), std::numeric_limits<double>::infinity());
  EXPECT_EQ(json_number(back.at("down")), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(json_number(back.at("list").at(1))));
  EXPECT_EQ(json_string(back.at("name")), "NaN");
  // Strings that hold control characters are not taken for the reader's markers.
  const Json s = json_parse("{\"a\": NaN, \"b\": \"\\u0001N\", \"c\": \"\\u0002I\"}");
  EXPECT_TRUE(std::isnan(json_number(s.at("a"))));
  EXPECT_EQ(json_string(s.at("b")), "\x01N");
  EXPECT_EQ(json_string(s.at("c")), "\x02I");
  EXPECT_EQ(json_dump(s.at("b")), "\"\\u0001N\"");
  // A word that only starts like one is still an error.
  EXPECT_NE(error_of("[NaNa]").find("f.json:1:"), std::string::npos);
}

TEST(Json, KeysKeepTheirOrder) {
  const std::string text = "{\"zeta\":1,\"alpha\":2,\"mid\":{\"y\":1,\"x\":2}}";
  EXPECT_EQ(json_dump(json_parse(text)), text);
  Json j;
  j["step"] = 1, j["stage"] = "s", j["loss"] = 2.5;
  EXPECT_EQ(json_dump(j), "{\"step\":1,\"stage\":\"s\",\"loss\":2.5}");
}

// Fuzzing finding (fuzz_safetensors): a number beyond a double's range in a safetensors
// header made the parser throw its own out_of_range, which nothing caught (the process ended).
TEST(Json, ANumberBeyondADoubleIsAnErrorNamingTheSource) {
  const std::string msg = error_of("{\"__metadata__gin\": 7364040570227741e5555}");
  EXPECT_EQ(msg.rfind("f.json: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("beyond the range of a double"), std::string::npos) << msg;
  EXPECT_NE(error_of("[1, NaN, -1e99999]").find("beyond the range of a double"), std::string::npos);
}

TEST(Json, ErrorsNameSourceLineAndColumn) {
  const std::string msg = error_of("{\n  \"a\": 1,\n  \"b\": }");
  EXPECT_EQ(msg.rfind("f.json:3:8: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("unexpected '}'"), std::string::npos) << msg;
  // Positions are in the text as written, also after a NaN on the same line.
  const std::string after_nan = error_of("{\"a\": NaN, \"b\": }");
  EXPECT_EQ(after_nan.rfind("f.json:1:17: ", 0), 0u) << after_nan;
  const std::string cut = error_of("{\"a\": [1, 2");
  EXPECT_NE(cut.find("f.json:1:12: "), std::string::npos) << cut;
  EXPECT_NE(cut.find("ends before"), std::string::npos) << cut;
  try {
    json_string(json_parse("5"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected a string, got 5"), std::string::npos) << e.what();
  }
}
