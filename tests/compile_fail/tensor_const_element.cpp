// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A Tensor of const elements is a compile error naming the parameter.
#include "attnkit/attnkit.hpp"

int main() {
#ifdef ATTNKIT_COMPILE_FAIL
  attnkit::Tensor<const float, 2> t({2, 2});
#else
  attnkit::Tensor<float, 2> t({2, 2});
#endif
  return static_cast<int>(t.size()) - 4;
}
