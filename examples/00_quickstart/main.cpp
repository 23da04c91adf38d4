// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Quickstart: one fused attention call with a policy composed at compile time (sigmoid weights,
// a causal sliding window of 3 keys, a per-head output gate), its weights P captured, the
// output recomputed from P with einsum, and both checked against a plain loop in double.
#include <cmath>
#include <cstdio>
#include <random>

#include "attnkit/attnkit.hpp"

namespace pol = attnkit::policy;
using attnkit::index_t;

int main() {
  constexpr index_t B = 1, H = 2, N = 7, D = 8;  // batch, heads, tokens, head dimension
  attnkit::Tensor<float, 4> q({B, H, N, D}), k({B, H, N, D}), v({B, H, N, D});
  attnkit::Tensor<float, 4> out({B, H, N, D}), probs({B, H, N, N}), out2({B, H, N, D});
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = normal(rng);

  // The variant is a type: activation, mask, score mod and gate, each a policy.
  // The gate: sigmoid(g[b, h, i]) scales the output row of query i in head h.
  attnkit::Tensor<float, 3> g({B, H, N});
  for (float& x : g) x = normal(rng);
  const pol::AttentionPolicy policy{pol::Sigmoid{}, pol::SlidingWindow{3}, pol::NoScoreMod{},
                                    pol::HeadwiseSigmoid<float>{g.cview()}};
  attnkit::attention(policy, q.cview(), k.cview(), v.cview(), out.view(), probs.view());

  // The weights times V with einsum (P is captured before the gate, so gate it here).
  attnkit::einsum<"bhqk,bhkd->bhqd">(out2, probs, v);

  // The same thing, literally: s = q·k / sqrt(D), P = sigmoid(s) where 0 <= i - j < 3, else 0.
  double err_p = 0, err_out = 0, err_einsum = 0;
  for (index_t h = 0; h < H; ++h) {
    for (index_t i = 0; i < N; ++i) {
      const double gate = 1.0 / (1.0 + std::exp(-double(g(0, h, i))));
      double o[D] = {};
      for (index_t j = 0; j < N; ++j) {
        double s = 0;
        for (index_t c = 0; c < D; ++c) s += double(q(0, h, i, c)) * double(k(0, h, j, c));
        s /= std::sqrt(double(D));
        const double p = (j <= i && i - j < 3) ? 1.0 / (1.0 + std::exp(-s)) : 0.0;
        err_p = std::fmax(err_p, std::fabs(p - double(probs(0, h, i, j))));
        for (index_t c = 0; c < D; ++c) o[c] += p * double(v(0, h, j, c));
      }
      for (index_t c = 0; c < D; ++c) {
        err_out = std::fmax(err_out, std::fabs(gate * o[c] - double(out(0, h, i, c))));
        const double via_einsum = gate * double(out2(0, h, i, c));
        err_einsum = std::fmax(err_einsum, std::fabs(via_einsum - double(out(0, h, i, c))));
      }
    }
  }

  std::printf("sigmoid attention, causal sliding window 3, headwise gate: weights of head 0\n");
  for (index_t i = 0; i < N; ++i) {
    for (index_t j = 0; j < N; ++j) std::printf(" %5.3f", double(probs(0, 0, i, j)));
    std::printf("\n");
  }
  std::printf(
      "max |P - reference| = %.2e, max |out - reference| = %.2e, "
      "max |out - gate * einsum(P, V)| = %.2e\n",
      err_p, err_out, err_einsum);
  const bool ok = err_p < 1e-5 && err_out < 1e-5 && err_einsum < 1e-5;
  std::printf("%s\n", ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
