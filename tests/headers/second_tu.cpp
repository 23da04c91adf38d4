// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Second of two TUs that include every public header.
#include "attnkit/attnkit.hpp"

int second_tu_size() {
  attnkit::Tensor<float, 2> t({3, 2});
  return static_cast<int>(t.size());
}
