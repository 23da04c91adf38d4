// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention_backward for the softmax family (softmax, softcap, normalized sigmoid, sink logits)
// and head softmax: gradients against finite differences in double under every mask, MHA, GQA
// and MQA; the gates' and sinks' gradients; score mods; dropout; key and query ranges; identical
// results for any thread count; errors naming the bad argument.
#include <limits>

#include "backward_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("attention_backward softmax: finite differences under every mask", "[backward]") {
  check_grads_masks<Masks::all, true>(pol::Softmax{}, "softmax", 11);
}

TEST_CASE("attention_backward softcap and normalized sigmoid: finite differences", "[backward]") {
  check_grads_masks<Masks::core>(pol::Softcap(2.0), "softcap=2", 21);
  check_grads_masks<Masks::core>(pol::NormalizedSigmoid(-0.5), "normalized-sigmoid", 31);
}

TEST_CASE("attention_backward head softmax: finite differences under every mask", "[backward]") {
  check_grads_masks<Masks::all, true>(pol::HeadSoftmax{}, "head-softmax", 41);
}

TEST_CASE("attention_backward sink logits: dq, dk, dv and dsinks", "[backward]") {
  for (const Problem& p : grad_problems()) {
    std::vector<double> z(static_cast<std::size_t>(p.hq));
    for (std::size_t h = 0; h < z.size(); ++h) z[h] = 0.3 * double(h) - 0.4;
    GradExtras ex;
    ex.sinks = &z;
    check_grads(pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z), pol::Causal{}), p, 51,
                "sinks causal", ex);
    check_grads(pol::AttentionPolicy(pol::SinkLogits(pol::NormalizedSigmoid{}, z)), p, 52,
                "sinks normalized-sigmoid", ex);
  }
}

TEST_CASE("attention_backward gates: the gate values' gradients", "[backward]") {
  for (const Problem& p : grad_problems()) {
    std::mt19937 g(61);
    std::uniform_real_distribution<double> u(-2.0, 2.0);
    Tensor<double, 3> gh({p.b, p.hq, p.nq});
    for (auto& x : gh) x = u(g);
    Tensor<double, 4> ge({p.b, p.hq, p.nq, p.dv});
    for (auto& x : ge) x = u(g);
    GradExtras eh;
    eh.gate_heads = &gh;
    check_grads(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, pol::NoScoreMod{},
                                     pol::HeadwiseSigmoid<double>(gh.cview())),
                p, 62, "headwise gate", eh);
    GradExtras ee;
    ee.gate = &ge;
    check_grads(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::Causal{}, pol::NoScoreMod{},
                                     pol::ElementwiseSigmoid<double>(ge.cview())),
                p, 63, "elementwise gate, head softmax", ee);
  }
}

TEST_CASE("attention_backward score mods: ALiBi, key bias with -inf, temperature, a chain",
          "[backward]") {
  for (const Problem& p : grad_problems()) {
    std::vector<float> kb(static_cast<std::size_t>(p.b * p.nk));
    std::mt19937 g(75);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::size_t j = 0; j < kb.size(); ++j)
      kb[j] = j % 5 == 3 ? -std::numeric_limits<float>::infinity() : u(g);
    const pol::KeyBias bias(TensorView<const float, 2>(kb.data(), {p.b, p.nk}));
    check_grads(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{},
                                     pol::ScoreModChain(pol::ALiBi{}, pol::Temperature(0.7))),
                p, 76, "alibi + temperature, softmax causal");
    check_grads(pol::AttentionPolicy(pol::Sigmoid{}, pol::NoMask{}, bias), p, 77,
                "key bias with -inf, sigmoid");
    check_grads(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::NoMask{},
                                     pol::ScoreModChain(bias, pol::Temperature(1.3))),
                p, 78, "key bias with -inf + temperature, head softmax");
  }
}

TEST_CASE("attention_backward dropout: the forward's mask, its gradients", "[backward]") {
  AttentionOptions o;
  o.dropout.p = 0.3;
  o.dropout.seed = 99;
  for (const Problem& p : grad_problems()) {
    check_grads(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), p, 71, "dropout softmax", {},
                o);
    check_grads(pol::AttentionPolicy(pol::HeadSoftmax{}), p, 72, "dropout head-softmax", {}, o);
  }
}

