// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// AdditiveAttention (Bahdanau) and LuongAttention (dot, general, concat) against plain double
// references: awkward shapes, key padding (some rows with no key), strided views, other
// activations, precomputed memory projections, thread counts and shape errors.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/core/parallel.hpp"
#include "attnkit/modules/additive_attention.hpp"
#include "attnkit/modules/luong_attention.hpp"

using attnkit::index_t;
using attnkit::Tensor;
using attnkit::TensorView;
namespace pol = attnkit::policy;

namespace {

template <class T, std::size_t R>
Tensor<T, R> random_tensor(const attnkit::Shape<R>& s, unsigned seed, double amp = 1.0) {
  Tensor<T, R> t(s);
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-amp, amp);
  for (auto& x : t) x = static_cast<T>(u(g));
  return t;
}

/// The scores e [B, Nq, Nk] (double) -> weights per docs/CLI.md's activation, over the visible
/// keys.
std::vector<double> ref_weights(const std::vector<double>& e, index_t nb, index_t nq, index_t nk,
                                const std::vector<index_t>& lengths, const std::string& act) {
  std::vector<double> p(e.size(), 0.0);
  for (index_t b = 0; b < nb; ++b)
    for (index_t i = 0; i < nq; ++i) {
      const index_t n = lengths.empty() ? nk : lengths[static_cast<std::size_t>(b)];
      const double* row = e.data() + (b * nq + i) * nk;
      double* out = p.data() + (b * nq + i) * nk;
      if (n == 0) continue;
      if (act == "softmax") {
        double m = row[0], sum = 0;
        for (index_t j = 1; j < n; ++j) m = std::max(m, row[j]);
        for (index_t j = 0; j < n; ++j) sum += std::exp(row[j] - m);
        for (index_t j = 0; j < n; ++j) out[j] = std::exp(row[j] - m) / sum;
      } else if (act == "sigmoid") {
        for (index_t j = 0; j < n; ++j) out[j] = 1.0 / (1.0 + std::exp(-row[j]));
      } else if (act == "normalized-sigmoid") {
        double sum = 0;
        for (index_t j = 0; j < n; ++j) sum += 1.0 / (1.0 + std::exp(-row[j]));
        for (index_t j = 0; j < n; ++j) out[j] = 1.0 / (1.0 + std::exp(-row[j])) / sum;
      }
    }
  return p;
}

struct Case {
  index_t b, nq, nk, dq, dk, a;
  std::vector<index_t> lengths;  // empty: no padding
};

std::vector<Case> cases() {
  return {{1, 1, 1, 1, 1, 1, {}},
          {2, 3, 5, 4, 4, 3, {5, 2}},
          {3, 7, 11, 5, 13, 17, {11, 0, 6}},
          {1, 13, 67, 16, 16, 33, {}},
          {2, 1, 37, 31, 31, 8, {1, 37}}};
}

/// Compares context and captured weights with the double reference of scores e.
template <class T>
void compare(const Tensor<T, 3>& ctx, const Tensor<T, 3>& w, const std::vector<double>& p,
             const Tensor<T, 3>& memory, const Case& c) {
  double err = 0, perr = 0;
  for (index_t b = 0; b < c.b; ++b)
    for (index_t i = 0; i < c.nq; ++i) {
      for (index_t j = 0; j < c.nk; ++j)
        perr = std::max(perr, std::abs(double(w(b, i, j)) -
                                       p[static_cast<std::size_t>((b * c.nq + i) * c.nk + j)]));
      for (index_t d = 0; d < c.dk; ++d) {
        double acc = 0;  // over the visible keys: padding rows may hold NaN
        for (index_t j = 0; j < (c.lengths.empty() ? c.nk : c.lengths[std::size_t(b)]); ++j)
          acc += p[static_cast<std::size_t>((b * c.nq + i) * c.nk + j)] * double(memory(b, j, d));
        err = std::max(err, std::abs(double(ctx(b, i, d)) - acc));
      }
    }
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-12;
  INFO("B " << c.b << " Nq " << c.nq << " Nk " << c.nk << " Dq " << c.dq << " Dk " << c.dk << " A "
            << c.a << ": context error " << err << ", P error " << perr);
  CHECK(err <= tol);
  CHECK(perr <= tol);
}

