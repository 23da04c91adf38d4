// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// train::Model<Policy, double> against PyTorch autograd (tests/golden/make_golden.py, train/):
// the mean cross-entropy, every parameter's gradient, and the parameters after
// clip_grad_norm(1.0) and one AdamW step (torch.optim.AdamW, decay on the matrices only), for two
// 2-layer decoders: softmax + RMSNorm + SwiGLU, and sigmoid + LayerNorm + tanh-GELU MLP with a
// headwise output gate and tied embeddings.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/io/npy.hpp"
#include "attnkit/io/safetensors.hpp"
#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/policy/gate.hpp"
#include "attnkit/policy/mask.hpp"
#include "attnkit/policy/score_mod.hpp"
#include "attnkit/train/model.hpp"

namespace {

using namespace attnkit;
namespace pol = attnkit::policy;

std::string golden_path(const std::string& dir, const std::string& file) {
  return std::string(ATTNKIT_GOLDEN_DIR) + "/train/" + dir + "/" + file;
}

/// Every element of each parameter's `field` (value or grad) against the tensor of its name in
/// the golden file (relative 1e-9, absolute 1e-12), and the file holds no other tensor.
template <class Policy, class Field>
void check_against(const train::Model<Policy, double>& model, const std::string& path,
                   Field field) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path, io::LoadMode::read);
  CHECK(f.names().size() == model.params.size());
  for (const train::Parameter<double>& p : model.params) {
    INFO(path << ": " << p.name);
    REQUIRE(f.contains(p.name));
    REQUIRE(f.info(p.name).shape == p.shape);
    const io::TensorInfo& ti = f.info(p.name);
    Tensor<double, 1> want({ti.size()});
    io::convert_elements<double>(ti.dtype, f.raw(p.name).data(), std::size_t(ti.size()),
                                 want.data(), path);
    const std::vector<double>& got = p.*field;
    REQUIRE(static_cast<index_t>(got.size()) == want.size());
    for (index_t i = 0; i < want.size(); ++i) {
      INFO("element " << i);
      CHECK(got[std::size_t(i)] == Approx(want(i)).epsilon(1e-9).margin(1e-12));
    }
  }
}

template <class Policy>
void check_case(const std::string& name, const train::ModelConfig& c, const Policy& policy) {
  train::Model<Policy, double> model(c, policy);
  train::load_safetensors<double>(golden_path(name, "params.safetensors"), model.parameters());
  const Tensor<std::int32_t, 1> ids =
      io::read_npy_as<std::int32_t, 1>(golden_path(name, "ids.npy"));
  const Tensor<std::int32_t, 1> targets =
      io::read_npy_as<std::int32_t, 1>(golden_path(name, "targets.npy"));
  const Tensor<double, 1> loss = io::read_npy_as<double, 1>(golden_path(name, "loss.npy"));
  REQUIRE(ids.size() == 14);
  REQUIRE(loss.size() == 1);

  train::zero_grad(model.parameters());
  model.forward(std::span<const std::int32_t>(ids.data(), std::size_t(ids.size())), 2, 7);
  const train::CrossEntropy ce =
      model.backward(std::span<const std::int32_t>(targets.data(), std::size_t(targets.size())));
  INFO(name);
  CHECK(ce.count == 11);
  CHECK(ce.mean() == Approx(loss(0)).epsilon(1e-12));
  check_against(model, golden_path(name, "grads.safetensors"), &train::Parameter<double>::grad);

  const double norm = train::clip_grad_norm(model.parameters(), 1.0);
  CHECK(norm > 1.0);  // the clipping is exercised
  train::AdamW opt;
  opt.lr = 1e-2;
  opt.weight_decay = 0.1;
  opt.step(model.parameters());
  check_against(model, golden_path(name, "stepped.safetensors"), &train::Parameter<double>::value);
}

train::ModelConfig golden_config() {
  train::ModelConfig c;
  c.vocab = 13;
  c.hidden = 8;
  c.layers = 2;
  c.heads = 2;
  c.kv_heads = 1;
  c.intermediate = 12;
  c.eps = 1e-5;
  c.rope_theta = 10000;
  return c;
}

}  // namespace

TEST_CASE("train::Model against PyTorch: softmax, RMSNorm, SwiGLU", "[train][golden]") {
  check_case("softmax_rms_swiglu", golden_config(),
             pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}));
}

TEST_CASE("train::Model against PyTorch: sigmoid, LayerNorm, GELU, headwise gate, tied",
          "[train][golden]") {
  train::ModelConfig c = golden_config();
  c.norm = model::NormKind::layer_norm;
  c.mlp = model::MlpKind::gelu;
  c.gelu = block::GeluKind::tanh;
  c.tie_embeddings = true;
  check_case("sigmoid_ln_gelu_gate", c,
             pol::AttentionPolicy(pol::Sigmoid{}, pol::Causal{}, pol::NoScoreMod{},
                                  pol::HeadwiseSigmoid<double>{}));
}
