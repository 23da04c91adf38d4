// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Mask combinations, score mods, gates, the decode path, explicit scale, strided views,
// determinism across thread counts and shape errors.
#include <cstring>

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("mask combinations: And / Or", "[attention][mask]") {
  const auto ps = problems();
  for (std::size_t pi : {2u, 5u, 8u}) {
    const Problem& p = ps[pi];
    MaskStore st;
    std::vector<ref::MaskTerm> terms;
    std::vector<pol::KeepMask> keeps;
    std::vector<pol::Document> docs;
    for_each_mask(p, st, 7, [&](auto mask, const ref::MaskTerm& term, const std::string&) {
      if constexpr (std::is_same_v<decltype(mask), pol::KeepMask>) keeps.push_back(mask);
      if constexpr (std::is_same_v<decltype(mask), pol::Document>) docs.push_back(mask);
      terms.push_back(term);
    });
    // terms: 0 none 1 causal 2 sliding 3 local 4 sinks 5 prefix 6 padding 7 keep 8 document
    ref::Spec spec;
    spec.activation = "softmax";
    spec.terms = {terms[1], terms[7]};
    check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::And(pol::Causal{}, keeps[0])), spec, p,
                 1, true);
    spec.terms = {terms[2], terms[8]};
    check<float>(
        pol::AttentionPolicy(pol::Softmax{}, pol::And(pol::SlidingWindow(terms[2].a), docs[0])),
        spec, p, 2);
    spec.activation = "sigmoid";
    spec.terms = {terms[5], terms[7]};
    spec.any_term = true;
    check<float>(pol::AttentionPolicy(pol::Sigmoid{}, pol::Or(pol::PrefixLM(terms[5].a), keeps[0])),
                 spec, p, 3, true);
    spec.activation = "softmax";
    spec.terms = {terms[4], terms[3]};
    check<double>(pol::AttentionPolicy(pol::Softmax{}, pol::Or(pol::Sinks(terms[4].a, terms[4].c),
                                                               pol::LocalWindow(terms[3].a))),
                  spec, p, 4);
  }
}

TEST_CASE("score mods: ALiBi, key bias, temperature, chains", "[attention][score-mod]") {
  const Problem p{2, 8, 2, 37, 101, 64, 80};
  ref::Spec spec;
  spec.activation = "softmax";
  spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
  const auto alibi = pol::ALiBi::standard(p.hq);
  spec.alibi_slopes = alibi.slopes;
  check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, alibi), spec, p, 1, true);
  spec.alibi_slopes.clear();

  const auto boost = pol::KeyBias::boost(p.nk, {0, 3, 50}, 2.5f);
  spec.key_bias.assign(static_cast<std::size_t>(p.nk), 0.0);
  spec.key_bias[0] = spec.key_bias[3] = spec.key_bias[50] = 2.5;
  check<double>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, boost), spec, p, 2);

  std::vector<float> bias(static_cast<std::size_t>(p.b * p.nk));
  for (std::size_t i = 0; i < bias.size(); ++i) bias[i] = static_cast<float>((i * 7) % 13) / 5.0f;
  spec.key_bias.assign(bias.begin(), bias.end());
  spec.activation = "sigmoid";
  check<float>(
      pol::AttentionPolicy(pol::Sigmoid{}, pol::Causal{},
                           pol::KeyBias(TensorView<const float, 2>(bias.data(), {p.b, p.nk}))),
      spec, p, 3);
  spec.key_bias.clear();

  spec.activation = "softmax";
  spec.temperature = 0.3;
  spec.alibi_slopes = alibi.slopes;
  check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{},
                                    pol::ScoreModChain(alibi, pol::Temperature(0.3))),
               spec, p, 4);
}

