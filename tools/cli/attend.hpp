// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: what the option parsing (cmd_attend.cpp) hands to the kernel TUs
// (attend_f32.cpp, attend_f64.cpp), which instantiate attention() once per registered
// activation. Light on purpose: cmd_attend.cpp does not parse the kernel headers.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "attnkit/core/half.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/policy/mask_spec.hpp"
#include "attnkit/policy/registry.hpp"

namespace attnkit::cli {

/// The output gates of docs/CLI.md (the kernel TUs map them onto
/// attnkit::modules::SelectableSigmoidGate, one instantiation for all three).
enum class GateChoice : std::uint8_t { none, headwise, elementwise };

/// What K and V are stored as for the kernel (--kv-dtype): the compute type, or rounded to bf16
/// or f16 (with --dtype f32).
enum class KVChoice : std::uint8_t { same, bf16, f16 };

/// Everything one attend computation needs, already loaded and checked.
/// \tparam T float or double: the compute and output type
template <class T>
struct AttendJob {
  Tensor<T, 4> q, k, v;               ///< [B, Hq, Nq, D], [B, Hkv, Nk, D], [B, Hkv, Nk, Dv]
  Tensor<T, 4> out;                   ///< [B, Hq, Nq, Dv]
  Tensor<T, 4> probs;                 ///< [B, Hq, Nq, Nk] when capture
  bool capture = false;               ///< --probs given
  policy::ActivationSpec activation;  ///< a registered activation (policy/registry.hpp)
  policy::MaskSpec mask;
  GateChoice gate = GateChoice::none;
  Tensor<T, 3> gate_headwise;     ///< [B, Hq, Nq]
  Tensor<T, 4> gate_elementwise;  ///< [B, Hq, Nq, Dv]
  std::optional<double> scale;    ///< --scale; default 1/sqrt(D)
  bool alibi = false;             ///< --alibi: ALiBi slopes of the paper for Hq heads
  /// --key-bias: the bias [B, Nk] (key_bias) or [B, Hq, Nq, Nk] (score_bias); may hold -inf
  Tensor<T, 2> key_bias;
  Tensor<T, 4> score_bias;
  /// --sink-logits: one learned sink logit per query head (a softmax-family activation only)
  std::vector<double> sink_logits;
  /// --kv-dtype: K and V rounded to bf16 (kb, vb) or f16 (kh, vh) and read as such
  KVChoice kv = KVChoice::same;
  Tensor<bf16, 4> kb, vb;
  Tensor<f16, 4> kh, vh;
  bool has_bias() const noexcept { return key_bias.size() > 0 || score_bias.size() > 0; }
  /// --grad-out: the backward pass too (attention_backward), given dout [B, Hq, Nq, Dv]
  bool grads = false;
  Tensor<T, 4> dout, dq, dk, dv;   ///< dq, dk, dv: the shapes of q, k, v
  Tensor<T, 3> dgate_headwise;     ///< [B, Hq, Nq] with --gate headwise
  Tensor<T, 4> dgate_elementwise;  ///< [B, Hq, Nq, Dv] with --gate elementwise
  std::vector<double> dsinks;      ///< [Hq] with --sink-logits
};

/// Runs the fused kernel of the job's activation once (defined in attend_f32.cpp and
/// attend_f64.cpp, so each dtype's instantiations compile in their own TU).
void run_attend(AttendJob<float>& job);
void run_attend(AttendJob<double>& job);
/// The forward pass with its row state, then attention_backward: out, dq, dk, dv and the gate's
/// and sink logits' gradients (attend_grad.cpp; in double whatever the --dtype, which then
/// only sets the type of the files written).
void run_attend_grad(AttendJob<double>& job);
/// The kernels over bf16 and f16 K and V (attend_bf16.cpp, attend_f16.cpp).
void run_attend_bf16(AttendJob<float>& job);
void run_attend_f16(AttendJob<float>& job);

}  // namespace attnkit::cli
