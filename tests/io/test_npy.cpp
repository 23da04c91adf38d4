// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Tests of attnkit/io/npy.hpp: NumPy interop, round trips, conversions and hostile files.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/io/npy.hpp"

#include "io/io_test_util.hpp"

using namespace attnkit;
using namespace attnkit::io;
using attnkit_test::from_hex;
using attnkit_test::le_bytes;
using attnkit_test::read_bytes;
using attnkit_test::TempDir;
using attnkit_test::write_bytes;
using Catch::Matchers::Contains;

namespace {

// Files written by NumPy 1.24 (np.save / np.lib.format.write_array), as hex.
const char* const np_f32_2x3 =  // np.arange(6, dtype='<f4').reshape(2, 3)
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a204661"
    "6c73652c20277368617065273a2028322c2033292c207d2020202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020202020202020200a000000000000803f0000"
    "004000004040000080400000a040";
const char* const np_i8_v2 =  // [[1, -2], [3, 4]] int64, format version 2.0
    "934e554d50590200740000007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a20"
    "46616c73652c20277368617065273a2028322c2032292c207d202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020202020202020200a0100000000000000feff"
    "ffffffffffff03000000000000000400000000000000";
const char* const np_bool_v3 =  // [True, False, True], format version 3.0
    "934e554d50590300740000007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a20"
    "46616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020202020202020200a010001";
const char* const np_f16 =  // [1, -0.5, 65504] float16
    "934e554d5059010076007b276465736372273a20273c6632272c2027666f727472616e5f6f72646572273a204661"
    "6c73652c20277368617065273a2028332c292c207d20202020202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020202020202020200a003c00b8ff7b";
const char* const np_f8_0x3 =  // np.zeros((0, 3))
    "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a204661"
    "6c73652c20277368617065273a2028302c2033292c207d2020202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020202020202020200a";
const char* const np_i4_scalar =  // np.array(7, dtype='<i4')
    "934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a204661"
    "6c73652c20277368617065273a2028292c207d202020202020202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020202020202020200a07000000";
const char* const np_u1 =  // np.arange(3, dtype='u1')
    "934e554d5059010076007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a204661"
    "6c73652c20277368617065273a2028332c292c207d20202020202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020202020202020200a000102";

// A .npy file with the given header dictionary (padded like NumPy) and data bytes.
std::string make_npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string h = dict;
  const std::size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string s = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  s += le_bytes(h.size(), major == 1 ? 2 : 4);
  return s + h + data;
}

std::string dict(const std::string& descr, const std::string& shape, const char* order = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
}

template <class T>
T random_value(std::mt19937& rng) {
  if constexpr (std::is_same_v<T, bool>) {
    return (rng() & 1u) != 0;
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(std::uniform_real_distribution<double>(-1e3, 1e3)(rng));
  } else {
    // Cover the full range of the type, including the extremes.
    const auto r = rng() % 8;
    if (r == 0) return std::numeric_limits<T>::min();
    if (r == 1) return std::numeric_limits<T>::max();
    return static_cast<T>(std::uniform_int_distribution<long long>(-1000, 1000)(rng));
  }
}

template <class T, std::size_t R>
void check_round_trip(const TempDir& dir, const Shape<R>& shape, std::mt19937& rng) {
  Tensor<T, R> t(shape);
  for (T& x : t) x = random_value<T>(rng);
  const std::string path = dir.file("rt.npy");
  write_npy(path, t);
  const NpyArray a = read_npy(path);
  REQUIRE(a.dtype() == dtype_of<T>());
  REQUIRE(a.rank() == R);
  for (std::size_t d = 0; d < R; ++d) REQUIRE(a.shape()[d] == shape[d]);
  const Tensor<T, R> back = read_npy_as<T, R>(path);
  REQUIRE(back.shape() == shape);
  for (index_t i = 0; i < t.size(); ++i) REQUIRE(back.data()[i] == t.data()[i]);
  // The file size is the 64-byte aligned header plus the data, nothing else.
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() % 64 == (static_cast<std::size_t>(t.size()) * sizeof(T)) % 64);
}

