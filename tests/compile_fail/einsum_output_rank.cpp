// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// An output whose rank does not fit the output subscripts is a compile error.
#include "attnkit/attnkit.hpp"

int main() {
  attnkit::Tensor<double, 2> a({2, 3}), b({3, 4});
#ifdef ATTNKIT_COMPILE_FAIL
  attnkit::Tensor<double, 1> c({8});
#else
  attnkit::Tensor<double, 2> c({2, 4});
#endif
  attnkit::einsum<"ij,jk->ik">(c, a, b);
  return c.data()[0] == 0.0 ? 0 : 1;
}
