// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// MultiHeadAttention<Policy>: q/k/v/o projections, MHA / GQA / MQA, RoPE, an optional sigmoid
// output gate (Gated Attention), an optional KV cache (modules/kv_cache.hpp) and weight capture,
// around the fused attention<Policy> kernel. modules/ sits above attention/ and block/ (the
// projections and RoPE).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "attnkit/attention/attention.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/block/norm.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/scratch_stack.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/modules/kv_cache.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/policy/gate.hpp"

namespace attnkit::modules {

/// The shape of an output gate, read off the gate projection's weight.
enum class GateKind : std::uint8_t {
  none,         ///< no gate
  headwise,     ///< g_proj [Hq, hidden]: one gate logit per head and token
  elementwise,  ///< g_proj [Hq·D, hidden]: one gate logit per output element
};

/// A sigmoid output gate whose kind (none, headwise, elementwise) is chosen at run time, for
/// models whose files decide whether they are gated. Models attnkit::policy::gate_policy.
/// \tparam V element type of the gate logits (float or double)
template <class V = float>
struct SelectableSigmoidGate {
  static constexpr bool is_identity = false;
  GateKind kind = GateKind::none;
  TensorView<const V, 3> headwise;     ///< [B, Hq, Nq] when kind is headwise
  TensorView<const V, 4> elementwise;  ///< [B, Hq, Nq, Dv] when kind is elementwise

  template <class T>
  void apply_row(index_t b, index_t h, index_t i, T* row, index_t n) const noexcept {
    if (kind == GateKind::headwise) {
      policy::HeadwiseSigmoid<V>(headwise).apply_row(b, h, i, row, n);
    } else if (kind == GateKind::elementwise) {
      policy::ElementwiseSigmoid<V>(elementwise).apply_row(b, h, i, row, n);
    }
  }
  SelectableSigmoidGate bind(const policy::Geometry& g) const {
    if (kind == GateKind::headwise) policy::HeadwiseSigmoid<V>(headwise).bind(g);
    if (kind == GateKind::elementwise) policy::ElementwiseSigmoid<V>(elementwise).bind(g);
    return *this;
  }
  /// The values the factors are the sigmoid of (attention_backward's gate gradient).
  friend constexpr policy::SigmoidGateValues sigmoid_gate_values(
      const SelectableSigmoidGate& g) noexcept {
    return g.kind == GateKind::headwise      ? policy::SigmoidGateValues::headwise
           : g.kind == GateKind::elementwise ? policy::SigmoidGateValues::elementwise
                                             : policy::SigmoidGateValues::none;
  }
};

static_assert(policy::gate_policy<SelectableSigmoidGate<float>>);

/// An observer of one MultiHeadAttention::forward call (attnkit/inspect/ is built on it). With no
/// capture (a null pointer, the default) forward runs exactly as before; empty members do
/// nothing.
/// \tparam T float or double
template <class T>
struct AttentionCapture {
  /// Given the shape [B, Hq, n, Nk] of the call's weights P, returns the caller's buffer of that
  /// shape for the kernel's own capture (attention() with `probs`), or an empty view for none
  /// (then the kernel takes its usual path). The buffer is N² memory: reuse it across layers.
  std::function<TensorView<T, 4>(const Shape<4>& shape)> probs;
  /// Called after the kernel with the call's q [B, Hq, n, D] (after RoPE), k and v
  /// [B, Hkv, Nk, D] (with a cache: every cached key) and P (empty when not captured).
  std::function<void(TensorView<const T, 4> q, TensorView<const T, 4> k, TensorView<const T, 4> v,
                     TensorView<const T, 4> probs)>
      observe;
};

/// Multi-head self-attention with PyTorch/Hugging Face weight layouts:
/// q_proj [Hq·D, hidden], k_proj and v_proj [Hkv·D, hidden], o_proj [hidden, Hq·D] (biases
/// optional, in the Linear modules), optional g_proj [Hq, hidden] (headwise) or
/// [Hq·D, hidden] (elementwise). Hq a multiple of Hkv: MHA (Hkv = Hq), GQA, MQA (Hkv = 1).
///
/// forward: q, k, v = projections of x; RoPE (if set) on q and k at the given positions; the
/// fused attention<Policy> kernel (the policy's mask, e.g. Causal for a decoder; bottom-right
/// aligned, so with a cache the new rows sit after the cached keys); when gated,
/// out_h *= sigmoid(g_proj · x) per head (headwise) or per element, inside the kernel's gate
/// epilogue, before o_proj. The gate reads the same x as q_proj (the normalized block input).
///
/// The gate comes from the policy's gate type: NoGate (g_proj must be empty),
/// policy::HeadwiseSigmoid<T>, policy::ElementwiseSigmoid<T>, or SelectableSigmoidGate<T>
/// (follows g_proj's shape; empty means none).
/// \tparam Policy an attnkit::policy::AttentionPolicy (its gate values are filled per call)
/// \tparam T float or double
template <class Policy, class T = float>
class MultiHeadAttention {
  static_assert(policy::is_attention_policy<Policy>,
                "attnkit: Policy of MultiHeadAttention must be an "
                "attnkit::policy::AttentionPolicy<Activation, Mask, ScoreMod, Gate>");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of MultiHeadAttention must be float or double");
  using Gate = typename Policy::gate_type;
  static constexpr bool gate_none = std::is_same_v<Gate, policy::NoGate>;
  static constexpr bool gate_headwise = std::is_same_v<Gate, policy::HeadwiseSigmoid<T>>;
  static constexpr bool gate_elementwise = std::is_same_v<Gate, policy::ElementwiseSigmoid<T>>;
  static constexpr bool gate_selectable = std::is_same_v<Gate, SelectableSigmoidGate<T>>;
  static_assert(gate_none || gate_headwise || gate_elementwise || gate_selectable,
                "attnkit: the gate of MultiHeadAttention's Policy must be NoGate, "
                "HeadwiseSigmoid<T>, ElementwiseSigmoid<T> or SelectableSigmoidGate<T> with the "
                "same T as the module");

