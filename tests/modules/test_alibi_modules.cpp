// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// ALiBi instead of RoPE in the modules: MultiHeadAttention (no rope set) against the double
// reference, cached decoding, TransformerBlock, and Decoder::load leaving RoPE out for a policy
// whose score mod encodes positions. One policy type in this TU.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/io/npy.hpp"
#include "attnkit/model/decoder.hpp"
#include "attnkit/modules/transformer_block.hpp"
#include "attnkit/policy/attention_policy.hpp"

#include "modules/mha_reference.hpp"
#include "reference/attention_ref.hpp"

using namespace block_test;
namespace pol = attnkit::policy;
namespace blk = attnkit::block;
using attnkit::Tensor;

namespace {

using AlibiPolicy = pol::AttentionPolicy<pol::Softmax, pol::Causal, pol::ALiBi>;

static_assert(pol::encodes_positions<pol::ALiBi>);
static_assert(pol::encodes_positions<pol::ScoreModChain<pol::Temperature, pol::ALiBi>>);
static_assert(!pol::encodes_positions<pol::NoScoreMod>);

struct AlibiMha {
  index_t hid, hq, hkv, d;
  MhaWeights w;
  std::vector<Tensor<float, 2>> keep;
  attnkit::modules::MultiHeadAttention<AlibiPolicy, float> mha;

  AlibiMha(index_t hid_, index_t hq_, index_t hkv_, index_t d_, pol::ALiBi alibi)
      : hid(hid_), hq(hq_), hkv(hkv_), d(d_), w(random_mha(hid_, hq_, hkv_, d_, 0, 31)) {
    for (Mat* m : {&w.wq, &w.wk, &w.wv, &w.wo}) {
      *m = rounded<float>(*m);
      keep.push_back(to_tensor<float>(*m));
    }
    mha.heads = hq;
    mha.kv_heads = hkv;
    mha.head_dim = d;
    mha.q_proj.weight = keep[0].cview();
    mha.k_proj.weight = keep[1].cview();
    mha.v_proj.weight = keep[2].cview();
    mha.o_proj.weight = keep[3].cview();
    mha.policy.score_mod = std::move(alibi);  // no mha.rope: ALiBi is the position signal
  }

  /// The double reference: projections, causal softmax attention with the ALiBi bias, o_proj.
  Mat reference(const Mat& x, const std::vector<double>& slopes) const {
    const index_t n = x.rows;
    const Mat q = ref_linear(x, w.wq), k = ref_linear(x, w.wk), v = ref_linear(x, w.wv);
    Tensor<double, 4> qh({1, hq, n, d}), kh({1, hkv, n, d}), vh({1, hkv, n, d});
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < d; ++c) {
        for (index_t h = 0; h < hq; ++h) qh(0, h, i, c) = q(i, h * d + c);
        for (index_t h = 0; h < hkv; ++h) {
          kh(0, h, i, c) = k(i, h * d + c);
          vh(0, h, i, c) = v(i, h * d + c);
        }
      }
    attnkit::ref::Spec spec;
    spec.terms = {attnkit::ref::MaskTerm{attnkit::ref::MaskTerm::causal}};
    spec.alibi_slopes = slopes;
    Tensor<double, 4> out, probs;
    attnkit::ref::attention<double>(spec, qh.cview(), kh.cview(), vh.cview(), out, probs);
    Mat o(n, hq * d);
    for (index_t i = 0; i < n; ++i)
      for (index_t h = 0; h < hq; ++h)
        for (index_t c = 0; c < d; ++c) o(i, h * d + c) = out(0, h, i, c);
    return ref_linear(o, w.wo);
  }
};

std::vector<index_t> iota(index_t n, index_t first = 0) {
  std::vector<index_t> p(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = first + i;
  return p;
}

Tensor<float, 3> as_input(const Mat& x) {
  Tensor<float, 3> t({1, x.rows, x.cols});
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t c = 0; c < x.cols; ++c) t(0, i, c) = static_cast<float>(x(i, c));
  return t;
}

