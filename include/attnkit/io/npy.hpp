// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// NumPy .npy files: read any supported dtype at run time, or straight into Tensor<T, R>; write
// views.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnkit/core/aligned.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/io/detail/file.hpp"
#include "attnkit/io/detail/strided.hpp"
#include "attnkit/io/dtype.hpp"

namespace attnkit::io {

namespace detail {

/// shape_error for a rank other than the one asked for.
inline void check_npy_rank(const std::string& path, const std::vector<index_t>& shape,
                           std::size_t r) {
  if (r != shape.size())
    throw shape_error("attnkit: " + path + ": expected a rank-" + std::to_string(r) +
                      " array, the file holds shape " + shape_string(shape) + " (rank " +
                      std::to_string(shape.size()) + ")");
}

}  // namespace detail

/// An array read from a .npy file: its dtype and shape are known only at run time. Owns its
/// elements (C order, little-endian, 64-byte aligned). Turn it into a typed tensor with
/// to_tensor<T, R>() (converting) or look at it with view<T, R>() (dtype must match exactly).
class NpyArray {
 public:
  NpyArray() = default;

  /// A zero-filled array. Throws file_error on a negative extent or an overflowing size.
  /// \param source names the array in error messages (usually its file)
  NpyArray(DType dtype, std::vector<index_t> shape, std::string source = "array")
      : dtype_(dtype), shape_(std::move(shape)), source_(std::move(source)) {
    size_ = checked_numel(shape_.data(), shape_.size(), itemsize(dtype_), source_);
    bytes_ = make_aligned<std::byte>(nbytes());
  }

  DType dtype() const noexcept { return dtype_; }
  const std::vector<index_t>& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.size(); }
  /// Number of elements.
  index_t size() const noexcept { return size_; }
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(size_) * itemsize(dtype_); }
  std::byte* bytes() noexcept { return bytes_.get(); }
  const std::byte* bytes() const noexcept { return bytes_.get(); }
  /// The file the array came from (for messages).
  const std::string& source() const noexcept { return source_; }

  /// A read-only view of the elements as T. Throws file_error when the dtype is not exactly T's
  /// or the rank is not R.
  /// \tparam T element type whose dtype_of is this array's dtype
  /// \tparam R expected rank
  template <class T, std::size_t R>
  TensorView<const T, R> view() const {
    check_rank(R);
    if (dtype_of<T>() != dtype_)
      throw file_error("attnkit: " + source_ + ": holds " + std::string(dtype_name(dtype_)) +
                       ", not " + std::string(dtype_name(dtype_of<T>())));
    return TensorView<const T, R>(reinterpret_cast<const T*>(bytes_.get()), shape_array<R>());
  }

  /// A tensor of T holding the elements converted by the rules of converts_to (floating values
  /// never become integers; integers are range-checked). Throws file_error naming the source,
  /// the expected rank and the array's shape when the rank is not R.
  /// \tparam T element type of the result
  /// \tparam R rank of the result
  template <class T, std::size_t R>
  Tensor<T, R> to_tensor() const {
    check_rank(R);
    Tensor<T, R> t(shape_array<R>());
    convert_elements<T>(dtype_, bytes_.get(), static_cast<std::size_t>(size_), t.data(), source_);
    return t;
  }

 private:
  void check_rank(std::size_t r) const { detail::check_npy_rank(source_, shape_, r); }
  template <std::size_t R>
  Shape<R> shape_array() const {
    Shape<R> s{};
    std::copy(shape_.begin(), shape_.end(), s.begin());
    return s;
  }

  DType dtype_ = DType::f32;
  std::vector<index_t> shape_;
  index_t size_ = 0;
  std::string source_;
  aligned_ptr<std::byte> bytes_ = make_aligned<std::byte>(0);
};