 public:
  index_t heads = 1;     ///< Hq
  index_t kv_heads = 1;  ///< Hkv
  index_t head_dim = 1;  ///< D
  block::Linear<T> q_proj, k_proj, v_proj, o_proj;
  block::Weight<T> g_proj;  ///< empty, [Hq, hidden] or [Hq·D, hidden] (T, bf16 or f16)
  std::optional<block::RoPE> rope;
  /// Per-head RMSNorm weights of q and of k ([D] each; both or neither), applied to every head's
  /// row after the projections and before RoPE (Qwen3's q_norm and k_norm), eps qk_norm_eps.
  TensorView<const T, 1> q_norm, k_norm;
  double qk_norm_eps = 1e-6;
  Policy policy{};  ///< activation, mask, score mod (the gate values are set per call)
  AttentionOptions options{};

  index_t hidden() const noexcept { return q_proj.in_features(); }

  /// The gate kind g_proj's shape gives (throws shape_error for any other shape).
  GateKind gate_kind() const {
    if (g_proj.empty()) return GateKind::none;
    const index_t hid = hidden();
    if (g_proj.shape() == Shape<2>{heads, hid}) return GateKind::headwise;
    if (g_proj.shape() == Shape<2>{heads * head_dim, hid}) return GateKind::elementwise;
    throw shape_error("attnkit: MultiHeadAttention: g_proj has shape " +
                      shape_string(g_proj.shape()) + ", expected [" + std::to_string(heads) + ", " +
                      std::to_string(hid) + "] (headwise) or [" + std::to_string(heads * head_dim) +
                      ", " + std::to_string(hid) + "] (elementwise)");
  }

