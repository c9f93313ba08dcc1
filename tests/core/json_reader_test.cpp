// parse_json_text refuses what nlohmann-json accepts silently (nesting without bound, repeated
// keys, integers beyond 64 bits), and messages quote values short. The same reader serves every
// document (plans, model files, profiles, manifests, safetensors headers).

#include "core/error.hpp"
#include "core/input_file.hpp"
#include "core/json_reader.hpp"

#include "../fixture_cases.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace loom::core {
namespace {

using ::loom::testing::refusal;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string nested_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string nested_objects(int depth) {
  std::string text;
  for (int i = 0; i < depth; ++i) text += "{\"a\":";
  text += "1";
  return text + std::string(depth, '}');
}

TEST(JsonDepth, SixtyFourLevelsAreReadAndSixtyFiveRefused) {
  EXPECT_NO_THROW(parse_json_text(nested_arrays(kMaxJsonDepth), "t"));
  EXPECT_NO_THROW(parse_json_text(nested_objects(kMaxJsonDepth), "t"));
  EXPECT_EQ(refusal([] { parse_json_text(nested_arrays(kMaxJsonDepth + 1), "t.json"); }),
            "t.json: JSON nested deeper than 64 levels at line 1, column 65");
  EXPECT_EQ(refusal([] { parse_json_text(nested_objects(kMaxJsonDepth + 1), "t.json"); }),
            "t.json: JSON nested deeper than 64 levels at line 1, column 321");
}

TEST(JsonDepth, AHundredThousandLevelsAreRefusedWithoutRecursing) {
  EXPECT_THAT(refusal([] { parse_json_text(nested_arrays(100000), "deep"); }),
              HasSubstr("deep: JSON nested deeper than 64 levels"));
  // Inside a plan, as the report of issue 16 had it: the crash was in the error message.
  const std::string plan = "{\"format\":\"loom-plan\",\"version\":1,\"model\":" + nested_arrays(100000) + "}";
  EXPECT_THAT(refusal([&] { parse_json_text(plan, "p"); }), HasSubstr("nested deeper than 64 levels"));
}

TEST(JsonDepth, ThePositionCountsLines) {
  EXPECT_EQ(refusal([] { parse_json_text("{\n  \"a\":\n" + nested_arrays(70) + "}", "t"); }),
            "t: JSON nested deeper than 64 levels at line 3, column 64");
}

TEST(JsonDuplicateKeys, AreRefusedWithTheirPathAndPosition) {
  EXPECT_EQ(refusal([] { parse_json_text(R"({"a":1,"a":2})", "t.json"); }),
            "t.json: duplicate key 'a' at line 1, column 10; each key may appear once in an object");
  EXPECT_THAT(refusal([] { parse_json_text("{\"model\": {\n \"hidden-size\": 1,\n \"hidden-size\": 2}}", "t"); }),
              HasSubstr("t: duplicate key 'model.hidden-size' at line 3, column 14"));
  EXPECT_THAT(refusal([] { parse_json_text(R"({"links":[{"level":"x"},{"level":"y","level":"z"}]})", "t"); }),
              HasSubstr("duplicate key 'links[1].level'"));
}

TEST(JsonDuplicateKeys, EqualKeysInDifferentObjectsAreFine) {
  const Json json = parse_json_text(R"({"a":{"b":1},"c":{"b":2},"d":[{"b":3},{"b":4}]})", "t");
  EXPECT_EQ(json["d"][1]["b"], 4);
}

TEST(JsonParse, KeepsKeyOrderAndValuesAsNlohmannDoes) {
  const std::string text = R"({"z":1,"a":[true,null,"s",-3,18446744073709551615,2.5,{"k":{}}],"m":[]})";
  const Json json = parse_json_text(text, "t");
  EXPECT_EQ(json, Json::parse(text));
  EXPECT_EQ(json.dump(), Json::parse(text).dump());  // same order, same types
  EXPECT_EQ(json.begin().key(), "z");
  EXPECT_TRUE(json["a"][4].is_number_unsigned());
}

TEST(JsonParse, AnObjectWithManyKeysIsRead) {
  std::string text = "{";
  for (int i = 0; i < 100000; ++i) text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  const Json json = parse_json_text(text + "}", "t");
  ASSERT_EQ(json.size(), 100000u);
  EXPECT_EQ(json["k99999"], 99999);
}

TEST(JsonNumbers, AnIntegerBeyond64BitsIsQuotedAsWritten) {
  EXPECT_EQ(refusal([] { parse_json_text(R"({"model":{"num-layers":99999999999999999999}})", "p.json"); }),
            "p.json: model.num-layers: 99999999999999999999 is too large; expected an integer up to "
            "9223372036854775807");
  EXPECT_EQ(refusal([] { parse_json_text(R"([1, -99999999999999999999])", "t"); }),
            "t: [1]: -99999999999999999999 is too small; expected an integer from -9223372036854775808");
  EXPECT_THAT(refusal([] { parse_json_text("123456789012345678901234567890", "t"); }),
              StartsWith("t: document: 123456789012345678901234567890 is too large"));
  // Numbers written as floating point stay numbers: their fields decide.
  EXPECT_DOUBLE_EQ(parse_json_text("[1e20]", "t")[0].get<double>(), 1e20);
  EXPECT_TRUE(parse_json_text("[18446744073709551615]", "t")[0].is_number_unsigned());
}

TEST(JsonNumbers, OverflowNamesThePosition) {
  EXPECT_EQ(refusal([] { parse_json_text("{\n \"lr\": 1e999}", "t"); }),
            "t:2:12: malformed JSON: number overflow parsing '1e999'");
}

TEST(JsonParse, SyntaxErrorsKeepTheirPosition) {
  EXPECT_THAT(refusal([] { parse_json_text("{\n  \"a\": 1,\n}", "t"); }), StartsWith("t:3:1: malformed JSON: "));
  EXPECT_THAT(refusal([] { parse_json_text("", "t"); }), StartsWith("t:1:1: malformed JSON: "));
  EXPECT_THAT(refusal([] { parse_json_text("[1] x", "t"); }), StartsWith("t:1:5: malformed JSON: "));
}

TEST(JsonParse, TextOverTheLimitIsRefused) {
  const std::string text(std::size_t(kMaxJsonInputBytes) + 1, ' ');
  EXPECT_THAT(refusal([&] { parse_json_text(text, "t"); }),
              HasSubstr("t: JSON text of 64.0 MiB (67108865 bytes) is longer than the 64 MiB allowed"));
}

TEST(JsonExcerpt, ShortValuesAreCompactJson) {
  EXPECT_EQ(json_excerpt(Json(768)), "768");
  EXPECT_EQ(json_excerpt(Json(2.0)), "2.0");
  EXPECT_EQ(json_excerpt(Json("768")), "\"768\"");
  EXPECT_EQ(json_excerpt(parse_json_text(R"({"a":[1,2],"b":null})", "t")), R"({"a":[1,2],"b":null})");
}

TEST(JsonExcerpt, LongValuesAreCutShort) {
  const std::string array = json_excerpt(Json(std::vector<int>(2'500'000, 7)));
  EXPECT_THAT(array, StartsWith("[7,7,7,"));
  EXPECT_THAT(array, EndsWith("…"));
  EXPECT_LE(array.size(), 64u);
  const std::string text = json_excerpt(Json(std::string(5'000'000, 'x')));
  EXPECT_EQ(text, "\"" + std::string(59, 'x') + "…");
  // A cut never splits a UTF-8 character.
  const std::string accents = json_excerpt(Json(std::string(3000, 'a') + "é"));
  EXPECT_NO_THROW(Json(accents).dump());
  std::string euros;
  for (int i = 0; i < 100; ++i) euros += "€";
  EXPECT_NO_THROW(Json(json_excerpt(Json(euros))).dump());
  const Json deep = parse_json_text(nested_arrays(kMaxJsonDepth), "t");
  EXPECT_LE(json_excerpt(deep).size(), 64u);
}

TEST(TextExcerpt, CutsAndShowsControlCharacters) {
  EXPECT_EQ(text_excerpt("hidden-size"), "hidden-size");
  EXPECT_EQ(text_excerpt("a\nb"), "a\\x0ab");
  EXPECT_EQ(text_excerpt(std::string(1000, 'k')), std::string(60, 'k') + "…");
}

// Reading a field of the wrong kind, through the reader every document uses.
std::string field_refusal(const std::string& value, const std::string& read = "int") {
  return refusal([&] {
    const Json json = parse_json_text("{\"f\": " + value + "}", "t");
    JsonObjectReader reader(json, "model");
    if (read == "int") reader.required_int("f");
    else reader.optional_number("f", 0);
  });
}

TEST(JsonObjectReaderNumbers, AWholeNumberWithADecimalPointIsRefusedClearly) {
  EXPECT_EQ(field_refusal("2.0"),
            "model.f: expected an integer, got 2.0 (write it without a decimal point or exponent)");
  EXPECT_EQ(field_refusal("2e3"),
            "model.f: expected an integer, got 2000.0 (write it without a decimal point or exponent)");
  EXPECT_EQ(field_refusal("64.5"), "model.f: expected an integer, got a fractional number (64.5)");
}

TEST(JsonObjectReaderNumbers, TooLargeIntegersNameTheMaximum) {
  EXPECT_EQ(field_refusal("18446744073709551615"),
            "model.f: 18446744073709551615 is too large; expected an integer up to 9223372036854775807");
  EXPECT_EQ(field_refusal("1e30"), "model.f: 1e+30 is too large; expected an integer up to 9223372036854775807");
  EXPECT_EQ(field_refusal("-1e30"),
            "model.f: -1e+30 is too small; expected an integer from -9223372036854775808");
  EXPECT_EQ(field_refusal("9223372036854775807"), "(no such error thrown)");
  EXPECT_EQ(field_refusal("-9223372036854775808"), "(no such error thrown)");
}

TEST(JsonObjectReaderNumbers, NonFiniteNumbersBuiltInCodeAreRefused) {
  Json json = {{"f", std::numeric_limits<double>::quiet_NaN()}};
  JsonObjectReader reader(json, "training");
  EXPECT_THAT(refusal([&] { reader.optional_number("f", 0); }), HasSubstr("training.f=nan must be a finite number"));
  json["f"] = std::numeric_limits<double>::infinity();
  JsonObjectReader again(json, "training");
  EXPECT_THAT(refusal([&] { again.optional_number("f", 0); }), HasSubstr("must be a finite number"));
}

TEST(JsonObjectReaderMessages, AHugeValueOfTheWrongTypeMakesAShortMessage) {
  std::string array = "[0";
  for (int i = 0; i < 2'500'000; ++i) array += ",0";
  const std::string message = field_refusal(array + "]");
  EXPECT_THAT(message, StartsWith("model.f: expected an integer, got an array of 2500001 elements ([0,0,0,"));
  EXPECT_LT(message.size(), 300u);
  EXPECT_LT(field_refusal("\"" + std::string(5'000'000, 's') + "\"").size(), 300u);
  EXPECT_LT(field_refusal(R"({"k": [1, 2, 3], "l": ")" + std::string(100'000, 's') + "\"}").size(), 300u);
  EXPECT_THAT(field_refusal("{\"k\": 1}"), HasSubstr("got an object of 1 key ({\"k\":1})"));
}

TEST(JsonObjectReaderMessages, AnUnknownLongKeyIsCut) {
  const Json json = parse_json_text("{\"" + std::string(100'000, 'q') + "\": 1}", "t");
  JsonObjectReader reader(json, "model");
  const std::string message = refusal([&] { reader.finish(); });
  EXPECT_THAT(message, StartsWith("model." + std::string(60, 'q') + "… is not a known key"));
  EXPECT_LT(message.size(), 300u);
}

}  // namespace
}  // namespace loom::core