TEST_CASE("attention_backward key and query ranges add up to the whole call", "[backward]") {
  // Two key ranges with the merged state: their dq add up to the whole call's, their dk and dv
  // are its slices; two query ranges: their dk and dv add up, their dq are its slices.
  const Problem p{2, 4, 2, 70, 101, 8, 6};
  Data<double> data(p, 81);
  Tensor<double, 4> dout({p.b, p.hq, p.nq, p.dv});
  std::mt19937 g(82);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto& x : dout) x = u(g);
  const pol::AttentionPolicy<pol::Softmax, pol::Causal> pol_;
  const Grads<double> whole = run_backward<double>(pol_, data.q, data.k, data.v, dout, {}, {});
  Tensor<double, 4> out({p.b, p.hq, p.nq, p.dv});
  Tensor<double, 3> state({p.b, p.hq, p.nq});
  attention_partial(pol_, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), state.view());
  const index_t split = 37;
  Tensor<double, 4> dq_sum(data.q.shape(), 0.0);
  for (int part = 0; part < 2; ++part) {
    const index_t j0 = part == 0 ? 0 : split, n = part == 0 ? split : p.nk - split;
    auto ks = data.k.cview().slice(j0, j0 + n, 2), vs = data.v.cview().slice(j0, j0 + n, 2);
    Tensor<double, 4> dq(data.q.shape()), dk({p.b, p.hkv, n, p.d}), dv({p.b, p.hkv, n, p.dv});
    AttentionOptions o;
    o.keys = KeyRange{j0, p.nk};
    attention_backward(pol_, data.q.cview(), ks, vs, out.cview(), state.cview(), dout.cview(),
                       dq.view(), dk.view(), dv.view(), o);
    for (index_t i = 0; i < dq.size(); ++i) dq_sum.data()[i] += dq.data()[i];
    double err = 0;
    for (index_t b = 0; b < p.b; ++b)
      for (index_t h = 0; h < p.hkv; ++h)
        for (index_t j = 0; j < n; ++j) {
          for (index_t c = 0; c < p.d; ++c)
            err = std::max(err, std::abs(dk(b, h, j, c) - whole.dk(b, h, j0 + j, c)));
          for (index_t c = 0; c < p.dv; ++c)
            err = std::max(err, std::abs(dv(b, h, j, c) - whole.dv(b, h, j0 + j, c)));
        }
    CHECK(err < 1e-12);
  }
  double err = 0;
  for (index_t i = 0; i < dq_sum.size(); ++i)
    err = std::max(err, std::abs(dq_sum.data()[i] - whole.dq.data()[i]));
  CHECK(err < 1e-12);
  const index_t rs = 29;
  Tensor<double, 4> dk_sum(data.k.shape(), 0.0), dv_sum(data.v.shape(), 0.0);
  double qerr = 0;
  for (int part = 0; part < 2; ++part) {
    const index_t i0 = part == 0 ? 0 : rs, n = part == 0 ? rs : p.nq - rs;
    auto qs = data.q.cview().slice(i0, i0 + n, 2);
    Tensor<double, 4> dq({p.b, p.hq, n, p.d}), dk(data.k.shape()), dv(data.v.shape());
    AttentionOptions o;
    o.queries = QueryRange{i0, p.nq};
    attention_backward(pol_, qs, data.k.cview(), data.v.cview(), out.cview().slice(i0, i0 + n, 2),
                       state.cview().slice(i0, i0 + n, 2), dout.cview().slice(i0, i0 + n, 2),
                       dq.view(), dk.view(), dv.view(), o);
    for (index_t i = 0; i < dk.size(); ++i) dk_sum.data()[i] += dk.data()[i];
    for (index_t i = 0; i < dv.size(); ++i) dv_sum.data()[i] += dv.data()[i];
    for (index_t b = 0; b < p.b; ++b)
      for (index_t h = 0; h < p.hq; ++h)
        for (index_t i = 0; i < n; ++i)
          for (index_t c = 0; c < p.d; ++c)
            qerr = std::max(qerr, std::abs(dq(b, h, i, c) - whole.dq(b, h, i0 + i, c)));
  }
  CHECK(qerr < 1e-12);
  double kerr = 0;
  for (index_t i = 0; i < dk_sum.size(); ++i)
    kerr = std::max(kerr, std::abs(dk_sum.data()[i] - whole.dk.data()[i]));
  for (index_t i = 0; i < dv_sum.size(); ++i)
    kerr = std::max(kerr, std::abs(dv_sum.data()[i] - whole.dv.data()[i]));
  CHECK(kerr < 1e-12);
}

