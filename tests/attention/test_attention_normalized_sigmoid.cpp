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
  check_all_masks<float>(pol::NormalizedSigmoid{}, spec, 0, problems().size(), 71);
  check_all_masks<double, Masks::core>(pol::NormalizedSigmoid{}, spec, 3, 5, 72);
  check_all_masks_runtime<float>(pol::NormalizedSigmoid{}, spec, 0, problems().size(), 73);
}

TEST_CASE("normalized-sigmoid with a bias b: sigmoid(s + b) / sum", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "normalized-sigmoid";
  spec.bias_given = true;
  spec.bias = -2.75;
  check_all_masks_runtime<float>(pol::NormalizedSigmoid(-2.75), spec, 0, problems().size(), 74);
  spec.bias = 1.5;
  check_all_masks_runtime<double>(pol::NormalizedSigmoid(1.5), spec, 1, 4, 75);
}
