// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// 64-byte aligned allocation: one cache line, one AVX-512 register. Buffers of 2 MiB or more are
// 2 MiB aligned and asked to be backed by huge pages (Linux's transparent huge pages).
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__linux__) && !defined(ATTNKIT_NO_HUGE_PAGES)
#include <sys/mman.h>
#endif

namespace attnkit {

/// Alignment of every buffer attnkit allocates, in bytes.
inline constexpr std::size_t buffer_alignment = 64;

/// Buffers of at least this many bytes are aligned to it and, on Linux (unless
/// ATTNKIT_NO_HUGE_PAGES is defined), advised for transparent huge pages (MADV_HUGEPAGE, which
/// the default THP setting "madvise" honours). A KV cache or a K/V tensor streamed from DRAM then
/// costs a TLB miss per 2 MiB instead of per 4 KiB: decode from DRAM (bench_attention, 32k keys,
/// D = 128, AVX-512) took 5-20% less time.
inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

namespace detail {
/// Releases with the alignment the buffer was allocated with.
struct aligned_deleter {
  std::size_t alignment = buffer_alignment;
  void operator()(void* p) const noexcept { ::operator delete (p, std::align_val_t{alignment}); }
};
}  // namespace detail

/// Owning pointer to an aligned array of trivially-copyable T.
template <class T>
using aligned_ptr = std::unique_ptr<T[], detail::aligned_deleter>;

/// Allocates n elements aligned to buffer_alignment (huge_page_bytes from that size up),
/// value-initialized (zero for arithmetic types). The allocation is padded to a whole number of
/// cache lines so SIMD loads of the last batch stay inside the buffer.
template <class T>
aligned_ptr<T> make_aligned(std::size_t n) {
  static_assert(std::is_trivially_copyable_v<T>, "attnkit: make_aligned needs a trivial type");
  std::size_t bytes = n * sizeof(T);
  bytes = (bytes + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
  if (bytes == 0) bytes = buffer_alignment;
  const std::size_t alignment = bytes >= huge_page_bytes ? huge_page_bytes : buffer_alignment;
  void* p = ::operator new (bytes, std::align_val_t{alignment});
#if defined(__linux__) && !defined(ATTNKIT_NO_HUGE_PAGES)
  // Before the first touch below, so the pages are faulted in huge. Advice only: a kernel
  // without THP refuses it (EINVAL) and the buffer stays on small pages.
  if (alignment == huge_page_bytes) (void)::madvise(p, bytes, MADV_HUGEPAGE);
#endif
  std::memset(p, 0, bytes);
  return aligned_ptr<T>(static_cast<T*>(p), detail::aligned_deleter{alignment});
}

}  // namespace attnkit
