// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Attention dropout (AttentionOptions::dropout): p = 0 is the dropout-free kernel bit for bit;
// p > 0 equals the double reference with the same (b, h, i, j) mask on every kernel path
// (prefill, decode, head softmax), with P capture; seeds and thread counts.
#include <cstring>

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

namespace {

/// The reference with dropout: P from ref::attention, dropped pairs 0, kept ones / (1 - p).
template <class T>
void reference_with_dropout(const ref::Spec& spec, const Data<T>& x, const AttentionDropout& dr,
                            Tensor<double, 4>& out, Tensor<double, 4>& probs) {
  ref::attention<T>(spec, x.q.cview(), x.k.cview(), x.v.cview(), out, probs);
  const index_t nb = probs.extent(0), hq = probs.extent(1), nq = probs.extent(2),
                nk = probs.extent(3), dv = out.extent(3), group = hq / x.k.extent(1);
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < nq; ++i) {
        for (index_t j = 0; j < nk; ++j)
          probs(b, h, i, j) = dr.keeps(b, h, i, j) ? probs(b, h, i, j) / (1.0 - dr.p) : 0.0;
        for (index_t c = 0; c < dv; ++c) {
          double acc = 0;
          for (index_t j = 0; j < nk; ++j)
            acc += probs(b, h, i, j) * double(x.v(b, h / group, j, c));
          out(b, h, i, c) = acc;
        }
      }
}

template <class T, std::size_t R>
bool same_bits(const Tensor<T, R>& a, const Tensor<T, R>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.size())) == 0;
}

/// Runs policy with dropout `dr` (and the decode mode) and compares out and P with the
/// reference.
template <class Policy>
void check_dropout(const Policy& policy, const ref::Spec& spec, const Problem& p,
                   const AttentionDropout& dr, DecodeMode mode, unsigned seed) {
  const Data<float> x(p, seed);
  Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv}), probs({p.b, p.hq, p.nq, p.nk});
  AttentionOptions o;
  o.dropout = dr;
  o.decode = mode;
  attention(policy, x.q.cview(), x.k.cview(), x.v.cview(), out.view(), probs.view(), o);
  Tensor<double, 4> want, wprobs;
  reference_with_dropout(spec, x, dr, want, wprobs);
  double err = 0, perr = 0, mag = 0;
  for (index_t k = 0; k < out.size(); ++k) {
    err = std::max(err, std::abs(double(out.data()[k]) - want.data()[k]));
    mag = std::max(mag, std::abs(want.data()[k]));
  }
  for (index_t k = 0; k < probs.size(); ++k)
    perr = std::max(perr, std::abs(double(probs.data()[k]) - wprobs.data()[k]));
  INFO(spec.activation << " " << p.str() << " p=" << dr.p << " seed=" << dr.seed
                       << " decode=" << int(mode) << ": max error " << err << " (|out| " << mag
                       << "), P error " << perr);
  CHECK(err <= 2e-5 * std::max(1.0, mag));
  CHECK(perr <= 2e-5);
  // Without capture (the decode path may then differ by rounding; the prefill path not at all).
  Tensor<float, 4> out2({p.b, p.hq, p.nq, p.dv});
  attention(policy, x.q.cview(), x.k.cview(), x.v.cview(), out2.view(), o);
  double err2 = 0;
  for (index_t k = 0; k < out2.size(); ++k)
    err2 = std::max(err2, std::abs(double(out2.data()[k]) - want.data()[k]));
  CHECK(err2 <= 2e-5 * std::max(1.0, mag));
  if (mode == DecodeMode::never) CHECK(same_bits(out, out2));
}

}  // namespace

TEST_CASE("attention dropout: p = 0 is the dropout-free kernel bit for bit",
          "[attention][dropout]") {
  const Problem p{2, 4, 2, 37, 37, 16, 16};
  const Data<float> x(p, 3);
  const auto policy = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  Tensor<float, 4> plain({p.b, p.hq, p.nq, p.dv}), zero({p.b, p.hq, p.nq, p.dv});
  attention(policy, x.q.cview(), x.k.cview(), x.v.cview(), plain.view());
  AttentionOptions o;
  o.dropout = AttentionDropout{0.0, 12345};
  attention(policy, x.q.cview(), x.k.cview(), x.v.cview(), zero.view(), o);
  CHECK(same_bits(plain, zero));
  CHECK_FALSE(o.dropout.enabled());
}

