// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The named LLaMA attention variants: one Decoder per attention activation, plus
// the fixes (normalized sigmoid, relu) and a gated-attention variant.
#pragma once

#include "attnkit/model/decoder.hpp"
#include "attnkit/modules/multi_head_attention.hpp"
#include "attnkit/policy/attention_policy.hpp"

namespace attnkit::model {

/// The attention policy of a LLaMA-style decoder: an activation, the causal mask, no score mod.
/// \tparam Activation a policy::score_activation
/// \tparam Gate policy::NoGate (default) or a sigmoid output gate
template <class Activation, class Gate = policy::NoGate>
using LlamaPolicy = policy::AttentionPolicy<Activation, policy::Causal, policy::NoScoreMod, Gate>;

/// A LLaMA-style decoder with the given activation (fp32).
template <class Activation, class Gate = policy::NoGate>
using LlamaDecoder = Decoder<LlamaPolicy<Activation, Gate>, float>;

/// Standard LLaMA: softmax over keys.
using SoftmaxLlama = LlamaDecoder<policy::Softmax>;
/// Sigmoid attention: P = sigmoid(s).
using SigmoidLlama = LlamaDecoder<policy::Sigmoid>;
/// Sigmoid with bias: P = sigmoid(s + b), b = -ln n, n the key count of the attention call (the
/// prompt length in the prefill, the cached keys in a decode step).
using SigmoidBiasLlama = LlamaDecoder<policy::SigmoidBias>;
/// Softmax across the heads (dim=1 of [B, H, N, N]), over the heads for which (i, j) is visible.
using HeadSoftmaxLlama = LlamaDecoder<policy::HeadSoftmax>;
/// No activation: P = s.
using LinearLlama = LlamaDecoder<policy::Linear>;
/// A fix for sigmoid: P = sigmoid(s) / Σ_visible sigmoid(s).
using NormalizedSigmoidLlama = LlamaDecoder<policy::NormalizedSigmoid>;
/// A fix for linear attention: P = max(s, 0).
using ReluLlama = LlamaDecoder<policy::ReLU>;
/// Gated attention (Qiu et al. 2025): softmax, then out *= sigmoid(g_proj · x) per head or per
/// element, as the g_proj weight in the file says.
using GatedSoftmaxLlama = LlamaDecoder<policy::Softmax, modules::SelectableSigmoidGate<float>>;

}  // namespace attnkit::model
