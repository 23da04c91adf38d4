// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: the float kernels over f16 K and V (--kv-dtype f16), in their own TU.
#include "attend.hpp"
#include "attend_kernel.hpp"

namespace attnkit::cli {

void run_attend_f16(AttendJob<float>& job) { attend_detail::run_attend_impl<f16>(job); }

}  // namespace attnkit::cli
