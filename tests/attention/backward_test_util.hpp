// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Shared helpers of the backward tests: the gradients of attention_backward against central
// finite differences of the double forward (attention() with DecodeMode::never, itself checked
// against tests/reference/attention_ref.hpp by the forward tests), and the float backward
// against the double one. The loss is L = Σ dout · out with a random dout.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "attnkit/attention/backward.hpp"

#include "attention_test_util.hpp"

namespace attnkit::test {

/// Runtime values the policy views (gate values, sink logits): finite differences perturb them
/// in place, and their gradients are checked too.
struct GradExtras {
  Tensor<double, 3>* gate_heads = nullptr;  ///< HeadwiseSigmoid values
  Tensor<double, 4>* gate = nullptr;        ///< ElementwiseSigmoid values
  std::vector<double>* sinks = nullptr;     ///< SinkLogits logits
};

template <class T>
Tensor<T, 4> cast4(const Tensor<double, 4>& a) {
  Tensor<T, 4> r(a.shape());
  for (index_t i = 0; i < a.size(); ++i) r.data()[i] = static_cast<T>(a.data()[i]);
  return r;
}

/// The gradients of one backward call.
template <class T>
struct Grads {
  Tensor<T, 4> dq, dk, dv, dgate;
  Tensor<T, 3> dgate_heads;
  std::vector<double> dsinks;
};

/// Forward (attention_partial) then attention_backward in T on q, k, v, dout.
template <class T, class Policy>
Grads<T> run_backward(const Policy& pol, const Tensor<T, 4>& q, const Tensor<T, 4>& k,
                      const Tensor<T, 4>& v, const Tensor<T, 4>& dout, const GradExtras& ex,
                      const AttentionOptions& opts) {
  const index_t nb = q.extent(0), hq = q.extent(1), nq = q.extent(2), dv = v.extent(3);
  Tensor<T, 4> out({nb, hq, nq, dv});
  Tensor<T, 3> state({nb, hq, nq});
  AttentionOptions fo = opts;
  fo.decode = DecodeMode::never;
  attention_partial(pol, q.cview(), k.cview(), v.cview(), out.view(), state.view(), fo);
  Grads<T> g{Tensor<T, 4>(q.shape(), T(7)),
             Tensor<T, 4>(k.shape(), T(7)),
             Tensor<T, 4>(v.shape(), T(7)),
             Tensor<T, 4>(),
             Tensor<T, 3>(),
             {}};
  AttentionGradExtras<T> extra;
  if (ex.gate_heads) {
    g.dgate_heads = Tensor<T, 3>(ex.gate_heads->shape(), T(7));
    extra.dgate_heads = g.dgate_heads.view();
  }
  if (ex.gate) {
    g.dgate = Tensor<T, 4>(ex.gate->shape(), T(7));
    extra.dgate = g.dgate.view();
  }
  if (ex.sinks) {
    g.dsinks.assign(ex.sinks->size(), 7.0);
    extra.dsinks = g.dsinks;
  }
  attention_backward(pol, q.cview(), k.cview(), v.cview(), out.cview(), state.cview(), dout.cview(),
                     g.dq.view(), g.dk.view(), g.dv.view(), opts, extra);
  return g;
}

/// Checks attention_backward for `pol` on problem p: the double gradients against central
/// differences of L at `samples` random elements of each input (and every gate value and sink
/// logit, up to `samples`); WithFloat: the float gradients against the double ones too (the
/// float kernels are also checked against PyTorch's in test_attention_grad_golden.cpp; the
/// float instantiations are left out elsewhere to keep the compile short).
template <bool WithFloat = false, class Policy>
void check_grads(const Policy& pol, const Problem& p, unsigned seed, const std::string& what,
                 const GradExtras& ex = {}, AttentionOptions opts = {}, int samples = 16) {
  INFO(what << " " << p.str() << " seed=" << seed);
  Data<double> data(p, seed, 1.5);
  Tensor<double, 4> dout({p.b, p.hq, p.nq, p.dv});
  std::mt19937 g(seed * 7 + 3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto& x : dout) x = u(g);
  const Grads<double> gd = run_backward<double>(pol, data.q, data.k, data.v, dout, ex, opts);
  AttentionOptions fo = opts;
  fo.decode = DecodeMode::never;
  auto loss = [&] {
    Tensor<double, 4> out({p.b, p.hq, p.nq, p.dv});
    attention(pol, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), fo);
    double s = 0;
    for (index_t i = 0; i < out.size(); ++i) s += out.data()[i] * dout.data()[i];
    return s;
  };
  const double h = 1e-6;
  long bad = 0;
  std::string first;
  auto probe = [&](double* x, index_t n, const double* grad, const char* name) {
    if (n == 0) return;
    const index_t count = std::min<index_t>(samples, n);
    for (index_t t = 0; t < count; ++t) {
      const index_t e = n <= samples ? t : static_cast<index_t>(g() % static_cast<unsigned>(n));
      const double x0 = x[e];
      x[e] = x0 + h;
      const double lp = loss();
      x[e] = x0 - h;
      const double lm = loss();
      x[e] = x0;
      const double fd = (lp - lm) / (2 * h);
      if (!(std::abs(fd - grad[e]) <= 2e-6 * (1 + std::abs(fd))) && bad++ == 0)
        first = std::string(name) + "[" + std::to_string(e) + "] = " + std::to_string(grad[e]) +
                ", finite difference " + std::to_string(fd);
    }
  };
  probe(data.q.data(), data.q.size(), gd.dq.data(), "dq");
  probe(data.k.data(), data.k.size(), gd.dk.data(), "dk");
  probe(data.v.data(), data.v.size(), gd.dv.data(), "dv");
  if (ex.gate_heads)
    probe(ex.gate_heads->data(), ex.gate_heads->size(), gd.dgate_heads.data(), "dgate_heads");
  if (ex.gate) probe(ex.gate->data(), ex.gate->size(), gd.dgate.data(), "dgate");
  if (ex.sinks)
    probe(ex.sinks->data(), static_cast<index_t>(ex.sinks->size()), gd.dsinks.data(), "dsinks");
  INFO("first: " << first);
  CHECK(bad == 0);
  if constexpr (WithFloat) {
    // float: every element against the double gradient, relative to the tensor's largest.
    const Grads<float> gf = run_backward<float>(pol, cast4<float>(data.q), cast4<float>(data.k),
                                                cast4<float>(data.v), cast4<float>(dout), ex, opts);
    auto compare = [&](const auto& a, const auto& b, const char* name) {
      double mx = 0, err = 0;
      for (index_t i = 0; i < b.size(); ++i) {
        mx = std::max(mx, std::abs(double(b.data()[i])));
        err = std::max(err, std::abs(double(a.data()[i]) - double(b.data()[i])));
      }
      INFO(name << ": largest |float - double| " << err << " of largest " << mx);
      CHECK(err <= 2e-4 * mx + 1e-6);
    };
    compare(gf.dq, gd.dq, "dq");
    compare(gf.dk, gd.dk, "dk");
    compare(gf.dv, gd.dv, "dv");
    if (ex.gate_heads) compare(gf.dgate_heads, gd.dgate_heads, "dgate_heads");
    if (ex.gate) compare(gf.dgate, gd.dgate, "dgate");
  }
}

