// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// ATTNKIT_SIMD_WARNINGS_PUSH / ATTNKIT_SIMD_WARNINGS_POP: silence GCC's false positive on its own
// AVX-512 intrinsics, and only there.
//
// GCC 12's avx512fintrin.h writes an undefined vector as `__m512 __Y = __Y;` (used by
// _mm512_max_ps, _mm512_min_ps, _mm512_scalef_ps, the immediate shifts, unpack, extract,
// broadcast, ...). Wherever such an intrinsic is inlined, GCC may report `'__Y' is used
// uninitialized`, as -Wmaybe-uninitialized or (at -Og, and under the sanitizers) as
// -Wuninitialized, at the intrinsic's line. GCC 12 checks diagnostic pragmas along the whole
// inline stack, so the pragma must be in force at one of the frames: attnkit puts it around the
// definitions of its SIMD kernels (simd/, kernel/, block/), around its include of xsimd (whose
// out-of-line operators inline the intrinsics) and around Eigen in core/eigen_bridge.hpp. Code
// between PUSH and POP that is not a SIMD kernel keeps both warnings off, so the regions are kept
// to kernel definitions. Other compilers: no effect.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#define ATTNKIT_SIMD_WARNINGS_PUSH                                                           \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define ATTNKIT_SIMD_WARNINGS_POP _Pragma("GCC diagnostic pop")
#else
#define ATTNKIT_SIMD_WARNINGS_PUSH
#define ATTNKIT_SIMD_WARNINGS_POP
#endif
