// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// MultiHeadAttention under softmax and normalized sigmoid against the double reference: MHA,
// GQA, MQA, every gate kind, odd lengths; the KV cache (prefill then one token at a time) equals
// the full pass; errors.
#include "mha_reference.hpp"

using namespace block_test;
namespace pol = attnkit::policy;

namespace {
template <class Act>
using Gated = pol::AttentionPolicy<Act, pol::Causal, pol::NoScoreMod,
                                   attnkit::modules::SelectableSigmoidGate<float>>;
}

TEST_CASE("MultiHeadAttention: softmax, normalized sigmoid; MHA/GQA/MQA; gates",
          "[attention][mha]") {
  const auto heads = GENERATE(table<index_t, index_t>({{4, 4}, {4, 2}, {4, 1}, {6, 3}}));
  const int gate = GENERATE(0, 1, 2);
  const index_t n = GENERATE(1, 7, 33);
  check_mha<Gated<pol::Softmax>>("softmax", 2, n, 40, std::get<0>(heads), std::get<1>(heads), 16,
                                 gate, 2e-5);
  check_mha<Gated<pol::NormalizedSigmoid>>("normalized-sigmoid", 1, n, 40, std::get<0>(heads),
                                           std::get<1>(heads), 16, gate, 2e-5);
}

TEST_CASE("MultiHeadAttention: fixed gate policies and NoGate", "[attention][mha]") {
  check_mha<pol::AttentionPolicy<pol::Softmax, pol::Causal>>("softmax", 1, 9, 32, 4, 2, 8, 0, 2e-5);
  check_mha<pol::AttentionPolicy<pol::Softmax, pol::Causal, pol::NoScoreMod,
                                 pol::HeadwiseSigmoid<float>>>("softmax", 2, 9, 32, 4, 2, 8, 1,
                                                               2e-5);
  check_mha<pol::AttentionPolicy<pol::Softmax, pol::Causal, pol::NoScoreMod,
                                 pol::ElementwiseSigmoid<float>>>("softmax", 2, 9, 32, 4, 2, 8, 2,
                                                                  2e-5);
}

TEST_CASE("MultiHeadAttention: KV cache decoding equals the full pass", "[attention][mha][cache]") {
  using P = Gated<pol::Softmax>;
  const index_t hid = 32, hq = 4, hkv = 2, d = 8, n = 11;
  const MhaWeights w = random_mha(hid, hq, hkv, d, 1, 5);
  std::vector<attnkit::Tensor<float, 2>> keep;
  for (const Mat* m : {&w.wq, &w.wk, &w.wv, &w.wo, &w.wg}) keep.push_back(to_tensor<float>(*m));
  attnkit::modules::MultiHeadAttention<P, float> mha;
  mha.heads = hq;
  mha.kv_heads = hkv;
  mha.head_dim = d;
  mha.q_proj.weight = keep[0].cview();
  mha.k_proj.weight = keep[1].cview();
  mha.v_proj.weight = keep[2].cview();
  mha.o_proj.weight = keep[3].cview();
  mha.g_proj = keep[4].cview();
  mha.rope.emplace(d, 10000.0);
  const Mat xm = random_mat(n, hid, 3);
  attnkit::Tensor<float, 3> x({1, n, hid}), full({1, n, hid});
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < hid; ++c) x(0, i, c) = static_cast<float>(xm(i, c));
  std::vector<index_t> pos(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = i;
  mha.forward(x.cview(), pos, full.view());
  attnkit::modules::KVCache<float> cache;
  const index_t prefill = 5;
  attnkit::Tensor<float, 3> part({1, prefill, hid});
  mha.forward(x.cview().slice(0, prefill, 1), std::span<const index_t>(pos.data(), prefill),
              part.view(), cache);
  double err = 0;
  for (index_t i = 0; i < prefill; ++i)
    for (index_t c = 0; c < hid; ++c)
      err = std::max(err, double(std::abs(part(0, i, c) - full(0, i, c))));
  for (index_t t = prefill; t < n; ++t) {
    attnkit::Tensor<float, 3> one({1, 1, hid});
    mha.forward(x.cview().slice(t, t + 1, 1), std::span<const index_t>(pos.data() + t, 1),
                one.view(), cache);
    for (index_t c = 0; c < hid; ++c)
      err = std::max(err, double(std::abs(one(0, 0, c) - full(0, t, c))));
  }
  CHECK(cache.length() == n);
  CHECK(err <= 1e-5);

  // Weight capture during cached decoding: each step's row of P equals the full pass's row.
  attnkit::Tensor<float, 4> pfull({1, hq, n, n});
  attnkit::modules::AttentionCapture<float> cap_full;
  cap_full.probs = [&](const attnkit::Shape<4>&) { return pfull.view(); };
  mha.forward(x.cview(), pos, full.view(), &cap_full);
  attnkit::modules::KVCache<float> cache2;
  attnkit::Tensor<float, 4> pstep;
  index_t observed = 0;
  attnkit::modules::AttentionCapture<float> cap_step;
  cap_step.probs = [&](const attnkit::Shape<4>& s) {
    pstep = attnkit::Tensor<float, 4>(s);
    return pstep.view();
  };
  cap_step.observe = [&](attnkit::TensorView<const float, 4> q,
                         attnkit::TensorView<const float, 4> k, attnkit::TensorView<const float, 4>,
                         attnkit::TensorView<const float, 4> p) {
    CHECK(q.extent(2) == p.extent(2));
    CHECK(k.extent(2) == p.extent(3));
    ++observed;
  };
  double perr = 0;
  for (index_t t = 0; t < n; ++t) {
    attnkit::Tensor<float, 3> one({1, 1, hid});
    mha.forward(x.cview().slice(t, t + 1, 1), std::span<const index_t>(pos.data() + t, 1),
                one.view(), cache2, &cap_step);
    REQUIRE(pstep.extent(3) == t + 1);
    for (index_t h = 0; h < hq; ++h)
      for (index_t j = 0; j <= t; ++j)
        perr = std::max(perr, double(std::abs(pstep(0, h, 0, j) - pfull(0, h, t, j))));
  }
  CHECK(observed == n);
  CHECK(perr <= 1e-5);
}

