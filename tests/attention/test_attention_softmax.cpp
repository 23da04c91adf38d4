// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Softmax and softcap (online max and sum) against the double reference: every mask term x
// awkward shapes, fp32 and fp64, P capture, extreme scores.
#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("softmax: every mask term x shapes (fp32)", "[attention][softmax]") {
  ref::Spec spec;
  spec.activation = "softmax";
  check_masks<float>(pol::Softmax{}, spec, {.seed = 11});
}

TEST_CASE("softmax: every mask term x shapes (fp64)", "[attention][softmax]") {
  ref::Spec spec;
  spec.activation = "softmax";
  check_masks<double>(pol::Softmax{}, spec, {.first = 1, .last = 4, .seed = 21});
}

TEST_CASE("softmax: every mask term through the runtime MaskSpec", "[attention][softmax]") {
  ref::Spec spec;
  spec.activation = "softmax";
  check_masks<float, Via::mask_spec>(pol::Softmax{}, spec, {.seed = 23});
}

TEST_CASE("softcap: core mask types, and every term through the runtime MaskSpec",
          "[attention][softcap]") {
  ref::Spec spec;
  spec.activation = "softcap";
  spec.cap = 0.7;  // small, so the cap bends the scores
  check_masks<float, Via::policy, Masks::core>(pol::Softcap(0.7), spec, {.seed = 31});
  check_masks<float, Via::mask_spec>(pol::Softcap(0.7), spec, {.seed = 33});
  check_masks<double, Via::mask_spec>(pol::Softcap(0.7), spec, {.first = 2, .last = 4, .seed = 41});
}

TEST_CASE("softmax: extreme scores stay finite and correct", "[attention][softmax]") {
  // |s| up to ~1e4: q, k in [-12, 12] with D = 64 and scale 1/sqrt(64).
  const Problem p{1, 4, 2, 70, 90, 64, 16};
  ref::Spec spec;
  spec.activation = "softmax";
  spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
  Tolerance<float> loose{2e-2, 1e-3};  // s carries fp32 rounding of ~1e4 · 1e-7
  check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, 5, true, {}, 12.0,
               loose);
  check<double>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, 6, true, {}, 12.0);
  spec.activation = "softcap";
  spec.cap = 30.0;
  check<float>(pol::AttentionPolicy(pol::Softcap(30.0), pol::Causal{}), spec, p, 7, true, {}, 12.0,
               loose);
  // No inf or NaN anywhere in the output.
  Data<float> data(p, 8, 12.0);
  Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv});
  attention(pol::AttentionPolicy(pol::Softmax{}), data.q.cview(), data.k.cview(), data.v.cview(),
            out.view());
  for (float x : out) REQUIRE(std::isfinite(x));
}

TEST_CASE("softmax: rows with no visible key are zero rows, never NaN", "[attention][softmax]") {
  // Nq > Nk under causal alignment: the first Nq - Nk rows see nothing.
  const Problem p{1, 2, 1, 40, 9, 16, 8};
  Data<float> data(p, 3);
  Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv}, 5.0f);
  Tensor<float, 4> probs({p.b, p.hq, p.nq, p.nk}, 5.0f);
  attention(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), data.q.cview(), data.k.cview(),
            data.v.cview(), out.view(), probs.view());
  for (index_t h = 0; h < p.hq; ++h)
    for (index_t i = 0; i < p.nq - p.nk; ++i) {
      for (index_t c = 0; c < p.dv; ++c) REQUIRE(out(0, h, i, c) == 0.0f);
      for (index_t j = 0; j < p.nk; ++j) REQUIRE(probs(0, h, i, j) == 0.0f);
    }
  ref::Spec spec;
  spec.activation = "softmax";
  spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
  check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, 3, true);
}