TEST_CASE("attention_backward: identical bits for any thread count", "[backward]") {
  const Problem p{2, 8, 2, 131, 131, 64, 64};
  Data<float> data(p, 91);
  Tensor<float, 4> dout({p.b, p.hq, p.nq, p.dv});
  std::mt19937 g(92);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& x : dout) x = u(g);
  const pol::AttentionPolicy<pol::Softmax, pol::Causal> pol_;
  const int before = max_threads();
  set_threads(1);
  const Grads<float> one = run_backward<float>(pol_, data.q, data.k, data.v, dout, {}, {});
  set_threads(2);
  const Grads<float> two = run_backward<float>(pol_, data.q, data.k, data.v, dout, {}, {});
  set_threads(before);
  auto same = [](const Tensor<float, 4>& a, const Tensor<float, 4>& b) {
    return std::equal(a.data(), a.data() + a.size(), b.data());
  };
  CHECK(same(one.dq, two.dq));
  CHECK(same(one.dk, two.dk));
  CHECK(same(one.dv, two.dv));
}

TEST_CASE("attention_backward: errors name the bad argument", "[backward]") {
  const Problem p{1, 4, 2, 5, 7, 3, 2};
  Data<double> data(p, 1);
  Tensor<double, 4> out({1, 4, 5, 2}), dout({1, 4, 5, 2}), dq(data.q.shape()), dk(data.k.shape()),
      dv(data.v.shape()), bad({1, 4, 5, 3});
  Tensor<double, 3> state({1, 4, 5}), bad_state({1, 4, 4});
  const pol::AttentionPolicy<pol::Softmax> sm;
  auto call = [&](TensorView<const double, 4> o, TensorView<const double, 3> s,
                  TensorView<double, 4> gq) {
    attention_backward(sm, data.q.cview(), data.k.cview(), data.v.cview(), o, s, dout.cview(), gq,
                       dk.view(), dv.view());
  };
  CHECK_THROWS_WITH(call(bad.cview(), state.cview(), dq.view()),
                    Catch::Contains("out") && Catch::Contains("[1, 4, 5, 2]"));
  CHECK_THROWS_WITH(call(out.cview(), bad_state.cview(), dq.view()), Catch::Contains("state"));
  CHECK_THROWS_WITH(call(out.cview(), TensorView<const double, 3>{}, dq.view()),
                    Catch::Contains("state"));
  Tensor<double, 4> bad_dq({1, 4, 5, 4});
  CHECK_THROWS_WITH(call(out.cview(), state.cview(), bad_dq.view()), Catch::Contains("dq"));
  Tensor<double, 3> dgh({1, 4, 5});
  AttentionGradExtras<double> ex;
  ex.dgate_heads = dgh.view();
  CHECK_THROWS_WITH(
      attention_backward(sm, data.q.cview(), data.k.cview(), data.v.cview(), out.cview(),
                         state.cview(), dout.cview(), dq.view(), dk.view(), dv.view(), {}, ex),
      Catch::Contains("HeadwiseSigmoid"));
  std::vector<double> ds(4);
  AttentionGradExtras<double> es;
  es.dsinks = ds;
  CHECK_THROWS_WITH(
      attention_backward(sm, data.q.cview(), data.k.cview(), data.v.cview(), out.cview(),
                         state.cview(), dout.cview(), dq.view(), dk.view(), dv.view(), {}, es),
      Catch::Contains("sink"));
  // The elementwise activations need no state.
  const pol::AttentionPolicy<pol::Sigmoid> sg;
  CHECK_NOTHROW(attention_backward(sg, data.q.cview(), data.k.cview(), data.v.cview(), out.cview(),
                                   TensorView<const double, 3>{}, dout.cview(), dq.view(),
                                   dk.view(), dv.view()));
}
