// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Tests of attnkit/io/safetensors.hpp and io/half.hpp: layout by the spec, round trips, F16/BF16
// conversion, and hostile files.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/io/safetensors.hpp"

#include "io/io_test_util.hpp"

using namespace attnkit;
using namespace attnkit::io;
using attnkit_test::le_bytes;
using attnkit_test::read_bytes;
using attnkit_test::TempDir;
using attnkit_test::write_bytes;
using Catch::Matchers::Contains;

namespace {

std::string make_st(const std::string& header, const std::string& data) {
  return le_bytes(header.size(), 8) + header + data;
}

template <class T>
std::string bytes_of(std::initializer_list<T> xs) {
  std::string s;
  for (T x : xs) {
    char b[sizeof(T)];
    std::memcpy(b, &x, sizeof(T));
    s.append(b, sizeof(T));
  }
  return s;
}

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

void check_error(const std::string& path, const std::string& bytes, const std::string& needle) {
  write_bytes(path, bytes);
  for (LoadMode mode : {LoadMode::map, LoadMode::read}) {
    REQUIRE_THROWS_AS(SafetensorsFile::open(path, mode), attnkit::error);
    REQUIRE_THROWS_WITH(SafetensorsFile::open(path, mode), Contains(needle) && Contains(path));
  }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

}  // namespace

TEST_CASE("half: float16 bit patterns to float32 (hand-computed)", "[io][half]") {
  REQUIRE(f16_to_f32(0x0000) == 0.0f);
  REQUIRE_FALSE(std::signbit(f16_to_f32(0x0000)));
  REQUIRE(f16_to_f32(0x8000) == 0.0f);
  REQUIRE(std::signbit(f16_to_f32(0x8000)));
  REQUIRE(f16_to_f32(0x3c00) == 1.0f);
  REQUIRE(f16_to_f32(0xc000) == -2.0f);
  REQUIRE(f16_to_f32(0x3555) == 0.333251953125f);          // 0x155 / 1024 + 1, times 2^-2
  REQUIRE(f16_to_f32(0x7bff) == 65504.0f);                 // largest finite
  REQUIRE(f16_to_f32(0x0400) == 6.103515625e-05f);         // smallest normal, 2^-14
  REQUIRE(f16_to_f32(0x0001) == 5.9604644775390625e-08f);  // smallest subnormal, 2^-24
  REQUIRE(f16_to_f32(0x03ff) == 6.097555160522461e-05f);   // largest subnormal, 1023 * 2^-24
  REQUIRE(f16_to_f32(0x8001) == -5.9604644775390625e-08f);
  REQUIRE(f16_to_f32(0x0200) == 3.0517578125e-05f);  // 2^-15
  REQUIRE(std::isinf(f16_to_f32(0x7c00)));
  REQUIRE(f16_to_f32(0x7c00) > 0);
  REQUIRE(f16_to_f32(0xfc00) < 0);
  REQUIRE(std::isinf(f16_to_f32(0xfc00)));
  REQUIRE(std::isnan(f16_to_f32(0x7e00)));
  REQUIRE(std::isnan(f16_to_f32(0x7c01)));  // signalling NaN stays a NaN
  REQUIRE(std::isnan(f16_to_f32(0xfe00)));
  // Every pattern against the formula (-1)^s * 2^(e-15) * (1 + m/1024), or the subnormal one.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const double sgn = (h & 0x8000) ? -1.0 : 1.0;
    const int e = static_cast<int>((h >> 10) & 0x1f);
    const int m = static_cast<int>(h & 0x3ff);
    if (e == 31) continue;
    const double expect = e == 0 ? sgn * std::ldexp(m, -24) : sgn * std::ldexp(1024 + m, e - 25);
    REQUIRE(static_cast<double>(f16_to_f32(static_cast<std::uint16_t>(h))) == expect);
  }
}

