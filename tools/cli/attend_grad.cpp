// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend --grad-out: the forward and backward kernels, in double for every --dtype (their
// own TU: the backward instantiations compile beside the forward-only ones).
#include "attend.hpp"
#include "attend_grad_kernel.hpp"

namespace attnkit::cli {

void run_attend_grad(AttendJob<double>& job) { attend_detail::run_attend_grad_impl<double>(job); }

}  // namespace attnkit::cli
