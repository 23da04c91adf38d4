// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The SIMD architectures attnkit's kernels are instantiated for, and run-time dispatch among
// them. The only layer that names xsimd is simd/.
//
// Every kernel is `template <class Arch, ...>` over xsimd batches. `dispatch(f)` calls
// `f(Arch{})` once per call with the best architecture of `kernel_archs` that is both compiled
// into this translation unit (enabled by the compiler flags: -march=native or x86-64-v4 enables
// all three) and supported by the CPU at run time. A TU built for baseline x86-64 still runs,
// on the generic SSE2 kernels.
#pragma once

#include <xsimd/xsimd.hpp>

#include <utility>

/// Put around the definitions of kernels that use xsimd on AVX-512 (ATTNKIT_SIMD_WARNINGS_PUSH
/// before, ATTNKIT_SIMD_WARNINGS_POP after). GCC 12 reports -Wmaybe-uninitialized inside its own
/// AVX-512 intrinsics (`__m512 __Y = __Y;`, its idiom for an undefined vector, used by
/// _mm512_max_ps, the immediate shifts, set1, ...) wherever they are inlined: a false positive.
/// GCC honours the pragma along the inline stack, so silencing it where our kernels are defined
/// keeps -Werror builds of any caller clean. Other compilers: no effect.
#if defined(__GNUC__) && !defined(__clang__)
#define ATTNKIT_SIMD_WARNINGS_PUSH \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define ATTNKIT_SIMD_WARNINGS_POP _Pragma("GCC diagnostic pop")
#else
#define ATTNKIT_SIMD_WARNINGS_PUSH
#define ATTNKIT_SIMD_WARNINGS_POP
#endif

namespace attnkit::simd {

using avx512 = xsimd::avx512bw;
using avx2 = xsimd::fma3<xsimd::avx2>;
using generic = xsimd::sse2;

/// The architectures kernels are instantiated for, best first.
using kernel_archs = xsimd::arch_list<avx512, avx2, generic>;

/// Whether Arch is compiled into this TU (the compiler flags enable it).
template <class Arch>
inline constexpr bool arch_compiled = Arch::supported();

/// Whether Arch is compiled in and the CPU supports it.
template <class Arch>
inline bool arch_available() noexcept {
  if constexpr (!arch_compiled<Arch>) {
    return false;
  } else {
    return xsimd::available_architectures().best >= Arch::version();
  }
}

/// Calls f(Arch{}) with the best available architecture of kernel_archs; returns its result.
template <class F>
decltype(auto) dispatch(F&& f) {
  if constexpr (arch_compiled<avx512>) {
    if (arch_available<avx512>()) return std::forward<F>(f)(avx512{});
  }
  if constexpr (arch_compiled<avx2>) {
    if (arch_available<avx2>()) return std::forward<F>(f)(avx2{});
  }
  return std::forward<F>(f)(generic{});
}

/// Name of the architecture dispatch() picks on this CPU (e.g. "avx512bw").
inline const char* dispatch_arch_name() {
  return dispatch([](auto arch) { return decltype(arch)::name(); });
}

}  // namespace attnkit::simd
