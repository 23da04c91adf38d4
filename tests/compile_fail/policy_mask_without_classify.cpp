// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A mask type without classify() cannot compose into an AttentionPolicy: a compile error naming
// the Mask parameter and attnkit::policy::mask_policy.
#include "attnkit/policy/attention_policy.hpp"

struct EvenKeys {
  bool visible(attnkit::index_t, attnkit::index_t, attnkit::index_t, attnkit::index_t j) const {
    return j % 2 == 0;
  }
#ifndef ATTNKIT_COMPILE_FAIL
  attnkit::policy::TileClass classify(attnkit::index_t, attnkit::index_t, attnkit::index_t,
                                      attnkit::index_t, attnkit::index_t, attnkit::index_t) const {
    return attnkit::policy::TileClass::partial;
  }
#endif
  EvenKeys bind(const attnkit::policy::Geometry&) const { return *this; }
};

int main() {
  attnkit::policy::AttentionPolicy<attnkit::policy::Softmax, EvenKeys> p;
  return p.mask.visible(0, 0, 0, 2) ? 0 : 1;
}
