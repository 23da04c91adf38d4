// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// DType: the element types of the array files attnkit reads and writes, and conversion among them.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "attnkit/core/error.hpp"
#include "attnkit/core/half.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/io/half.hpp"

namespace attnkit::io {

static_assert(
    std::endian::native == std::endian::little,
    "attnkit: attnkit/io reads and writes little-endian files on little-endian hosts only");

/// Thrown for a file that cannot be read or written, or whose contents are malformed. The message
/// names the file and the problem.
class file_error : public error {
 public:
  explicit file_error(const std::string& what_arg) : error(what_arg) {}
};

/// Element type of an array in a file. Every value is little-endian in the file.
enum class DType : std::uint8_t {
  boolean,  ///< one byte, 0 or 1 (any nonzero byte reads as true)
  u8,
  i8,
  u16,
  i16,
  u32,
  i32,
  u64,
  i64,
  f16,   ///< IEEE binary16
  bf16,  ///< bfloat16 (safetensors only)
  f32,
  f64,
};

/// Bytes per element.
constexpr std::size_t itemsize(DType d) noexcept {
  switch (d) {
    case DType::boolean:
    case DType::u8:
    case DType::i8:
      return 1;
    case DType::u16:
    case DType::i16:
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::u32:
    case DType::i32:
    case DType::f32:
      return 4;
    case DType::u64:
    case DType::i64:
    case DType::f64:
      return 8;
  }
  return 0;
}

/// NumPy's name of a dtype ("float32", "bool", "bfloat16", ...).
constexpr std::string_view dtype_name(DType d) noexcept {
  switch (d) {
    case DType::boolean:
      return "bool";
    case DType::u8:
      return "uint8";
    case DType::i8:
      return "int8";
    case DType::u16:
      return "uint16";
    case DType::i16:
      return "int16";
    case DType::u32:
      return "uint32";
    case DType::i32:
      return "int32";
    case DType::u64:
      return "uint64";
    case DType::i64:
      return "int64";
    case DType::f16:
      return "float16";
    case DType::bf16:
      return "bfloat16";
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
  }
  return "?";
}

/// Whether the dtype is a floating-point type (f16, bf16, f32, f64).
constexpr bool is_floating(DType d) noexcept {
  return d == DType::f16 || d == DType::bf16 || d == DType::f32 || d == DType::f64;
}

/// Whether the dtype is a signed or unsigned integer type (not bool).
constexpr bool is_integer(DType d) noexcept { return !is_floating(d) && d != DType::boolean; }

namespace detail {
template <class T>
inline constexpr bool dependent_false = false;
}  // namespace detail

/// The DType of a C++ element type: bool, std::(u)int{8,16,32,64}_t, float, double, bf16, f16.
/// \tparam T element type (const is ignored)
template <class T>
constexpr DType dtype_of() noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, bool>)
    return DType::boolean;
  else if constexpr (std::is_same_v<U, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<U, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<U, attnkit::bf16>)
    return DType::bf16;
  else if constexpr (std::is_same_v<U, attnkit::f16>)
    return DType::f16;
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 1)
    return DType::i8;
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 2)
    return DType::i16;
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 4)
    return DType::i32;
  else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 8)
    return DType::i64;
  else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 1)
    return DType::u8;
  else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 2)
    return DType::u16;
  else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 4)
    return DType::u32;
  else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 8)
    return DType::u64;
  else
    static_assert(detail::dependent_false<T>,
                  "attnkit: T of dtype_of has no file dtype: use bool, an 8/16/32/64-bit integer, "
                  "float or double");
}

/// Whether elements of dtype `from` convert to T under convert_elements. The rules:
/// - to float or double: from every dtype (f64 to float and 64-bit integers to float round to
///   nearest; bool reads as 0 or 1);
/// - to an integer type: from bool and integer dtypes (each value range-checked);
/// - to bool: from bool and integer dtypes (nonzero is true);
/// - never from a floating dtype to an integer or bool (that would silently drop fractions).
/// \tparam T destination element type
template <class T>
constexpr bool converts_to(DType from) noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_floating_point_v<U>)
    return true;
  else
    return !is_floating(from);
}