template <class T>
void check_error(const std::string& path, const std::string& bytes, const std::string& needle) {
  write_bytes(path, bytes);
  REQUIRE_THROWS_AS(read_npy(path), attnkit::error);
  REQUIRE_THROWS_WITH(read_npy(path), Contains(needle) && Contains(path));
}

}  // namespace

TEST_CASE("npy: reads files written by NumPy", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("np.npy");

  write_bytes(p, from_hex(np_f32_2x3));
  const auto f = read_npy_as<float, 2>(p);
  REQUIRE(f.shape() == Shape<2>{2, 3});
  for (int i = 0; i < 6; ++i) REQUIRE(f.data()[i] == static_cast<float>(i));

  write_bytes(p, from_hex(np_i8_v2));
  const NpyArray a = read_npy(p);
  REQUIRE(a.dtype() == DType::i64);
  const auto iv = a.view<std::int64_t, 2>();
  REQUIRE(iv(0, 0) == 1);
  REQUIRE(iv(0, 1) == -2);
  REQUIRE(iv(1, 0) == 3);
  REQUIRE(iv(1, 1) == 4);

  write_bytes(p, from_hex(np_bool_v3));
  const auto b = read_npy_as<bool, 1>(p);
  REQUIRE(b.size() == 3);
  REQUIRE(b(0));
  REQUIRE_FALSE(b(1));
  REQUIRE(b(2));

  write_bytes(p, from_hex(np_f16));
  const auto h = read_npy_as<float, 1>(p);
  REQUIRE(h(0) == 1.0f);
  REQUIRE(h(1) == -0.5f);
  REQUIRE(h(2) == 65504.0f);

  write_bytes(p, from_hex(np_f8_0x3));
  const auto z = read_npy_as<double, 2>(p);
  REQUIRE(z.shape() == Shape<2>{0, 3});
  REQUIRE(z.empty());

  write_bytes(p, from_hex(np_i4_scalar));
  const NpyArray s = read_npy(p);
  REQUIRE(s.rank() == 0);
  REQUIRE(s.size() == 1);
  REQUIRE(s.dtype() == DType::i32);

  write_bytes(p, from_hex(np_u1));
  const auto u = read_npy_as<std::uint8_t, 1>(p);
  REQUIRE(u(0) == 0);
  REQUIRE(u(2) == 2);
}

TEST_CASE("npy: writes the same bytes as NumPy", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("out.npy");
  Tensor<float, 2> f({2, 3});
  for (int i = 0; i < 6; ++i) f.data()[i] = static_cast<float>(i);
  write_npy(p, f);
  REQUIRE(read_bytes(p) == from_hex(np_f32_2x3));

  Tensor<std::uint8_t, 1> u({3});
  for (int i = 0; i < 3; ++i) u.data()[i] = static_cast<std::uint8_t>(i);
  write_npy(p, u.view());
  REQUIRE(read_bytes(p) == from_hex(np_u1));

  write_npy(p, Tensor<double, 2>({0, 3}));
  REQUIRE(read_bytes(p) == from_hex(np_f8_0x3));

  NpyArray scalar(DType::i32, {});
  const std::int32_t seven = 7;
  std::memcpy(scalar.bytes(), &seven, 4);
  write_npy(p, scalar);
  REQUIRE(read_bytes(p) == from_hex(np_i4_scalar));
}

