// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: the float kernels over bf16 K and V (--kv-dtype bf16), in their own TU.
#include "attend.hpp"
#include "attend_kernel.hpp"

namespace attnkit::cli {

void run_attend_bf16(AttendJob<float>& job) { attend_detail::run_attend_impl<bf16>(job); }

}  // namespace attnkit::cli
