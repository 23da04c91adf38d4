// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// First of two TUs that include every public header: linking them catches ODR slips.
#include "attnkit/attnkit.hpp"

int second_tu_size();

int main() {
  attnkit::Tensor<float, 2> t({2, 3});
  return (t.size() == 6 && second_tu_size() == 6) ? 0 : 1;
}
