// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden checks of the encoder-decoder attentions against PyTorch (tests/golden/data/modules/
// s2s_*, written by make_golden.py): Bahdanau additive attention and Luong's dot, general and
// concat scores over a padded encoder memory, context and weights, fp32 and fp64.
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/io/npy.hpp"
#include "attnkit/modules/additive_attention.hpp"
#include "attnkit/modules/luong_attention.hpp"

using attnkit::index_t;
using attnkit::Tensor;

namespace {

template <class T, std::size_t R>
Tensor<T, R> load(const std::string& name) {
  return attnkit::io::read_npy_as<T, R>(std::string(ATTNKIT_GOLDEN_DIR) + "/modules/s2s_" + name +
                                        ".npy");
}

template <class T>
double max_err(const Tensor<T, 3>& got, const std::string& name) {
  const auto want = load<double, 3>(name);
  REQUIRE(got.shape() == want.shape());
  double e = 0;
  for (index_t i = 0; i < got.size(); ++i)
    e = std::max(e, std::abs(double(got.data()[i]) - want.data()[i]));
  return e;
}

/// Runs f(context, weights) and checks both against NAME_context_y and NAME_weights_y.
template <class T, class F>
void check(const std::string& name, index_t b, index_t nq, index_t nk, index_t dk, F&& f) {
  Tensor<T, 3> ctx({b, nq, dk}), w({b, nq, nk});
  f(ctx.view(), w.view());
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  INFO(name);
  CHECK(max_err(ctx, name + "_context_y") <= tol);
  CHECK(max_err(w, name + "_weights_y") <= tol);
}

}  // namespace

TEMPLATE_TEST_CASE("golden modules: Bahdanau and Luong attention", "[golden][bahdanau][luong]",
                   float, double) {
  using T = TestType;
  const auto q = load<T, 3>("query"), qd = load<T, 3>("query_dot"), mem = load<T, 3>("memory");
  const auto len = load<index_t, 1>("lengths");
  const std::vector<index_t> lengths(len.begin(), len.end());
  const index_t b = mem.extent(0), nq = q.extent(1), nk = mem.extent(1), dk = mem.extent(2);

  const auto wq = load<T, 2>("bahdanau_wq"), wk = load<T, 2>("bahdanau_wk");
  const auto bq = load<T, 1>("bahdanau_bq"), bk = load<T, 1>("bahdanau_bk"),
             v = load<T, 1>("bahdanau_v");
  attnkit::modules::AdditiveAttention<attnkit::policy::Softmax, T> bahdanau;
  bahdanau.query_proj = {wq.cview(), bq.cview()};
  bahdanau.memory_proj = {wk.cview(), bk.cview()};
  bahdanau.v = v.cview();
  check<T>("bahdanau", b, nq, nk, dk,
           [&](auto ctx, auto w) { bahdanau.forward(q.cview(), mem.cview(), ctx, lengths, w); });

  attnkit::modules::LuongAttention<attnkit::policy::Softmax, T> luong;
  check<T>("luong_dot", b, nq, nk, dk,
           [&](auto ctx, auto w) { luong.forward(qd.cview(), mem.cview(), ctx, lengths, w); });
  const auto wg = load<T, 2>("luong_general_w");
  luong.score = attnkit::modules::LuongScore::general;
  luong.weight = wg.cview();
  check<T>("luong_general", b, nq, nk, dk,
           [&](auto ctx, auto w) { luong.forward(q.cview(), mem.cview(), ctx, lengths, w); });
  const auto wc = load<T, 2>("luong_concat_w");
  const auto vc = load<T, 1>("luong_concat_v");
  luong.score = attnkit::modules::LuongScore::concat;
  luong.weight = wc.cview();
  luong.v = vc.cview();
  check<T>("luong_concat", b, nq, nk, dk,
           [&](auto ctx, auto w) { luong.forward(q.cview(), mem.cview(), ctx, lengths, w); });
}
