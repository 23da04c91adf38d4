// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend --grad-out: the float forward and backward kernels (their own TU: the backward
// instantiations compile beside the forward-only ones).
#include "attend.hpp"
#include "attend_grad_kernel.hpp"

namespace attnkit::cli {

void run_attend_grad(AttendJob<float>& job) { attend_detail::run_attend_grad_impl<float>(job); }

}  // namespace attnkit::cli