template <class T, class Act>
void check_additive(const Case& c, const std::string& act, unsigned seed) {
  const auto q = random_tensor<T, 3>({c.b, c.nq, c.dq}, seed);
  auto memory = random_tensor<T, 3>({c.b, c.nk, c.dk}, seed + 1);
  // Padding rows hold NaN: they must never be read.
  for (index_t b = 0; b < c.b && !c.lengths.empty(); ++b)
    for (index_t j = c.lengths[static_cast<std::size_t>(b)]; j < c.nk; ++j)
      for (index_t d = 0; d < c.dk; ++d) memory(b, j, d) = std::nan("");
  const auto wq = random_tensor<T, 2>({c.a, c.dq}, seed + 2, 0.8),
             wk = random_tensor<T, 2>({c.a, c.dk}, seed + 3, 0.8);
  const auto bq = random_tensor<T, 1>({c.a}, seed + 4, 0.5),
             v = random_tensor<T, 1>({c.a}, seed + 5);
  attnkit::modules::AdditiveAttention<Act, T> att;
  att.query_proj.weight = wq.cview();
  att.query_proj.bias = bq.cview();
  att.memory_proj.weight = wk.cview();
  att.v = v.cview();
  Tensor<T, 3> ctx({c.b, c.nq, c.dk}), w({c.b, c.nq, c.nk});
  att.forward(q.cview(), memory.cview(), ctx.view(), c.lengths, w.view());
  std::vector<double> e(static_cast<std::size_t>(c.b * c.nq * c.nk), 0.0);
  for (index_t b = 0; b < c.b; ++b)
    for (index_t i = 0; i < c.nq; ++i)
      for (index_t j = 0; j < (c.lengths.empty() ? c.nk : c.lengths[static_cast<std::size_t>(b)]);
           ++j) {
        double s = 0;
        for (index_t a = 0; a < c.a; ++a) {
          double t = double(bq(a));
          for (index_t d = 0; d < c.dq; ++d) t += double(wq(a, d)) * double(q(b, i, d));
          for (index_t d = 0; d < c.dk; ++d) t += double(wk(a, d)) * double(memory(b, j, d));
          s += double(v(a)) * std::tanh(t);
        }
        e[static_cast<std::size_t>((b * c.nq + i) * c.nk + j)] = s;
      }
  compare(ctx, w, ref_weights(e, c.b, c.nq, c.nk, c.lengths, act), memory, c);

  // The memory projection computed once and reused: the same result bit for bit.
  const Tensor<T, 3> kp = att.project_memory(memory.cview());
  Tensor<T, 3> ctx2({c.b, c.nq, c.dk});
  att.forward(q.cview(), memory.cview(), kp, ctx2.view(), c.lengths);
  CHECK(std::memcmp(ctx.data(), ctx2.data(), sizeof(T) * std::size_t(ctx.size())) == 0);
}

template <class T, class Act>
void check_luong(const Case& c, attnkit::modules::LuongScore score, const std::string& act,
                 unsigned seed) {
  const index_t dq = score == attnkit::modules::LuongScore::dot ? c.dk : c.dq;
  const auto q = random_tensor<T, 3>({c.b, c.nq, dq}, seed);
  auto memory = random_tensor<T, 3>({c.b, c.nk, c.dk}, seed + 1);
  const auto wg = random_tensor<T, 2>({c.dk, dq}, seed + 2, 0.5);
  const auto wc = random_tensor<T, 2>({c.a, dq + c.dk}, seed + 3, 0.5);
  const auto vc = random_tensor<T, 1>({c.a}, seed + 4);
  attnkit::modules::LuongAttention<Act, T> att;
  att.score = score;
  att.scale = 0.75;
  if (score == attnkit::modules::LuongScore::general) att.weight = wg.cview();
  if (score == attnkit::modules::LuongScore::concat) {
    att.weight = wc.cview();
    att.v = vc.cview();
  }
  Tensor<T, 3> ctx({c.b, c.nq, c.dk}), w({c.b, c.nq, c.nk});
  att.forward(q.cview(), memory.cview(), ctx.view(), c.lengths, w.view());
  std::vector<double> e(static_cast<std::size_t>(c.b * c.nq * c.nk), 0.0);
  for (index_t b = 0; b < c.b; ++b)
    for (index_t i = 0; i < c.nq; ++i)
      for (index_t j = 0; j < c.nk; ++j) {
        double s = 0;
        if (score == attnkit::modules::LuongScore::dot) {
          for (index_t d = 0; d < c.dk; ++d) s += double(q(b, i, d)) * double(memory(b, j, d));
        } else if (score == attnkit::modules::LuongScore::general) {
          for (index_t d = 0; d < c.dk; ++d) {
            double ws = 0;
            for (index_t k = 0; k < dq; ++k) ws += double(wg(d, k)) * double(q(b, i, k));
            s += ws * double(memory(b, j, d));
          }
        } else {
          for (index_t a = 0; a < c.a; ++a) {
            double t = 0;
            for (index_t k = 0; k < dq; ++k) t += double(wc(a, k)) * double(q(b, i, k));
            for (index_t d = 0; d < c.dk; ++d) t += double(wc(a, dq + d)) * double(memory(b, j, d));
            s += double(vc(a)) * std::tanh(t);
          }
        }
        e[static_cast<std::size_t>((b * c.nq + i) * c.nk + j)] = 0.75 * s;
      }
  INFO("score " << int(score) << " " << act);
  compare(ctx, w, ref_weights(e, c.b, c.nq, c.nk, c.lengths, act), memory, c);
}

}  // namespace

