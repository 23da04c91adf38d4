// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A user-defined attention activation in a few lines outside the library: P = clamp(s, 0, 1)
// (bounded like sigmoid, exactly sparse like relu, no normalization). It runs through the fused
// attention() kernel and a whole LLaMA-style Decoder, side by side with softmax.
//
// usage: 07_custom_activation [MODEL_DIR]
//   MODEL_DIR defaults to the golden softmax model of tests/golden/data (2 layers, hidden 64).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "attnkit/attention/attention.hpp"
#include "attnkit/model/variants.hpp"

// ---- the user's activation: this is all it takes -------------------------------------------
/// P = clamp(s, 0, 1). The fused kernel calls simd_map() on every score vector of a tile, for
/// whichever SIMD architecture it runs (AVX-512, AVX2, SSE2); map() is the same function on one
/// double (references, scalar paths) and derivative() its slope (the backward pass). Invisible
/// pairs stay exactly 0 whatever the map says.
struct Clamp {
  static constexpr auto normalization = attnkit::policy::Normalization::none;
  double map(double s) const noexcept { return std::clamp(s, 0.0, 1.0); }
  double derivative(double s) const noexcept { return s > 0 && s < 1 ? 1.0 : 0.0; }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return xsimd::min(xsimd::max(s, xsimd::batch<T, Arch>(T(0))), xsimd::batch<T, Arch>(T(1)));
  }
  Clamp bind(const attnkit::policy::Geometry&) const noexcept { return *this; }
};
static_assert(attnkit::policy::score_activation<Clamp>);
// ----------------------------------------------------------------------------------------------

namespace {

using attnkit::index_t;
using attnkit::Tensor;
namespace pol = attnkit::policy;

/// Row statistics of P: mean row sum and the share of exact zeros among visible pairs.
void p_stats(const Tensor<float, 4>& p, double& row_sum, double& zeros) {
  const index_t rows = p.extent(0) * p.extent(1) * p.extent(2), nk = p.extent(3);
  row_sum = 0;
  zeros = 0;
  double visible = 0;
  for (index_t r = 0; r < rows; ++r) {
    const index_t i = r % p.extent(2);
    for (index_t j = 0; j <= i; ++j) {  // causal: keys 0..i are visible
      row_sum += p.data()[r * nk + j];
      zeros += p.data()[r * nk + j] == 0.0f ? 1 : 0;
      visible += 1;
    }
  }
  row_sum /= double(rows);
  zeros /= visible;
}

template <class Act>
void run_attention(const char* name, const Tensor<float, 4>& q, const Tensor<float, 4>& k,
                   const Tensor<float, 4>& v) {
  const pol::AttentionPolicy<Act, pol::Causal> policy{};
  Tensor<float, 4> out({q.extent(0), q.extent(1), q.extent(2), v.extent(3)});
  Tensor<float, 4> p({q.extent(0), q.extent(1), q.extent(2), k.extent(2)});
  attnkit::attention(policy, q.cview(), k.cview(), v.cview(), out.view(), p.view());
  // The same call without capture, timed.
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < 5; ++r)
    attnkit::attention(policy, q.cview(), k.cview(), v.cview(), out.view());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5;
  double row_sum, zeros, norm = 0;
  p_stats(p, row_sum, zeros);
  for (const float x : out) norm += double(x) * double(x);
  std::printf(
      "  %-8s mean row sum of P %7.3f   zeros among visible P %5.1f%%   |out| %8.2f   "
      "%6.2f ms\n",
      name, row_sum, 100 * zeros, std::sqrt(norm), ms);
}

template <class Model>
std::vector<std::int64_t> greedy(const Model& m, std::vector<std::int64_t> ids, int steps) {
  std::vector<std::int64_t> out;
  attnkit::model::DecoderState<float> state;
  auto logits = m.forward(ids, state);
  for (int s = 0; s < steps; ++s) {
    const index_t r = logits.extent(0) - 1;
    index_t best = 0;
    for (index_t j = 1; j < logits.extent(1); ++j)
      if (logits(r, j) > logits(r, best)) best = j;
    out.push_back(best);
    logits = m.forward(std::vector<std::int64_t>{best}, state);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : ATTNKIT_EXAMPLE_MODEL_DIR;

  // 1. attention() on random q, k, v: B 1, 8 query / 2 kv heads, 512 tokens, D 64.
  const index_t hq = 8, hkv = 2, n = 512, d = 64;
  Tensor<float, 4> q({1, hq, n, d}), k({1, hkv, n, d}), v({1, hkv, n, d});
  std::mt19937 g(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto* t : {&q, &k, &v})
    for (auto& x : *t) x = nd(g);
  std::printf("attention(): causal, %ld/%ld heads, %ld tokens, D %ld\n", long(hq), long(hkv),
              long(n), long(d));
  run_attention<pol::Softmax>("softmax", q, k, v);
  run_attention<Clamp>("clamp", q, k, v);

  // 2. A LLaMA-style decoder with the clamp activation, on the softmax model's weights.
  using ClampLlama = attnkit::model::LlamaDecoder<Clamp>;
  const auto soft = attnkit::model::SoftmaxLlama::load(dir);
  const auto clamp = ClampLlama::load(dir);
  const std::vector<std::int64_t> prompt{12, 7, 43, 43, 90, 3, 18, 61, 5, 27, 33};
  const auto ls = soft.forward(prompt), lc = clamp.forward(prompt);
  double diff = 0;
  for (index_t i = 0; i < ls.size(); ++i)
    diff = std::max(diff, std::abs(double(ls.data()[i]) - double(lc.data()[i])));
  std::printf("\nDecoder (%s): %ld layers, hidden %ld, %ld/%ld heads\n", dir.c_str(),
              long(soft.config.num_hidden_layers), long(soft.config.hidden_size),
              long(soft.config.num_attention_heads), long(soft.config.num_key_value_heads));
  std::printf("  max |logit difference| clamp vs softmax over the prompt: %.3f\n", diff);
  for (const auto& [name, cont] : {std::pair{"softmax", greedy(soft, prompt, 8)},
                                   std::pair{"clamp", greedy(clamp, prompt, 8)}}) {
    std::printf("  %-8s greedy continuation:", name);
    for (const auto t : cont) std::printf(" %lld", static_cast<long long>(t));
    std::printf("\n");
  }
  std::printf(
      "\n(The weights were trained for softmax, so the clamp model continues differently;"
      "\n the point is that the user's 5-line policy runs in the fused kernel and the "
      "model.)\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