TEST_CASE("attention dropout: equals the reference with the same mask", "[attention][dropout]") {
  ref::Spec causal;
  causal.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
  const AttentionDropout dr{0.3, 2024};
  SECTION("softmax, causal, GQA: prefill and decode") {
    ref::Spec spec = causal;
    spec.activation = "softmax";
    const auto policy = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
    for (const Problem& p : {Problem{2, 4, 2, 37, 37, 16, 16}, Problem{1, 1, 1, 1, 1, 1, 1},
                             Problem{1, 8, 2, 67, 131, 24, 8}})
      check_dropout(policy, spec, p, dr, DecodeMode::never, 5);
    // Decode: several key chunks merged afterwards.
    check_dropout(policy, spec, Problem{1, 6, 2, 3, 1031, 16, 16}, dr, DecodeMode::always, 6);
    check_dropout(policy, spec, Problem{1, 6, 2, 3, 1031, 16, 16}, AttentionDropout{0.9, 1},
                  DecodeMode::always, 7);
  }
  SECTION("sigmoid, no mask (elementwise, no running state)") {
    ref::Spec spec;
    spec.activation = "sigmoid";
    const auto policy = pol::AttentionPolicy(pol::Sigmoid{});
    check_dropout(policy, spec, Problem{2, 3, 3, 29, 71, 8, 5}, dr, DecodeMode::never, 8);
    check_dropout(policy, spec, Problem{1, 4, 1, 2, 1500, 8, 8}, dr, DecodeMode::always, 9);
  }
  SECTION("softmax across heads (its own work units)") {
    ref::Spec spec = causal;
    spec.activation = "head-softmax";
    const auto policy = pol::AttentionPolicy(pol::HeadSoftmax{}, pol::Causal{});
    check_dropout(policy, spec, Problem{2, 4, 2, 41, 41, 16, 16}, dr, DecodeMode::never, 10);
  }
}

TEST_CASE("attention dropout: seeds, thread counts, kept fraction", "[attention][dropout]") {
  const Problem p{1, 4, 2, 130, 130, 32, 32};
  const Data<float> x(p, 11);
  const auto policy = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  const int saved = max_threads();
  auto run = [&](AttentionDropout dr, int threads) {
    set_threads(threads);
    Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv});
    AttentionOptions o;
    o.dropout = dr;
    attention(policy, x.q.cview(), x.k.cview(), x.v.cview(), out.view(), o);
    set_threads(saved);
    return out;
  };
  const int most = std::max(2, saved);
  const auto a = run({0.1, 7}, 1);
  CHECK(same_bits(a, run({0.1, 7}, most)));
  CHECK(same_bits(a, run({0.1, 7}, 3)));
  CHECK_FALSE(same_bits(a, run({0.1, 8}, 1)));
  CHECK_FALSE(same_bits(a, run({0.0, 7}, 1)));

  // The mask is a fair coin of bias p per pair, independent across seeds.
  for (const double prob : {0.1, 0.5, 0.9}) {
    const AttentionDropout d1{prob, 1}, d2{prob, 2};
    long kept = 0, both = 0, total = 0;
    for (index_t h = 0; h < 8; ++h)
      for (index_t i = 0; i < 100; ++i)
        for (index_t j = 0; j < 250; ++j, ++total) {
          kept += d1.keeps(0, h, i, j) ? 1 : 0;
          both += d1.keeps(0, h, i, j) && d2.keeps(0, h, i, j) ? 1 : 0;
        }
    INFO("p " << prob);
    CHECK(double(kept) / double(total) == Approx(1 - prob).margin(0.01));
    CHECK(double(both) / double(total) == Approx((1 - prob) * (1 - prob)).margin(0.01));
  }
}

TEST_CASE("attention dropout: p outside [0, 1) is an error", "[attention][dropout]") {
  const Problem p{1, 1, 1, 3, 3, 4, 4};
  const Data<float> x(p, 1);
  Tensor<float, 4> out({1, 1, 3, 4});
  for (const double bad : {1.0, -0.1, 2.0}) {
    AttentionOptions o;
    o.dropout.p = bad;
    CHECK_THROWS_AS(attention(pol::AttentionPolicy(pol::Softmax{}), x.q.cview(), x.k.cview(),
                              x.v.cview(), out.view(), o),
                    attnkit::error);
  }
}
