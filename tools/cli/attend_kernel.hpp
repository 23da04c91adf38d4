// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: the activation dispatch, included by one TU per dtype (attend_f32.cpp,
// attend_f64.cpp). Each TU instantiates attention() for every registered activation
// (policy/registry.hpp) with the runtime mask (MaskSpec) and the runtime gate
// (SelectableSigmoidGate), each without a score mod and with the chain ALiBi + ScoreBias
// (--alibi, --key-bias; an absent part is zero), and the softmax-family ones also with
// --sink-logits (policy::SinkLogits): 22 kernels per dtype, whatever the mask terms, the gate
// kind and the score mods.
#pragma once

#include <utility>

#include "attnkit/attention/attention.hpp"
#include "attnkit/modules/multi_head_attention.hpp"
#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/policy/registry.hpp"
#include "attnkit/policy/score_mod.hpp"

#include "attend.hpp"

namespace attnkit::cli {

namespace attend_detail {

/// The job's K and V as the kernel reads them: T, bf16 or f16.
template <class KV, class T>
std::pair<TensorView<const KV, 4>, TensorView<const KV, 4>> kv_views(const AttendJob<T>& job) {
  if constexpr (std::is_same_v<KV, bf16>) {
    return {job.kb.cview(), job.vb.cview()};
  } else if constexpr (std::is_same_v<KV, f16>) {
    return {job.kh.cview(), job.vh.cview()};
  } else {
    return {job.k.cview(), job.v.cview()};
  }
}

template <class KV, class T, class Activation, class ScoreMod>
void run_with_mod(const Activation& act, const ScoreMod& mod, AttendJob<T>& job) {
  modules::SelectableSigmoidGate<T> gate;
  gate.kind = job.gate == GateChoice::headwise      ? modules::GateKind::headwise
              : job.gate == GateChoice::elementwise ? modules::GateKind::elementwise
                                                    : modules::GateKind::none;
  gate.headwise = job.gate_headwise.view();
  gate.elementwise = job.gate_elementwise.view();
  const policy::AttentionPolicy<Activation, policy::MaskSpec, ScoreMod,
                                modules::SelectableSigmoidGate<T>>
      pol(act, job.mask, mod, gate);
  AttentionOptions options;
  options.scale = job.scale;
  const auto [k, v] = kv_views<KV>(job);
  if (job.capture) {
    attention(pol, job.q.cview(), k, v, job.out.view(), job.probs.view(), options);
  } else {
    attention(pol, job.q.cview(), k, v, job.out.view(), options);
  }
}

/// Without score mods, or with ALiBi + ScoreBias (zero slopes or a zero bias for the part that
/// was not asked for: adding 0 changes no score).
template <class KV, class T, class Activation>
void run_with(const Activation& act, AttendJob<T>& job) {
  if (!job.alibi && !job.has_bias()) return run_with_mod<KV>(act, policy::NoScoreMod{}, job);
  const index_t b = job.q.extent(0), hq = job.q.extent(1), nq = job.q.extent(2);
  const index_t nk = job.k.extent(2);
  const policy::ALiBi alibi = job.alibi ? policy::ALiBi::standard(hq)
                                        : policy::ALiBi(std::vector<double>(std::size_t(hq), 0.0));
  static const T zero = T(0);
  TensorView<const T, 4> bias(&zero, Shape<4>{b, hq, nq, nk}, Strides<4>{0, 0, 0, 0});
  if (job.key_bias.size() > 0)
    bias = TensorView<const T, 4>(job.key_bias.data(), Shape<4>{b, hq, nq, nk},
                                  Strides<4>{nk, 0, 0, 1});
  if (job.score_bias.size() > 0) bias = job.score_bias.cview();
  run_with_mod<KV>(act, policy::ScoreModChain(alibi, policy::ScoreBias<T>(bias)), job);
}

/// \tparam KV what the kernel reads K and V as (T, or bf16 / f16 with T = float)
template <class KV, class T>
void run_attend_impl(AttendJob<T>& job) {
  policy::visit_activation(job.activation, [&](const auto& act) {
    using A = std::decay_t<decltype(act)>;
    if constexpr (A::normalization == policy::Normalization::over_keys_exp) {
      if (!job.sink_logits.empty())
        return run_with<KV>(policy::SinkLogits<A>(act, job.sink_logits), job);
    }
    run_with<KV>(act, job);
  });
}

}  // namespace attend_detail

}  // namespace attnkit::cli
