// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// safetensors files: checked, memory-mapped reading (zero-copy F32 views) and writing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/io/detail/file.hpp"
#include "attnkit/io/detail/strided.hpp"
#include "attnkit/io/dtype.hpp"
#include "attnkit/io/half.hpp"
#include "attnkit/io/json.hpp"

namespace attnkit::io {

/// The safetensors name of a dtype ("F32", "BF16", "BOOL", ...).
constexpr std::string_view safetensors_dtype_name(DType d) noexcept {
  switch (d) {
    case DType::boolean:
      return "BOOL";
    case DType::u8:
      return "U8";
    case DType::i8:
      return "I8";
    case DType::u16:
      return "U16";
    case DType::i16:
      return "I16";
    case DType::u32:
      return "U32";
    case DType::i32:
      return "I32";
    case DType::u64:
      return "U64";
    case DType::i64:
      return "I64";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
  }
  return "?";
}

/// What the header says about one tensor.
struct TensorInfo {
  DType dtype = DType::f32;
  std::vector<index_t> shape;
  /// Byte range [begin, end) relative to the start of the data buffer (after the header).
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  std::size_t rank() const noexcept { return shape.size(); }
  /// Number of elements.
  index_t size() const noexcept { return static_cast<index_t>((end - begin) / itemsize(dtype)); }
  std::uint64_t nbytes() const noexcept { return end - begin; }
};

/// How SafetensorsFile::open gets at the bytes.
enum class LoadMode : std::uint8_t {
  map,   ///< memory-map the file (falls back to read when mapping is unavailable)
  read,  ///< read the whole file into memory
};

/// An opened safetensors file. open() checks the whole header against the file before it returns:
/// the header length, every dtype and shape (with overflow checks), every data_offsets range
/// (inside the data buffer, begin <= end, end - begin == elements * itemsize) and that no two
/// tensors overlap. Views returned by view()/view_f32() point into the mapping and stay valid as
/// long as this object lives. Move-only.
///
/// Pitfall: a memory-mapped file that another process truncates while it is mapped makes reads
/// of the lost pages fault (SIGBUS); use LoadMode::read for files that may change.
class SafetensorsFile {
 public:
  /// Header lengths above this are refused (the reference implementation's limit).
  static constexpr std::uint64_t max_header = 100000000;

  /// Opens and validates a file. Throws attnkit::error (file_error, or json::parse_error for a
  /// malformed header) naming the file and the problem.
  static SafetensorsFile open(const std::string& path, LoadMode mode = LoadMode::map) {
    SafetensorsFile f;
    f.path_ = path;
    f.bytes_ = detail::FileBytes::load(path, mode == LoadMode::map);
    f.parse_header();
    return f;
  }

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

