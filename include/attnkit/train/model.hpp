// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// train::Model<Policy, T>: a trainable decoder-only transformer that owns its parameters
// (train::Parameter: value, gradient, AdamW moments). Token embedding, layers of pre-norm
// attention (q/k/v/o projections, RoPE, the policy's activation and mask, an optional sigmoid
// output gate projection) and MLP (SwiGLU or GELU) with residuals, a final norm and the LM head
// (or the tied embeddings). forward() keeps every activation the backward needs; backward()
// takes the softmax cross-entropy of the logits and adds every parameter's gradient, with the
// fused attention_backward for the attention. After the first step of a given batch shape a
// step allocates nothing.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "attnkit/attention/attention.hpp"
#include "attnkit/attention/backward.hpp"
#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/block/norm.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/model/config.hpp"
#include "attnkit/policy/gate.hpp"
#include "attnkit/train/grad.hpp"
#include "attnkit/train/optim.hpp"

namespace attnkit::train {

/// The shape and recipe of a train::Model.
struct ModelConfig {
  index_t vocab = 32;                                ///< V
  index_t hidden = 64;                               ///< H
  index_t layers = 2;                                ///< L
  index_t heads = 4;                                 ///< Hq (head dimension H / Hq)
  index_t kv_heads = 4;                              ///< Hkv (divides Hq: MHA, GQA, MQA)
  index_t intermediate = 128;                        ///< I, the MLP's hidden width
  model::NormKind norm = model::NormKind::rms_norm;  ///< RMSNorm or LayerNorm (pre-norm)
  model::MlpKind mlp = model::MlpKind::swiglu;       ///< SwiGLU or GELU MLP (fc1, fc2 with biases)
  block::GeluKind gelu = block::GeluKind::tanh;      ///< the GELU MLP's GELU
  double eps = 1e-5;                                 ///< the norms' epsilon
  double rope_theta = 10000;                         ///< RoPE's base
  bool tie_embeddings = false;                       ///< the LM head is the embedding table

  index_t head_dim() const noexcept { return heads > 0 ? hidden / heads : 0; }

  /// Throws error naming the first field out of range.
  void check() const {
    auto need = [](bool ok, const std::string& what) {
      if (!ok) throw error("attnkit: train::ModelConfig: " + what);
    };
    need(vocab >= 1 && hidden >= 2 && layers >= 0 && intermediate >= 1,
         "vocab, hidden (>= 2), layers and intermediate must be positive");
    need(heads >= 1 && hidden % heads == 0, "heads (" + std::to_string(heads) +
                                                ") must divide hidden (" + std::to_string(hidden) +
                                                ")");
    need(head_dim() % 2 == 0, "the head dimension hidden / heads must be even (RoPE)");
    need(kv_heads >= 1 && heads % kv_heads == 0, "kv_heads (" + std::to_string(kv_heads) +
                                                     ") must divide heads (" +
                                                     std::to_string(heads) + ")");
    need(mlp != model::MlpKind::moe, "the MLP is swiglu or gelu (no MoE training)");
    need(eps >= 0 && std::isfinite(eps), "eps must be finite and >= 0");
    need(rope_theta > 0 && std::isfinite(rope_theta), "rope_theta must be finite and > 0");
  }
};

/// splitmix64 (Steele, Lea and Flood 2014): the seeded stream of Model::init and the copy task,
/// the same numbers on every platform and compiler.
struct SplitMix64 {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in (0, 1).
  double uniform() noexcept { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  /// Standard normal (Box–Muller).
  double normal() noexcept {
    const double u = uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * v);
  }
};

namespace detail {

/// A [rows, cols] buffer that is reallocated only when its shape changes.
template <class T>
void ensure(Tensor<T, 2>& t, index_t rows, index_t cols) {
  if (t.shape() != Shape<2>{rows, cols}) t = Tensor<T, 2>({rows, cols});
}

}  // namespace detail

/// A trainable decoder. Parameter names follow Hugging Face LLaMA checkpoints
/// ("model.embed_tokens.weight", "model.layers.L.self_attn.q_proj.weight", ...,
/// "model.norm.weight", "lm_head.weight"; the gate projection "self_attn.g_proj.weight"; the
/// GELU MLP "mlp.fc1.weight" / ".bias", "mlp.fc2.weight" / ".bias"; LayerNorms add ".bias").
/// \tparam Policy an attnkit::policy::AttentionPolicy whose gate is NoGate,
///   HeadwiseSigmoid<T> (g_proj [Hq, H]) or ElementwiseSigmoid<T> (g_proj [H, H]); the model
///   sets the gate values per call. The activation, mask and score mod are used as given (a
///   decoder wants a causal mask).
/// \tparam T float or double
template <class Policy, std::floating_point T = float>
class Model {
  using Gate = typename Policy::gate_type;
  static constexpr bool gate_none = std::is_same_v<Gate, policy::NoGate>;
  static constexpr bool gate_heads = std::is_same_v<Gate, policy::HeadwiseSigmoid<T>>;
  static constexpr bool gate_elems = std::is_same_v<Gate, policy::ElementwiseSigmoid<T>>;
  static_assert(gate_none || gate_heads || gate_elems,
                "attnkit: the gate of train::Model's Policy must be NoGate, HeadwiseSigmoid<T> or "
                "ElementwiseSigmoid<T>");