TEST_CASE("gates: headwise and elementwise sigmoid", "[attention][gate]") {
  const Problem p{2, 4, 2, 19, 33, 16, 24};
  std::mt19937 g(3);
  std::uniform_real_distribution<double> u(-3, 3);
  std::vector<float> hw(static_cast<std::size_t>(p.b * p.hq * p.nq));
  std::vector<double> ew(static_cast<std::size_t>(p.b * p.hq * p.nq * p.dv));
  for (auto& x : hw) x = static_cast<float>(u(g));
  for (auto& x : ew) x = u(g);
  ref::Spec spec;
  spec.activation = "softmax";
  spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
  spec.gate = "headwise";
  spec.gate_values.assign(hw.begin(), hw.end());
  pol::HeadwiseSigmoid<float> hg(TensorView<const float, 3>(hw.data(), {p.b, p.hq, p.nq}));
  check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, pol::NoScoreMod{}, hg), spec, p,
               1);
  spec.activation = "linear";
  check<double>(pol::AttentionPolicy(pol::Linear{}, pol::Causal{}, pol::NoScoreMod{}, hg), spec, p,
                2);
  spec.gate = "elementwise";
  spec.gate_values = ew;
  pol::ElementwiseSigmoid<double> eg(
      TensorView<const double, 4>(ew.data(), {p.b, p.hq, p.nq, p.dv}));
  check<double>(pol::AttentionPolicy(pol::Linear{}, pol::Causal{}, pol::NoScoreMod{}, eg), spec, p,
                3);
  spec.activation = "head-softmax";
  check<float>(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::Causal{}, pol::NoScoreMod{}, eg), spec,
               p, 4);
}

TEST_CASE("decode path matches the reference", "[attention][decode]") {
  AttentionOptions always;
  always.decode = DecodeMode::always;
  for (const Problem& p : {Problem{1, 8, 2, 1, 1500, 64, 64}, Problem{2, 4, 4, 3, 700, 16, 80},
                           Problem{1, 8, 1, 2, 2100, 128, 128}, Problem{1, 1, 1, 1, 5, 3, 3}}) {
    ref::Spec spec;
    spec.activation = "softmax";
    spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
    check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, 1, false, always);
    spec.terms = {ref::MaskTerm{ref::MaskTerm::sinks, 4, 300}};
    check<double>(pol::AttentionPolicy(pol::Softmax{}, pol::Sinks(4, 300)), spec, p, 2, false,
                  always);
    spec.activation = "sigmoid-bias";
    check<float>(pol::AttentionPolicy(pol::SigmoidBias{}, pol::Sinks(4, 300)), spec, p, 3, false,
                 always);
    spec.activation = "normalized-sigmoid";
    spec.terms = {ref::MaskTerm{ref::MaskTerm::sliding, 200}};
    check<float>(pol::AttentionPolicy(pol::NormalizedSigmoid{}, pol::SlidingWindow(200)), spec, p,
                 4, false, always);
    spec.activation = "relu";
    check<double>(pol::AttentionPolicy(pol::ReLU{}, pol::SlidingWindow(200)), spec, p, 5, false,
                  always);
  }
}

TEST_CASE("explicit scale and strided views", "[attention]") {
  const Problem p{1, 4, 2, 30, 50, 16, 16};
  ref::Spec spec;
  spec.activation = "softmax";
  spec.scale = 0.37;
  AttentionOptions o;
  o.scale = 0.37;
  check<float>(pol::AttentionPolicy(pol::Softmax{}), spec, p, 1, false, o);
  // [B, N, H, D] storage viewed as [B, H, N, D] by a transpose: no copy needed.
  Data<float> data(p, 2);
  Tensor<float, 4> qt({p.b, p.nq, p.hq, p.d}), kt({p.b, p.nk, p.hkv, p.d}),
      vt({p.b, p.nk, p.hkv, p.dv});
  for (index_t h = 0; h < p.hq; ++h)
    for (index_t i = 0; i < p.nq; ++i)
      for (index_t c = 0; c < p.d; ++c) qt(0, i, h, c) = data.q(0, h, i, c);
  for (index_t h = 0; h < p.hkv; ++h)
    for (index_t j = 0; j < p.nk; ++j) {
      for (index_t c = 0; c < p.d; ++c) kt(0, j, h, c) = data.k(0, h, j, c);
      for (index_t c = 0; c < p.dv; ++c) vt(0, j, h, c) = data.v(0, h, j, c);
    }
  Tensor<float, 4> a({p.b, p.hq, p.nq, p.dv}), bout({p.b, p.nq, p.hq, p.dv});
  const auto policy = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), a.view());
  attention(policy, qt.cview().transpose(1, 2), kt.cview().transpose(1, 2),
            vt.cview().transpose(1, 2), bout.view().transpose(1, 2));
  for (index_t h = 0; h < p.hq; ++h)
    for (index_t i = 0; i < p.nq; ++i)
      for (index_t c = 0; c < p.dv; ++c) REQUIRE(bout(0, i, h, c) == a(0, h, i, c));
}

