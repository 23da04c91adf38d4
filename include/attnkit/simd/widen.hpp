// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Loads of 16-bit storage (bf16, f16) widened to float batches in registers: bf16 by a 16-bit
// shift (exact), f16 by the F16C conversion (exact) where the compiler enables it, otherwise
// element by element. load_widen<Arch>(const float*) is a plain load, so kernels written over
// an element type E take float, bf16 and f16 alike.
#pragma once

#include <algorithm>
#include <type_traits>

#include "attnkit/core/half.hpp"
#include "attnkit/simd/batch.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::simd {

/// The float value of one element of E (float, bf16 or f16).
template <class E>
inline float widen_scalar(E e) noexcept {
  if constexpr (std::is_same_v<E, float>) {
    return e;
  } else {
    return e.to_float();
  }
}

/// W = width<float, Arch> consecutive elements at p (any alignment) as a float batch.
/// \tparam Arch an xsimd architecture tag \tparam E float, bf16 or f16
template <class Arch, class E>
inline batch<float, Arch> load_widen(const E* p) noexcept {
  using B = batch<float, Arch>;
  if constexpr (std::is_same_v<E, float>) {
    return B::load_unaligned(p);
  } else {
    [[maybe_unused]] const void* raw = p;
#if defined(__AVX512F__)
    if constexpr (has_avx512<Arch>) {
      const __m256i h = _mm256_loadu_si256(static_cast<const __m256i*>(raw));
      if constexpr (std::is_same_v<E, bf16>) {
        return B(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
      } else {
        return B(_mm512_cvtph_ps(h));
      }
    } else
#endif
#if defined(__AVX2__)
        if constexpr (has_avx<Arch>) {
      const __m128i h = _mm_loadu_si128(static_cast<const __m128i*>(raw));
      if constexpr (std::is_same_v<E, bf16>) {
        return B(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
      } else {
#if defined(__F16C__)
        return B(_mm256_cvtph_ps(h));
#else
        alignas(64) float buf[B::size];
        for (std::size_t n = 0; n < B::size; ++n) buf[n] = p[n].to_float();
        return B::load_aligned(buf);
#endif
      }
    } else
#endif
    {
      if constexpr (std::is_same_v<E, bf16> && B::size == 4) {  // SSE2: interleave with zeros
        const __m128i h = _mm_loadl_epi64(static_cast<const __m128i*>(raw));
        return B(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)));
      } else {
#if defined(__F16C__)
        if constexpr (B::size == 4)
          return B(_mm_cvtph_ps(_mm_loadl_epi64(static_cast<const __m128i*>(raw))));
#endif
        alignas(64) float buf[B::size];
        for (std::size_t n = 0; n < B::size; ++n) buf[n] = p[n].to_float();
        return B::load_aligned(buf);
      }
    }
  }
}

/// The first n elements at p (0 <= n <= width) widened into the low lanes, zeros above; never
/// reads p[n] or beyond.
template <class Arch, class E>
inline batch<float, Arch> load_widen_partial(const E* p, index_t n) noexcept {
  if constexpr (std::is_same_v<E, float>) {
    return load_partial<Arch>(p, n);
  } else {
    using B = batch<float, Arch>;
    alignas(64) float buf[B::size] = {};
    for (index_t c = 0; c < n; ++c) buf[c] = p[c].to_float();
    return B::load_aligned(buf);
  }
}

/// dst[0, n) = the float values of src[0, n) (vectorized over full batches).
template <class Arch, class E>
inline void widen_row(const E* src, index_t n, float* dst) noexcept {
  constexpr index_t W = width<float, Arch>;
  index_t c = 0;
  for (; c + W <= n; c += W) load_widen<Arch>(src + c).store_unaligned(dst + c);
  for (; c < n; ++c) dst[c] = widen_scalar(src[c]);
}

}  // namespace attnkit::simd

ATTNKIT_SIMD_WARNINGS_POP