  /// Checks every weight against heads, kv_heads and head_dim; throws shape_error naming the
  /// projection and both shapes, or error when the gate does not match the policy.
  void check() const {
    const index_t hid = hidden();
    if (heads < 1 || kv_heads < 1 || head_dim < 1 || heads % kv_heads != 0)
      throw shape_error("attnkit: MultiHeadAttention: " + std::to_string(heads) +
                        " query heads are not a multiple of " + std::to_string(kv_heads) +
                        " kv heads (head_dim " + std::to_string(head_dim) + ")");
    auto want = [](const char* name, const block::Weight<T>& w, Shape<2> s) {
      if (w.shape() != s) throw_shape_mismatch("MultiHeadAttention", name, w.shape(), s);
    };
    want("q_proj", q_proj.weight, {heads * head_dim, hid});
    want("k_proj", k_proj.weight, {kv_heads * head_dim, hid});
    want("v_proj", v_proj.weight, {kv_heads * head_dim, hid});
    want("o_proj", o_proj.weight, {hid, heads * head_dim});
    auto want_bias = [](const char* name, const block::Linear<T>& l) {
      if (!l.bias.empty() && l.bias.shape() != Shape<1>{l.out_features()})
        throw_shape_mismatch("MultiHeadAttention", name, l.bias.shape(),
                             Shape<1>{l.out_features()});
    };
    want_bias("q_proj bias", q_proj);
    want_bias("k_proj bias", k_proj);
    want_bias("v_proj bias", v_proj);
    want_bias("o_proj bias", o_proj);
    if (q_norm.empty() != k_norm.empty())
      throw error("attnkit: MultiHeadAttention: q_norm and k_norm come together (one is empty)");
    for (const auto& [name, w] : {std::pair{"q_norm", q_norm}, std::pair{"k_norm", k_norm}})
      if (!w.empty() && w.shape() != Shape<1>{head_dim})
        throw_shape_mismatch("MultiHeadAttention", name, w.shape(), Shape<1>{head_dim});
    const GateKind g = gate_kind();
    if ((gate_none && g != GateKind::none) || (gate_headwise && g != GateKind::headwise) ||
        (gate_elementwise && g != GateKind::elementwise))
      throw error(std::string("attnkit: MultiHeadAttention: the policy's gate is ") +
                  (gate_none       ? "NoGate"
                   : gate_headwise ? "HeadwiseSigmoid"
                                   : "ElementwiseSigmoid") +
                  " but g_proj has shape " + shape_string(g_proj.shape()) +
                  " (use SelectableSigmoidGate to follow the weights)");
    if (rope && rope->rotary_dim() > head_dim)
      throw shape_error("attnkit: MultiHeadAttention: RoPE rotary_dim " +
                        std::to_string(rope->rotary_dim()) + " > head_dim " +
                        std::to_string(head_dim));
  }

  /// y [B, N, hidden] = attention over x [B, N, hidden]; positions [N] (RoPE positions of the
  /// rows). y must not alias x. With a capture, the weights go to its buffer and its observer
  /// sees q, k, v and P (see AttentionCapture).
  void forward(TensorView<const T, 3> x, std::span<const index_t> positions, TensorView<T, 3> y,
               const AttentionCapture<T>* capture = nullptr) const {
    ScratchFrame frame;  // the projections: no allocation per call (core/scratch_stack.hpp)
    Projected p = project(frame, x, positions, y, true);
    const Policy pol = policy_for_rows(p, 0, p.n);
    run<T>(pol, p.q, p.k, p.v, p.o, options, capture, {});
    o_proj(TensorView<const T, 2>(p.ob), TensorView<T, 2>(y.data(), {p.nb * p.n, hidden()}));
  }

