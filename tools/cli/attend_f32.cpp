// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: the float kernels (one TU per dtype keeps each compile short).
#include "attend.hpp"
#include "attend_kernel.hpp"

namespace attnkit::cli {

void run_attend(AttendJob<float>& job) { attend_detail::run_attend_impl(job); }

}  // namespace attnkit::cli
