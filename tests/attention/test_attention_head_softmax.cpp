// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Head softmax (normalized across the Hq query heads per (i, j), over the heads for which the
// pair is visible) against the double reference: every mask term x shapes, fp32 and fp64.
#include <algorithm>

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("head-softmax: every mask term x shapes", "[attention][head-softmax]") {
  ref::Spec spec;
  spec.activation = "head-softmax";
  check_masks<float>(pol::HeadSoftmax{}, spec, {.seed = 101});
  check_masks<double, Via::policy, Masks::core>(pol::HeadSoftmax{}, spec,
                                                {.first = 2, .last = 4, .seed = 102});
  check_masks<float, Via::mask_spec>(pol::HeadSoftmax{}, spec, {.seed = 103});
}

TEST_CASE("head-softmax: extreme scores and per-head masks", "[attention][head-softmax]") {
  const Problem p{1, 8, 2, 40, 45, 64, 16};
  ref::Spec spec;
  spec.activation = "head-softmax";
  check<double>(pol::AttentionPolicy(pol::HeadSoftmax{}), spec, p, 12, true, {}, 12.0);
  Tolerance<float> loose{2e-2, 1e-3};
  check<float>(pol::AttentionPolicy(pol::HeadSoftmax{}), spec, p, 13, true, {}, 12.0, loose);
  // A per-head mask: head h sees keys j with (j + h) % 2 == 0, so each pair is visible to
  // half of the heads; no visible head at all gives P = 0 and no NaN.
  auto pred = [](index_t, index_t h, index_t i, index_t j) { return (j + h) % 2 == 0 && j <= i; };
  ref::MaskTerm t{ref::MaskTerm::custom};
  t.predicate = pred;
  spec.terms = {t};
  check<float>(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::Custom(pred)), spec, p, 14, true);
}

TEST_CASE("head-softmax decode: keys split in chunks, summed in order",
          "[attention][head-softmax]") {
  // Few query rows over more keys than one chunk (512): the split path, with and without P
  // capture, under the core masks (Empty, Full and Partial tiles, rows without keys); the same
  // bits for one and two threads.
  ref::Spec spec;
  spec.activation = "head-softmax";
  AttentionOptions always;
  always.decode = DecodeMode::always;
  for (const Problem& p : {Problem{1, 4, 2, 3, 1100, 16, 8}, Problem{2, 3, 3, 1, 2049, 8, 5}}) {
    MaskStore st;
    int n = 0;
    for_each_mask<Masks::core>(
        p, st, 104, [&](auto mask, const ref::MaskTerm& term, const std::string& name) {
          if constexpr (std::is_constructible_v<pol::MaskSpecTerm, decltype(mask)>) {
            INFO("mask " << name);
            pol::MaskSpec ms;
            ms.add(mask, name);
            spec.terms = {term};
            const auto policy = pol::AttentionPolicy(pol::HeadSoftmax{}, ms);
            check<float>(policy, spec, p, 105 + unsigned(n), n % 2 == 0, always);
            ++n;
            Data<float> data(p, 106);
            Tensor<float, 4> one({p.b, p.hq, p.nq, p.dv}), two({p.b, p.hq, p.nq, p.dv});
            const int saved = max_threads();
            set_threads(1);
            attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), one.view());
            set_threads(2);
            attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), two.view());
            set_threads(saved);
            CHECK(std::equal(one.begin(), one.end(), two.begin()));
          }
        });
  }
}
