// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A malformed spec of the compile-time einsum is a compile error naming the spec, the error
// kind, its position and character.
#include "attnkit/attnkit.hpp"

int main() {
  attnkit::Tensor<float, 2> a({2, 3}), b({3, 4}), c({2, 4});
#ifdef ATTNKIT_COMPILE_FAIL
  attnkit::einsum<"ij,jk-ik">(c, a, b);
#else
  attnkit::einsum<"ij,jk->ik">(c, a, b);
#endif
  return c(0, 0) == 0.0f ? 0 : 1;
}