namespace {
template <class Policy>
bool same_bits_across_threads(const Policy& policy, const Problem& p, AttentionOptions o = {}) {
  Data<float> data(p, 9);
  Tensor<float, 4> one({p.b, p.hq, p.nq, p.dv}), two({p.b, p.hq, p.nq, p.dv});
  const int saved = max_threads();
  set_threads(1);
  attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), one.view(), o);
  set_threads(2);
  attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), two.view(), o);
  set_threads(saved);
  return std::memcmp(one.data(), two.data(), sizeof(float) * std::size_t(one.size())) == 0;
}
}  // namespace

TEST_CASE("results are identical bit for bit for 1 and 2 threads", "[attention][determinism]") {
  const Problem p{2, 8, 2, 150, 170, 64, 64};
  CHECK(same_bits_across_threads(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), p));
  CHECK(same_bits_across_threads(pol::AttentionPolicy(pol::Sigmoid{}, pol::SlidingWindow(50)), p));
  CHECK(same_bits_across_threads(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::Causal{}), p));
  AttentionOptions always;
  always.decode = DecodeMode::always;
  CHECK(same_bits_across_threads(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}),
                                 Problem{1, 8, 2, 2, 3000, 64, 64}, always));
  CHECK(same_bits_across_threads(pol::AttentionPolicy(pol::NormalizedSigmoid{}),
                                 Problem{1, 4, 4, 1, 2500, 32, 32}));
}

TEST_CASE("decode over many chunks: every chunk's keys count, at 1 and 2 threads",
          "[attention][decode]") {
  // 6 and 10 chunks of 2048 keys per kv head: the threads take runs of several chunks each. A
  // first call on other data leaves other chunks' partial sums in the scratch memory, so a chunk
  // that no run computed would show; the sliding window leaves most chunks without work.
  AttentionOptions always;
  always.decode = DecodeMode::always;
  const int saved = max_threads();
  for (int threads : {1, 2}) {
    set_threads(threads);
    INFO("threads " << threads);
    for (const Problem& p :
         {Problem{1, 8, 2, 1, 10300, 16, 16}, Problem{1, 4, 1, 2, 18500, 32, 24}}) {
      const auto causal = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
      Data<float> other(p, 99, 3.0);
      Tensor<float, 4> junk({p.b, p.hq, p.nq, p.dv});
      attention(causal, other.q.cview(), other.k.cview(), other.v.cview(), junk.view(), always);
      ref::Spec spec;
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      check<float>(causal, spec, p, 21, false, always);
      spec.activation = "sigmoid";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::sliding, 700}};
      check<float>(pol::AttentionPolicy(pol::Sigmoid{}, pol::SlidingWindow(700)), spec, p, 22,
                   false, always);
    }
  }
  set_threads(saved);
}

namespace {
/// The output of one call with the given decode mode, for comparing the automatic choice of path.
Tensor<float, 4> out_with(DecodeMode mode, const Problem& p) {
  Data<float> data(p, 11);
  Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv});
  AttentionOptions o;
  o.decode = mode;
  attention(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), data.q.cview(), data.k.cview(),
            data.v.cview(), out.view(), o);
  return out;
}
bool same_bits(const Tensor<float, 4>& a, const Tensor<float, 4>& b) {
  return std::memcmp(a.data(), b.data(), sizeof(float) * std::size_t(a.size())) == 0;
}
}  // namespace

