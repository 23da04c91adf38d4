// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A consumer program: builds a tensor with attnkit and checks it.
#include <cstdio>

#include ATTNKIT_CONSUMER_HEADER

int main() {
  attnkit::Tensor<float, 2> t({2, 3}, 1.0f);
  float sum = 0.0f;
  for (float x : t) sum += x;
  std::printf("attnkit %s: sum %g\n", attnkit::version_string, static_cast<double>(sum));
  return sum == 6.0f ? 0 : 1;
}
