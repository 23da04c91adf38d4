// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// And<...> of something that is not a mask is a compile error naming And's Masks parameter.
#include "attnkit/policy/mask.hpp"

int main() {
#ifdef ATTNKIT_COMPILE_FAIL
  attnkit::policy::And<attnkit::policy::Causal, int> m;
#else
  attnkit::policy::And<attnkit::policy::Causal, attnkit::policy::SlidingWindow> m;
#endif
  return m.visible(0, 0, 1, 0) ? 0 : 1;
}
