// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Plain double-precision attention that follows CLI.md literally: it materializes S and P
// [B, Hq, Nq, Nk] and shares no code with the library's policies (masks are described by
// CLI.md's terms, not by the policy types under test).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "attnkit/core/tensor.hpp"

namespace attnkit::ref {

/// One term of CLI.md's mask table.
struct MaskTerm {
  enum Kind { none, causal, sliding, local, sinks, prefix_lm, padding, keep, document, block_sparse, custom };
  Kind kind = none;
  index_t a = 0;  ///< W, P, S, or BQ
  index_t c = 0;  ///< W of sinks, or BK
  std::vector<long> ints;  ///< lengths [B] / keep [B, Nk] / seg [B, Nk] / layout [B, Hq, nbq, nbk]
  index_t nbq = 0, nbk = 0;  ///< block-sparse layout extents
  std::function<bool(index_t, index_t, index_t, index_t)> predicate;  ///< custom (b, h, i', j)
  MaskTerm(Kind k = none, index_t a_ = 0, index_t c_ = 0) : kind(k), a(a_), c(c_) {}  // NOLINT
};

/// An attention variant as CLI.md names it, plus the library's score mods and gates.
struct Spec {
  std::string activation = "softmax";  ///< a CLI.md activation name ("softcap" uses `cap`)
  double cap = 50.0;
  bool bias_given = false;
  double bias = 0.0;
  std::vector<MaskTerm> terms;  ///< joined by AND (CLI.md's '+'), or by OR when any_term
  bool any_term = false;
  double scale = 0.0;  ///< 0: 1/sqrt(D)
  // score mods, applied in this order after scaling
  std::vector<double> alibi_slopes;  ///< per query head; empty: none
  std::vector<double> key_bias;      ///< [B, Nk] or [Nk]; empty: none
  double temperature = 0.0;          ///< 0: none
  // gate
  std::string gate = "none";  ///< none / headwise / elementwise
  std::vector<double> gate_values;
};

/// Whether key j is visible to query position i' = ip under one term (CLI.md's table).
inline bool term_visible(const MaskTerm& t, index_t b, index_t h, index_t ip, index_t j,
                         index_t nk) {
  switch (t.kind) {
    case MaskTerm::none: return true;
    case MaskTerm::causal: return j <= ip;
    case MaskTerm::sliding: return j <= ip && ip - j < t.a;
    case MaskTerm::local: return std::abs(ip - j) <= t.a;
    case MaskTerm::sinks: return j <= ip && (j < t.a || ip - j < t.c);
    case MaskTerm::prefix_lm: return j < t.a || j <= ip;
    case MaskTerm::padding: return j < t.ints[static_cast<std::size_t>(b)];
    case MaskTerm::keep: return t.ints[static_cast<std::size_t>(b * nk + j)] != 0;
    case MaskTerm::document:
      return ip >= 0 && t.ints[static_cast<std::size_t>(b * nk + ip)] ==
                            t.ints[static_cast<std::size_t>(b * nk + j)];
    case MaskTerm::block_sparse: return true;  // needs the raw row i: handled by attention()
    case MaskTerm::custom: return t.predicate(b, h, ip, j);
  }
  return true;
}

/// out [B, Hq, Nq, Dv] and P [B, Hq, Nq, Nk] in double.
template <class T>
void attention(const Spec& spec, TensorView<const T, 4> q, TensorView<const T, 4> k,
               TensorView<const T, 4> v, Tensor<double, 4>& out, Tensor<double, 4>& probs) {
  const index_t nb = q.extent(0), hq = q.extent(1), nq = q.extent(2), d = q.extent(3);
  const index_t hkv = k.extent(1), nk = k.extent(2), dv = v.extent(3);
  const index_t group = hq / hkv;
  const double scale = spec.scale != 0.0 ? spec.scale : 1.0 / std::sqrt(double(d));
  out = Tensor<double, 4>({nb, hq, nq, dv});
  probs = Tensor<double, 4>({nb, hq, nq, nk});
  Tensor<double, 4> s({nb, hq, nq, nk});
  Tensor<unsigned char, 4> vis({nb, hq, nq, nk});
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < nq; ++i) {
        const index_t ip = i + (nk - nq);
        for (index_t j = 0; j < nk; ++j) {
          double acc = 0;
          for (index_t c = 0; c < d; ++c)
            acc += double(q(b, h, i, c)) * double(k(b, h / group, j, c));
          double x = scale * acc;
          if (!spec.alibi_slopes.empty())
            x -= spec.alibi_slopes[static_cast<std::size_t>(h)] * double(std::abs(ip - j));
          if (!spec.key_bias.empty())
            x += spec.key_bias[static_cast<std::size_t>(
                static_cast<index_t>(spec.key_bias.size()) == nk ? j : b * nk + j)];
          if (spec.temperature != 0.0) x /= spec.temperature;
          s(b, h, i, j) = x;
          bool visible = !spec.any_term;
          for (const MaskTerm& t : spec.terms) {
            bool tv;
            if (t.kind == MaskTerm::block_sparse) {
              const index_t nbq = t.nbq, nbk = t.nbk;
              tv = t.ints[static_cast<std::size_t>(((b * hq + h) * nbq + i / t.a) * nbk + j / t.c)] != 0;
            } else {
              tv = term_visible(t, b, h, ip, j, nk);
            }
            visible = spec.any_term ? (visible || tv) : (visible && tv);
          }
          if (spec.terms.empty()) visible = true;
          vis(b, h, i, j) = visible ? 1 : 0;
        }
      }
  const std::string& a = spec.activation;
  const double bias = spec.bias_given ? spec.bias : -std::log(double(nk));
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  auto capped = [&](double y) { return a == "softcap" ? spec.cap * std::tanh(y / spec.cap) : y; };
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < nq; ++i) {
        // Row statistics over the visible keys (softmax, softcap, normalized-sigmoid).
        double m = -std::numeric_limits<double>::infinity(), sum = 0;
        if (a == "softmax" || a == "softcap") {
          for (index_t j = 0; j < nk; ++j)
            if (vis(b, h, i, j)) m = std::max(m, capped(s(b, h, i, j)));
          for (index_t j = 0; j < nk; ++j)
            if (vis(b, h, i, j)) sum += std::exp(capped(s(b, h, i, j)) - m);
        } else if (a == "normalized-sigmoid") {
          for (index_t j = 0; j < nk; ++j)
            if (vis(b, h, i, j)) sum += sigmoid(s(b, h, i, j));
        }
        for (index_t j = 0; j < nk; ++j) {
          if (!vis(b, h, i, j)) continue;
          const double x = s(b, h, i, j);
          double p = 0;
          if (a == "softmax" || a == "softcap") {
            p = std::exp(capped(x) - m) / sum;
          } else if (a == "normalized-sigmoid") {
            p = sigmoid(x) / sum;
          } else if (a == "sigmoid") {
            p = sigmoid(x);
          } else if (a == "sigmoid-bias") {
            p = sigmoid(x + bias);
          } else if (a == "linear") {
            p = x;
          } else if (a == "relu") {
            p = std::max(x, 0.0);
          } else if (a == "head-softmax") {
            double mh = -std::numeric_limits<double>::infinity();
            for (index_t hh = 0; hh < hq; ++hh)
              if (vis(b, hh, i, j)) mh = std::max(mh, s(b, hh, i, j));
            double sh = 0;
            for (index_t hh = 0; hh < hq; ++hh)
              if (vis(b, hh, i, j)) sh += std::exp(s(b, hh, i, j) - mh);
            p = std::exp(x - mh) / sh;
          }
          probs(b, h, i, j) = p;
        }
      }
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < nq; ++i)
        for (index_t c = 0; c < dv; ++c) {
          double acc = 0;
          for (index_t j = 0; j < nk; ++j) acc += probs(b, h, i, j) * double(v(b, h / group, j, c));
          if (spec.gate == "headwise")
            acc *= sigmoid(spec.gate_values[static_cast<std::size_t>((b * hq + h) * nq + i)]);
          else if (spec.gate == "elementwise")
            acc *= sigmoid(spec.gate_values[static_cast<std::size_t>(((b * hq + h) * nq + i) * dv + c)]);
          out(b, h, i, c) = acc;
        }
}

}  // namespace attnkit::ref