namespace detail {

/// Longest .npy header attnkit reads (NumPy itself stops at 10000 bytes by default).
inline constexpr std::size_t npy_max_header = std::size_t{1} << 20;

struct NpyHeader {
  DType dtype = DType::f32;
  std::vector<index_t> shape;
};

/// The dtype of a .npy 'descr' string such as "<f4" or "|b1".
inline DType npy_dtype(std::string_view descr, const std::string& path) {
  const auto bad = [&](const std::string& why) -> DType {
    fail(path, "unsupported dtype '" + std::string(descr) + "'" + why +
                   " (attnkit reads bool, int8..int64, uint8..uint64, float16, float32, float64)");
  };
  if (descr.size() < 2) return bad("");
  char order = '=';
  std::string_view rest = descr;
  if (rest[0] == '<' || rest[0] == '>' || rest[0] == '|' || rest[0] == '=') {
    order = rest[0];
    rest.remove_prefix(1);
  }
  if (rest.size() != 2) return bad("");
  const char kind = rest[0];
  const char size = rest[1];
  DType d{};
  switch (kind) {
    case 'b':
      if (size != '1') return bad("");
      d = DType::boolean;
      break;
    case 'u':
    case 'i': {
      const bool u = kind == 'u';
      if (size == '1')
        d = u ? DType::u8 : DType::i8;
      else if (size == '2')
        d = u ? DType::u16 : DType::i16;
      else if (size == '4')
        d = u ? DType::u32 : DType::i32;
      else if (size == '8')
        d = u ? DType::u64 : DType::i64;
      else
        return bad("");
      break;
    }
    case 'f':
      if (size == '2')
        d = DType::f16;
      else if (size == '4')
        d = DType::f32;
      else if (size == '8')
        d = DType::f64;
      else
        return bad("");
      break;
    default:
      return bad("");
  }
  if (order == '>' && itemsize(d) > 1)
    fail(path, "big-endian dtype '" + std::string(descr) +
                   "' is not supported; save little-endian data (arr.astype('<" +
                   std::string(rest) + "'))");
  return d;
}

/// Parses the Python dict literal of a .npy header:
/// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class NpyHeaderParser {
 public:
  NpyHeaderParser(std::string_view text, const std::string& path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = parse_string("a key");
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (have_descr) bad("duplicate key 'descr'");
        have_descr = true;
        if (peek() == '[') fail(path_, "structured (record) dtypes are not supported");
        h.dtype = npy_dtype(parse_string("the 'descr' value"), path_);
      } else if (key == "fortran_order") {
        if (have_order) bad("duplicate key 'fortran_order'");
        have_order = true;
        if (s_.substr(pos_, 4) == "True")
          fail(path_,
               "Fortran-order arrays (fortran_order: True) are not supported; save a "
               "C-order array (np.ascontiguousarray)");
        if (s_.substr(pos_, 5) != "False") bad("'fortran_order' must be True or False");
        pos_ += 5;
      } else if (key == "shape") {
        if (have_shape) bad("duplicate key 'shape'");
        have_shape = true;
        h.shape = parse_shape();
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      bad("expected ',' or '}'");
    }
    skip_ws();
    if (pos_ != s_.size()) bad("unexpected characters after the dictionary");
    if (!have_descr) bad("the key 'descr' is missing");
    if (!have_order) bad("the key 'fortran_order' is missing");
    if (!have_shape) bad("the key 'shape' is missing");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    fail(path_, "malformed .npy header: " + why);
  }
  char peek() const noexcept { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() noexcept {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string(const char* what) {
    const char q = peek();
    if (q != '\'' && q != '"') bad(std::string("expected a quoted string as ") + what);
    ++pos_;
    const std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      const auto u = static_cast<unsigned char>(s_[pos_]);
      if (s_[pos_] == '\\' || u < 0x20 || u >= 0x7f) bad("unsupported character in a string");
      ++pos_;
    }
    if (pos_ >= s_.size()) bad("unterminated string");
    return std::string(s_.substr(start, pos_++ - start));
  }
  std::vector<index_t> parse_shape() {
    std::vector<index_t> shape;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') {
        ++pos_;
        return shape;
      }
      if (peek() == '-') fail(path_, "negative extent in the shape");
      if (!(peek() >= '0' && peek() <= '9')) bad("expected an integer extent in 'shape'");
      index_t e = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = s_[pos_++] - '0';
        if (e > (std::numeric_limits<index_t>::max() - digit) / 10)
          fail(path_, "an extent in the shape overflows a 64-bit integer");
        e = e * 10 + digit;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literal
      shape.push_back(e);
      if (shape.size() > 64) bad("more than 64 dimensions");
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ')') bad("expected ',' or ')' in 'shape'");
    }
  }

  std::string_view s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

/// The .npy 'descr' of a dtype; bfloat16 has none.
inline std::string npy_descr(DType d, const std::string& path) {
  switch (d) {
    case DType::boolean:
      return "|b1";
    case DType::u8:
      return "|u1";
    case DType::i8:
      return "|i1";
    case DType::u16:
      return "<u2";
    case DType::i16:
      return "<i2";
    case DType::u32:
      return "<u4";
    case DType::i32:
      return "<i4";
    case DType::u64:
      return "<u8";
    case DType::i64:
      return "<i8";
    case DType::f16:
      return "<f2";
    case DType::f32:
      return "<f4";
    case DType::f64:
      return "<f8";
    case DType::bf16:
      break;
  }
  fail(path, "bfloat16 has no .npy dtype; convert to float32 first");
}

