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
  check_all_masks<float>(pol::Sigmoid{}, spec, 0, problems().size(), 51);
  check_all_masks<double, Masks::core>(pol::Sigmoid{}, spec, 1, 3, 52);
  check_all_masks_runtime<float>(pol::Sigmoid{}, spec, 0, problems().size(), 53);
}

TEST_CASE("sigmoid-bias: b = -ln(Nk) by default, or given", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "sigmoid-bias";
  check_all_masks<float, Masks::core>(pol::SigmoidBias{}, spec, 0, problems().size(), 61);
  check_all_masks_runtime<float>(pol::SigmoidBias{}, spec, 0, problems().size(), 63);
  spec.bias_given = true;
  spec.bias = 1.25;
  check_all_masks_runtime<double>(pol::SigmoidBias(1.25), spec, 2, 4, 62);
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
