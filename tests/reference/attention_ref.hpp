// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Plain double-precision attention that follows docs/CLI.md literally: it materializes S and P
// [B, Hq, Nq, Nk] and shares no code with the library's policies (masks are described by
// docs/CLI.md's terms, not by the policy types under test).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "attnkit/core/tensor.hpp"

namespace attnkit::ref {

/// One term of docs/CLI.md's mask table.
struct MaskTerm {
  enum Kind {
    none,
    causal,
    causal_top_left,
    sliding,
    local,
    sinks,
    prefix_lm,
    padding,
    keep,
    document,
    block_sparse,
    custom
  };
  Kind kind = none;
  index_t a = 0;           ///< W, P, S, BQ, or Nk - Nq of causal_top_left
  index_t c = 0;           ///< W of sinks, or BK
  std::vector<long> ints;  ///< lengths [B] / keep [B, Nk] / seg [B, Nk] / layout [B, Hq, nbq, nbk]
  index_t nbq = 0, nbk = 0;  ///< block-sparse layout extents
  std::function<bool(index_t, index_t, index_t, index_t)> predicate;  ///< custom (b, h, i', j)
  MaskTerm(Kind k = none, index_t a_ = 0, index_t c_ = 0) : kind(k), a(a_), c(c_) {}  // NOLINT
};

/// An attention variant as docs/CLI.md names it, plus the library's score mods and gates.
struct Spec {
  std::string activation = "softmax";  ///< a docs/CLI.md activation name ("softcap" uses `cap`)
  double cap = 50.0;
  bool bias_given = false;
  double bias = 0.0;
  std::vector<MaskTerm> terms;  ///< joined by AND (docs/CLI.md's '+'), or by OR when any_term
  bool any_term = false;
  double scale = 0.0;  ///< 0: 1/sqrt(D)
  // score mods, applied in this order after scaling
  std::vector<double> alibi_slopes;  ///< per query head; empty: none
  std::vector<double> key_bias;      ///< [B, Nk] or [Nk]; empty: none
  double temperature = 0.0;          ///< 0: none
  // gate
  std::string gate = "none";  ///< none / headwise / elementwise
  std::vector<double> gate_values;
  /// learned sink logits, one per query head (softmax family only); empty: none
  std::vector<double> sink_logits;
};

/// Whether key j is visible to query position i' = ip under one term (docs/CLI.md's table).
inline bool term_visible(const MaskTerm& t, index_t b, index_t h, index_t ip, index_t j,
                         index_t nk) {
  switch (t.kind) {
    case MaskTerm::none:
      return true;
    case MaskTerm::causal:
      return j <= ip;
    case MaskTerm::causal_top_left:
      return j <= ip - t.a;  // j <= i, the raw row
    case MaskTerm::sliding:
      return j <= ip && ip - j < t.a;
    case MaskTerm::local:
      return std::abs(ip - j) <= t.a;
    case MaskTerm::sinks:
      return j <= ip && (j < t.a || ip - j < t.c);
    case MaskTerm::prefix_lm:
      return j < t.a || j <= ip;
    case MaskTerm::padding:
      return j < t.ints[static_cast<std::size_t>(b)];
    case MaskTerm::keep:
      return t.ints[static_cast<std::size_t>(b * nk + j)] != 0;
    case MaskTerm::document:
      return ip >= 0 && t.ints[static_cast<std::size_t>(b * nk + ip)] ==
                            t.ints[static_cast<std::size_t>(b * nk + j)];
    case MaskTerm::block_sparse:
      return true;  // needs the raw row i: handled by attention()
    case MaskTerm::custom:
      return t.predicate(b, h, ip, j);
  }
  return true;
}

/// out [B, Hq, Nq, Dv] and P [B, Hq, Nq, Nk] in double. The inputs are copied once into plain
/// row-major double arrays (the loops below index them directly: this reference runs under the
/// sanitizers for every test case, and element access through checked views dominated it).
template <class T>
void attention(const Spec& spec, TensorView<const T, 4> q, TensorView<const T, 4> k,
               TensorView<const T, 4> v, Tensor<double, 4>& out, Tensor<double, 4>& probs,
               Tensor<double, 3>* state = nullptr) {
  const index_t nb = q.extent(0), hq = q.extent(1), nq = q.extent(2), d = q.extent(3);
  const index_t hkv = k.extent(1), nk = k.extent(2), dv = v.extent(3);
  const index_t group = hq / hkv;
  const double scale = spec.scale != 0.0 ? spec.scale : 1.0 / std::sqrt(double(d));
  auto dense = [](TensorView<const T, 4> x) {
    std::vector<double> r;
    r.reserve(static_cast<std::size_t>(x.size()));
    for (index_t a = 0; a < x.extent(0); ++a)
      for (index_t b = 0; b < x.extent(1); ++b)
        for (index_t c = 0; c < x.extent(2); ++c)
          for (index_t e = 0; e < x.extent(3); ++e) r.push_back(double(x(a, b, c, e)));
    return r;
  };
  const std::vector<double> qd = dense(q), kd = dense(k), vd = dense(v);
  // Flat indices of [B, Hq, Nq, Nk] (scores, visibility, P) and of the rows of q, k, v.
  auto at = [&](index_t b, index_t h, index_t i, index_t j) {
    return static_cast<std::size_t>(((b * hq + h) * nq + i) * nk + j);
  };
  auto qrow = [&](index_t b, index_t h, index_t i) {
    return &qd[static_cast<std::size_t>(((b * hq + h) * nq + i) * d)];
  };
  auto krow = [&](index_t b, index_t hk, index_t j) {
    return &kd[static_cast<std::size_t>(((b * hkv + hk) * nk + j) * d)];
  };
  auto vrow = [&](index_t b, index_t hk, index_t j) {
    return &vd[static_cast<std::size_t>(((b * hkv + hk) * nk + j) * dv)];
  };
  out = Tensor<double, 4>({nb, hq, nq, dv});
  probs = Tensor<double, 4>({nb, hq, nq, nk});
  if (state) *state = Tensor<double, 3>({nb, hq, nq});
  std::vector<double> s(static_cast<std::size_t>(nb * hq * nq * nk));
  std::vector<unsigned char> vis(s.size());
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < nq; ++i) {
        const index_t ip = i + (nk - nq);
        const double* qi = qrow(b, h, i);
        for (index_t j = 0; j < nk; ++j) {
          const double* kj = krow(b, h / group, j);
          double acc = 0;
          for (index_t c = 0; c < d; ++c) acc += qi[c] * kj[c];
          double x = scale * acc;
          if (!spec.alibi_slopes.empty())
            x -= spec.alibi_slopes[static_cast<std::size_t>(h)] * double(std::abs(ip - j));
          if (!spec.key_bias.empty())
            x += spec.key_bias[static_cast<std::size_t>(
                static_cast<index_t>(spec.key_bias.size()) == nk ? j : b * nk + j)];
          if (spec.temperature != 0.0) x /= spec.temperature;
          s[at(b, h, i, j)] = x;
          bool visible = !spec.any_term;
          for (const MaskTerm& t : spec.terms) {
            bool tv;
            if (t.kind == MaskTerm::block_sparse) {
              const index_t nbq = t.nbq, nbk = t.nbk;
              tv = t.ints[static_cast<std::size_t>(((b * hq + h) * nbq + i / t.a) * nbk +
                                                   j / t.c)] != 0;
            } else {
              tv = term_visible(t, b, h, ip, j, nk);
            }
            visible = spec.any_term ? (visible || tv) : (visible && tv);
          }
          if (spec.terms.empty()) visible = true;
          if (x == -std::numeric_limits<double>::infinity()) visible = false;  // weight 0
          vis[at(b, h, i, j)] = visible ? 1 : 0;
        }
      }
  enum class Act {
    softmax,
    softcap,
    normalized_sigmoid,
    sigmoid,
    sigmoid_bias,
    linear,
    relu,
    head_softmax
  };
  const std::string& a = spec.activation;
  const Act act = a == "softmax"              ? Act::softmax
                  : a == "softcap"            ? Act::softcap
                  : a == "normalized-sigmoid" ? Act::normalized_sigmoid
                  : a == "sigmoid"            ? Act::sigmoid
                  : a == "sigmoid-bias"       ? Act::sigmoid_bias
                  : a == "linear"             ? Act::linear
                  : a == "relu"               ? Act::relu
                  : a == "head-softmax"       ? Act::head_softmax
                                              : throw std::invalid_argument("ref: activation " + a);
  const double bias = spec.bias_given ? spec.bias : -std::log(double(nk));
  const double ns_bias = spec.bias_given ? spec.bias : 0.0;  // normalized-sigmoid: b = 0 default
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  auto log_sigmoid = [](double x) { return std::min(x, 0.0) - std::log1p(std::exp(-std::abs(x))); };
  auto capped = [&](double y) {
    return act == Act::softcap ? spec.cap * std::tanh(y / spec.cap) : y;
  };
  double* pd = probs.data();
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < nq; ++i) {
        // Row statistics over the visible keys (softmax, softcap, normalized-sigmoid).
        double m = -std::numeric_limits<double>::infinity(), sum = 0;
        if (act == Act::softmax || act == Act::softcap) {
          for (index_t j = 0; j < nk; ++j)
            if (vis[at(b, h, i, j)]) m = std::max(m, capped(s[at(b, h, i, j)]));
          for (index_t j = 0; j < nk; ++j)
            if (vis[at(b, h, i, j)]) sum += std::exp(capped(s[at(b, h, i, j)]) - m);
        } else if (act == Act::normalized_sigmoid) {
          // sigmoid(x) / Σ sigmoid(x') = exp(log σ(x) - m) / Σ exp(log σ(x') - m): the same
          // ratio, and no 0 / 0 where every sigmoid underflows.
          for (index_t j = 0; j < nk; ++j)
            if (vis[at(b, h, i, j)]) m = std::max(m, log_sigmoid(s[at(b, h, i, j)] + ns_bias));
          for (index_t j = 0; j < nk; ++j)
            if (vis[at(b, h, i, j)]) sum += std::exp(log_sigmoid(s[at(b, h, i, j)] + ns_bias) - m);
        }
        const bool exp_family =
            act == Act::softmax || act == Act::softcap || act == Act::normalized_sigmoid;
        if (exp_family && !spec.sink_logits.empty()) {  // a key of score z_h and no value
          const double z = spec.sink_logits[static_cast<std::size_t>(h)];
          const double m2 = std::max(m, z);
          sum = sum * (m == -std::numeric_limits<double>::infinity() ? 0.0 : std::exp(m - m2)) +
                std::exp(z - m2);
          m = m2;
        }
        if (state)
          (*state)(b, h, i) = !exp_family ? 0.0
                              : sum > 0   ? m + std::log(sum)
                                          : -std::numeric_limits<double>::infinity();
        for (index_t j = 0; j < nk; ++j) {
          double p = 0;
          if (vis[at(b, h, i, j)]) {
            const double x = s[at(b, h, i, j)];
            switch (act) {
              case Act::softmax:
              case Act::softcap:
                p = std::exp(capped(x) - m) / sum;
                break;
              case Act::normalized_sigmoid:
                p = std::exp(log_sigmoid(x + ns_bias) - m) / sum;
                break;
              case Act::sigmoid:
                p = sigmoid(x);
                break;
              case Act::sigmoid_bias:
                p = sigmoid(x + bias);
                break;
              case Act::linear:
                p = x;
                break;
              case Act::relu:
                p = std::max(x, 0.0);
                break;
              case Act::head_softmax: {
                double mh = -std::numeric_limits<double>::infinity();
                for (index_t hh = 0; hh < hq; ++hh)
                  if (vis[at(b, hh, i, j)]) mh = std::max(mh, s[at(b, hh, i, j)]);
                double sh = 0;
                for (index_t hh = 0; hh < hq; ++hh)
                  if (vis[at(b, hh, i, j)]) sh += std::exp(s[at(b, hh, i, j)] - mh);
                p = std::exp(x - mh) / sh;
                break;
              }
            }
          }
          pd[at(b, h, i, j)] = p;
        }
      }
  double* od = out.data();
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < nq; ++i) {
        const double* pi = pd + at(b, h, i, 0);
        for (index_t c = 0; c < dv; ++c) {
          double acc = 0;
          for (index_t j = 0; j < nk; ++j) acc += pi[j] * vrow(b, h / group, j)[c];
          if (spec.gate == "headwise")
            acc *= sigmoid(spec.gate_values[static_cast<std::size_t>((b * hq + h) * nq + i)]);
          else if (spec.gate == "elementwise")
            acc *= sigmoid(
                spec.gate_values[static_cast<std::size_t>(((b * hq + h) * nq + i) * dv + c)]);
          od[static_cast<std::size_t>(((b * hq + h) * nq + i) * dv + c)] = acc;
        }
      }
}

}  // namespace attnkit::ref