TEMPLATE_TEST_CASE("npy: round trip of every dtype and awkward shapes", "[io][npy]", float, double,
                   std::int32_t, std::int64_t, std::uint8_t, bool, std::int8_t, std::int16_t,
                   std::uint16_t, std::uint32_t, std::uint64_t) {
  TempDir dir;
  std::mt19937 rng(42);
  for (index_t n : {0, 1, 2, 7, 15, 16, 17, 64, 65, 1000})
    check_round_trip<TestType, 1>(dir, {n}, rng);
  for (const Shape<2>& s :
       {Shape<2>{0, 3}, Shape<2>{3, 0}, Shape<2>{1, 1}, Shape<2>{5, 17}, Shape<2>{31, 2}})
    check_round_trip<TestType, 2>(dir, s, rng);
  for (const Shape<3>& s : {Shape<3>{2, 3, 5}, Shape<3>{1, 0, 4}, Shape<3>{7, 1, 13}})
    check_round_trip<TestType, 3>(dir, s, rng);
  for (const Shape<4>& s : {Shape<4>{2, 1, 3, 4}, Shape<4>{3, 2, 2, 0}, Shape<4>{1, 1, 1, 1}})
    check_round_trip<TestType, 4>(dir, s, rng);
}

TEMPLATE_TEST_CASE("npy: strided views are written in C order", "[io][npy]", float, std::int64_t,
                   bool) {
  TempDir dir;
  std::mt19937 rng(7);
  Tensor<TestType, 3> t({4, 5, 6});
  for (auto& x : t) x = random_value<TestType>(rng);
  const std::string p = dir.file("strided.npy");

  SECTION("transpose") {
    const auto v = t.cview().transpose(0, 2);  // [6, 5, 4]
    write_npy(p, v);
    const auto back = read_npy_as<TestType, 3>(p);
    REQUIRE(back.shape() == Shape<3>{6, 5, 4});
    for (index_t i = 0; i < 6; ++i)
      for (index_t j = 0; j < 5; ++j)
        for (index_t k = 0; k < 4; ++k) REQUIRE(back(i, j, k) == t(k, j, i));
  }
  SECTION("slices of inner and outer dimensions") {
    const auto v = t.cview().slice(1, 4, 2).slice(1, 3, 0);  // [2, 5, 3]
    write_npy(p, v);
    const auto back = read_npy_as<TestType, 3>(p);
    REQUIRE(back.shape() == Shape<3>{2, 5, 3});
    for (index_t i = 0; i < 2; ++i)
      for (index_t j = 0; j < 5; ++j)
        for (index_t k = 0; k < 3; ++k) REQUIRE(back(i, j, k) == t(i + 1, j, k + 1));
  }
  SECTION("broadcast (zero stride)") {
    const TensorView<const TestType, 2> v(t.data(), {3, 4}, {0, 1});
    write_npy(p, v);
    const auto back = read_npy_as<TestType, 2>(p);
    for (index_t i = 0; i < 3; ++i)
      for (index_t k = 0; k < 4; ++k) REQUIRE(back(i, k) == t.data()[k]);
  }
}

TEST_CASE("npy: conversions among dtypes", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("conv.npy");

  Tensor<double, 1> d({3});
  d(0) = 0.1;
  d(1) = -2.5;
  d(2) = 1e300;
  write_npy(p, d);
  const auto f = read_npy_as<float, 1>(p);
  REQUIRE(f(0) == static_cast<float>(0.1));
  REQUIRE(f(1) == -2.5f);
  REQUIRE(std::isinf(f(2)));  // documented: rounds to nearest, overflow to inf
  REQUIRE_THROWS_WITH((read_npy_as<std::int32_t, 1>(p)),
                      Contains("cannot convert float64 to int32") && Contains(p));
  REQUIRE_THROWS_WITH((read_npy_as<bool, 1>(p)), Contains("cannot convert float64 to bool"));

  Tensor<std::int64_t, 1> i({3});
  i(0) = -5;
  i(1) = 1LL << 40;
  i(2) = 0;
  write_npy(p, i);
  const auto as_double = read_npy_as<double, 1>(p);
  REQUIRE(as_double(1) == std::ldexp(1.0, 40));
  REQUIRE_THROWS_WITH((read_npy_as<std::int32_t, 1>(p)),
                      Contains("element 1") && Contains("does not fit in int32"));
  REQUIRE_THROWS_WITH((read_npy_as<std::uint64_t, 1>(p)), Contains("element 0") && Contains("-5"));
  const auto as_bool = read_npy_as<bool, 1>(p);
  REQUIRE(as_bool(0));
  REQUIRE(as_bool(1));
  REQUIRE_FALSE(as_bool(2));
  i(1) = 7;
  write_npy(p, i);
  const auto as_i32 = read_npy_as<std::int32_t, 1>(p);
  REQUIRE(as_i32(0) == -5);
  REQUIRE(as_i32(1) == 7);

  Tensor<bool, 1> b({2});
  b(0) = true;
  write_npy(p, b);
  const auto bf = read_npy_as<float, 1>(p);
  REQUIRE(bf(0) == 1.0f);
  REQUIRE(bf(1) == 0.0f);
  const auto bu = read_npy_as<std::uint8_t, 1>(p);
  REQUIRE(bu(0) == 1);

  // view<T, R> wants the exact dtype.
  const NpyArray a = read_npy(p);
  REQUIRE_THROWS_WITH((a.view<std::uint8_t, 1>()), Contains("holds bool, not uint8"));
  REQUIRE(a.view<bool, 1>()(0));
}

