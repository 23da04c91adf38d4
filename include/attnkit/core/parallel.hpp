// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// OpenMP helpers; everything degrades to serial code when OpenMP is off.
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace attnkit {

/// Threads a parallel region started now would use (1 without OpenMP).
inline int max_threads() noexcept {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sets the thread count of later parallel regions (no-op without OpenMP). n < 1 is ignored.
inline void set_threads(int n) noexcept {
#if defined(_OPENMP)
  if (n >= 1) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

/// Whether the caller runs inside an active parallel region; kernels then stay serial.
inline bool in_parallel() noexcept {
#if defined(_OPENMP)
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

/// Threads a kernel about to start should use: 1 inside a parallel region, else max_threads().
inline int worker_threads() noexcept { return in_parallel() ? 1 : max_threads(); }

/// Calls fn(i) for i in [0, n), over OpenMP threads when available and not already inside a
/// parallel region. The schedule is static, so which thread runs i never changes results.
template <class Fn>
void parallel_for(long n, Fn&& fn) {
#if defined(_OPENMP)
  if (n > 1 && !in_parallel() && max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; ++i) fn(i);
    return;
  }
#endif
  for (long i = 0; i < n; ++i) fn(i);
}

/// Like parallel_for with a dynamic schedule, for work items of uneven cost (e.g. causal tiles).
/// Only use it where each item writes its own output, so results do not depend on the schedule.
template <class Fn>
void parallel_for_dynamic(long n, Fn&& fn) {
#if defined(_OPENMP)
  if (n > 1 && !in_parallel() && max_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (long i = 0; i < n; ++i) fn(i);
    return;
  }
#endif
  for (long i = 0; i < n; ++i) fn(i);
}

}  // namespace attnkit