  const std::string& path() const noexcept { return path_; }
  /// Whether the tensors are read from a memory map (zero-copy).
  bool mapped() const noexcept { return bytes_.mapped(); }
  /// Tensor names in header order.
  const std::vector<std::string>& names() const noexcept { return names_; }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }
  /// The `__metadata__` string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// dtype, shape and byte range of a tensor; throws file_error naming the tensor and file.
  const TensorInfo& info(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) detail::fail(path_, "no tensor named '" + std::string(name) + "'");
    return infos_[it->second];
  }

  /// The raw little-endian bytes of a tensor.
  std::span<const std::byte> raw(std::string_view name) const {
    const TensorInfo& ti = info(name);
    return bytes_.bytes().subspan(data_start_ + ti.begin, ti.nbytes());
  }

  /// A zero-copy view of a tensor whose dtype is exactly T's. Throws file_error on another dtype
  /// or a misaligned tensor, shape_error when the rank is not R.
  /// \tparam T element type matching the stored dtype
  /// \tparam R expected rank
  template <class T, std::size_t R>
  TensorView<const T, R> view(std::string_view name) const {
    const TensorInfo& ti = info(name);
    check_rank(name, ti, R);
    if (ti.dtype != dtype_of<T>())
      detail::fail(path_, "tensor '" + std::string(name) + "' has dtype " +
                              std::string(safetensors_dtype_name(ti.dtype)) + ", not " +
                              std::string(safetensors_dtype_name(dtype_of<T>())) +
                              " (load() converts)");
    const std::byte* p = raw(name).data();
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0)
      detail::fail(path_, "tensor '" + std::string(name) + "' is not " +
                              std::to_string(alignof(T)) +
                              "-byte aligned in the file, so it cannot be viewed in place "
                              "(load() copies it)");
    Shape<R> s{};
    std::copy(ti.shape.begin(), ti.shape.end(), s.begin());
    return TensorView<const T, R>(reinterpret_cast<const T*>(p), s);
  }

  /// A zero-copy float view of an F32 tensor (see view()).
  template <std::size_t R>
  TensorView<const float, R> view_f32(std::string_view name) const {
    return view<float, R>(name);
  }

  /// A tensor of T with the tensor's elements converted by the rules of converts_to (F16, BF16,
  /// F32 and F64 to float exactly or rounded to nearest; integers range-checked). Throws
  /// shape_error when the rank is not R, file_error when the dtype does not convert.
  /// \tparam T element type of the result
  /// \tparam R rank of the result
  template <class T, std::size_t R>
  Tensor<T, R> load(std::string_view name) const {
    const TensorInfo& ti = info(name);
    check_rank(name, ti, R);
    Shape<R> s{};
    std::copy(ti.shape.begin(), ti.shape.end(), s.begin());
    Tensor<T, R> t(s);
    convert_elements<T>(ti.dtype, raw(name).data(), static_cast<std::size_t>(ti.size()), t.data(),
                        path_ + ": tensor '" + std::string(name) + "'");
    return t;
  }

  /// load<float, R>: F32, F16, BF16 (and F64, rounded; integers) as float32.
  template <std::size_t R>
  Tensor<float, R> load_f32(std::string_view name) const {
    return load<float, R>(name);
  }

 private:
  SafetensorsFile() = default;

  void check_rank(std::string_view name, const TensorInfo& ti, std::size_t r) const {
    if (ti.rank() != r)
      throw shape_error("attnkit: " + path_ + ": tensor '" + std::string(name) +
                        "': expected rank " + std::to_string(r) + ", the file holds shape " +
                        shape_string(ti.shape) + " (rank " + std::to_string(ti.rank()) + ")");
  }

  [[noreturn]] void bad(const std::string& what) const { detail::fail(path_, what); }

  static bool parse_dtype(std::string_view s, DType& d) {
    static constexpr DType all[] = {DType::boolean, DType::u8,  DType::i8,  DType::u16, DType::i16,
                                    DType::u32,     DType::i32, DType::u64, DType::i64, DType::f16,
                                    DType::bf16,    DType::f32, DType::f64};
    for (DType c : all)
      if (safetensors_dtype_name(c) == s) {
        d = c;
        return true;
      }
    return false;
  }

  static bool non_negative_int(const json::Value& v, std::uint64_t& out) {
    if (!v.is_integer()) return false;
    const std::int64_t i = v.as_int();
    if (i < 0) return false;
    out = static_cast<std::uint64_t>(i);
    return true;
  }

  void parse_header() {
    const std::span<const std::byte> b = bytes_.bytes();
    if (b.size() < 8)
      bad("not a safetensors file: " + std::to_string(b.size()) +
          " bytes is too short for the 8-byte header length");
    std::uint64_t n = 0;
    std::memcpy(&n, b.data(), 8);
    if (n > max_header)
      bad("header length " + std::to_string(n) + " exceeds the " + std::to_string(max_header) +
          "-byte limit");
    if (n > b.size() - 8)
      bad("header length " + std::to_string(n) + " runs past the end of the file (" +
          std::to_string(b.size()) + " bytes)");
    data_start_ = 8 + static_cast<std::size_t>(n);
    const std::uint64_t buffer = b.size() - data_start_;
    const std::string_view text(reinterpret_cast<const char*>(b.data() + 8),
                                static_cast<std::size_t>(n));
    const json::Value root = json::parse(text, path_ + " (safetensors header)");
    if (!root.is_object()) bad("the header is not a JSON object");

    struct Range {
      std::uint64_t begin, end;
      std::size_t index;
    };
    std::vector<Range> ranges;
    for (const auto& [name, v] : root.as_object()) {
      if (name == "__metadata__") {
        if (v.is_null()) continue;
        if (!v.is_object()) bad("__metadata__ is not an object of strings");
        for (const auto& [k, mv] : v.as_object()) {
          if (!mv.is_string()) bad("__metadata__ value of '" + k + "' is not a string");
          metadata_.emplace(k, mv.as_string());
        }
        continue;
      }
      const std::string t = "tensor '" + name + "'";
      if (!v.is_object()) bad(t + ": entry is not an object");
      const json::Value* dt = v.find("dtype");
      const json::Value* sh = v.find("shape");
      const json::Value* off = v.find("data_offsets");
      if (dt == nullptr) bad(t + ": missing key 'dtype'");
      if (sh == nullptr) bad(t + ": missing key 'shape'");
      if (off == nullptr) bad(t + ": missing key 'data_offsets'");
      TensorInfo ti;
      if (!dt->is_string()) bad(t + ": 'dtype' is not a string");
      if (!parse_dtype(dt->as_string(), ti.dtype))
        bad(t + ": unknown or unsupported dtype '" + dt->as_string() +
            "' (attnkit reads BOOL, U8..U64, I8..I64, F16, BF16, F32, F64)");
      if (!sh->is_array()) bad(t + ": 'shape' is not an array");
      for (const json::Value& e : sh->as_array()) {
        std::uint64_t x = 0;
        if (!non_negative_int(e, x))
          bad(t + ": 'shape' holds " + e.describe() + ", expected a non-negative integer");
        ti.shape.push_back(static_cast<index_t>(x));
      }
      const index_t count =
          checked_numel(ti.shape.data(), ti.shape.size(), itemsize(ti.dtype), path_ + ": " + t);
      if (!off->is_array() || off->size() != 2 ||
          !non_negative_int(off->at(std::size_t{0}), ti.begin) ||
          !non_negative_int(off->at(std::size_t{1}), ti.end))
        bad(t + ": 'data_offsets' must be two non-negative integers [begin, end]");
      if (ti.begin > ti.end)
        bad(t + ": data_offsets begin " + std::to_string(ti.begin) + " > end " +
            std::to_string(ti.end));
      if (ti.end > buffer)
        bad(t + ": data_offsets [" + std::to_string(ti.begin) + ", " + std::to_string(ti.end) +
            ") out of range: the data buffer has " + std::to_string(buffer) + " bytes");
      const std::uint64_t need = static_cast<std::uint64_t>(count) * itemsize(ti.dtype);
      if (ti.end - ti.begin != need)
        bad(t + ": size mismatch: shape " + shape_string(ti.shape) + " of " +
            std::string(safetensors_dtype_name(ti.dtype)) + " needs " + std::to_string(need) +
            " bytes, data_offsets span " + std::to_string(ti.end - ti.begin));
      if (need != 0) ranges.push_back({ti.begin, ti.end, infos_.size()});
      index_.emplace(name, infos_.size());
      names_.push_back(name);
      infos_.push_back(std::move(ti));
    }
    std::sort(ranges.begin(), ranges.end(),
              [](const Range& x, const Range& y) { return x.begin < y.begin; });
    for (std::size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].begin < ranges[i - 1].end)
        bad("tensors '" + names_[ranges[i - 1].index] + "' and '" + names_[ranges[i].index] +
            "' overlap in the data buffer");
  }

  std::string path_;
  detail::FileBytes bytes_;
  std::size_t data_start_ = 0;
  std::vector<std::string> names_;
  std::vector<TensorInfo> infos_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