TEST_CASE("npy: read_npy_floating accepts only floating-point files", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("fl.npy");
  Tensor<double, 2> d({2, 2}, 0.25);
  write_npy(p, d);
  REQUIRE(read_npy_floating<float, 2>(p)(1, 1) == 0.25f);
  REQUIRE(read_npy_floating<double, 2>(p)(0, 1) == 0.25);
  write_bytes(p, from_hex(np_f16));
  REQUIRE(read_npy_floating<float, 1>(p)(2) == 65504.0f);
  write_npy(p, Tensor<std::int64_t, 1>({3}, 1));
  REQUIRE_THROWS_WITH(
      (read_npy_floating<float, 1>(p)),
      Contains(p) && Contains("expected a floating-point array") && Contains("holds int64"));
  write_npy(p, Tensor<bool, 1>({3}, true));
  REQUIRE_THROWS_WITH((read_npy_floating<float, 1>(p)), Contains("holds bool"));
}

TEST_CASE("npy: rank mismatch names the file, the rank and the shape", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("rank.npy");
  write_npy(p, Tensor<float, 2>({2, 3}));
  REQUIRE_THROWS_AS((read_npy_as<float, 3>(p)), attnkit::shape_error);
  REQUIRE_THROWS_WITH((read_npy_as<float, 3>(p)),
                      Contains(p) && Contains("rank-3") && Contains("[2, 3]"));
}

