// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The split-KV decode path with P capture (what the retention cache reads each decode step):
// P and the output against the double reference for the three normalization kinds (softmax,
// normalized sigmoid, none), several chunks, GQA, a keep mask with Empty tiles and a decode
// query with several rows; capture is deterministic across thread counts.
#include <cstring>

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("decode path: P capture matches the reference", "[attention][decode][capture]") {
  AttentionOptions always;
  always.decode = DecodeMode::always;
  for (const Problem& p : {Problem{1, 8, 2, 1, 4500, 64, 64}, Problem{1, 4, 4, 1, 2100, 16, 16},
                           Problem{2, 6, 2, 3, 777, 8, 24}, Problem{1, 1, 1, 1, 5, 3, 3}}) {
    ref::Spec spec;
    spec.activation = "softmax";
    spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
    check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, 1, true, always);
    spec.activation = "normalized-sigmoid";
    spec.terms = {ref::MaskTerm{ref::MaskTerm::sliding, 600}};
    check<float>(pol::AttentionPolicy(pol::NormalizedSigmoid{}, pol::SlidingWindow(600)), spec, p,
                 2, true, always);
    // Keep flags with long dropped runs: whole tiles and whole 2048-key chunks are Empty.
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(p.b * p.nk), 0);
    for (index_t j = 0; j < p.b * p.nk; ++j) {
      const index_t jj = j % p.nk;
      keep[static_cast<std::size_t>(j)] =
          (jj < 3 || (jj / 300) % 2 == 1) && (jj < 2048 || jj >= 4096);
    }
    ref::MaskTerm t{ref::MaskTerm::keep};
    t.ints.assign(keep.begin(), keep.end());
    spec.terms = {t};
    const pol::KeepMask km(TensorView<const std::uint8_t, 2>(keep.data(), {p.b, p.nk}));
    spec.activation = "softmax";
    check<double>(pol::AttentionPolicy(pol::Softmax{}, km), spec, p, 3, true, always);
    spec.activation = "sigmoid";
    check<double>(pol::AttentionPolicy(pol::Sigmoid{}, km), spec, p, 4, true, always);
  }
}

TEST_CASE("decode path: captured P is identical for 1 and 2 threads",
          "[attention][decode][capture]") {
  const Problem p{1, 8, 2, 1, 3000, 64, 64};
  Data<float> data(p, 5);
  AttentionOptions always;
  always.decode = DecodeMode::always;
  Tensor<float, 4> o1({1, 8, 1, 64}), o2({1, 8, 1, 64}), p1({1, 8, 1, 3000}), p2({1, 8, 1, 3000});
  const auto policy = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  const int saved = max_threads();
  set_threads(1);
  attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), o1.view(), p1.view(), always);
  set_threads(2);
  attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), o2.view(), p2.view(), always);
  set_threads(saved);
  CHECK(std::memcmp(p1.data(), p2.data(), sizeof(float) * 8 * 3000) == 0);
  CHECK(std::memcmp(o1.data(), o2.data(), sizeof(float) * 8 * 64) == 0);
  // And the output is the one without capture.
  Tensor<float, 4> o3({1, 8, 1, 64});
  attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), o3.view(), always);
  CHECK(std::memcmp(o1.data(), o3.data(), sizeof(float) * 8 * 64) == 0);
}
