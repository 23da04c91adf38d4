// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// An operand whose type carries a rank that does not fit its subscripts is a compile error.
#include "attnkit/attnkit.hpp"

int main() {
  attnkit::Tensor<float, 2> a({2, 3}), c({2, 4});
  attnkit::Tensor<float, 3> b3({1, 3, 4});
  attnkit::Tensor<float, 2> b({3, 4});
#ifdef ATTNKIT_COMPILE_FAIL
  attnkit::einsum<"ij,jk->ik">(c, a, b3);
#else
  attnkit::einsum<"ij,...jk->ik">(c, a, b3);
  attnkit::einsum<"ij,jk->ik">(c, a, b);
#endif
  return c(0, 0) == 0.0f ? 0 : 1;
}