 public:
  using policy_type = Policy;
  using value_type = T;

  ModelConfig config;
  Policy policy;
  block::RoPE rope;
  /// Every parameter, in a fixed order (the embedding first).
  std::vector<Parameter<T>> params;

  /// A model with parameters from init(seed).
  explicit Model(const ModelConfig& c, Policy p = {}, std::uint64_t seed = 1)
      : config((c.check(), c)), policy(std::move(p)), rope(c.head_dim(), c.rope_theta) {
    const index_t h = c.hidden, d = c.head_dim(), hq = c.heads, hkv = c.kv_heads;
    const bool ln = c.norm == model::NormKind::layer_norm;
    auto add = [&](const std::string& name, std::vector<index_t> shape, bool decay) {
      params.emplace_back(name, std::move(shape), decay);
      return static_cast<int>(params.size() - 1);
    };
    embed_ = add("model.embed_tokens.weight", {c.vocab, h}, true);
    for (index_t l = 0; l < c.layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      LayerIndex li;
      li.n1w = add(p + "input_layernorm.weight", {h}, false);
      if (ln) li.n1b = add(p + "input_layernorm.bias", {h}, false);
      li.q = add(p + "self_attn.q_proj.weight", {hq * d, h}, true);
      li.k = add(p + "self_attn.k_proj.weight", {hkv * d, h}, true);
      li.v = add(p + "self_attn.v_proj.weight", {hkv * d, h}, true);
      if (!gate_none)
        li.g = add(p + "self_attn.g_proj.weight", {gate_heads ? hq : hq * d, h}, true);
      li.o = add(p + "self_attn.o_proj.weight", {h, hq * d}, true);
      li.n2w = add(p + "post_attention_layernorm.weight", {h}, false);
      if (ln) li.n2b = add(p + "post_attention_layernorm.bias", {h}, false);
      if (c.mlp == model::MlpKind::swiglu) {
        li.f1 = add(p + "mlp.gate_proj.weight", {c.intermediate, h}, true);
        li.f3 = add(p + "mlp.up_proj.weight", {c.intermediate, h}, true);
        li.f2 = add(p + "mlp.down_proj.weight", {h, c.intermediate}, true);
      } else {
        li.f1 = add(p + "mlp.fc1.weight", {c.intermediate, h}, true);
        li.f1b = add(p + "mlp.fc1.bias", {c.intermediate}, false);
        li.f2 = add(p + "mlp.fc2.weight", {h, c.intermediate}, true);
        li.f2b = add(p + "mlp.fc2.bias", {h}, false);
      }
      index_.push_back(li);
    }
    normw_ = add("model.norm.weight", {h}, false);
    if (ln) normb_ = add("model.norm.bias", {h}, false);
    if (!c.tie_embeddings) head_ = add("lm_head.weight", {c.vocab, h}, true);
    init(seed);
  }