TEST_CASE("half: float32 to float16 rounds to nearest even (hand-computed)", "[io][half]") {
  REQUIRE(f32_to_f16(0.0f) == 0x0000);
  REQUIRE(f32_to_f16(-0.0f) == 0x8000);
  REQUIRE(f32_to_f16(1.0f) == 0x3c00);
  REQUIRE(f32_to_f16(-2.0f) == 0xc000);
  REQUIRE(f32_to_f16(1.0f / 3.0f) == 0x3555);
  REQUIRE(f32_to_f16(65504.0f) == 0x7bff);
  REQUIRE(f32_to_f16(65519.0f) == 0x7bff);  // below the midpoint 65520
  REQUIRE(f32_to_f16(65520.0f) == 0x7c00);  // the midpoint rounds to even: infinity
  REQUIRE(f32_to_f16(1e10f) == 0x7c00);
  REQUIRE(f32_to_f16(-1e10f) == 0xfc00);
  REQUIRE(f32_to_f16(std::numeric_limits<float>::infinity()) == 0x7c00);
  REQUIRE(f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  const std::uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  REQUIRE((nan & 0x7c00) == 0x7c00);
  REQUIRE((nan & 0x3ff) != 0);
  // 1 + 2^-11 is the midpoint between 1 and 1 + 2^-10: ties to even (1.0).
  REQUIRE(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  // 1 + 3 * 2^-11 is the midpoint between 1 + 2^-10 (odd) and 1 + 2^-9: up to even.
  REQUIRE(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  REQUIRE(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);
  // Subnormals (units of 2^-24).
  REQUIRE(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  REQUIRE(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // half a unit: ties to even 0
  REQUIRE(f32_to_f16(std::ldexp(3.0f, -26)) == 0x0001);  // 0.75 units
  REQUIRE(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units: ties to even 2
  REQUIRE(f32_to_f16(std::ldexp(5.0f, -25)) == 0x0002);  // 2.5 units: ties to even 2
  REQUIRE(f32_to_f16(-std::ldexp(1.0f, -24)) == 0x8001);
  REQUIRE(f32_to_f16(std::ldexp(1023.0f, -24)) == 0x03ff);
  REQUIRE(f32_to_f16(std::ldexp(2047.0f, -25)) == 0x0400);  // rounds up into the normals
  REQUIRE(f32_to_f16(std::ldexp(1.0f, -14)) == 0x0400);
  REQUIRE(f32_to_f16(std::ldexp(1.0f, -26)) == 0x0000);
  REQUIRE(f32_to_f16(-std::ldexp(1.0f, -30)) == 0x8000);
  REQUIRE(f32_to_f16(std::numeric_limits<float>::denorm_min()) == 0x0000);
  // Every finite float16 survives the trip through float32 unchanged.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;
    REQUIRE(f32_to_f16(f16_to_f32(static_cast<std::uint16_t>(h))) == h);
  }
}

TEST_CASE("half: bfloat16 conversions (hand-computed)", "[io][half]") {
  REQUIRE(bf16_to_f32(0x3f80) == 1.0f);
  REQUIRE(bf16_to_f32(0xc049) == -3.140625f);
  REQUIRE(bf16_to_f32(0x0001) == std::ldexp(1.0f, -133));  // a float32 subnormal
  REQUIRE(std::signbit(bf16_to_f32(0x8000)));
  REQUIRE(bf16_to_f32(0x8000) == 0.0f);
  REQUIRE(std::isinf(bf16_to_f32(0x7f80)));
  REQUIRE(bf16_to_f32(0xff80) < 0);
  REQUIRE(std::isnan(bf16_to_f32(0x7fc0)));
  REQUIRE(f32_to_bf16(1.0f) == 0x3f80);
  REQUIRE(f32_to_bf16(-0.0f) == 0x8000);
  REQUIRE(f32_to_bf16(3.14159265f) == 0x4049);
  REQUIRE(f32_to_bf16(std::bit_cast<float>(0x3f808000u)) == 0x3f80);  // tie to even (down)
  REQUIRE(f32_to_bf16(std::bit_cast<float>(0x3f818000u)) == 0x3f82);  // tie to even (up)
  REQUIRE(f32_to_bf16(std::bit_cast<float>(0x3f808001u)) == 0x3f81);
  REQUIRE(f32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds to infinity
  REQUIRE(f32_to_bf16(std::ldexp(1.0f, -133)) == 0x0001);
  REQUIRE(f32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  const std::uint16_t nan = f32_to_bf16(std::bit_cast<float>(0x7f800001u));  // payload in low bits
  REQUIRE((nan & 0x7f80) == 0x7f80);
  REQUIRE((nan & 0x7f) != 0);
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    if ((b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0) continue;  // NaNs get the quiet bit
    REQUIRE(f32_to_bf16(bf16_to_f32(static_cast<std::uint16_t>(b))) == b);
  }
}

TEST_CASE("safetensors: reads a file laid out by the specification", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("spec.safetensors");
  std::string header =
      "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"\\u00e9\"}," +
      entry("i", "I64", "[1]", "[0,8]") + "," + entry("s", "F64", "[]", "[8,16]") + "," +
      entry("w", "F32", "[2,2]", "[16,32]") + "," + entry("h", "F16", "[3]", "[32,38]") + "," +
      entry("b", "BF16", "[2]", "[38,42]") + "," + entry("u", "U8", "[2]", "[42,44]") + "," +
      entry("z", "BOOL", "[0,3]", "[44,44]") + "}";
  while (header.size() % 8 != 0) header += ' ';
  const std::string data = bytes_of<std::int64_t>({-3}) + bytes_of<double>({2.5}) +
                           bytes_of<float>({1, 2, 3, 4}) +
                           bytes_of<std::uint16_t>({0x3c00, 0xc000, 0x7bff}) +
                           bytes_of<std::uint16_t>({0x3f80, 0xc049}) + std::string("\x07\xff", 2);
  write_bytes(p, make_st(header, data));

  for (LoadMode mode : {LoadMode::map, LoadMode::read}) {
    const SafetensorsFile f = SafetensorsFile::open(p, mode);
    REQUIRE(f.mapped() == (mode == LoadMode::map));
    REQUIRE(f.names() == std::vector<std::string>{"i", "s", "w", "h", "b", "u", "z"});
    REQUIRE(f.metadata().at("format") == "pt");
    REQUIRE(f.metadata().at("note") == "\xc3\xa9");
    REQUIRE(f.info("w").dtype == DType::f32);
    REQUIRE(f.info("w").shape == std::vector<index_t>{2, 2});
    REQUIRE(f.info("s").rank() == 0);
    REQUIRE(f.info("s").size() == 1);
    REQUIRE(f.info("z").size() == 0);

    const auto w = f.view_f32<2>("w");
    REQUIRE(w(0, 0) == 1.0f);
    REQUIRE(w(1, 1) == 4.0f);
    REQUIRE(static_cast<const void*>(w.data()) == static_cast<const void*>(f.raw("w").data()));
    const auto h = f.load_f32<1>("h");
    REQUIRE(h(0) == 1.0f);
    REQUIRE(h(1) == -2.0f);
    REQUIRE(h(2) == 65504.0f);
    const auto b = f.load_f32<1>("b");
    REQUIRE(b(0) == 1.0f);
    REQUIRE(b(1) == -3.140625f);
    REQUIRE(f.view<std::int64_t, 1>("i")(0) == -3);
    REQUIRE(f.load<double, 1>("i")(0) == -3.0);
    REQUIRE(f.load<std::int32_t, 1>("i")(0) == -3);
    REQUIRE_THROWS_WITH((f.load<std::uint8_t, 1>("i")), Contains("does not fit in uint8"));
    REQUIRE(f.view<std::uint8_t, 1>("u")(1) == 255);
    REQUIRE(f.load<bool, 1>("u")(0));
    REQUIRE(f.load_f32<2>("z").shape() == Shape<2>{0, 3});
    double s = 0;
    std::memcpy(&s, f.raw("s").data(), 8);
    REQUIRE(s == 2.5);

    REQUIRE_THROWS_WITH(f.view_f32<1>("h"), Contains("tensor 'h' has dtype F16, not F32"));
    REQUIRE_THROWS_AS(f.view_f32<1>("w"), attnkit::shape_error);
    REQUIRE_THROWS_WITH(f.view_f32<1>("w"),
                        Contains(p) && Contains("expected rank 1") && Contains("[2, 2]"));
    REQUIRE_THROWS_WITH(f.info("nope"), Contains("no tensor named 'nope'") && Contains(p));
    REQUIRE_THROWS_WITH((f.load<std::int32_t, 1>("h")),
                        Contains("cannot convert float16 to int32"));
  }
}

TEST_CASE("safetensors: the writer's bytes follow the specification", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("w.safetensors");
  Tensor<float, 1> a({2});
  a(0) = 1.0f;
  a(1) = 2.0f;
  write_safetensors(p, {{"a", a}});
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while (header.size() % 8 != 0) header += ' ';
  REQUIRE(read_bytes(p) == make_st(header, bytes_of<float>({1.0f, 2.0f})));

  // Tensors are ordered by decreasing item size so each one is aligned; metadata comes first.
  Tensor<std::uint8_t, 1> u({3});
  Tensor<double, 1> d({1});
  write_safetensors(p, {{"u", u}, {"a", a, DType::f16}, {"d", d}}, {{"k", "v"}});
  header = R"({"__metadata__":{"k":"v"},"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
           R"("a":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},)"
           R"("u":{"dtype":"U8","shape":[3],"data_offsets":[12,15]}})";
  while (header.size() % 8 != 0) header += ' ';
  REQUIRE(read_bytes(p) ==
          make_st(header, std::string(8, '\0') + bytes_of<std::uint16_t>({0x3c00, 0x4000}) +
                              std::string(3, '\0')));
}

TEST_CASE("safetensors: round trips of awkward shapes, strided views and dtypes",
          "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("rt.safetensors");
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  Tensor<float, 1> v1({17});
  Tensor<float, 2> v2({5, 31});
  Tensor<float, 3> v3({2, 0, 7});
  Tensor<float, 4> v4({2, 3, 1, 5});
  for (auto& x : v1) x = dist(rng);
  for (auto& x : v2) x = dist(rng);
  for (auto& x : v4) x = dist(rng);
  // Some special values for the half formats.
  v1(0) = -0.0f;
  v1(1) = std::numeric_limits<float>::infinity();
  v1(2) = 1e-7f;     // a float16 subnormal
  v1(3) = 1e-40f;    // a float32 subnormal
  v1(4) = 70000.0f;  // beyond float16
  Tensor<double, 2> dd({3, 4}, 0.125);
  Tensor<std::int32_t, 1> i32({4}, -7);
  Tensor<std::int64_t, 2> i64({2, 2}, 1LL << 40);
  Tensor<bool, 1> bl({3}, true);
  const auto v2t = v2.cview().transpose(0, 1);  // [31, 5], strided
  const auto v4s = v4.cview().slice(1, 3, 1);   // [2, 2, 1, 5], strided
  write_safetensors(p,
                    {{"v1", v1},
                     {"v1_f16", v1, DType::f16},
                     {"v1_bf16", v1.view(), DType::bf16},
                     {"v2t", v2t},
                     {"v3", v3},
                     {"v4s", v4s},
                     {"dd", dd},
                     {"dd_f32", dd, DType::f32},
                     {"i32", i32},
                     {"i64", i64},
                     {"bl", bl}},
                    {{"format", "pt"}, {"quote\"\n", "\xc3\xa9"}});

  for (LoadMode mode : {LoadMode::map, LoadMode::read}) {
    const SafetensorsFile f = SafetensorsFile::open(p, mode);
    REQUIRE(f.names().size() == 11);
    REQUIRE(f.metadata().at("quote\"\n") == "\xc3\xa9");
    const auto r1 = f.view_f32<1>("v1");
    const auto h1 = f.load_f32<1>("v1_f16");
    const auto b1 = f.load_f32<1>("v1_bf16");
    REQUIRE(f.info("v1_f16").dtype == DType::f16);
    REQUIRE(f.info("v1_bf16").dtype == DType::bf16);
    for (index_t i = 0; i < 17; ++i) {
      REQUIRE(bits(r1(i)) == bits(v1(i)));
      REQUIRE(bits(h1(i)) == bits(f16_to_f32(f32_to_f16(v1(i)))));
      REQUIRE(bits(b1(i)) == bits(bf16_to_f32(f32_to_bf16(v1(i)))));
      if (std::isnormal(v1(i))) REQUIRE(std::abs(b1(i) - v1(i)) <= std::abs(v1(i)) * (1.0f / 256));
    }
    REQUIRE(std::signbit(h1(0)));
    REQUIRE(std::isinf(h1(4)));
    REQUIRE(h1(2) != 0.0f);
    REQUIRE(h1(3) == 0.0f);

    const auto r2 = f.view_f32<2>("v2t");
    REQUIRE(r2.shape() == Shape<2>{31, 5});
    for (index_t i = 0; i < 31; ++i)
      for (index_t j = 0; j < 5; ++j) REQUIRE(r2(i, j) == v2(j, i));
    REQUIRE(f.load_f32<3>("v3").shape() == Shape<3>{2, 0, 7});
    const auto r4 = f.load_f32<4>("v4s");
    REQUIRE(r4.shape() == Shape<4>{2, 2, 1, 5});
    for (index_t a = 0; a < 2; ++a)
      for (index_t b = 0; b < 2; ++b)
        for (index_t c = 0; c < 5; ++c) REQUIRE(r4(a, b, 0, c) == v4(a, b + 1, 0, c));
    REQUIRE(f.view<double, 2>("dd")(2, 3) == 0.125);
    REQUIRE(f.view_f32<2>("dd_f32")(1, 1) == 0.125f);
    REQUIRE(f.view<std::int32_t, 1>("i32")(3) == -7);
    REQUIRE(f.view<std::int64_t, 2>("i64")(1, 0) == (1LL << 40));
    REQUIRE(f.view<bool, 1>("bl")(2));
    // Every F32 tensor the writer lays out can be viewed in place.
    for (const std::string& n : f.names())
      if (f.info(n).dtype == DType::f32 && f.info(n).rank() == 1) REQUIRE_NOTHROW(f.view_f32<1>(n));
  }
}

TEST_CASE("safetensors: writer errors", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("bad_w.safetensors");
  Tensor<float, 1> a({2});
  Tensor<std::int32_t, 1> i({2});
  REQUIRE_THROWS_WITH(write_safetensors(p, {{"a", a}, {"a", a}}),
                      Contains("duplicate tensor name 'a'"));
  REQUIRE_THROWS_WITH(write_safetensors(p, {{"__metadata__", a}}),
                      Contains("not a valid tensor name"));
  REQUIRE_THROWS_WITH(write_safetensors(p, {{"i", i, DType::f16}}),
                      Contains("cannot store int32 as F16"));
  REQUIRE_THROWS_WITH(write_safetensors(p, {{"\xff", a}}), Contains("UTF-8"));
  REQUIRE_THROWS_WITH(write_safetensors(dir.file("no/such/dir/x.safetensors"), {{"a", a}}),
                      Contains("cannot open for writing"));
  REQUIRE_FALSE(std::filesystem::exists(p));  // nothing half-written
}

TEST_CASE("safetensors: hostile and malformed files are errors naming the problem",
          "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  const std::string f8 = bytes_of<float>({1, 2});
  const auto one = [&](const std::string& e, const std::string& data) {
    std::string h = "{" + e + "}";
    return make_st(h, data);
  };

  SECTION("short files and header lengths") {
    check_error(p, "", "too short");
    check_error(p, std::string(7, '\0'), "too short");
    check_error(p, le_bytes(200000000, 8) + "{}", "exceeds the 100000000-byte limit");
    check_error(p, le_bytes(~std::uint64_t{0}, 8) + "{}", "exceeds");
    check_error(p, le_bytes(64, 8) + "{}", "runs past the end of the file");
    check_error(p, le_bytes(0, 8), "line 1");  // an empty header is not JSON
  }
  SECTION("every truncation of a valid file") {
    Tensor<float, 2> t({3, 3}, 1.0f);
    write_safetensors(p, {{"t", t}});
    const std::string good = read_bytes(p);
    for (std::size_t n = 0; n < good.size(); ++n) {
      write_bytes(p, good.substr(0, n));
      REQUIRE_THROWS_AS(SafetensorsFile::open(p), attnkit::error);
    }
  }
  SECTION("bad JSON") {
    check_error(p, make_st("{\"a\":", ""), "safetensors header");
    check_error(p, make_st("{\"a\xff\":1}", ""), "UTF-8");
    check_error(p, make_st("[1,2]", ""), "not a JSON object");
    check_error(p, make_st(std::string(5000, '['), ""), "nesting deeper");
    check_error(p, make_st("{}x", ""), "trailing");
    check_error(p,
                make_st("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                            entry("a", "F32", "[2]", "[0,8]") + "}",
                        f8),
                "duplicate key \"a\"");
  }
  SECTION("offsets") {
    check_error(p,
                make_st("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                            entry("b", "F32", "[2]", "[4,12]") + "}",
                        f8 + f8),
                "overlap");
    check_error(p, one(entry("a", "F32", "[2]", "[8,16]"), f8), "out of range");
    check_error(p, one(entry("a", "F32", "[2]", "[0,18446744073709551615]"), f8), "data_offsets");
    check_error(p, one(entry("a", "F32", "[0]", "[8,0]"), f8), "begin 8 > end 0");
    check_error(p, one(entry("a", "F32", "[2]", "[0,4]"), f8), "size mismatch");
    check_error(p, one(entry("a", "F32", "[1]", "[0,8]"), f8), "size mismatch");
    check_error(p, one(entry("a", "F32", "[2]", "[0]"), f8), "two non-negative integers");
    check_error(p, one(entry("a", "F32", "[2]", "[-1,7]"), f8), "two non-negative integers");
    check_error(p, one(entry("a", "F32", "[2]", "[0,8,9]"), f8), "two non-negative integers");
    check_error(p, one(entry("a", "F32", "[2]", "{}"), f8), "two non-negative integers");
  }
  SECTION("dtypes and shapes") {
    check_error(p, one(entry("a", "F7", "[2]", "[0,8]"), f8), "unknown or unsupported dtype 'F7'");
    check_error(p, one(entry("a", "F8_E4M3", "[8]", "[0,8]"), f8), "'F8_E4M3'");
    check_error(p, one("\"a\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}", f8),
                "'dtype' is not a string");
    check_error(p, one(entry("a", "F32", "[-2]", "[0,8]"), f8), "non-negative integer");
    check_error(p, one(entry("a", "F32", "[2.5]", "[0,8]"), f8), "non-negative integer");
    check_error(p, one(entry("a", "F32", "2", "[0,8]"), f8), "'shape' is not an array");
    check_error(p, one(entry("a", "F32", "[4294967296,4294967296]", "[0,8]"), f8),
                "too many elements");
    check_error(p, one(entry("a", "F32", "[4611686018427387904]", "[0,8]"), f8),
                "byte size overflows");
    check_error(p, one(entry("a", "F32", "[1e300]", "[0,8]"), f8), "non-negative integer");
  }
  SECTION("missing keys and bad entries") {
    check_error(p, one("\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}", f8),
                "tensor 'a': missing key 'dtype'");
    check_error(p, one("\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}", f8),
                "missing key 'shape'");
    check_error(p, one("\"a\":{\"dtype\":\"F32\",\"shape\":[2]}", f8),
                "missing key 'data_offsets'");
    check_error(p, one("\"a\":[1]", f8), "entry is not an object");
    check_error(p, one("\"__metadata__\":{\"k\":1}", ""), "__metadata__ value of 'k'");
    check_error(p, one("\"__metadata__\":[]", ""), "__metadata__ is not an object");
  }
  SECTION("misaligned F32 data can be loaded but not viewed") {
    std::string h =
        "{" + entry("u", "U8", "[1]", "[0,1]") + "," + entry("a", "F32", "[2]", "[1,9]") + "}";
    while (h.size() % 8 != 0) h += ' ';
    write_bytes(p, make_st(h, "\x05" + f8));
    const SafetensorsFile f = SafetensorsFile::open(p);
    REQUIRE_THROWS_WITH(f.view_f32<1>("a"), Contains("not 4-byte aligned"));
    REQUIRE(f.load_f32<1>("a")(1) == 2.0f);
  }
}

TEST_CASE("safetensors: random mutations only ever throw attnkit::error", "[io][safetensors]") {
  TempDir dir;
  const std::string p = dir.file("fuzz.safetensors");
  Tensor<float, 2> w({2, 3}, 0.5f);
  Tensor<std::int64_t, 1> ids({2}, 3);
  write_safetensors(p, {{"w", w}, {"w16", w, DType::bf16}, {"ids", ids}}, {{"format", "pt"}});
  const std::string good = read_bytes(p);
  std::mt19937 rng(777);
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = attnkit_test::mutate(good, rng);
    if (iter % 5 == 0) s = attnkit_test::mutate(s, rng);
    write_bytes(p, s);
    try {
      const SafetensorsFile f = SafetensorsFile::open(p, iter % 2 ? LoadMode::map : LoadMode::read);
      // Whatever opened must be readable in full without stepping outside the file.
      for (const std::string& n : f.names()) {
        const TensorInfo& ti = f.info(n);
        REQUIRE(f.raw(n).size() == ti.nbytes());
        if (ti.rank() == 2 && is_floating(ti.dtype)) (void)f.load_f32<2>(n);
        if (ti.rank() == 1) {
          try {
            (void)f.load<std::int64_t, 1>(n);
          } catch (const attnkit::error&) {
          }
        }
      }
      ++ok;
    } catch (const attnkit::error&) {
      ++rejected;
    }
  }
  REQUIRE(ok + rejected == 3000);
  REQUIRE(rejected > 1000);
}
