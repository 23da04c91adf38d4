// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A consumer program, built by each consumer project (add_subdirectory, find_package, single
// header): a fused attention() call with a composed policy (causal softmax with a sliding
// window, GQA 4/2) and an einsum, both checked against plain loops in double. Prints the
// architecture report; with ATTNKIT_CONSUMER_EXPECT_NATIVE (attnkit::native) the kernels must be
// the CPU's best, otherwise a hint must say so whenever they are not.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include ATTNKIT_CONSUMER_HEADER

namespace pol = attnkit::policy;
using attnkit::index_t;

int main() {
  constexpr index_t B = 2, Hq = 4, Hkv = 2, N = 19, D = 12, W = 5;
  attnkit::Tensor<float, 4> q({B, Hq, N, D}), k({B, Hkv, N, D}), v({B, Hkv, N, D});
  attnkit::Tensor<float, 4> out({B, Hq, N, D});
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = normal(rng);

  const pol::AttentionPolicy policy{pol::Softmax{}, pol::And<pol::Causal, pol::SlidingWindow>{
                                                        pol::Causal{}, pol::SlidingWindow{W}}};
  attnkit::attention(policy, q.cview(), k.cview(), v.cview(), out.view());

  double err = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < Hq; ++h)
      for (index_t i = 0; i < N; ++i) {
        const index_t g = h / (Hq / Hkv);
        double s[N], mx = -INFINITY, sum = 0;
        for (index_t j = 0; j < N; ++j) {
          s[j] = 0;
          for (index_t c = 0; c < D; ++c) s[j] += double(q(b, h, i, c)) * double(k(b, g, j, c));
          s[j] /= std::sqrt(double(D));
          if (j <= i && i - j < W) mx = std::fmax(mx, s[j]);
        }
        for (index_t j = 0; j < N; ++j) sum += (j <= i && i - j < W) ? std::exp(s[j] - mx) : 0;
        for (index_t c = 0; c < D; ++c) {
          double o = 0;
          for (index_t j = 0; j <= i; ++j)
            if (i - j < W) o += std::exp(s[j] - mx) / sum * double(v(b, g, j, c));
          err = std::fmax(err, std::fabs(o - double(out(b, h, i, c))));
        }
      }

  // einsum: the scores of head 0 of batch 0, [N, N] = q[0, 0] · k[0, 0]ᵀ.
  attnkit::Tensor<float, 2> scores({N, N});
  attnkit::einsum<"qd,kd->qk">(scores, q.view()[0][0], k.view()[0][0]);
  double err_einsum = 0;
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < N; ++j) {
      double s = 0;
      for (index_t c = 0; c < D; ++c) s += double(q(0, 0, i, c)) * double(k(0, 0, j, c));
      err_einsum = std::fmax(err_einsum, std::fabs(s - double(scores(i, j))));
    }

  const std::string runs = attnkit::simd::dispatch_arch_name();
  const std::string best = attnkit::simd::cpu_best_arch_name();
  const std::string hint = attnkit::simd::arch_hint();
  std::printf(
      "attnkit %s: kernels %s, CPU best %s, max |attention - reference| %.2e, "
      "max |einsum - reference| %.2e\n",
      attnkit::version_string, runs.c_str(), best.c_str(), err, err_einsum);
  if (!hint.empty()) std::printf("%s\n", hint.c_str());
  bool ok = err < 1e-5 && err_einsum < 1e-4;
  ok = ok && (hint.empty() == (runs == best));
#if defined(ATTNKIT_CONSUMER_EXPECT_NATIVE)
  ok = ok && runs == best;
#endif
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