/// Writes a .npy file (version 1.0, or 2.0 when the header needs it) from a strided array.
inline void write_npy_strided(const std::string& path, DType dtype, const std::byte* data,
                              std::span<const index_t> shape, std::span<const index_t> strides) {
  std::string dict =
      "{'descr': '" + npy_descr(dtype, path) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) fail(path, "negative extent in the shape " + shape_string(shape));
    dict += std::to_string(shape[d]);
    if (shape.size() == 1 || d + 1 < shape.size()) dict += ",";
    if (d + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  (void)checked_numel(shape.data(), shape.size(), itemsize(dtype), path);
  // magic (6) + version (2) + length (2 or 4) + dict + padding + '\n', a multiple of 64 bytes.
  const bool v2 = dict.size() + 1 + 10 > 65535;
  const std::size_t prefix = v2 ? 12 : 10;
  const std::size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string head("\x93NUMPY", 6);
  head += static_cast<char>(v2 ? 2 : 1);
  head += '\0';
  const std::uint32_t len = static_cast<std::uint32_t>(dict.size());
  head += static_cast<char>(len & 0xff);
  head += static_cast<char>((len >> 8) & 0xff);
  if (v2) {
    head += static_cast<char>((len >> 16) & 0xff);
    head += static_cast<char>((len >> 24) & 0xff);
  }
  OutputFile out(path);
  out.write(head.data(), head.size());
  out.write(dict.data(), dict.size());
  const std::size_t item = itemsize(dtype);
  std::vector<std::byte> buf;
  buf.reserve(std::size_t{1} << 16);
  for_each_run(data, shape, strides, item, [&](const std::byte* p, std::size_t count) {
    const std::size_t n = count * item;
    if (buf.size() + n > buf.capacity()) {
      out.write(buf.data(), buf.size());
      buf.clear();
      if (n >= buf.capacity()) {
        out.write(p, n);
        return;
      }
    }
    buf.insert(buf.end(), p, p + n);
  });
  out.write(buf.data(), buf.size());
  out.commit();
}

/// Reads and checks the magic string, version and header of a .npy file, leaving `in` at the
/// first data byte; the data size is checked against the rest of the file.
inline NpyHeader read_npy_header(InputFile& in) {
  const std::string& path = in.path();
  if (in.size() < 10)
    fail(path, "not a .npy file: too short (" + std::to_string(in.size()) + " bytes)");
  unsigned char pre[8];
  in.read(pre, 8, "the magic string");
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) fail(path, "not a .npy file (bad magic string)");
  const unsigned major = pre[6], minor = pre[7];
  std::uint32_t header_len = 0;
  if (major == 1) {
    unsigned char l[2];
    in.read(l, 2, "the header length");
    header_len = static_cast<std::uint32_t>(l[0] | (l[1] << 8));
  } else if (major == 2 || major == 3) {
    unsigned char l[4];
    in.read(l, 4, "the header length");
    header_len = static_cast<std::uint32_t>(l[0]) | (static_cast<std::uint32_t>(l[1]) << 8) |
                 (static_cast<std::uint32_t>(l[2]) << 16) |
                 (static_cast<std::uint32_t>(l[3]) << 24);
  } else {
    fail(path,
         "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  }
  if (header_len > npy_max_header)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the " +
                   std::to_string(npy_max_header) + "-byte limit");
  if (header_len > in.remaining())
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(in.size()) + " bytes)");
  std::string header(header_len, '\0');
  in.read(header.data(), header_len, "the header");
  NpyHeader h = NpyHeaderParser(header, path).parse();
  const index_t n = checked_numel(h.shape.data(), h.shape.size(), itemsize(h.dtype), path);
  const std::uint64_t need = static_cast<std::uint64_t>(n) * itemsize(h.dtype);
  if (need > in.remaining())
    fail(path, "file is truncated: shape " + shape_string(h.shape) + " of " +
                   std::string(dtype_name(h.dtype)) + " needs " + std::to_string(need) +
                   " data bytes, the file has " + std::to_string(in.remaining()));
  if (need < in.remaining())
    fail(path, "size mismatch: shape " + shape_string(h.shape) + " of " +
                   std::string(dtype_name(h.dtype)) + " needs " + std::to_string(need) +
                   " data bytes, the file has " + std::to_string(in.remaining()) +
                   " (trailing bytes)");
  return h;
}

}  // namespace detail