/// One tensor to write: a name, a strided array of any rank, and the dtype to store it as.
/// Built implicitly from (name, view or tensor) or (name, view or tensor, dtype), so
/// `write_safetensors(path, {{"w", w}, {"b", b.view(), DType::bf16}})` works.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::f32;     ///< element type in memory
  DType store_as = DType::f32;  ///< element type in the file
  std::vector<index_t> shape;
  std::vector<index_t> strides;  ///< in elements
  const std::byte* data = nullptr;

  /// \tparam T element type (possibly const); stored as is unless `store` says otherwise:
  ///   float and double may be stored as F16, BF16, F32 or F64 (rounded to nearest even);
  ///   other types only as themselves.
  /// \tparam R rank
  template <class T, std::size_t R>
  SafetensorsEntry(std::string tensor_name, TensorView<T, R> v, DType store = dtype_of<T>())
      : name(std::move(tensor_name)),
        dtype(dtype_of<T>()),
        store_as(store),
        shape(v.shape().begin(), v.shape().end()),
        strides(v.strides().begin(), v.strides().end()),
        data(reinterpret_cast<const std::byte*>(v.data())) {}

  template <class T, std::size_t R>
  SafetensorsEntry(std::string tensor_name, const Tensor<T, R>& t, DType store = dtype_of<T>())
      : SafetensorsEntry(std::move(tensor_name), t.view(), store) {}
};