TEST_CASE("a grouped-query step takes the decode path at any key count", "[attention][decode]") {
  // G > 1 and G·Nq <= 16: the rows of a kv head's query heads share one lane group (the decode
  // path) whatever Nk; otherwise fewer than 2048 keys stay on the prefill path. With more than
  // one 2048-key chunk the decode path merges the chunks' partial sums, so the two paths round
  // differently on every architecture, and the automatic choice must give the forced one's bits.
  for (const Problem& p : {Problem{1, 8, 2, 1, 2100, 64, 64}, Problem{2, 14, 2, 1, 2700, 32, 32},
                           Problem{1, 8, 2, 4, 2900, 64, 64}}) {
    CAPTURE(p.str());
    CHECK(same_bits(out_with(DecodeMode::automatic, p), out_with(DecodeMode::always, p)));
    CHECK_FALSE(same_bits(out_with(DecodeMode::always, p), out_with(DecodeMode::never, p)));
  }
  // G·Nq = 32 > 16 (the two paths round differently here too), and MHA (G = 1).
  const Problem wide{1, 8, 2, 8, 900, 64, 64};
  CHECK(same_bits(out_with(DecodeMode::automatic, wide), out_with(DecodeMode::never, wide)));
  const Problem wide_long{1, 8, 2, 8, 2900, 64, 64};  // two chunks
  CHECK_FALSE(
      same_bits(out_with(DecodeMode::always, wide_long), out_with(DecodeMode::never, wide_long)));
  const Problem mha{1, 4, 4, 1, 900, 64, 64};
  CHECK(same_bits(out_with(DecodeMode::automatic, mha), out_with(DecodeMode::never, mha)));
}

TEST_CASE("shape errors name the argument and both shapes", "[attention][errors]") {
  Tensor<float, 4> q({1, 4, 8, 16}), k({1, 2, 10, 16}), v({1, 2, 10, 8}), o({1, 4, 8, 8});
  const auto policy = pol::AttentionPolicy(pol::Softmax{});
  auto msg = [&](auto&& fn) {
    try {
      fn();
    } catch (const shape_error& e) {
      return std::string(e.what());
    }
    return std::string("no throw");
  };
  Tensor<float, 4> bad_k({1, 2, 10, 15});
  CHECK(msg([&] { attention(policy, q.cview(), bad_k.cview(), v.cview(), o.view()); }) ==
        "attnkit: attention: k has shape [1, 2, 10, 15], expected [1, 2, 10, 16]");
  Tensor<float, 4> bad_v({1, 2, 11, 8});
  CHECK(msg([&] { attention(policy, q.cview(), k.cview(), bad_v.cview(), o.view()); }) ==
        "attnkit: attention: v has shape [1, 2, 11, 8], expected [1, 2, 10, 8]");
  Tensor<float, 4> bad_o({1, 4, 8, 9});
  CHECK(msg([&] { attention(policy, q.cview(), k.cview(), v.cview(), bad_o.view()); }) ==
        "attnkit: attention: out has shape [1, 4, 8, 9], expected [1, 4, 8, 8]");
  Tensor<float, 4> k3({1, 3, 10, 16}), v3({1, 3, 10, 8});
  CHECK(msg([&] {
          attention(policy, q.cview(), k3.cview(), v3.cview(), o.view());
        }).find("not a multiple") != std::string::npos);
  Tensor<float, 4> p({1, 4, 8, 11});
  CHECK(msg([&] { attention(policy, q.cview(), k.cview(), v.cview(), o.view(), p.view()); }) ==
        "attnkit: attention: probs has shape [1, 4, 8, 11], expected [1, 4, 8, 10]");
  std::vector<std::uint8_t> keep(7);
  const auto kp = pol::AttentionPolicy(
      pol::Softmax{}, pol::KeepMask(TensorView<const std::uint8_t, 2>(keep.data(), {1, 7})));
  CHECK(msg([&] { attention(kp, q.cview(), k.cview(), v.cview(), o.view()); }) ==
        "attnkit: attention: KeepMask flags has shape [1, 7], expected [B, Nk] = [1, 10]");
  const auto al = pol::AttentionPolicy(pol::Softmax{}, pol::NoMask{}, pol::ALiBi::standard(3));
  CHECK_THROWS_AS(attention(al, q.cview(), k.cview(), v.cview(), o.view()), shape_error);
}

TEST_CASE("attention<Policy>(q, k, v, out) with a default policy", "[attention]") {
  const Problem p{1, 2, 2, 9, 9, 8, 8};
  Data<double> data(p, 1);
  Tensor<double, 4> a({p.b, p.hq, p.nq, p.dv}), b({p.b, p.hq, p.nq, p.dv});
  using P = pol::AttentionPolicy<pol::ReLU, pol::Causal>;
  attention<P>(data.q.cview(), data.k.cview(), data.v.cview(), a.view());
  attention(P{}, data.q.cview(), data.k.cview(), data.v.cview(), b.view());
  for (index_t i = 0; i < a.size(); ++i) REQUIRE(a.data()[i] == b.data()[i]);
}
