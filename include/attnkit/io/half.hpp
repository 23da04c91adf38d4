// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// IEEE binary16 (float16) and bfloat16 bit patterns to and from float32, under io:: (the
// conversions live in core/half.hpp with the bf16 and f16 storage types).
#pragma once

#include "attnkit/core/half.hpp"

namespace attnkit::io {

using ::attnkit::bf16_to_f32;
using ::attnkit::f16_to_f32;
using ::attnkit::f32_to_bf16;
using ::attnkit::f32_to_f16;

}  // namespace attnkit::io
