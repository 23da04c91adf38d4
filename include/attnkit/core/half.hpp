// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// 16-bit floating-point storage types: bf16 (bfloat16) and f16 (IEEE binary16), and their bit
// patterns to and from float32. Storage only: kernels widen them to float in registers.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

namespace attnkit {

/// The float32 value of an IEEE binary16 bit pattern. Exact for every input: subnormals, signed
/// zeros and infinities map to the same values; NaNs stay NaNs (payload kept, quiet bit set).
constexpr float f16_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) {  // inf or NaN
    const std::uint32_t nan_bits = mant != 0 ? (0x400000u | (mant << 13)) : 0u;
    return std::bit_cast<float>(sign | 0x7f800000u | nan_bits);
  }
  if (exp == 0) {
    if (mant == 0) return std::bit_cast<float>(sign);
    // Subnormal: value = mant * 2^-24. Normalize the mantissa into a float32 normal number.
    std::uint32_t e = 127 - 15 + 1;  // exponent of 2^-14, biased for float32
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    mant &= 0x3ffu;
    return std::bit_cast<float>(sign | (e << 23) | (mant << 13));
  }
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

/// The IEEE binary16 bit pattern nearest to `f` (round to nearest, ties to even). Values of
/// magnitude 65520 and above become infinity; results below the smallest subnormal round to zero
/// (keeping the sign); NaNs stay NaNs (quiet).
constexpr std::uint16_t f32_to_f16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (ax < 0x38800000u) {  // below 2^-14: a binary16 subnormal or zero
    const std::uint32_t e = ax >> 23;
    if (e == 0) return static_cast<std::uint16_t>(sign);   // float32 subnormal: far below 2^-25
    const std::uint32_t m = (ax & 0x7fffffu) | 0x800000u;  // value = m * 2^(e - 150)
    const std::uint32_t shift = 126 - e;                   // units of 2^-24: m >> shift
    if (shift > 24) return static_cast<std::uint16_t>(sign);
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal
    return static_cast<std::uint16_t>(sign | q);
  }
  std::uint32_t h = (((ax >> 23) - 127 + 15) << 10) | ((ax >> 13) & 0x3ffu);
  const std::uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry rounds into the exponent
  return static_cast<std::uint16_t>(sign | h);
}

/// The float32 value of a bfloat16 bit pattern (exact: bfloat16 is the top half of float32).
constexpr float bf16_to_f32(std::uint16_t b) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

/// The bfloat16 bit pattern nearest to `f` (round to nearest, ties to even); NaNs stay quiet NaNs.
constexpr std::uint16_t f32_to_bf16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  const std::uint32_t rounded = x + 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(rounded >> 16);
}

/// A bfloat16 value (the top half of a float32), as stored in tensors and files: K and V of
/// attention() may be bf16 (computed in float). Converts explicitly, rounding to nearest even.
struct bf16 {
  std::uint16_t bits = 0;
  /// The bfloat16 nearest to f.
  static constexpr bf16 from_float(float f) noexcept { return bf16{f32_to_bf16(f)}; }
  /// The exact float32 value.
  constexpr float to_float() const noexcept { return bf16_to_f32(bits); }
  friend constexpr bool operator==(bf16 a, bf16 b) noexcept { return a.bits == b.bits; }
};

/// An IEEE binary16 value, as stored in tensors and files: K and V of attention() may be f16
/// (computed in float). Converts explicitly, rounding to nearest even.
struct f16 {
  std::uint16_t bits = 0;
  /// The binary16 nearest to f (inf above 65504 and a half).
  static constexpr f16 from_float(float f) noexcept { return f16{f32_to_f16(f)}; }
  /// The exact float32 value.
  constexpr float to_float() const noexcept { return f16_to_f32(bits); }
  friend constexpr bool operator==(f16 a, f16 b) noexcept { return a.bits == b.bits; }
};

/// Whether E is one of the 16-bit storage types.
template <class E>
inline constexpr bool is_half_type = std::is_same_v<E, bf16> || std::is_same_v<E, f16>;

static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2 && std::is_trivially_copyable_v<bf16> &&
              std::is_trivially_copyable_v<f16>);

}  // namespace attnkit