  /// Sets the parameters from a seed: matrices normal with std 0.02 (the output projections
  /// o_proj and down_proj / fc2 scaled by 1 / sqrt(2 L), GPT-2's residual scaling), norm
  /// weights 1, biases 0.
  void init(std::uint64_t seed) {
    SplitMix64 rng{seed};
    const double out_scale = 1.0 / std::sqrt(2.0 * double(std::max<index_t>(config.layers, 1)));
    for (Parameter<T>& p : params) {
      const bool norm_weight = p.name.ends_with("norm.weight");
      const bool bias = p.name.ends_with(".bias");
      const bool out = p.name.ends_with("o_proj.weight") || p.name.ends_with("down_proj.weight") ||
                       p.name.ends_with("fc2.weight");
      for (T& x : p.value)
        x = norm_weight ? T(1)
            : bias      ? T(0)
                        : static_cast<T>(0.02 * (out ? out_scale : 1.0) * rng.normal());
    }
  }

  /// The parameter called `name`; throws error when there is none.
  Parameter<T>& parameter(const std::string& name) {
    for (Parameter<T>& p : params)
      if (p.name == name) return p;
    throw error("attnkit: train::Model: no parameter named '" + name + "'");
  }

  /// Number of trainable scalars.
  index_t parameter_count() const noexcept {
    index_t n = 0;
    for (const Parameter<T>& p : params) n += p.size();
    return n;
  }

  /// Runs the model on `batch` sequences of `seq` tokens (ids [batch · seq], row-major), keeps
  /// the activations for backward() and returns the logits [batch · seq, V] (valid until the
  /// next forward). Positions are 0..seq-1 in every sequence. Throws error for an id outside
  /// [0, V) or a size mismatch.
  template <std::integral Id>
  TensorView<const T, 2> forward(std::span<const Id> ids, index_t batch, index_t seq) {
    if (batch < 1 || seq < 1 || static_cast<index_t>(ids.size()) != batch * seq)
      throw shape_error("attnkit: train::Model::forward: " + std::to_string(ids.size()) +
                        " token ids for " + std::to_string(batch) + " sequences of " +
                        std::to_string(seq) + " tokens");
    const ModelConfig& c = config;
    const index_t m = batch * seq, h = c.hidden;
    resize(batch, seq);
    ids_.resize(static_cast<std::size_t>(m));
    for (index_t r = 0; r < m; ++r) {
      const auto id = static_cast<index_t>(ids[static_cast<std::size_t>(r)]);
      if (id < 0 || id >= c.vocab)
        throw error("attnkit: train::Model::forward: token id " + std::to_string(id) +
                    " at position " + std::to_string(r) + " is outside the vocabulary [0, " +
                    std::to_string(c.vocab) + ")");
      ids_[static_cast<std::size_t>(r)] = id;
    }
    // Embedding into the first layer's input (or the final norm's).
    Tensor<T, 2>& x0 = c.layers > 0 ? acts_[0].x : final_x_;
    const TensorView<const T, 2> table = params[embed_].mat();
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < h; ++j) x0(r, j) = table(ids_[static_cast<std::size_t>(r)], j);
    for (index_t l = 0; l < c.layers; ++l)
      layer_forward(l, l + 1 < c.layers ? acts_[l + 1].x.view() : final_x_.view());
    norm_forward(final_x_.cview(), normw_, normb_, final_n_.view());
    block::linear<T>(final_n_.cview(), head_weight(), logits_.view());
    return logits_.cview();
  }

  /// The softmax cross-entropy of the last forward's logits against `targets` (one per token;
  /// negative: not counted) and, when `with_grad`, the gradient of the mean loss added to every
  /// parameter's gradient (the caller zeroes them first: zero_grad).
  template <std::integral Id>
  CrossEntropy backward(std::span<const Id> targets, bool with_grad = true) {
    if (batch_ == 0)
      throw error(
          "attnkit: train::Model::backward: no forward pass to differentiate (call forward first)");
    const index_t m = logits_.extent(0);
    if (static_cast<index_t>(targets.size()) != m)
      throw shape_error("attnkit: train::Model::backward: " + std::to_string(targets.size()) +
                        " targets for the " + std::to_string(m) + " positions of the last forward");
    index_t counted = 0;
    for (Id t : targets) counted += t >= 0 ? 1 : 0;
    const CrossEntropy ce = softmax_cross_entropy<T, Id>(
        logits_.cview(), targets, with_grad ? dlogits_.view() : TensorView<T, 2>{},
        counted > 0 ? 1.0 / double(counted) : 0.0);
    if (!with_grad) return ce;
    const ModelConfig& c = config;
    // LM head and final norm.
    Parameter<T>& hw = c.tie_embeddings ? params[embed_] : params[head_];
    linear_backward<T>(final_n_.cview(), head_weight(), dlogits_.cview(), dn_.view(), hw.gmat(),
                       {});
    norm_backward(final_x_.cview(), normw_, normb_, dn_.cview(), dres_.view(), false);
    for (index_t l = c.layers; l-- > 0;) layer_backward(l);
    embedding_backward<T, index_t>(ids_, dres_.cview(), params[embed_].gmat());
    return ce;
  }

