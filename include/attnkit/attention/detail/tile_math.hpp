// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The fast SIMD math of simd/fast_math.hpp under the kernel's own names.
#pragma once

#include "attnkit/simd/fast_math.hpp"

namespace attnkit::attention_detail {

using simd::exp2_batch;
using simd::is_avx512;
using simd::reciprocal_batch;
using simd::sigmoid_batch;
using simd::tanh_batch;

}  // namespace attnkit::attention_detail
