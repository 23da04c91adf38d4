// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Sigmoid, sigmoid-bias (default and given b) and normalized sigmoid against the double
// reference: every mask term x awkward shapes, fp32 and fp64, P capture.
#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("sigmoid: every mask term x shapes", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "sigmoid";
  check_all_masks<float>(pol::Sigmoid{}, spec, 0, problems().size(), 51);
  check_all_masks<double>(pol::Sigmoid{}, spec, 1, 3, 52);
}

TEST_CASE("sigmoid-bias: b = -ln(Nk) by default, or given", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "sigmoid-bias";
  check_all_masks<float>(pol::SigmoidBias{}, spec, 0, problems().size(), 61);
  spec.bias_given = true;
  spec.bias = 1.25;
  check_all_masks<double>(pol::SigmoidBias(1.25), spec, 2, 4, 62);
}

TEST_CASE("normalized-sigmoid: every mask term x shapes", "[attention][sigmoid]") {
  ref::Spec spec;
  spec.activation = "normalized-sigmoid";
  check_all_masks<float>(pol::NormalizedSigmoid{}, spec, 0, problems().size(), 71);
  check_all_masks<double>(pol::NormalizedSigmoid{}, spec, 3, 5, 72);
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
