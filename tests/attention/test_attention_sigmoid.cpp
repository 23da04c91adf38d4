// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Sigmoid and sigmoid-bias (default and given b) against the double reference: every mask term
// (compile-time policies for sigmoid, the runtime MaskSpec for both) x awkward shapes, fp32 and
// fp64, P capture. Normalized sigmoid: test_attention_normalized_sigmoid.cpp.
#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("sigmoid: every mask term x shapes", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "sigmoid";
  check_masks<float>(pol::Sigmoid{}, spec, {.seed = 51});
  check_masks<double, Via::policy, Masks::core>(pol::Sigmoid{}, spec,
                                                {.first = 1, .last = 3, .seed = 52});
  check_masks<float, Via::mask_spec>(pol::Sigmoid{}, spec, {.seed = 53});
}

TEST_CASE("sigmoid-bias: b = -ln(Nk) by default, or given", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "sigmoid-bias";
  check_masks<float, Via::policy, Masks::core>(pol::SigmoidBias{}, spec, {.seed = 61});
  check_masks<float, Via::mask_spec>(pol::SigmoidBias{}, spec, {.seed = 63});
  spec.bias_given = true;
  spec.bias = 1.25;
  check_masks<double, Via::mask_spec>(pol::SigmoidBias(1.25), spec,
                                      {.first = 2, .last = 4, .seed = 62});
}

TEST_CASE("sigmoid family: extreme scores give no inf or NaN", "[attention][sigmoid]") {
  const Problem p{1, 2, 2, 33, 70, 64, 16};
  Tolerance<float> loose{2e-2, 1e-3};
  ref::Spec spec;
  spec.activation = "sigmoid";
  spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
  check<float>(pol::AttentionPolicy(pol::Sigmoid{}, pol::Causal{}), spec, p, 9, true, {}, 12.0,
               loose);
  spec.activation = "sigmoid-bias";
  check<double>(pol::AttentionPolicy(pol::SigmoidBias{}, pol::Causal{}), spec, p, 10, true, {},
                12.0);
}