  /// The parameters as a span (for AdamW::step, zero_grad, clip_grad_norm, save_safetensors).
  std::span<Parameter<T>> parameters() noexcept { return params; }
  std::span<const Parameter<T>> parameters() const noexcept { return params; }

 private:
  struct LayerIndex {
    int n1w = -1, n1b = -1, q = -1, k = -1, v = -1, g = -1, o = -1, n2w = -1, n2b = -1;
    int f1 = -1, f1b = -1, f2 = -1, f2b = -1, f3 = -1;
  };
  /// What one layer keeps from its forward.
  struct Acts {
    Tensor<T, 2> x, a, q, k, v, g, o, h1, n2, f1, f3, fh;  // [M, ·]
    Tensor<T, 2> state;                                    // [B, Hq·N] (the row state)
  };

  int embed_ = -1, normw_ = -1, normb_ = -1, head_ = -1;
  std::vector<LayerIndex> index_;
  std::vector<Acts> acts_;
  std::vector<index_t> ids_, positions_;
  index_t batch_ = 0, seq_ = 0;
  Policy work_policy_{};
  Tensor<T, 2> final_x_, final_n_, logits_, dlogits_, dn_, dres_, da_, dq_, dk_, dv_, dg_, do_,
      df1_, df3_, dfh_;

  TensorView<const T, 2> head_weight() const {
    return params[config.tie_embeddings ? embed_ : head_].mat();
  }
  TensorView<const T, 1> vec_or_empty(int i) const {
    return i < 0 ? TensorView<const T, 1>{} : params[static_cast<std::size_t>(i)].vec();
  }

  void resize(index_t batch, index_t seq) {
    const ModelConfig& c = config;
    const index_t m = batch * seq, h = c.hidden, d = c.head_dim();
    const index_t qd = c.heads * d, kd = c.kv_heads * d, gd = gate_heads ? c.heads : qd;
    batch_ = batch;
    seq_ = seq;
    if (static_cast<index_t>(positions_.size()) != seq) {
      positions_.resize(static_cast<std::size_t>(seq));
      for (index_t i = 0; i < seq; ++i) positions_[static_cast<std::size_t>(i)] = i;
    }
    acts_.resize(static_cast<std::size_t>(c.layers));
    for (Acts& a : acts_) {
      for (Tensor<T, 2>* t : {&a.x, &a.a, &a.h1, &a.n2}) detail::ensure(*t, m, h);
      detail::ensure(a.q, m, qd);
      detail::ensure(a.o, m, qd);
      detail::ensure(a.k, m, kd);
      detail::ensure(a.v, m, kd);
      detail::ensure(a.g, gate_none ? 0 : m, gate_none ? 0 : gd);
      for (Tensor<T, 2>* t : {&a.f1, &a.f3, &a.fh}) detail::ensure(*t, m, c.intermediate);
      detail::ensure(a.state, batch, c.heads * seq);
    }
    for (Tensor<T, 2>* t : {&final_x_, &final_n_, &dn_, &dres_, &da_}) detail::ensure(*t, m, h);
    detail::ensure(logits_, m, c.vocab);
    detail::ensure(dlogits_, m, c.vocab);
    detail::ensure(dq_, m, qd);
    detail::ensure(do_, m, qd);
    detail::ensure(dk_, m, kd);
    detail::ensure(dv_, m, kd);
    detail::ensure(dg_, gate_none ? 0 : m, gate_none ? 0 : gd);
    for (Tensor<T, 2>* t : {&df1_, &df3_, &dfh_}) detail::ensure(*t, m, c.intermediate);
  }