  /// forward() through a cache policy object (e.g. attnkit::modules::KVCache: full, sliding
  /// window, attention sinks, retention), which decides which keys each row sees. The protocol:
  /// the module projects x, rotates q (RoPE at `positions`) and calls
  /// `cache.step(k, v, positions, rope, Hq, attend)` with the new keys k [B, Hkv, N, D] *not
  /// rotated* (the cache rotates them at the positions it assigns), v [B, Hkv, N, Dv], and
  /// `attend(r0, r1, keys, values, probs)`, which runs attention<Policy> for the query rows
  /// [r0, r1) of this call over keys/values [B, Hkv, Nk, ·] (bottom-right aligned under the
  /// policy's mask) and also writes the weights into probs [B, Hq, r1 - r0, Nk] when probs is
  /// not empty. One-row calls take the split-KV decode path unless `options` says never.
  /// `cache.preserves_distances()` says whether held slots keep the distances i' - j a
  /// positional score mod (ALiBi) reads; forward throws error when it does not.
  /// \tparam Cache a type with a `kv_cache_tag` member type, step() and preserves_distances()
  /// With a capture, each attend call of the step puts its rows' weights [B, Hq, r1 - r0, Nk]
  /// in the capture's buffer (and copies them to the cache's when it asks for them too) and
  /// calls the observer with those rows' q and the keys and values the cache holds.
  template <class Cache>
  requires requires { typename Cache::kv_cache_tag; }
  void forward(TensorView<const T, 3> x, std::span<const index_t> positions, TensorView<T, 3> y,
               Cache& cache, const AttentionCapture<T>* capture = nullptr) const {
    if constexpr (policy::encodes_positions<typename Policy::score_mod_type>) {
      if (!cache.preserves_distances())
        throw error(
            "attnkit: MultiHeadAttention: the cache reorders its tokens (the sparse "
            "memory mode), which a positional score mod such as ALiBi cannot follow; use "
            "RoPE positions or another cache policy");
    }
    ScratchFrame frame;  // the projections: no allocation per call (core/scratch_stack.hpp)
    Projected p = project(frame, x, positions, y, false);
    const block::RoPE* r = rope ? &*rope : nullptr;
    cache.step(TensorView<const T, 4>(p.k), TensorView<const T, 4>(p.v), positions, r, heads,
               [&](index_t r0, index_t r1, auto kc, auto vc, TensorView<T, 4> probs) {
                 const Policy pol = policy_for_rows(p, r0, r1);
                 AttentionOptions o = options;
                 if (r1 - r0 == 1 && o.decode == DecodeMode::automatic)
                   o.decode = DecodeMode::always;
                 run(pol, p.q.slice(r0, r1, 2), kc, vc, p.o.slice(r0, r1, 2), o, capture, probs);
               });
    o_proj(TensorView<const T, 2>(p.ob), TensorView<T, 2>(y.data(), {p.nb * p.n, hidden()}));
  }

 private:
  /// The projections of one call: [B·N, H·D] buffers (in the caller's scratch frame) seen as
  /// [B, H, N, D] by strides (no transposes), and the gate logits [B·N, Hq] or [B·N, Hq·D].
  struct Projected {
    index_t nb = 0, n = 0;
    TensorView<T, 2> qb, kb, vb, ob, gb;
    TensorView<T, 4> q, k, v, o;
    GateKind gate = GateKind::none;
  };

  /// Checks shapes, projects x, applies RoPE to q (and to k when rotate_k).
  Projected project(ScratchFrame& frame, TensorView<const T, 3> x,
                    std::span<const index_t> positions, TensorView<T, 3> y, bool rotate_k) const {
    check();
    const index_t nb = x.extent(0), n = x.extent(1), hid = hidden();
    const index_t d = head_dim, hq = heads, hkv = kv_heads;
    if (x.extent(2) != hid)
      throw_shape_mismatch("MultiHeadAttention", "x", x.shape(), Shape<3>{nb, n, hid});
    if (y.shape() != x.shape())
      throw_shape_mismatch("MultiHeadAttention", "y", y.shape(), x.shape());
    if (static_cast<index_t>(positions.size()) != n)
      throw shape_error("attnkit: MultiHeadAttention: " + std::to_string(positions.size()) +
                        " positions for " + std::to_string(n) + " rows");
    if (!x.is_contiguous() || !y.is_contiguous())
      throw shape_error("attnkit: MultiHeadAttention: x and y must be contiguous");
    const index_t m = nb * n;
    const TensorView<const T, 2> x2(x.data(), {m, hid});
    Projected p;
    p.nb = nb;
    p.n = n;
    p.qb = frame.tensor<T>(Shape<2>{m, hq * d});
    p.kb = frame.tensor<T>(Shape<2>{m, hkv * d});
    p.vb = frame.tensor<T>(Shape<2>{m, hkv * d});
    p.ob = frame.tensor<T>(Shape<2>{m, hq * d});
    q_proj(x2, p.qb);
    k_proj(x2, p.kb);
    v_proj(x2, p.vb);
    auto heads_view = [&](T* ptr, index_t h) {
      return TensorView<T, 4>(ptr, {nb, h, n, d}, {n * h * d, d, h * d, 1});
    };
    p.q = heads_view(p.qb.data(), hq);
    p.k = heads_view(p.kb.data(), hkv);
    p.v = heads_view(p.vb.data(), hkv);
    p.o = heads_view(p.ob.data(), hq);
    if (!q_norm.empty()) {
      // Rows of D within qb and kb are contiguous: normalize them as [rows, D] in place.
      const block::RMSNorm rms(qk_norm_eps);
      const TensorView<T, 2> qr(p.qb.data(), {m * hq, d}), kr(p.kb.data(), {m * hkv, d});
      block::normalize_rows<block::RMSNorm, T>(rms, qr, q_norm, {}, qr);
      block::normalize_rows<block::RMSNorm, T>(rms, kr, k_norm, {}, kr);
    }
    if (rope) {
      rope->apply<T>(p.q, positions);
      if (rotate_k) rope->apply<T>(p.k, positions);
    }
    p.gate = gate_kind();
    if (p.gate != GateKind::none) {
      p.gb = frame.tensor<T>(Shape<2>{m, g_proj.extent(0)});
      block::linear<T>(x2, g_proj, p.gb);
    }
    return p;
  }

