// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Module golden checks against PyTorch (tests/golden/data/modules, written by make_golden.py):
// RMSNorm, LayerNorm, RoPE (rotate-half and interleaved), SwiGLU, GELU MLPs, Mixtral MoE and
// gated attention (headwise, elementwise, none).
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/moe.hpp"
#include "attnkit/block/norm.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/io/npy.hpp"
#include "attnkit/modules/multi_head_attention.hpp"

using attnkit::index_t;
using attnkit::Tensor;
namespace blk = attnkit::block;

namespace {

template <class T, std::size_t R>
Tensor<T, R> load(const std::string& name) {
  return attnkit::io::read_npy_as<T, R>(std::string(ATTNKIT_GOLDEN_DIR) + "/modules/" + name +
                                        ".npy");
}

template <class A, class B>
double max_err(const A& got, const B& want) {
  REQUIRE(got.size() == want.size());
  double e = 0;
  for (index_t i = 0; i < got.size(); ++i)
    e = std::max(e, std::abs(double(got.data()[i]) - double(want.data()[i])));
  return e;
}

}  // namespace

TEMPLATE_TEST_CASE("golden modules: RMSNorm and LayerNorm", "[golden][norm]", float, double) {
  using T = TestType;
  const auto x = load<T, 2>("norm_x");
  const auto w = load<T, 1>("norm_w"), b = load<T, 1>("norm_b");
  Tensor<T, 2> y(x.shape());
  blk::normalize_rows<blk::RMSNorm, T>(blk::RMSNorm(1e-6), x.cview(), w.cview(), y.view());
  CHECK(max_err(y, load<double, 2>("rmsnorm_y")) <= (sizeof(T) == 4 ? 2e-6 : 1e-12));
  blk::normalize_rows<blk::LayerNorm, T>(blk::LayerNorm(1e-5), x.cview(), w.cview(), b.cview(),
                                         y.view());
  CHECK(max_err(y, load<double, 2>("layernorm_y")) <= (sizeof(T) == 4 ? 2e-6 : 1e-12));
}

TEMPLATE_TEST_CASE("golden modules: RoPE, both forms", "[golden][rope]", float, double) {
  using T = TestType;
  const auto pos = load<index_t, 1>("rope_pos");
  const std::vector<index_t> p(pos.begin(), pos.end());
  for (const bool interleaved : {false, true}) {
    auto x = load<T, 4>("rope_x");
    blk::RoPE(16, 10000.0, interleaved ? blk::RopeStyle::interleaved : blk::RopeStyle::rotate_half)
        .apply<T>(x.view(), p);
    INFO("interleaved " << interleaved);
    CHECK(max_err(x, load<double, 4>(interleaved ? "rope_interleaved_y" : "rope_half_y")) <=
          (sizeof(T) == 4 ? 2e-6 : 1e-12));
  }
}

TEMPLATE_TEST_CASE("golden modules: SwiGLU, GELU MLPs, Mixtral MoE", "[golden][ffn]", float,
                   double) {
  using T = TestType;
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  const auto x = load<T, 2>("ffn_x");
  const auto g = load<T, 2>("swiglu_gate"), u = load<T, 2>("swiglu_up"),
             d = load<T, 2>("swiglu_down");
  Tensor<T, 2> y(x.shape());
  blk::SwiGLU<T>{g.cview(), u.cview(), d.cview()}(x.cview(), y.view());
  CHECK(max_err(y, load<double, 2>("swiglu_y")) <= tol);
  const auto b1 = load<T, 1>("gelu_b1"), b2 = load<T, 1>("gelu_b2");
  blk::GeluMLP<T>{g.cview(), b1.cview(), d.cview(), b2.cview(), blk::GeluKind::exact}(x.cview(),
                                                                                      y.view());
  CHECK(max_err(y, load<double, 2>("gelu_exact_y")) <= tol);
  blk::GeluMLP<T>{g.cview(), b1.cview(), d.cview(), b2.cview(), blk::GeluKind::tanh}(x.cview(),
                                                                                     y.view());
  CHECK(max_err(y, load<double, 2>("gelu_tanh_y")) <= tol);

  const auto router = load<T, 2>("moe_router");
  std::vector<Tensor<T, 2>> keep;
  keep.reserve(12);
  blk::MixtureOfExperts<T> moe;
  moe.router = router.cview();
  moe.top_k = 2;
  for (int e = 0; e < 4; ++e) {
    keep.push_back(load<T, 2>("moe_gate" + std::to_string(e)));
    keep.push_back(load<T, 2>("moe_up" + std::to_string(e)));
    keep.push_back(load<T, 2>("moe_down" + std::to_string(e)));
    moe.experts.push_back(
        {keep[keep.size() - 3].cview(), keep[keep.size() - 2].cview(), keep.back().cview()});
  }
  moe(x.cview(), y.view());
  CHECK(max_err(y, load<double, 2>("moe_y")) <= tol);
}

TEST_CASE("golden modules: gated attention (headwise, elementwise, none)", "[golden][gate]") {
  namespace pol = attnkit::policy;
  using P = pol::AttentionPolicy<pol::Softmax, pol::Causal, pol::NoScoreMod,
                                 attnkit::modules::SelectableSigmoidGate<float>>;
  const auto x = load<float, 2>("gate_x");
  const auto wq = load<float, 2>("gate_wq"), wk = load<float, 2>("gate_wk"),
             wv = load<float, 2>("gate_wv"), wo = load<float, 2>("gate_wo");
  const auto wgh = load<float, 2>("gate_headwise_wg"), wge = load<float, 2>("gate_elementwise_wg");
  attnkit::modules::MultiHeadAttention<P, float> mha;
  mha.heads = 4;
  mha.kv_heads = 2;
  mha.head_dim = 8;
  mha.q_proj.weight = wq.cview();
  mha.k_proj.weight = wk.cview();
  mha.v_proj.weight = wv.cview();
  mha.o_proj.weight = wo.cview();
  mha.rope.emplace(8, 10000.0);
  const index_t n = x.extent(0);
  std::vector<index_t> pos(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = i;
  const attnkit::TensorView<const float, 3> x3(x.data(), {1, n, x.extent(1)});
  Tensor<float, 3> y({1, n, x.extent(1)});
  for (const char* kind : {"none", "headwise", "elementwise"}) {
    const std::string k = kind;
    mha.g_proj = k == "none"       ? attnkit::TensorView<const float, 2>{}
                 : k == "headwise" ? wgh.cview()
                                   : wge.cview();
    mha.forward(x3, pos, y.view());
    INFO(kind);
    CHECK(max_err(y, load<double, 2>("gate_" + k + "_y")) <= 1e-5);
  }
}
