// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Normalized sigmoid (sigmoid weights divided by their row sum over the visible keys) against
// the double reference: every mask term x awkward shapes (compile-time policies and the runtime
// MaskSpec), fp32 and fp64, P capture.
#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("normalized-sigmoid: every mask term x shapes", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "normalized-sigmoid";
  check_masks<float>(pol::NormalizedSigmoid{}, spec, {.seed = 71});
  check_masks<double, Via::policy, Masks::core>(pol::NormalizedSigmoid{}, spec,
                                                {.first = 3, .last = 5, .seed = 72});
  check_masks<float, Via::mask_spec>(pol::NormalizedSigmoid{}, spec, {.seed = 73});
}

TEST_CASE("normalized-sigmoid with a bias b: sigmoid(s + b) / sum", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "normalized-sigmoid";
  spec.bias_given = true;
  spec.bias = -2.75;
  check_masks<float, Via::mask_spec>(pol::NormalizedSigmoid(-2.75), spec, {.seed = 74});
  spec.bias = 1.5;
  check_masks<double, Via::mask_spec>(pol::NormalizedSigmoid(1.5), spec,
                                      {.first = 1, .last = 4, .seed = 75});
}