/// Small awkward shapes for the finite differences: 1, odd, primes, more keys than rows and
/// fewer, several 64-key and 64-row tiles with short tails, MHA, GQA and MQA.
inline std::vector<Problem> grad_problems() {
  return {
      {1, 1, 1, 1, 1, 1, 1},   {2, 4, 2, 9, 13, 5, 3},  {1, 3, 1, 67, 70, 6, 5},
      {1, 2, 2, 5, 131, 3, 4}, {1, 4, 4, 70, 3, 4, 17},
  };
}

/// Every mask term of docs/CLI.md (but Custom) through the runtime MaskSpec (one instantiation
/// for every term), and with Static the compile-time Causal too (the kernel's constant tile
/// classes): pol::AttentionPolicy(act, mask) checked on every grad problem.
template <Masks which = Masks::all, bool Static = false, class Act>
void check_grads_masks(const Act& act, const std::string& name, unsigned seed, int samples = 10) {
  const auto ps = grad_problems();
  for (std::size_t pi = 0; pi < ps.size(); ++pi) {
    MaskStore st;
    const unsigned s = seed + static_cast<unsigned>(pi);
    if constexpr (Static)
      check_grads(pol::AttentionPolicy(act, pol::Causal{}), ps[pi], s, name + " causal", {}, {},
                  samples);
    for_each_mask<which>(
        ps[pi], st, s, [&](auto mask, const ref::MaskTerm&, const std::string& mname) {
          if constexpr (std::is_constructible_v<pol::MaskSpecTerm, decltype(mask)>) {
            pol::MaskSpec ms;
            ms.add(mask, mname);
            check_grads(pol::AttentionPolicy(act, ms), ps[pi], s, name + " mask " + mname, {}, {},
                        samples);
          }
        });
  }
}

}  // namespace attnkit::test