double max_err(const Tensor<float, 3>& got, const Mat& want) {
  double e = 0;
  for (index_t i = 0; i < want.rows; ++i)
    for (index_t c = 0; c < want.cols; ++c)
      e = std::max(e, std::abs(double(got(0, i, c)) - want(i, c)));
  return e;
}

}  // namespace

TEST_CASE("ALiBi MultiHeadAttention without RoPE: double reference, positions, cache",
          "[attention][alibi]") {
  for (const auto& [hq, hkv, d, n] :
       {std::tuple<index_t, index_t, index_t, index_t>{4, 2, 8, 13}, {3, 1, 5, 1}, {8, 8, 4, 71}}) {
    const index_t hid = 20;
    // Given slopes, and the default (none given: the paper's slopes for Hq heads).
    std::vector<double> slopes(static_cast<std::size_t>(hq));
    for (index_t h = 0; h < hq; ++h) slopes[static_cast<std::size_t>(h)] = 0.05 + 0.3 * double(h);
    AlibiMha given(hid, hq, hkv, d, pol::ALiBi(slopes));
    AlibiMha standard(hid, hq, hkv, d, pol::ALiBi{});
    const Mat x = rounded<float>(random_mat(n, hid, 5));
    const Tensor<float, 3> xt = as_input(x);
    Tensor<float, 3> y({1, n, hid}), y2({1, n, hid});
    INFO("Hq " << hq << " Hkv " << hkv << " D " << d << " N " << n);
    given.mha.forward(xt.cview(), iota(n), y.view());
    CHECK(max_err(y, given.reference(x, slopes)) <= 2e-5);
    standard.mha.forward(xt.cview(), iota(n), y2.view());
    CHECK(max_err(y2, standard.reference(x, pol::ALiBi::standard(hq).slopes)) <= 2e-5);

    // No RoPE: the positions argument changes nothing.
    given.mha.forward(xt.cview(), iota(n, 1000), y2.view());
    CHECK(std::memcmp(y.data(), y2.data(), sizeof(float) * static_cast<std::size_t>(y.size())) ==
          0);

    // A KV cache: the rows after the first ones see the cached keys at the right distances.
    attnkit::modules::KVCache<float> cache;
    const index_t first = (n + 1) / 2;
    Tensor<float, 3> a({1, first, hid}), b({1, n - first, hid}), ya({1, first, hid}),
        yb({1, n - first, hid});
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < hid; ++c) (i < first ? a(0, i, c) : b(0, i - first, c)) = xt(0, i, c);
    given.mha.forward(a.cview(), iota(first), ya.view(), cache);
    if (n > first) given.mha.forward(b.cview(), iota(n - first, first), yb.view(), cache);
    double err = 0;
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < hid; ++c)
        err = std::max(err, std::abs(double(i < first ? ya(0, i, c) : yb(0, i - first, c)) -
                                     double(y(0, i, c))));
    CHECK(err <= 1e-5);
  }
}