  /// [M, heads·D] as [B, heads, N, D] (no copy).
  TensorView<T, 4> heads4(Tensor<T, 2>& t, index_t heads) const {
    const index_t d = t.extent(1) / heads;
    return TensorView<T, 4>(t.data(), {batch_, heads, seq_, d},
                            {seq_ * heads * d, d, heads * d, 1});
  }
  /// [M, Hq] (one value per token and head) as [B, Hq, N] (no copy).
  TensorView<T, 3> per_head3(Tensor<T, 2>& t) const {
    return TensorView<T, 3>(t.data(), {batch_, config.heads, seq_},
                            {seq_ * config.heads, 1, config.heads});
  }
  TensorView<T, 3> state3(Tensor<T, 2>& t) const {
    return TensorView<T, 3>(t.data(), {batch_, config.heads, seq_}, {config.heads * seq_, seq_, 1});
  }

  /// The policy with this layer's gate values (gate logits [M, Hq] or [M, Hq·D]); without a gate
  /// the policy itself (a copy would allocate for policies that own vectors).
  const Policy& gated(Tensor<T, 2>& g) {
    if constexpr (gate_none) {
      (void)g;
      return policy;
    } else {
      work_policy_ = policy;  // copy assignment: reuses the storage of the last call
      if constexpr (gate_heads)
        work_policy_.gate = Gate(TensorView<const T, 3>(per_head3(g)));
      else
        work_policy_.gate = Gate(TensorView<const T, 4>(heads4(g, config.heads)));
      return work_policy_;
    }
  }

  void norm_forward(TensorView<const T, 2> x, int w, int b, TensorView<T, 2> y) const {
    if (config.norm == model::NormKind::layer_norm)
      block::normalize_rows<block::LayerNorm, T>(block::LayerNorm(config.eps), x, vec_or_empty(w),
                                                 vec_or_empty(b), y);
    else
      block::normalize_rows<block::RMSNorm, T>(block::RMSNorm(config.eps), x, vec_or_empty(w), y);
  }
  void norm_backward(TensorView<const T, 2> x, int w, int b, TensorView<const T, 2> dy,
                     TensorView<T, 2> dx, bool accumulate) {
    if (config.norm == model::NormKind::layer_norm)
      layer_norm_backward<T>(x, vec_or_empty(w), config.eps, dy, dx, params[w].gvec(),
                             b < 0 ? TensorView<T, 1>{} : params[b].gvec(), accumulate);
    else
      rms_norm_backward<T>(x, vec_or_empty(w), config.eps, dy, dx, params[w].gvec(), accumulate);
  }