  /// attention<Policy> of q [B, Hq, n, D] over kc, vc into o, the weights into `probs` when it
  /// is not empty (a cache's buffer) and into the capture's buffer when it gives one; then the
  /// capture's observer.
  /// \tparam KV the element type of the cached keys and values: T, or bf16 / f16 (T = float)
  template <class KV>
  void run(const Policy& pol, TensorView<const T, 4> q, TensorView<const KV, 4> kc,
           TensorView<const KV, 4> vc, TensorView<T, 4> o, const AttentionOptions& opts,
           const AttentionCapture<T>* capture, TensorView<T, 4> probs) const {
    TensorView<T, 4> cap;
    if (capture != nullptr && capture->probs)
      cap = capture->probs(Shape<4>{q.extent(0), heads, q.extent(2), kc.extent(2)});
    const TensorView<T, 4> w = cap.empty() ? probs : cap;
    if (w.empty()) {
      attention(pol, q, kc, vc, o, opts);
    } else {
      attention(pol, q, kc, vc, o, w, opts);
      if (!cap.empty() && !probs.empty()) copy(TensorView<const T, 4>(cap), probs);
    }
    if (capture != nullptr && capture->observe) {
      if constexpr (std::is_same_v<KV, T>) {
        capture->observe(q, kc, vc, TensorView<const T, 4>(w));
      } else {  // the observer reads T: the held 16-bit keys and values widened
        Tensor<T, 4> kw(kc.shape()), vw(vc.shape());
        for (index_t a = 0; a < kc.extent(0); ++a)
          for (index_t h = 0; h < kc.extent(1); ++h)
            for (index_t j = 0; j < kc.extent(2); ++j) {
              for (index_t c = 0; c < kc.extent(3); ++c) kw(a, h, j, c) = kc(a, h, j, c).to_float();
              for (index_t c = 0; c < vc.extent(3); ++c) vw(a, h, j, c) = vc(a, h, j, c).to_float();
            }
        capture->observe(q, kw.cview(), vw.cview(), TensorView<const T, 4>(w));
      }
    }
  }

  /// The policy with the gate values of the query rows [r0, r1) of a call.
  Policy policy_for_rows(const Projected& p, index_t r0, index_t r1) const {
    Policy pol = policy;
    const index_t nb = p.nb, n = p.n, hq = heads, d = head_dim;
    if (p.gate != GateKind::none) {
      const TensorView<const T, 3> hw =
          TensorView<const T, 3>(p.gb.data(), {nb, hq, n}, {n * hq, 1, hq}).slice(r0, r1, 2);
      const TensorView<const T, 4> ew =
          TensorView<const T, 4>(p.gb.data(), {nb, hq, n, d}, {n * hq * d, d, hq * d, 1})
              .slice(r0, r1, 2);
      if constexpr (gate_headwise) pol.gate = policy::HeadwiseSigmoid<T>(hw);
      if constexpr (gate_elementwise) pol.gate = policy::ElementwiseSigmoid<T>(ew);
      if constexpr (gate_selectable) {
        pol.gate.kind = p.gate;
        pol.gate.headwise = hw;
        pol.gate.elementwise = ew;
      }
    } else if constexpr (gate_selectable) {
      pol.gate.kind = GateKind::none;
    }
    return pol;
  }
};

}  // namespace attnkit::modules
