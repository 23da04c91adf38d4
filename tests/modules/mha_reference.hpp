// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A plain double-precision multi-head self-attention with RoPE, GQA, causal mask, docs/CLI.md's
// activations and the sigmoid output gate, written from the definitions, and a test driver.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/modules/multi_head_attention.hpp"

#include "block/block_reference.hpp"

namespace block_test {

struct MhaWeights {
  Mat wq, wk, wv, wo, wg;  // wg empty (rows 0) when ungated
};

inline MhaWeights random_mha(index_t hid, index_t hq, index_t hkv, index_t d, int gate,
                             std::uint32_t seed) {
  MhaWeights w;
  const double s = 1.0 / std::sqrt(double(hid));
  w.wq = random_mat(hq * d, hid, seed + 1, s);
  w.wk = random_mat(hkv * d, hid, seed + 2, s);
  w.wv = random_mat(hkv * d, hid, seed + 3, s);
  w.wo = random_mat(hid, hq * d, seed + 4, 1.0 / std::sqrt(double(hq * d)));
  if (gate == 1) w.wg = random_mat(hq, hid, seed + 5, 2 * s);
  if (gate == 2) w.wg = random_mat(hq * d, hid, seed + 5, 2 * s);
  return w;
}

/// One sequence x [N, hid] at positions 0..N-1 (plus `offset`); causal; activation by CLI name.
inline Mat ref_mha(const std::string& act, const Mat& x, const MhaWeights& w, index_t hq,
                   index_t hkv, index_t d, double theta, const std::vector<index_t>& pos) {
  const index_t n = x.rows;
  const Mat q = ref_linear(x, w.wq), k = ref_linear(x, w.wk), v = ref_linear(x, w.wv);
  auto head = [&](const Mat& m, index_t h, index_t r) {
    std::vector<double> row(static_cast<std::size_t>(d));
    for (index_t c = 0; c < d; ++c) row[static_cast<std::size_t>(c)] = m(r, h * d + c);
    return ref_rope_row(row, double(pos[static_cast<std::size_t>(r)]), d, theta, false);
  };
  // s[h][i][j]
  std::vector<std::vector<std::vector<double>>> s(
      static_cast<std::size_t>(hq),
      std::vector<std::vector<double>>(static_cast<std::size_t>(n),
                                       std::vector<double>(static_cast<std::size_t>(n), 0.0)));
  for (index_t h = 0; h < hq; ++h)
    for (index_t i = 0; i < n; ++i) {
      const auto qi = head(q, h, i);
      for (index_t j = 0; j <= i; ++j) {
        const auto kj = head(k, h / (hq / hkv), j);
        double dot = 0;
        for (index_t c = 0; c < d; ++c)
          dot += qi[static_cast<std::size_t>(c)] * kj[static_cast<std::size_t>(c)];
        s[h][i][j] = dot / std::sqrt(double(d));
      }
    }
  auto sig = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  Mat o(n, hq * d);
  for (index_t h = 0; h < hq; ++h)
    for (index_t i = 0; i < n; ++i) {
      std::vector<double> p(static_cast<std::size_t>(i + 1));
      double sum = 0, mx = -1e300;
      for (index_t j = 0; j <= i; ++j) mx = std::max(mx, s[h][i][j]);
      for (index_t j = 0; j <= i; ++j) {
        const double z = s[h][i][j];
        double& pj = p[static_cast<std::size_t>(j)];
        if (act == "softmax")
          pj = std::exp(z - mx);
        else if (act == "sigmoid")
          pj = sig(z);
        else if (act == "sigmoid-bias")
          pj = sig(z - std::log(double(n)));
        else if (act == "normalized-sigmoid")
          pj = sig(z);
        else if (act == "linear")
          pj = z;
        else if (act == "relu")
          pj = z > 0 ? z : 0;
        else if (act == "head-softmax") {
          double hs = 0;
          for (index_t g = 0; g < hq; ++g) hs += std::exp(s[g][i][j]);
          pj = std::exp(z) / hs;
        }
        sum += pj;
      }
      if (act == "softmax" || act == "normalized-sigmoid")
        for (double& pj : p) pj /= sum;
      for (index_t j = 0; j <= i; ++j)
        for (index_t c = 0; c < d; ++c)
          o(i, h * d + c) += p[static_cast<std::size_t>(j)] * v(j, (h / (hq / hkv)) * d + c);
    }
  if (w.wg.rows > 0) {
    const Mat g = ref_linear(x, w.wg);
    for (index_t i = 0; i < n; ++i)
      for (index_t h = 0; h < hq; ++h)
        for (index_t c = 0; c < d; ++c)
          o(i, h * d + c) *= sig(w.wg.rows == hq ? g(i, h) : g(i, h * d + c));
  }
  return ref_linear(o, w.wo);
}

/// Runs MultiHeadAttention<Policy> on B sequences and compares with ref_mha.
template <class Policy>
void check_mha(const std::string& act, index_t nb, index_t n, index_t hid, index_t hq, index_t hkv,
               index_t d, int gate, double tolerance) {
  using T = float;
  const MhaWeights w = random_mha(hid, hq, hkv, d, gate, 40);
  std::vector<attnkit::Tensor<T, 2>> keep;
  keep.reserve(5);
  for (const Mat* m : {&w.wq, &w.wk, &w.wv, &w.wo, &w.wg}) keep.push_back(to_tensor<T>(*m));
  attnkit::modules::MultiHeadAttention<Policy, T> mha;
  mha.heads = hq;
  mha.kv_heads = hkv;
  mha.head_dim = d;
  mha.q_proj.weight = keep[0].cview();
  mha.k_proj.weight = keep[1].cview();
  mha.v_proj.weight = keep[2].cview();
  mha.o_proj.weight = keep[3].cview();
  if (gate != 0) mha.g_proj = keep[4].cview();
  mha.rope.emplace(d, 10000.0);
  std::vector<Mat> xs;
  attnkit::Tensor<T, 3> x({nb, n, hid}), y({nb, n, hid});
  for (index_t b = 0; b < nb; ++b) {
    xs.push_back(rounded<T>(random_mat(n, hid, 70 + static_cast<std::uint32_t>(b))));
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < hid; ++c) x(b, i, c) = static_cast<T>(xs.back()(i, c));
  }
  std::vector<index_t> pos(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = i;
  mha.forward(x.cview(), pos, y.view());
  const MhaWeights wr{rounded<T>(w.wq), rounded<T>(w.wk), rounded<T>(w.wv), rounded<T>(w.wo),
                      rounded<T>(w.wg)};
  double err = 0, mag = 0;
  for (index_t b = 0; b < nb; ++b) {
    const Mat ref = ref_mha(act, xs[static_cast<std::size_t>(b)], wr, hq, hkv, d, 10000.0, pos);
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < hid; ++c) {
        err = std::max(err, std::abs(double(y(b, i, c)) - ref(i, c)));
        mag = std::max(mag, std::abs(ref(i, c)));
      }
  }
  INFO(act << " B " << nb << " N " << n << " Hq " << hq << " Hkv " << hkv << " D " << d << " gate "
           << gate << " max|ref| " << mag);
  CHECK(err <= tolerance * std::max(1.0, mag));
  CHECK(mag > 0.01);  // the comparison is not vacuous
}

}  // namespace block_test
