// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Batch aliases, horizontal reductions and tail (partial) loads/stores over xsimd batches.
//
// Everything here is templated on the xsimd architecture tag (simd::avx512, simd::avx2,
// simd::generic) so each ISA gets its own instantiation. xsimd 8.1 has no masked load/store and
// no horizontal max: they are implemented here (AVX-512 mask intrinsics, AVX2/SSE2 shuffles or a
// stack buffer) under attnkit's own names, so an xsimd upgrade touches this file only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

// xsimd comes from simd/arch.hpp, which reads it with GCC's AVX-512 false positive silenced.
#include "attnkit/core/shape.hpp"
#include "attnkit/simd/arch.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::simd {

/// An xsimd register of T for architecture Arch (e.g. batch<float, avx512> holds 16 floats).
/// \tparam T element type (float, double, std::int32_t, ...)
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
using batch = xsimd::batch<T, Arch>;

/// The lane mask type matching batch<T, Arch>.
/// \tparam T element type
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
using batch_bool = xsimd::batch_bool<T, Arch>;

/// Number of T lanes in one register of Arch.
/// \tparam T element type
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
inline constexpr index_t width = static_cast<index_t>(xsimd::batch<T, Arch>::size);

/// Whether Arch has the AVX-512 mask registers (used for masked tails and reductions).
/// \tparam Arch an xsimd architecture tag
template <class Arch>
inline constexpr bool has_avx512 = std::is_base_of_v<xsimd::avx512f, Arch>;

/// Whether Arch has 256-bit AVX registers.
/// \tparam Arch an xsimd architecture tag
template <class Arch>
inline constexpr bool has_avx = std::is_base_of_v<xsimd::avx, Arch>;

/// Keeps x in a register from here on: the load that produced it is not folded into the
/// instructions that use it. (GCC 12 turns a vector loaded once and used by several FMAs into a
/// memory operand of each FMA, so the kernel loads it once per FMA; where loads, not FMAs,
/// are the limit, the block runs longer: 1.3x for the decode P·V block.) No instruction is
/// emitted.
/// \tparam T element type
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
inline void in_register(batch<T, Arch>& x) noexcept {
#if defined(__GNUC__)
  auto r = static_cast<typename batch<T, Arch>::register_type>(x);
  asm("" : "+v"(r));
  x = r;
#else
  (void)x;
#endif
}

/// Sum of all lanes of x.
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
inline T reduce_add(const batch<T, Arch>& x) noexcept {
  return xsimd::hadd(x);
}

/// Maximum of all lanes of x. If a lane is NaN the result is unspecified (NaN or another lane):
/// callers that need NaN propagation test for it separately.
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
inline T reduce_max(const batch<T, Arch>& x) noexcept {
  static_assert(std::is_floating_point_v<T>, "attnkit: reduce_max needs a float or double batch");
  // The intrinsic branches exist only where the compiler flags enable the ISA (a baseline
  // x86-64 TU has no AVX types at all); there, only the generic kernels are instantiated.
#if defined(__AVX512F__)
  if constexpr (has_avx512<Arch>) {
    if constexpr (std::is_same_v<T, float>) {
      return _mm512_reduce_max_ps(x);
    } else {
      return _mm512_reduce_max_pd(x);
    }
  } else
#endif
#if defined(__AVX__)
      if constexpr (has_avx<Arch>) {
    if constexpr (std::is_same_v<T, float>) {
      __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
      m = _mm_max_ps(m, _mm_movehl_ps(m, m));
      m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
      return _mm_cvtss_f32(m);
    } else {
      __m128d m = _mm_max_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
      m = _mm_max_sd(m, _mm_unpackhi_pd(m, m));
      return _mm_cvtsd_f64(m);
    }
  } else
#endif
  {
    alignas(64) T lanes[batch<T, Arch>::size];
    x.store_aligned(lanes);
    T m = lanes[0];
    for (std::size_t i = 1; i < batch<T, Arch>::size; ++i) m = lanes[i] > m ? lanes[i] : m;
    return m;
  }
}

namespace detail {
/// AVX-512 mask with the low n bits set (0 <= n <= 16).
inline unsigned mask_low_bits(index_t n) noexcept {
  return n >= 32 ? ~0u : (1u << static_cast<unsigned>(n)) - 1u;
}
}  // namespace detail

/// Loads the first n elements at p (0 <= n <= width) into the low lanes; the other lanes hold
/// `fill`. Never reads p[n] or beyond (AVX-512 masked load, otherwise a stack buffer).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <class Arch, class T>
inline batch<T, Arch> load_partial(const T* p, index_t n, T fill = T(0)) noexcept {
#if defined(__AVX512F__)
  if constexpr (has_avx512<Arch> && std::is_same_v<T, float>) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill),
                                static_cast<__mmask16>(detail::mask_low_bits(n)), p);
  } else if constexpr (has_avx512<Arch> && std::is_same_v<T, double>) {
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill),
                                static_cast<__mmask8>(detail::mask_low_bits(n)), p);
  } else
#endif
  {
    alignas(64) T buf[batch<T, Arch>::size];
    std::fill(buf, buf + batch<T, Arch>::size, fill);
    if (n > 0) std::memcpy(buf, p, static_cast<std::size_t>(n) * sizeof(T));
    return batch<T, Arch>::load_aligned(buf);
  }
}

/// Stores the low n lanes of x to p[0..n) (0 <= n <= width); never writes p[n] or beyond.
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <class Arch, class T>
inline void store_partial(T* p, const batch<T, Arch>& x, index_t n) noexcept {
#if defined(__AVX512F__)
  if constexpr (has_avx512<Arch> && std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>(detail::mask_low_bits(n)), x);
  } else if constexpr (has_avx512<Arch> && std::is_same_v<T, double>) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>(detail::mask_low_bits(n)), x);
  } else
#endif
  {
    alignas(64) T buf[batch<T, Arch>::size];
    x.store_aligned(buf);
    if (n > 0) std::memcpy(p, buf, static_cast<std::size_t>(n) * sizeof(T));
  }
}

/// Loads width elements from p (no alignment required).
/// \tparam Arch an xsimd architecture tag
/// \tparam T element type
template <class Arch, class T>
inline batch<T, Arch> loadu(const T* p) noexcept {
  return batch<T, Arch>::load_unaligned(p);
}

/// Stores width elements to p (no alignment required).
/// \tparam Arch an xsimd architecture tag
/// \tparam T element type
template <class Arch, class T>
inline void storeu(T* p, const batch<T, Arch>& x) noexcept {
  x.store_unaligned(p);
}

}  // namespace attnkit::simd

ATTNKIT_SIMD_WARNINGS_POP
