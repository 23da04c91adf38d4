// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: the float kernels (one TU per dtype keeps each compile short).
#include "attend.hpp"
#include "attend_kernel.hpp"

namespace attnkit::cli {

void run_attend(AttendJob<float>& job) {
  if (job.kv == KVChoice::bf16) return run_attend_bf16(job);
  if (job.kv == KVChoice::f16) return run_attend_f16(job);
  attend_detail::run_attend_impl<float>(job);
}

}  // namespace attnkit::cli