TEMPLATE_TEST_CASE("AdditiveAttention (Bahdanau) against the double reference",
                   "[attention][bahdanau]", float, double) {
  unsigned seed = 10;
  for (const Case& c : cases()) check_additive<TestType, pol::Softmax>(c, "softmax", seed += 10);
}

TEMPLATE_TEST_CASE("LuongAttention (dot, general, concat) against the double reference",
                   "[attention][luong]", float, double) {
  unsigned seed = 20;
  for (const Case& c : cases())
    for (const auto s : {attnkit::modules::LuongScore::dot, attnkit::modules::LuongScore::general,
                         attnkit::modules::LuongScore::concat})
      check_luong<TestType, pol::Softmax>(c, s, "softmax", seed += 10);
}

TEST_CASE("encoder-decoder attention with other activations", "[attention][bahdanau][luong]") {
  const Case c{2, 5, 9, 6, 6, 7, {9, 4}};
  check_additive<float, pol::Sigmoid>(c, "sigmoid", 3);
  check_luong<float, pol::NormalizedSigmoid>(c, attnkit::modules::LuongScore::general,
                                             "normalized-sigmoid", 4);
}

TEST_CASE("encoder-decoder attention: strided views, threads, errors", "[attention][luong]") {
  const index_t b = 2, nq = 6, nk = 70, d = 16;
  // memory as a transposed view of a [B, D, Nk] buffer; query with row padding.
  const auto mt = random_tensor<float, 3>({b, d, nk}, 1);
  const TensorView<const float, 3> memory = mt.cview().transpose(1, 2);
  const auto qbuf = random_tensor<float, 3>({b, nq, d + 3}, 2);
  const TensorView<const float, 3> q = qbuf.cview().slice(0, d, 2);
  const Tensor<float, 3> mc(memory), qc(q);
  attnkit::modules::LuongAttention<pol::Softmax, float> att;  // dot
  Tensor<float, 3> c1({b, nq, d}), c2({b, nq, d});
  att.forward(q, memory, c1.view());
  att.forward(qc.cview(), mc.cview(), c2.view());
  double err = 0;
  for (index_t k = 0; k < c1.size(); ++k)
    err = std::max(err, std::abs(double(c1.data()[k]) - double(c2.data()[k])));
  CHECK(err <= 1e-6);

  const int saved = attnkit::max_threads();
  attnkit::set_threads(1);
  Tensor<float, 3> c3({b, nq, d});
  att.forward(qc.cview(), mc.cview(), c3.view());
  attnkit::set_threads(saved);
  CHECK(std::memcmp(c2.data(), c3.data(), sizeof(float) * std::size_t(c2.size())) == 0);

  Tensor<float, 3> bad({b, nq, d + 1});
  CHECK_THROWS_AS(att.forward(qc.cview(), mc.cview(), bad.view()), attnkit::shape_error);
  const std::vector<index_t> too_long{nk + 1, 1};
  CHECK_THROWS_AS(att.forward(qc.cview(), mc.cview(), c3.view(), too_long), attnkit::shape_error);
  const std::vector<index_t> one_length{3};
  CHECK_THROWS_AS(att.forward(qc.cview(), mc.cview(), c3.view(), one_length), attnkit::shape_error);
  att.score = attnkit::modules::LuongScore::general;  // no weight
  CHECK_THROWS_AS(att.forward(qc.cview(), mc.cview(), c3.view()), attnkit::shape_error);
  const auto q5 = random_tensor<float, 3>({b, nq, 5}, 3);
  att.score = attnkit::modules::LuongScore::dot;  // Dq != Dk
  CHECK_THROWS_AS(att.forward(q5.cview(), mc.cview(), c3.view()), attnkit::shape_error);
}
