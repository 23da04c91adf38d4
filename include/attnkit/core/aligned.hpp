// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// 64-byte aligned allocation: one cache line, one AVX-512 register.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

namespace attnkit {

/// Alignment of every buffer attnkit allocates, in bytes.
inline constexpr std::size_t buffer_alignment = 64;

namespace detail {
struct aligned_deleter {
  void operator()(void* p) const noexcept {
    ::operator delete (p, std::align_val_t{buffer_alignment});
  }
};
}  // namespace detail

/// Owning pointer to an aligned array of trivially-copyable T.
template <class T>
using aligned_ptr = std::unique_ptr<T[], detail::aligned_deleter>;

/// Allocates n elements aligned to buffer_alignment, value-initialized (zero for arithmetic
/// types). The allocation is padded to a whole number of cache lines so SIMD loads of the last
/// batch stay inside the buffer.
template <class T>
aligned_ptr<T> make_aligned(std::size_t n) {
  static_assert(std::is_trivially_copyable_v<T>, "attnkit: make_aligned needs a trivial type");
  std::size_t bytes = n * sizeof(T);
  bytes = (bytes + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
  if (bytes == 0) bytes = buffer_alignment;
  void* p = ::operator new (bytes, std::align_val_t{buffer_alignment});
  std::memset(p, 0, bytes);
  return aligned_ptr<T>(static_cast<T*>(p));
}

}  // namespace attnkit