TEST_CASE("ALiBi TransformerBlock without RoPE", "[block][alibi]") {
  const index_t hid = 16, hq = 4, hkv = 2, d = 4, n = 11, inter = 24;
  AlibiMha m(hid, hq, hkv, d, pol::ALiBi{});
  const Mat g = rounded<float>(random_mat(inter, hid, 7, 0.3)),
            u = rounded<float>(random_mat(inter, hid, 8, 0.3)),
            dn = rounded<float>(random_mat(hid, inter, 9, 0.3));
  const auto gt = to_tensor<float>(g), ut = to_tensor<float>(u), dt = to_tensor<float>(dn);
  const Mat nw = rounded<float>(random_mat(1, hid, 10, 0.1, 1.0));
  const auto nwt = to_tensor1<float>(nw.v);
  attnkit::modules::TransformerBlock<AlibiPolicy, blk::RMSNorm, blk::PreNorm, blk::SwiGLU<float>,
                                     float>
      block{};
  block.attn = m.mha;
  block.ffn = blk::SwiGLU<float>{gt.cview(), ut.cview(), dt.cview()};
  block.norm = blk::RMSNorm(1e-5);
  block.norm1_weight = nwt.cview();
  block.norm2_weight = nwt.cview();
  const Mat x = rounded<float>(random_mat(n, hid, 12));
  Tensor<float, 3> xt = as_input(x);
  block.forward(xt.view(), iota(n));
  // x + attn(rms(x)), then + swiglu(rms(.)) in double.
  auto rms = [&](const Mat& a) {
    Mat r(a.rows, a.cols);
    for (index_t i = 0; i < a.rows; ++i) {
      double ss = 0;
      for (index_t c = 0; c < a.cols; ++c) ss += a(i, c) * a(i, c);
      const double inv = 1.0 / std::sqrt(ss / double(a.cols) + 1e-5);
      for (index_t c = 0; c < a.cols; ++c) r(i, c) = a(i, c) * inv * nw(0, c);
    }
    return r;
  };
  Mat h = x;
  const Mat att = m.reference(rms(x), pol::ALiBi::standard(hq).slopes);
  for (std::size_t k = 0; k < h.v.size(); ++k) h.v[k] += att.v[k];
  const Mat hn = rms(h), gg = ref_linear(hn, g), uu = ref_linear(hn, u);
  Mat act(n, inter);
  for (std::size_t k = 0; k < act.v.size(); ++k)
    act.v[k] = gg.v[k] / (1.0 + std::exp(-gg.v[k])) * uu.v[k];
  const Mat f = ref_linear(act, dn);
  for (std::size_t k = 0; k < h.v.size(); ++k) h.v[k] += f.v[k];
  CHECK(max_err(xt, h) <= 5e-5);
}

TEST_CASE("ALiBi Decoder: no RoPE, prefill equals cached decoding", "[model][alibi]") {
  using Model = attnkit::model::Decoder<AlibiPolicy, float>;
  const std::string dir = std::string(ATTNKIT_GOLDEN_DIR) + "/softmax";
  const Model m = Model::load(dir);  // ALiBi{}: the paper's slopes for the file's head count
  REQUIRE(!m.layers.empty());
  for (const auto& layer : m.layers) CHECK_FALSE(layer.attn.rope.has_value());
  const std::vector<std::int64_t> ids{5, 17, 3, 88, 41, 0, 96, 23, 23, 7, 61, 2, 34};
  const Tensor<float, 2> full = m.forward(ids);
  attnkit::model::DecoderState<float> state;
  const std::vector<std::int64_t> head(ids.begin(), ids.begin() + 6);
  Tensor<float, 2> part = m.forward(head, state);
  double err = 0;
  for (index_t i = 0; i < 6; ++i)
    for (index_t v = 0; v < full.extent(1); ++v)
      err = std::max(err, std::abs(double(part(i, v)) - double(full(i, v))));
  for (std::size_t t = 6; t < ids.size(); ++t) {
    const std::vector<std::int64_t> one{ids[t]};
    part = m.forward(one, state);
    for (index_t v = 0; v < full.extent(1); ++v)
      err = std::max(err, std::abs(double(part(0, v)) - double(full(static_cast<index_t>(t), v))));
  }
  CHECK(err <= 1e-4);
  // The same weights with RoPE (logits.npy) give other logits: ALiBi replaced it.
  const auto rope_logits = attnkit::io::read_npy_as<double, 2>(dir + "/logits.npy");
  const auto rope_ids = attnkit::io::read_npy_as<std::int64_t, 1>(dir + "/input_ids.npy");
  const Tensor<float, 2> mine =
      m.forward(std::vector<std::int64_t>(rope_ids.begin(), rope_ids.end()));
  double diff = 0;
  for (index_t k = 0; k < mine.size(); ++k)
    diff = std::max(diff, std::abs(double(mine.data()[k]) - rope_logits.data()[k]));
  CHECK(diff > 1e-2);
}