TEST_CASE("MultiHeadAttention: shape and gate errors", "[attention][mha]") {
  attnkit::Tensor<float, 2> wq({32, 16}), wk({16, 16}), wo({16, 32}), g4({4, 16}), g5({5, 16});
  attnkit::modules::MultiHeadAttention<pol::AttentionPolicy<pol::Softmax, pol::Causal>, float> mha;
  mha.heads = 4;
  mha.kv_heads = 2;
  mha.head_dim = 8;
  mha.q_proj.weight = wq.cview();
  mha.k_proj.weight = wk.cview();
  mha.v_proj.weight = wk.cview();
  mha.o_proj.weight = wo.cview();
  CHECK_NOTHROW(mha.check());
  mha.v_proj.weight = wq.cview();
  CHECK_THROWS_WITH(mha.check(), Catch::Contains("v_proj has shape [32, 16]"));
  mha.v_proj.weight = wk.cview();
  mha.g_proj = g4.cview();
  CHECK_THROWS_WITH(mha.check(), Catch::Contains("NoGate"));
  mha.g_proj = g5.cview();
  CHECK_THROWS_WITH(mha.check(), Catch::Contains("g_proj has shape [5, 16]"));
  mha.g_proj = {};
  // Biases of the projections' output sizes; q/k norms of head_dim, both or neither.
  attnkit::Tensor<float, 1> b32({32}), b16({16}), n8({8}), n7({7});
  mha.q_proj.bias = b32.cview();
  mha.k_proj.bias = b16.cview();
  mha.o_proj.bias = b16.cview();
  CHECK_NOTHROW(mha.check());
  mha.k_proj.bias = b32.cview();
  CHECK_THROWS_WITH(mha.check(), Catch::Contains("k_proj bias has shape [32]"));
  mha.k_proj.bias = b16.cview();
  mha.q_norm = n8.cview();
  CHECK_THROWS_WITH(mha.check(), Catch::Contains("q_norm and k_norm"));
  mha.k_norm = n7.cview();
  CHECK_THROWS_WITH(mha.check(), Catch::Contains("k_norm has shape [7]"));
  mha.k_norm = n8.cview();
  CHECK_NOTHROW(mha.check());
  mha.kv_heads = 3;
  CHECK_THROWS_AS(mha.check(), attnkit::shape_error);
}
