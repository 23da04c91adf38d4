// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Linear and ReLU activations (no normalization, no running state) against the double
// reference: every mask term x awkward shapes, fp32 and fp64. Masking must be structural: an
// invisible pair contributes exactly zero even though P = s is unbounded.
#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("linear: core mask types, and every term through the runtime MaskSpec",
          "[attention][linear]") {
  ref::Spec spec;
  spec.activation = "linear";
  check_masks<float, Via::policy, Masks::core>(pol::Linear{}, spec, {.seed = 81});
  check_masks<float, Via::mask_spec>(pol::Linear{}, spec, {.seed = 83});
  check_masks<double, Via::mask_spec>(pol::Linear{}, spec, {.first = 1, .last = 4, .seed = 82});
}

TEST_CASE("relu: core mask types, and every term through the runtime MaskSpec",
          "[attention][relu]") {
  ref::Spec spec;
  spec.activation = "relu";
  check_masks<float, Via::policy, Masks::core>(pol::ReLU{}, spec, {.seed = 91});
  check_masks<float, Via::mask_spec>(pol::ReLU{}, spec, {.seed = 93});
  check_masks<double, Via::mask_spec>(pol::ReLU{}, spec, {.first = 4, .last = 6, .seed = 92});
}

TEST_CASE("linear: masked pairs leak nothing even with huge scores", "[attention][linear]") {
  const Problem p{1, 1, 1, 20, 20, 8, 4};
  Data<double> data(p, 4, 100.0);
  Tensor<double, 4> out({p.b, p.hq, p.nq, p.dv});
  attention(pol::AttentionPolicy(pol::Linear{}, pol::Causal{}), data.q.cview(), data.k.cview(),
            data.v.cview(), out.view());
  // Row 0 sees key 0 only.
  const double s = [&] {
    double a = 0;
    for (index_t c = 0; c < p.d; ++c) a += data.q(0, 0, 0, c) * data.k(0, 0, 0, c);
    return a / std::sqrt(double(p.d));
  }();
  for (index_t c = 0; c < p.dv; ++c)
    REQUIRE(out(0, 0, 0, c) == Approx(s * data.v(0, 0, 0, c)).epsilon(1e-12));
}
