// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Tests of attnkit/io/json.hpp: the strict JSON reader, its accessors and the writer.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "attnkit/io/json.hpp"

#include "io/io_test_util.hpp"

using namespace attnkit;
using Catch::Matchers::Contains;

TEST_CASE("json: scalars, arrays and objects", "[io][json]") {
  REQUIRE(json::parse("null").is_null());
  REQUIRE(json::parse(" true ").as_bool());
  REQUIRE_FALSE(json::parse("false").as_bool());
  REQUIRE(json::parse("0").as_int() == 0);
  REQUIRE(json::parse("-0").as_double() == 0.0);
  REQUIRE(std::signbit(json::parse("-0.0").as_double()));
  REQUIRE(json::parse("42").as_int() == 42);
  REQUIRE(json::parse("-17").as_int() == -17);
  REQUIRE(json::parse("1.5").as_double() == 1.5);
  REQUIRE(json::parse("1e-6").as_double() == 1e-6);
  REQUIRE(json::parse("2.5E+3").as_double() == 2500.0);
  REQUIRE(json::parse("10000.0").as_int() == 10000);  // an integral double reads as an integer
  REQUIRE(json::parse("9223372036854775807").as_int() == std::numeric_limits<std::int64_t>::max());
  REQUIRE(json::parse("-9223372036854775808").as_int() == std::numeric_limits<std::int64_t>::min());
  const json::Value big = json::parse("12345678901234567890");  // beyond int64: a double
  REQUIRE_FALSE(big.is_integer());
  REQUIRE(big.as_double() == 12345678901234567890.0);
  REQUIRE_THROWS_WITH(big.as_int(), Contains("expected an integer"));
  REQUIRE_THROWS_WITH(json::parse("1.5").as_int(), Contains("expected an integer, got number 1.5"));
  REQUIRE(json::parse("1e-400").as_double() == 0.0);  // underflow reads as zero

  const json::Value v = json::parse(R"({"a": [1, 2, {"b": null}], "c": "x", "d": {}, "e": []})");
  REQUIRE(v.is_object());
  REQUIRE(v.size() == 4);
  REQUIRE(v.as_object()[0].first == "a");  // document order
  REQUIRE(v.at("a").size() == 3);
  REQUIRE(v.at("a").at(std::size_t{1}).as_int() == 2);
  REQUIRE(v.at("a").at(std::size_t{2}).at("b").is_null());
  REQUIRE(v.at("c").as_string() == "x");
  REQUIRE(v.at("d").size() == 0);
  REQUIRE(v.at("e").size() == 0);
  REQUIRE(v.contains("c"));
  REQUIRE_FALSE(v.contains("z"));
  REQUIRE(v.find("z") == nullptr);
}

