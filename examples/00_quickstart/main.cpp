// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Quickstart: tensors and views, and softmax attention of one head written with them.
#include <cmath>
#include <cstdio>
#include <random>

#include "attnkit/attnkit.hpp"

int main() {
  using attnkit::index_t;
  constexpr index_t n = 6, d = 4;
  attnkit::Tensor<float, 2> q({n, d}), k({n, d}), v({n, d}), out({n, d});
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = normal(rng);

  // Causal softmax attention, one row at a time, weights printed as a small table.
  const float scale = 1.0f / std::sqrt(float(d));
  std::printf("causal softmax attention weights (%td x %td):\n", n, n);
  for (index_t i = 0; i < n; ++i) {
    float s[n], mx = -INFINITY, sum = 0;
    for (index_t j = 0; j <= i; ++j) {
      s[j] = 0;
      for (index_t c = 0; c < d; ++c) s[j] += q(i, c) * k(j, c) * scale;
      mx = std::fmax(mx, s[j]);
    }
    for (index_t j = 0; j <= i; ++j) sum += (s[j] = std::exp(s[j] - mx));
    for (index_t j = 0; j < n; ++j) {
      const float p = j <= i ? s[j] / sum : 0.0f;
      std::printf(" %5.3f", double(p));
      for (index_t c = 0; c < d; ++c) out(i, c) += p * v(j, c);
    }
    std::printf("\n");
  }
  std::printf("output row %td: %.4f %.4f %.4f %.4f\n", n - 1, double(out(n - 1, 0)),
              double(out(n - 1, 1)), double(out(n - 1, 2)), double(out(n - 1, 3)));
  return 0;
}