  void layer_forward(index_t l, TensorView<T, 2> out) {
    const LayerIndex& li = index_[static_cast<std::size_t>(l)];
    Acts& a = acts_[static_cast<std::size_t>(l)];
    const ModelConfig& c = config;
    const index_t m = batch_ * seq_;
    norm_forward(a.x.cview(), li.n1w, li.n1b, a.a.view());
    block::linear<T>(a.a.cview(), params[li.q].mat(), a.q.view());
    block::linear<T>(a.a.cview(), params[li.k].mat(), a.k.view());
    block::linear<T>(a.a.cview(), params[li.v].mat(), a.v.view());
    if constexpr (!gate_none) block::linear<T>(a.a.cview(), params[li.g].mat(), a.g.view());
    rope.apply(heads4(a.q, c.heads), positions_);
    rope.apply(heads4(a.k, c.kv_heads), positions_);
    attention_partial(gated(a.g), TensorView<const T, 4>(heads4(a.q, c.heads)),
                      TensorView<const T, 4>(heads4(a.k, c.kv_heads)),
                      TensorView<const T, 4>(heads4(a.v, c.kv_heads)), heads4(a.o, c.heads),
                      state3(a.state));
    block::linear<T>(a.o.cview(), params[li.o].mat(), a.h1.view());
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < c.hidden; ++j) a.h1(r, j) += a.x(r, j);
    norm_forward(a.h1.cview(), li.n2w, li.n2b, a.n2.view());
    if (c.mlp == model::MlpKind::swiglu) {
      block::linear<T>(a.n2.cview(), params[li.f1].mat(), a.f1.view());
      block::linear<T>(a.n2.cview(), params[li.f3].mat(), a.f3.view());
      swiglu_forward<T>(a.f1.cview(), a.f3.cview(), a.fh.view());
      block::linear<T>(a.fh.cview(), params[li.f2].mat(), out);
    } else {
      block::linear<T>(a.n2.cview(), params[li.f1].mat(), vec_or_empty(li.f1b), a.f1.view());
      gelu_forward<T>(a.f1.cview(), a.fh.view(), c.gelu);
      block::linear<T>(a.fh.cview(), params[li.f2].mat(), vec_or_empty(li.f2b), out);
    }
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < c.hidden; ++j) out(r, j) += a.h1(r, j);
  }

  /// dres_ holds d loss / d (layer l's output) and becomes d loss / d (its input).
  void layer_backward(index_t l) {
    const LayerIndex& li = index_[static_cast<std::size_t>(l)];
    Acts& a = acts_[static_cast<std::size_t>(l)];
    const ModelConfig& c = config;
    // MLP: out = h1 + mlp(norm2(h1)).
    if (c.mlp == model::MlpKind::swiglu) {
      linear_backward<T>(a.fh.cview(), params[li.f2].mat(), dres_.cview(), dfh_.view(),
                         params[li.f2].gmat(), {});
      swiglu_backward<T>(a.f1.cview(), a.f3.cview(), dfh_.cview(), df1_.view(), df3_.view());
      linear_backward<T>(a.n2.cview(), params[li.f1].mat(), df1_.cview(), dn_.view(),
                         params[li.f1].gmat(), {});
      linear_backward<T>(a.n2.cview(), params[li.f3].mat(), df3_.cview(), dn_.view(),
                         params[li.f3].gmat(), {}, true);
    } else {
      linear_backward<T>(a.fh.cview(), params[li.f2].mat(), dres_.cview(), dfh_.view(),
                         params[li.f2].gmat(), params[li.f2b].gvec());
      gelu_backward<T>(a.f1.cview(), dfh_.cview(), df1_.view(), c.gelu);
      linear_backward<T>(a.n2.cview(), params[li.f1].mat(), df1_.cview(), dn_.view(),
                         params[li.f1].gmat(), params[li.f1b].gvec());
    }
    norm_backward(a.h1.cview(), li.n2w, li.n2b, dn_.cview(), dres_.view(), true);
    // Attention: h1 = x + o_proj(attn(rope(q), rope(k), v; gate)).
    linear_backward<T>(a.o.cview(), params[li.o].mat(), dres_.cview(), do_.view(),
                       params[li.o].gmat(), {});
    AttentionGradExtras<T> extra;
    if constexpr (gate_heads) extra.dgate_heads = per_head3(dg_);
    if constexpr (gate_elems) extra.dgate = heads4(dg_, c.heads);
    attention_backward(gated(a.g), TensorView<const T, 4>(heads4(a.q, c.heads)),
                       TensorView<const T, 4>(heads4(a.k, c.kv_heads)),
                       TensorView<const T, 4>(heads4(a.v, c.kv_heads)),
                       TensorView<const T, 4>(heads4(a.o, c.heads)),
                       TensorView<const T, 3>(state3(a.state)),
                       TensorView<const T, 4>(heads4(do_, c.heads)), heads4(dq_, c.heads),
                       heads4(dk_, c.kv_heads), heads4(dv_, c.kv_heads), {}, extra);
    rope_backward<T>(rope, heads4(dq_, c.heads), positions_);
    rope_backward<T>(rope, heads4(dk_, c.kv_heads), positions_);
    linear_backward<T>(a.a.cview(), params[li.q].mat(), dq_.cview(), da_.view(),
                       params[li.q].gmat(), {});
    linear_backward<T>(a.a.cview(), params[li.k].mat(), dk_.cview(), da_.view(),
                       params[li.k].gmat(), {}, true);
    linear_backward<T>(a.a.cview(), params[li.v].mat(), dv_.cview(), da_.view(),
                       params[li.v].gmat(), {}, true);
    if constexpr (!gate_none)
      linear_backward<T>(a.a.cview(), params[li.g].mat(), dg_.cview(), da_.view(),
                         params[li.g].gmat(), {}, true);
    norm_backward(a.x.cview(), li.n1w, li.n1b, da_.cview(), dres_.view(), true);
  }
};

}  // namespace attnkit::train
