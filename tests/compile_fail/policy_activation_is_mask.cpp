// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A mask passed where the activation goes is a compile error naming the Activation parameter
// and attnkit::policy::score_activation.
#include "attnkit/policy/attention_policy.hpp"

int main() {
#ifdef ATTNKIT_COMPILE_FAIL
  attnkit::policy::AttentionPolicy<attnkit::policy::Causal, attnkit::policy::Causal> p;
#else
  attnkit::policy::AttentionPolicy<attnkit::policy::Sigmoid, attnkit::policy::Causal> p;
#endif
  return p.mask.visible(0, 0, 1, 0) ? 0 : 1;
}
