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

#include "attnkit/core/warnings.hpp"

// xsimd's out-of-line operators (batch::operator>>=, ...) inline GCC's AVX-512 intrinsics: its
// definitions are read with the false positive silenced (core/warnings.hpp). A translation unit
// that includes xsimd before attnkit reads them without, and may need the same pragma.
ATTNKIT_SIMD_WARNINGS_PUSH
#include <xsimd/xsimd.hpp>
ATTNKIT_SIMD_WARNINGS_POP

#include <array>
#include <atomic>
#include <string>
#include <utility>

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

/// The architectures by level, for set_max_arch(): generic (SSE2) < avx2 (AVX2+FMA) < avx512.
enum class ArchLevel : int { generic = 0, avx2 = 1, avx512 = 2 };

namespace detail {
inline std::atomic<int>& max_arch_level() noexcept {
  static std::atomic<int> level{static_cast<int>(ArchLevel::avx512)};
  return level;
}
}  // namespace detail

/// Caps the architecture dispatch() picks from now on (process-wide), e.g. to compare kernels
/// or test the AVX2 and SSE2 paths on an AVX-512 machine. Returns the previous cap.
inline ArchLevel set_max_arch(ArchLevel level) noexcept {
  return static_cast<ArchLevel>(
      detail::max_arch_level().exchange(static_cast<int>(level), std::memory_order_relaxed));
}

/// The current cap of set_max_arch().
inline ArchLevel max_arch() noexcept {
  return static_cast<ArchLevel>(detail::max_arch_level().load(std::memory_order_relaxed));
}

/// Calls f(Arch{}) with the best architecture of kernel_archs that is compiled in, supported by
/// the CPU and not above max_arch(); returns its result.
///
/// With ATTNKIT_DISPATCH_COMPILED_BEST defined, f is instantiated for the best compiled-in
/// architecture only and called without a run-time check or cap: one instantiation per kernel
/// instead of up to three (faster compiles, smaller binaries). Such a binary needs a CPU with
/// the features its compiler flags enable, as any -march=native binary does.
template <class F>
decltype(auto) dispatch(F&& f) {
#if defined(ATTNKIT_DISPATCH_COMPILED_BEST)
  if constexpr (arch_compiled<avx512>) {
    return std::forward<F>(f)(avx512{});
  } else if constexpr (arch_compiled<avx2>) {
    return std::forward<F>(f)(avx2{});
  } else {
    return std::forward<F>(f)(generic{});
  }
#else
  const ArchLevel cap = max_arch();
  if constexpr (arch_compiled<avx512>) {
    if (cap >= ArchLevel::avx512 && arch_available<avx512>()) return std::forward<F>(f)(avx512{});
  }
  if constexpr (arch_compiled<avx2>) {
    if (cap >= ArchLevel::avx2 && arch_available<avx2>()) return std::forward<F>(f)(avx2{});
  }
  return std::forward<F>(f)(generic{});
#endif
}

/// Name of the architecture dispatch() picks on this CPU (e.g. "avx512bw").
inline const char* dispatch_arch_name() {
  return dispatch([](auto arch) { return decltype(arch)::name(); });
}

/// One architecture attnkit has kernels for: whether this translation unit's compiler flags
/// compile it in, and whether this CPU runs it.
struct ArchStatus {
  const char* name;  ///< xsimd's name: "avx512bw", "fma3<avx2>", "sse2"
  bool compiled;     ///< the compiler flags enable it (e.g. -march=native, -mavx512bw)
  bool cpu;          ///< the CPU supports it
};

/// The kernel architectures, best first, with what is compiled in and what the CPU has.
inline std::array<ArchStatus, 3> arch_status() noexcept {
  const unsigned best = xsimd::available_architectures().best;
  return {ArchStatus{avx512::name(), arch_compiled<avx512>, best >= avx512::version()},
          ArchStatus{avx2::name(), arch_compiled<avx2>, best >= avx2::version()},
          ArchStatus{generic::name(), arch_compiled<generic>, best >= generic::version()}};
}

/// Name of the best kernel architecture the CPU supports, compiled in or not.
inline const char* cpu_best_arch_name() noexcept {
  for (const ArchStatus& a : arch_status())
    if (a.cpu) return a.name;
  return generic::name();
}

/// Empty when dispatch() runs the best kernels this CPU supports; otherwise one line saying
/// which faster set the binary leaves unused and how to compile it in. (A set_max_arch() cap
/// below the best is a choice, not reported.)
inline std::string arch_hint() {
  const std::string runs = dispatch_arch_name();
  const std::string best = cpu_best_arch_name();
  if (runs == best) return {};
  for (const ArchStatus& a : arch_status())
    if (a.name == best && a.compiled) return {};  // compiled in, capped by set_max_arch()
  return "attnkit: the kernels run on " + runs + " but this CPU has " + best +
         ": compile with -march=native (CMake: link attnkit::native instead of attnkit::attnkit)";
}

}  // namespace attnkit::simd
