// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: the double kernels (one TU per dtype keeps each compile short).
#include "attend.hpp"
#include "attend_kernel.hpp"

namespace attnkit::cli {

void run_attend(AttendJob<double>& job) { attend_detail::run_attend_impl<double>(job); }

}  // namespace attnkit::cli
