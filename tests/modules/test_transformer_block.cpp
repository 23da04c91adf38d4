// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// TransformerBlock with pre-norm and post-norm placement (RMSNorm + SwiGLU, LayerNorm + GELU MLP)
// against the double references of the pieces.
#include "attnkit/block/feed_forward.hpp"
#include "attnkit/modules/transformer_block.hpp"

#include "mha_reference.hpp"

using namespace block_test;
namespace pol = attnkit::policy;
namespace blk = attnkit::block;

namespace {

template <class Norm, class Placement, class FFN>
void check_block(FFN ffn, const Mat& f1, const Mat& f2, bool swiglu_ffn, const Mat& f3) {
  using P = pol::AttentionPolicy<pol::Softmax, pol::Causal>;
  const index_t hid = 24, hq = 4, hkv = 2, d = 6, n = 9;
  const MhaWeights w = random_mha(hid, hq, hkv, d, 0, 11);
  std::vector<attnkit::Tensor<float, 2>> keep;
  for (const Mat* m : {&w.wq, &w.wk, &w.wv, &w.wo}) keep.push_back(to_tensor<float>(*m));
  const Mat n1 = rounded<float>(random_mat(1, hid, 1, 0.2, 1.0)),
            b1 = rounded<float>(random_mat(1, hid, 2, 0.2));
  const Mat n2 = rounded<float>(random_mat(1, hid, 3, 0.2, 1.0)),
            b2 = rounded<float>(random_mat(1, hid, 4, 0.2));
  const auto n1t = to_tensor1<float>(n1.v), b1t = to_tensor1<float>(b1.v),
             n2t = to_tensor1<float>(n2.v), b2t = to_tensor1<float>(b2.v);
  constexpr bool layer = std::is_same_v<Norm, blk::LayerNorm>;
  attnkit::modules::TransformerBlock<P, Norm, Placement, FFN, float> block{};
  block.attn.heads = hq;
  block.attn.kv_heads = hkv;
  block.attn.head_dim = d;
  block.attn.q_proj.weight = keep[0].cview();
  block.attn.k_proj.weight = keep[1].cview();
  block.attn.v_proj.weight = keep[2].cview();
  block.attn.o_proj.weight = keep[3].cview();
  block.attn.rope.emplace(d, 10000.0);
  block.ffn = ffn;
  block.norm = Norm(1e-5);
  block.norm1_weight = n1t.cview();
  block.norm2_weight = n2t.cview();
  if (layer) {
    block.norm1_bias = b1t.cview();
    block.norm2_bias = b2t.cview();
  }
  const Mat x0 = rounded<float>(random_mat(n, hid, 9));
  attnkit::Tensor<float, 3> x({1, n, hid});
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < hid; ++c) x(0, i, c) = static_cast<float>(x0(i, c));
  std::vector<index_t> pos(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = i;
  block.forward(x.view(), pos);

  const MhaWeights wr{rounded<float>(w.wq), rounded<float>(w.wk), rounded<float>(w.wv),
                      rounded<float>(w.wo), Mat()};
  auto nrm = [&](const Mat& a, const Mat& g, const Mat& b) {
    return layer ? ref_layernorm(a, g.v, b.v, 1e-5) : ref_rmsnorm(a, g.v, 1e-5);
  };
  auto ff = [&](const Mat& a) {
    return swiglu_ffn ? ref_swiglu(a, f1, f2, f3) : ref_gelu_mlp(a, f1, {}, f3, {}, false);
  };
  auto plus = [](Mat a, const Mat& b) {
    for (std::size_t i = 0; i < a.v.size(); ++i) a.v[i] += b.v[i];
    return a;
  };
  Mat want;
  if (std::is_same_v<Placement, blk::PreNorm>) {
    const Mat h = plus(x0, ref_mha("softmax", nrm(x0, n1, b1), wr, hq, hkv, d, 10000.0, pos));
    want = plus(h, ff(nrm(h, n2, b2)));
  } else {
    const Mat h = nrm(plus(x0, ref_mha("softmax", x0, wr, hq, hkv, d, 10000.0, pos)), n1, b1);
    want = nrm(plus(h, ff(h)), n2, b2);
  }
  double err = 0;
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < hid; ++c)
      err = std::max(err, std::abs(double(x(0, i, c)) - want(i, c)));
  CHECK(err <= 5e-5);
}

}  // namespace

TEST_CASE("TransformerBlock: pre-norm and post-norm placement", "[block][transformer]") {
  const index_t hid = 24, inter = 40;
  const Mat g = rounded<float>(random_mat(inter, hid, 21, 0.3)),
            u = rounded<float>(random_mat(inter, hid, 22, 0.3));
  const Mat dn = rounded<float>(random_mat(hid, inter, 23, 0.3));
  const auto gt = to_tensor<float>(g), ut = to_tensor<float>(u), dt = to_tensor<float>(dn);
  const blk::SwiGLU<float> swiglu{gt.cview(), ut.cview(), dt.cview()};
  blk::GeluMLP<float> gelu{};
  gelu.fc1 = gt.cview();
  gelu.fc2 = dt.cview();
  check_block<blk::RMSNorm, blk::PreNorm>(swiglu, g, u, true, dn);
  check_block<blk::RMSNorm, blk::PostNorm>(swiglu, g, u, true, dn);
  check_block<blk::LayerNorm, blk::PreNorm>(gelu, g, u, false, dn);
  check_block<blk::LayerNorm, blk::PostNorm>(gelu, g, u, false, dn);
}
