// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The SIMD architecture attnkit's kernels run on. The only layer that names xsimd is simd/.
#pragma once

#include <xsimd/xsimd.hpp>

namespace attnkit::simd {

/// Name of the xsimd architecture the kernels dispatch to on this CPU (e.g. "avx512bw").
inline const char* dispatch_arch_name() { return xsimd::default_arch::name(); }

}  // namespace attnkit::simd