TEST_CASE("npy: hostile and malformed files are errors naming the problem", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("bad.npy");
  const std::string f4x2(8, '\0');

  SECTION("missing file and directory") {
    REQUIRE_THROWS_WITH(read_npy(dir.file("nope.npy")), Contains("no such file"));
    REQUIRE_THROWS_WITH(read_npy(dir.path().string()), Contains("not a regular file"));
  }
  SECTION("every truncation of a valid file") {
    const std::string good = from_hex(np_f32_2x3);
    for (std::size_t n = 0; n < good.size(); ++n) {
      write_bytes(p, good.substr(0, n));
      REQUIRE_THROWS_AS(read_npy(p), attnkit::error);
    }
    check_error<float>(p, good.substr(0, good.size() - 1), "truncated");
    check_error<float>(p, good.substr(0, 5), "too short");
  }
  SECTION("bad magic") {
    std::string s = make_npy(dict("<f4", "(2,)"), f4x2);
    s[1] = 'X';
    check_error<float>(p, s, "bad magic");
  }
  SECTION("unsupported version") {
    std::string s = make_npy(dict("<f4", "(2,)"), f4x2);
    s[6] = 4;
    check_error<float>(p, s, "format version 4.0");
  }
  SECTION("header length beyond the file") {
    std::string s = make_npy(dict("<f4", "(2,)"), f4x2);
    s[8] = '\xff';
    s[9] = '\x7f';
    check_error<float>(p, s, "runs past the end of the file");
  }
  SECTION("huge header length (version 2)") {
    std::string s = make_npy(dict("<f4", "(2,)"), f4x2, 2);
    s.replace(8, 4, le_bytes(0xffffffffu, 4));
    check_error<float>(p, s, "exceeds");
  }
  SECTION("fortran order") {
    check_error<float>(p, make_npy(dict("<f4", "(2,)", "True"), f4x2), "Fortran-order");
  }
  SECTION("big-endian") {
    check_error<float>(p, make_npy(dict(">f4", "(2,)"), f4x2), "big-endian dtype '>f4'");
    // One-byte types have no byte order, so '>u1' is fine.
    write_bytes(p, make_npy(dict(">u1", "(2,)"), std::string(2, '\1')));
    REQUIRE(read_npy_as<std::uint8_t, 1>(p)(1) == 1);
  }
  SECTION("unsupported dtypes") {
    check_error<float>(p, make_npy(dict("<U10", "(2,)"), f4x2), "unsupported dtype '<U10'");
    check_error<float>(p, make_npy(dict("<c8", "(1,)"), f4x2), "unsupported dtype '<c8'");
    check_error<float>(p, make_npy(dict("<f3", "(1,)"), f4x2), "unsupported dtype");
    check_error<float>(
        p, make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f4x2),
        "structured");
  }
  SECTION("bad shapes") {
    check_error<float>(p, make_npy(dict("<f4", "(-1, 2)"), f4x2), "negative extent");
    check_error<float>(p, make_npy(dict("<f4", "(99999999999999999999,)"), f4x2), "overflows");
    check_error<float>(p, make_npy(dict("<f4", "(4294967296, 4294967296)"), f4x2),
                       "too many elements");
    check_error<float>(p, make_npy(dict("<f4", "(2305843009213693952,)"), f4x2),
                       "byte size overflows");
    check_error<float>(p, make_npy(dict("<f4", "(2, x)"), f4x2), "malformed .npy header");
  }
  SECTION("shape and data size disagree") {
    check_error<float>(p, make_npy(dict("<f4", "(3,)"), f4x2), "truncated");
    check_error<float>(p, make_npy(dict("<f4", "(1,)"), f4x2), "trailing bytes");
  }
  SECTION("missing and unexpected keys") {
    check_error<float>(p, make_npy("{'descr': '<f4', 'fortran_order': False, }", f4x2),
                       "'shape' is missing");
    check_error<float>(p, make_npy("{'descr': '<f4', 'shape': (2,), }", f4x2),
                       "'fortran_order' is missing");
    check_error<float>(p, make_npy("{'fortran_order': False, 'shape': (2,), }", f4x2),
                       "'descr' is missing");
    check_error<float>(p, make_npy(dict("<f4", "(2,)") + "x", f4x2), "after the dictionary");
    check_error<float>(
        p, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", f4x2),
        "unexpected key 'x'");
    check_error<float>(
        p,
        make_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", f4x2),
        "duplicate key");
  }
}

TEST_CASE("npy: random mutations of a valid file only ever throw attnkit::error", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("fuzz.npy");
  Tensor<float, 2> t({3, 5});
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(i) * 0.5f;
  write_npy(p, t);
  const std::string good = read_bytes(p);
  const std::string good_i8 = make_npy(dict("<i8", "(2, 2)"), std::string(32, '\3'), 2);
  std::mt19937 rng(12345);
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = attnkit_test::mutate(iter % 2 ? good : good_i8, rng);
    if (iter % 7 == 0) s = attnkit_test::mutate(s, rng);
    write_bytes(p, s);
    try {
      const NpyArray a = read_npy(p);
      // A file that reads must be self-consistent.
      REQUIRE(static_cast<std::size_t>(a.size()) * itemsize(a.dtype()) == a.nbytes());
      ++ok;
    } catch (const attnkit::error&) {
      ++rejected;
    }
  }
  REQUIRE(ok + rejected == 3000);
  REQUIRE(rejected > 1000);
}