TEST_CASE("json: strings, escapes and UTF-8", "[io][json]") {
  REQUIRE(json::parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string() == "a\"b\\c/d\b\f\n\r\t");
  REQUIRE(json::parse(R"("\u0041\u00e9\u20ac")").as_string() == "A\xc3\xa9\xe2\x82\xac");
  REQUIRE(json::parse(R"("\ud83d\ude00")").as_string() == "\xf0\x9f\x98\x80");  // U+1F600
  REQUIRE(json::parse(R"("\uDBFF\uDFFF")").as_string() == "\xf4\x8f\xbf\xbf");  // U+10FFFF
  REQUIRE(json::parse("\"\xc3\xa9\xf0\x9f\x98\x80\"").as_string() == "\xc3\xa9\xf0\x9f\x98\x80");
  REQUIRE(json::parse(R"("\u0000")").as_string() == std::string(1, '\0'));

  REQUIRE_THROWS_WITH(json::parse(R"("\ud83d")"), Contains("high surrogate"));
  REQUIRE_THROWS_WITH(json::parse(R"("\ud83dx")"), Contains("high surrogate"));
  REQUIRE_THROWS_WITH(json::parse(R"("\ud83d\u0041")"), Contains("high surrogate"));
  REQUIRE_THROWS_WITH(json::parse(R"("\ude00")"), Contains("lone low surrogate"));
  REQUIRE_THROWS_WITH(json::parse(R"("\u12g4")"), Contains("invalid hex digit"));
  REQUIRE_THROWS_WITH(json::parse(R"("\u12")"), Contains("\\u escape"));
  REQUIRE_THROWS_WITH(json::parse(R"("\x")"), Contains("invalid escape"));
  REQUIRE_THROWS_WITH(json::parse("\"a\nb\""), Contains("control character"));
  REQUIRE_THROWS_WITH(json::parse("\"abc"), Contains("unterminated string"));
  // Malformed UTF-8: overlong, encoded surrogate, beyond U+10FFFF, bad lead, truncated sequence,
  // a bare continuation byte, and a non-ASCII byte outside a string.
  for (const char* bad :
       {"\"\xc0\xaf\"", "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"", "\"\xff\"", "\"\xe2\x82\"", "\"\x80\""}) {
    INFO(bad);
    REQUIRE_THROWS_AS(json::parse(bad), json::parse_error);
    REQUIRE_THROWS_WITH(json::parse(bad), Contains("UTF-8"));
  }
  REQUIRE_THROWS_WITH(json::parse("\xff"), Contains("invalid UTF-8"));
  REQUIRE(json::parse("\xEF\xBB\xBF{}").is_object());  // a byte order mark is ignored
}

TEST_CASE("json: malformed documents are errors with line and column", "[io][json]") {
  for (const char* bad :
       {"",      " ",          "{",        "[",         "[1,]",    "[1 2]", "{\"a\" 1}", "{\"a\":}",
        "{a:1}", "{\"a\":1,}", "01",       "1.",        ".5",      "+1",    "-",         "1e",
        "1e+",   "NaN",        "Infinity", "-Infinity", "tru",     "nul",   "[1]]",      "{} {}",
        "'a'",   "\"a\" x",    "1e400",    "-1e400",    "[\"a\",]"}) {
    INFO(bad);
    REQUIRE_THROWS_AS(json::parse(bad), json::parse_error);
  }
  REQUIRE_THROWS_WITH(json::parse("{}x", "config.json"), Contains("config.json") &&
                                                             Contains("line 1, column 3") &&
                                                             Contains("trailing"));
  REQUIRE_THROWS_WITH(json::parse("{\n  \"a\": 1,\n  \"b\": ?\n}", "cfg"),
                      Contains("line 3, column 8"));
  REQUIRE_THROWS_WITH(json::parse("1e400"), Contains("out of the range"));
  REQUIRE_THROWS_WITH(json::parse(R"({"a": 1, "b": 2, "a": 3})"), Contains("duplicate key \"a\""));
  REQUIRE_THROWS_WITH(json::parse(R"({"x": {"k": 1, "k": 1}})"), Contains("duplicate key \"k\""));
}

TEST_CASE("json: nesting depth is bounded", "[io][json]") {
  const int ok_depth = json::max_depth;
  REQUIRE_NOTHROW(json::parse(std::string(ok_depth, '[') + std::string(ok_depth, ']')));
  const std::string bomb = std::string(100000, '[');
  REQUIRE_THROWS_WITH(json::parse(bomb), Contains("nesting deeper"));
  std::string objs;
  for (int i = 0; i <= json::max_depth; ++i) objs += "{\"a\":";
  REQUIRE_THROWS_WITH(json::parse(objs), Contains("nesting deeper"));
}