/// Reads a .npy file (format versions 1.0, 2.0 and 3.0; C order; little-endian; dtypes bool,
/// int8..int64, uint8..uint64, float16, float32, float64). Every size in the header is checked
/// against the file before anything is allocated or read. Throws file_error naming the file and
/// the problem (missing file, bad magic, truncated data, Fortran order, big-endian, ...).
inline NpyArray read_npy(const std::string& path) {
  detail::InputFile in(path);
  const detail::NpyHeader h = detail::read_npy_header(in);
  NpyArray a(h.dtype, h.shape, path);
  in.read(a.bytes(), a.nbytes(), "the array data");
  return a;
}

/// Reads a .npy file into a Tensor<T, R>, converting by the rules of converts_to: float and
/// double accept every dtype; integer types accept bool and integer dtypes (range-checked).
/// Throws shape_error naming the file, R and the file's shape when the rank differs, and
/// file_error for every problem of the file.
/// \tparam T element type of the result
/// \tparam R rank of the result
template <class T, std::size_t R>
Tensor<T, R> read_npy_as(const std::string& path) {
  detail::InputFile in(path);
  const detail::NpyHeader h = detail::read_npy_header(in);
  detail::check_npy_rank(path, h.shape, R);
  // The same dtype (bool excepted: its bytes are validated by conversion): read straight into the
  // tensor, with no intermediate copy.
  if (h.dtype == dtype_of<T>() && !std::is_same_v<T, bool>) {
    Shape<R> s{};
    std::copy(h.shape.begin(), h.shape.end(), s.begin());
    Tensor<T, R> t(s);
    in.read(t.data(), static_cast<std::size_t>(t.size()) * sizeof(T), "the array data");
    return t;
  }
  NpyArray a(h.dtype, h.shape, path);
  in.read(a.bytes(), a.nbytes(), "the array data");
  return a.to_tensor<T, R>();
}

/// Reads a .npy file of a floating-point dtype (float16, float32 or float64) into a Tensor<T, R>
/// (float64 to float rounds to nearest). Any other dtype is a file_error naming the file and its
/// dtype, so an integer or bool array passed where values are expected is not silently converted.
/// \tparam T float or double
/// \tparam R rank of the result
template <class T, std::size_t R>
Tensor<T, R> read_npy_floating(const std::string& path) {
  static_assert(std::is_floating_point_v<T>,
                "attnkit: T of read_npy_floating must be float or double");
  const NpyArray a = read_npy(path);
  if (!is_floating(a.dtype()))
    detail::fail(path, "expected a floating-point array (float32 or float64), the file holds " +
                           std::string(dtype_name(a.dtype())));
  return a.to_tensor<T, R>();
}

/// Writes a view as a .npy file in C order (whatever its strides). T is bool, an 8..64-bit
/// integer, float or double. Throws file_error when the file cannot be written (a partial file is
/// removed).
/// \tparam T element type, possibly const
/// \tparam R rank
template <class T, std::size_t R>
void write_npy(const std::string& path, TensorView<T, R> v) {
  constexpr DType dt = dtype_of<T>();
  const Shape<R>& shape = v.shape();
  const Strides<R>& strides = v.strides();
  for (std::size_t d = 0; d < R; ++d)
    if (strides[d] < 0) detail::fail(path, "write_npy: negative strides are not supported");
  detail::write_npy_strided(path, dt, reinterpret_cast<const std::byte*>(v.data()),
                            std::span<const index_t>(shape.data(), R),
                            std::span<const index_t>(strides.data(), R));
}

/// Writes a tensor as a .npy file.
template <class T, std::size_t R>
void write_npy(const std::string& path, const Tensor<T, R>& t) {
  write_npy(path, t.view());
}

/// Writes an NpyArray back to a .npy file (any rank, including 0).
inline void write_npy(const std::string& path, const NpyArray& a) {
  std::vector<index_t> strides(a.rank());
  index_t acc = 1;
  for (std::size_t d = a.rank(); d-- > 0;) {
    strides[d] = acc;
    acc *= std::max<index_t>(a.shape()[d], 1);
  }
  detail::write_npy_strided(path, a.dtype(), a.bytes(), a.shape(), strides);
}

}  // namespace attnkit::io