namespace detail {

template <class S>
inline S load_le(const std::byte* p) noexcept {
  S s;
  std::memcpy(&s, p, sizeof(S));
  return s;
}

template <class T, class S>
inline void convert_integers(const std::byte* in, std::size_t n, T* out, std::string_view what) {
  for (std::size_t i = 0; i < n; ++i) {
    const S s = load_le<S>(in + i * sizeof(S));
    if constexpr (std::is_same_v<T, bool>) {
      out[i] = s != 0;
    } else if constexpr (std::is_floating_point_v<T>) {
      out[i] = static_cast<T>(s);
    } else if (!std::in_range<T>(s)) {
      throw file_error("attnkit: " + std::string(what) + ": element " + std::to_string(i) +
                       " (value " + std::to_string(s) + ") does not fit in " +
                       std::string(dtype_name(dtype_of<T>())));
    } else {
      out[i] = static_cast<T>(s);
    }
  }
}

template <class T, class S>
inline void convert_simple(const std::byte* in, std::size_t n, T* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(load_le<S>(in + i * sizeof(S)));
}

}  // namespace detail

/// Converts `n` little-endian elements of dtype `from` at `in` (any alignment) into `out`, by the
/// rules of converts_to. Throws file_error, whose message starts with `what` (the file and the
/// array), when the conversion is not allowed or an integer does not fit in T.
/// \tparam T destination element type (bool, an integer type, float or double)
template <class T>
void convert_elements(DType from, const std::byte* in, std::size_t n, T* out,
                      std::string_view what) {
  static_assert(std::is_arithmetic_v<T> && !std::is_const_v<T>,
                "attnkit: T of convert_elements must be a non-const arithmetic type");
  if (!converts_to<T>(from))
    throw file_error("attnkit: " + std::string(what) + ": cannot convert " +
                     std::string(dtype_name(from)) + " to " +
                     std::string(dtype_name(dtype_of<T>())) +
                     " (floating-point values do not convert to integers or bool)");
  if (from == dtype_of<T>() && !std::is_same_v<T, bool>) {
    if (n != 0) std::memcpy(out, in, n * sizeof(T));
    return;
  }
  switch (from) {
    case DType::boolean:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(in[i] != std::byte{0});
      return;
    case DType::u8:
      return detail::convert_integers<T, std::uint8_t>(in, n, out, what);
    case DType::i8:
      return detail::convert_integers<T, std::int8_t>(in, n, out, what);
    case DType::u16:
      return detail::convert_integers<T, std::uint16_t>(in, n, out, what);
    case DType::i16:
      return detail::convert_integers<T, std::int16_t>(in, n, out, what);
    case DType::u32:
      return detail::convert_integers<T, std::uint32_t>(in, n, out, what);
    case DType::i32:
      return detail::convert_integers<T, std::int32_t>(in, n, out, what);
    case DType::u64:
      return detail::convert_integers<T, std::uint64_t>(in, n, out, what);
    case DType::i64:
      return detail::convert_integers<T, std::int64_t>(in, n, out, what);
    case DType::f16:
      if constexpr (std::is_floating_point_v<T>)
        for (std::size_t i = 0; i < n; ++i)
          out[i] = static_cast<T>(f16_to_f32(detail::load_le<std::uint16_t>(in + 2 * i)));
      return;
    case DType::bf16:
      if constexpr (std::is_floating_point_v<T>)
        for (std::size_t i = 0; i < n; ++i)
          out[i] = static_cast<T>(bf16_to_f32(detail::load_le<std::uint16_t>(in + 2 * i)));
      return;
    case DType::f32:
      if constexpr (std::is_floating_point_v<T>) detail::convert_simple<T, float>(in, n, out);
      return;
    case DType::f64:
      if constexpr (std::is_floating_point_v<T>) detail::convert_simple<T, double>(in, n, out);
      return;
  }
}

/// Number of elements of a runtime shape; throws file_error naming `what` on a negative extent or
/// when the element count or the byte count (at `item` bytes each) overflows. The product of the
/// nonzero extents must not overflow either, so that row-major strides of the shape exist even
/// when some extent is zero.
inline index_t checked_numel(const index_t* shape, std::size_t rank, std::size_t item,
                             std::string_view what) {
  index_t n = 1;
  bool zero = false;
  for (std::size_t d = 0; d < rank; ++d) {
    const index_t e = shape[d];
    if (e < 0)
      throw file_error("attnkit: " + std::string(what) + ": negative extent " + std::to_string(e) +
                       " in the shape");
    if (e == 0) {
      zero = true;
      continue;
    }
    if (n > std::numeric_limits<index_t>::max() / e)
      throw file_error("attnkit: " + std::string(what) +
                       ": the shape has too many elements (the element count overflows)");
    n *= e;
  }
  if (zero) return 0;
  if (item != 0 && n > std::numeric_limits<index_t>::max() / static_cast<index_t>(item))
    throw file_error("attnkit: " + std::string(what) + ": the array's byte size overflows");
  return n;
}

}  // namespace attnkit::io