namespace detail {

// Converts `count` elements of a floating `from` dtype (f32 or f64) to `to`, appending bytes.
inline void append_converted(DType from, const std::byte* p, std::size_t count, DType to,
                             std::vector<std::byte>& out) {
  const std::size_t in_item = itemsize(from), out_item = itemsize(to);
  const std::size_t base = out.size();
  out.resize(base + count * out_item);
  std::byte* o = out.data() + base;
  for (std::size_t i = 0; i < count; ++i) {
    double d = 0;
    if (from == DType::f32)
      d = load_le<float>(p + i * in_item);
    else
      d = load_le<double>(p + i * in_item);
    if (to == DType::f64) {
      std::memcpy(o + i * 8, &d, 8);
    } else if (to == DType::f32) {
      const float f = static_cast<float>(d);
      std::memcpy(o + i * 4, &f, 4);
    } else {
      const float f = static_cast<float>(d);
      const std::uint16_t h = to == DType::f16 ? f32_to_f16(f) : f32_to_bf16(f);
      std::memcpy(o + i * 2, &h, 2);
    }
  }
}

}  // namespace detail

/// Writes a safetensors file: tensors in order of decreasing item size (so every tensor is aligned
/// to its item size), data contiguous, the JSON header padded with spaces to a multiple of 8
/// bytes, `metadata` as `__metadata__`. Throws file_error for a duplicate, reserved or non-UTF-8
/// name, an unsupported store dtype, or a write failure (a partial file is removed).
inline void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  std::vector<std::size_t> order(tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return itemsize(tensors[a].store_as) > itemsize(tensors[b].store_as);
  });
  json::Value header = json::Value::object();
  try {
    if (!metadata.empty()) {
      json::Value m = json::Value::object();
      for (const auto& [k, v] : metadata) m.insert(k, json::Value::string(v));
      header.insert("__metadata__", std::move(m));
    }
    std::uint64_t offset = 0;
    for (std::size_t i : order) {
      const SafetensorsEntry& e = tensors[i];
      const std::string t = "tensor '" + e.name + "'";
      if (e.name == "__metadata__") detail::fail(path, "'__metadata__' is not a valid tensor name");
      if (e.shape.size() != e.strides.size())
        detail::fail(path, t + ": shape and strides differ in rank");
      for (index_t s : e.strides)
        if (s < 0) detail::fail(path, t + ": negative strides are not supported");
      const bool same = e.store_as == e.dtype;
      const bool floating_source = e.dtype == DType::f32 || e.dtype == DType::f64;
      if (!same && !(floating_source && is_floating(e.store_as)))
        detail::fail(path, t + ": cannot store " + std::string(dtype_name(e.dtype)) + " as " +
                               std::string(safetensors_dtype_name(e.store_as)));
      const index_t count =
          checked_numel(e.shape.data(), e.shape.size(), itemsize(e.store_as), path + ": " + t);
      const std::uint64_t nbytes = static_cast<std::uint64_t>(count) * itemsize(e.store_as);
      json::Value shape = json::Value::array();
      for (index_t s : e.shape) shape.push_back(json::Value::integer(s));
      json::Value offs = json::Value::array();
      offs.push_back(json::Value::integer(static_cast<std::int64_t>(offset)));
      offs.push_back(json::Value::integer(static_cast<std::int64_t>(offset + nbytes)));
      json::Value entry = json::Value::object();
      entry.insert("dtype", json::Value::string(std::string(safetensors_dtype_name(e.store_as))));
      entry.insert("shape", std::move(shape));
      entry.insert("data_offsets", std::move(offs));
      if (header.contains(e.name)) detail::fail(path, "duplicate tensor name '" + e.name + "'");
      header.insert(e.name, std::move(entry));
      offset += nbytes;
    }
  } catch (const json::access_error& err) {
    detail::fail(path, std::string("cannot write the header: ") + err.what());
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::access_error& err) {
    detail::fail(path, std::string("cannot write the header: ") + err.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t n = text.size();
  detail::OutputFile out(path);
  out.write(&n, 8);
  out.write(text.data(), text.size());
  std::vector<std::byte> buf;
  constexpr std::size_t chunk = std::size_t{1} << 16;
  for (std::size_t i : order) {
    const SafetensorsEntry& e = tensors[i];
    const std::size_t item = itemsize(e.dtype);
    detail::for_each_run(e.data, e.shape, e.strides, item,
                         [&](const std::byte* p, std::size_t count) {
                           if (e.store_as == e.dtype)
                             buf.insert(buf.end(), p, p + count * item);
                           else
                             detail::append_converted(e.dtype, p, count, e.store_as, buf);
                           if (buf.size() >= chunk) {
                             out.write(buf.data(), buf.size());
                             buf.clear();
                           }
                         });
  }
  out.write(buf.data(), buf.size());
  out.commit();
}

}  // namespace attnkit::io