TEST_CASE("json: accessors name the key and the kind", "[io][json]") {
  const json::Value cfg = json::parse(
      R"({"hidden_size": 64, "rms_norm_eps": 1e-6, "name": "tiny", "tie": true, "none": null,
          "bad": "12", "frac": 2.5})");
  REQUIRE(cfg.get_int("hidden_size") == 64);
  REQUIRE(cfg.get_double("hidden_size") == 64.0);
  REQUIRE(cfg.get_double("rms_norm_eps") == 1e-6);
  REQUIRE(cfg.get_string("name") == "tiny");
  REQUIRE(cfg.get_bool("tie"));
  REQUIRE(cfg.get_int("missing", 7) == 7);
  REQUIRE(cfg.get_int("none", 8) == 8);
  REQUIRE(cfg.get_double("missing", 0.5) == 0.5);
  REQUIRE(cfg.get_bool("missing", true));
  REQUIRE(cfg.get_string("missing", "d") == "d");
  REQUIRE(cfg.get_int("hidden_size", 1) == 64);
  REQUIRE_THROWS_AS(cfg.get_int("vocab_size"), json::access_error);
  REQUIRE_THROWS_WITH(cfg.get_int("vocab_size"), Contains("missing key \"vocab_size\""));
  REQUIRE_THROWS_WITH(cfg.get_int("bad"),
                      Contains("key \"bad\"") && Contains("expected number, got string \"12\""));
  REQUIRE_THROWS_WITH(cfg.get_int("frac"), Contains("key \"frac\"") && Contains("integer"));
  REQUIRE_THROWS_WITH(cfg.get_int("bad", 3), Contains("key \"bad\""));
  REQUIRE_THROWS_WITH(cfg.get_string("tie"), Contains("expected string, got true"));
  REQUIRE_THROWS_WITH(cfg.at("name").as_array(), Contains("expected array"));
  REQUIRE_THROWS_WITH(cfg.at("name").at("x"), Contains("expected object"));
  REQUIRE_THROWS_WITH(json::parse("[1]").at(std::size_t{1}), Contains("index 1 out of range"));
  REQUIRE_THROWS_WITH(json::parse("3").size(), Contains("needs an array or object"));
}

TEST_CASE("json: dump writes text that parses back to the same value", "[io][json]") {
  const std::string text =
      R"({"a":[1,-2,1.5,1e-06,true,false,null],"s":"q\"\\\n\u0001\u00e9","o":{"x":{}},"e":[]})";
  const json::Value v = json::parse(text);
  const std::string out = v.dump();
  REQUIRE(out == R"({"a":[1,-2,1.5,1e-06,true,false,null],"s":"q\"\\\n\u0001)"
                 "\xc3\xa9"
                 R"(","o":{"x":{}},"e":[]})");
  REQUIRE(json::parse(out).dump() == out);

  json::Value o = json::Value::object();
  o.insert("k", json::Value::integer(-5));
  o.insert("d", json::Value::number(0.1));
  REQUIRE_THROWS_WITH(o.insert("k", json::Value()), Contains("duplicate key"));
  REQUIRE(o.dump() == R"({"k":-5,"d":0.1})");
  REQUIRE_THROWS_WITH(json::Value::number(std::nan("")).dump(), Contains("non-finite"));
  REQUIRE_THROWS_WITH(json::Value::string("\xff").dump(), Contains("UTF-8"));
  REQUIRE_THROWS_AS(json::Value::object({{"a", json::Value()}, {"a", json::Value()}}),
                    json::access_error);
}

TEST_CASE("json: random mutations only ever throw parse_error", "[io][json]") {
  const std::string good =
      R"({"model_type": "llama", "hidden_size": 4096, "rope_theta": 500000.0, "eps": 1e-05,
          "arch": ["LlamaForCausalLM"], "tie": false, "pad": null, "s": "\u00e9\ud83d\ude00",
          "nested": {"a": [1, [2, [3, {"b": -0.25}]]]}})";
  REQUIRE_NOTHROW(json::parse(good));
  std::mt19937 rng(2024);
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string s = attnkit_test::mutate(good, rng);
    if (iter % 3 == 0) s = attnkit_test::mutate(s, rng);
    try {
      const json::Value v = json::parse(s);
      REQUIRE(json::parse(v.dump()).dump() == v.dump());
      ++ok;
    } catch (const json::parse_error&) {
      ++rejected;
    }
  }
  REQUIRE(ok + rejected == 5000);
  REQUIRE(rejected > 1000);
}
