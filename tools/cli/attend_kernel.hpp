// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: the activation dispatch, included by one TU per dtype (attend_f32.cpp,
// attend_f64.cpp). Each TU instantiates attention() for 7 activation types with the runtime
// mask (MaskSpec) and the runtime gate (SelectableSigmoidGate): 7 kernels per dtype, whatever
// the mask terms and the gate kind.
#pragma once

#include "attnkit/attention/attention.hpp"
#include "attnkit/attention/multi_head_attention.hpp"
#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/policy/score_mod.hpp"

#include "attend.hpp"

namespace attnkit::cli {

namespace attend_detail {

template <class T, class Activation>
void run_with(const Activation& act, AttendJob<T>& job) {
  SelectableSigmoidGate<T> gate;
  gate.kind = job.gate == GateChoice::headwise      ? GateKind::headwise
              : job.gate == GateChoice::elementwise ? GateKind::elementwise
                                                    : GateKind::none;
  gate.headwise = job.gate_headwise.view();
  gate.elementwise = job.gate_elementwise.view();
  const policy::AttentionPolicy<Activation, policy::MaskSpec, policy::NoScoreMod,
                                SelectableSigmoidGate<T>>
      pol(act, job.mask, policy::NoScoreMod{}, gate);
  AttentionOptions options;
  options.scale = job.scale;
  if (job.capture) {
    attention(pol, job.q.view(), job.k.view(), job.v.view(), job.out.view(), job.probs.view(),
              options);
  } else {
    attention(pol, job.q.view(), job.k.view(), job.v.view(), job.out.view(), options);
  }
}

template <class T>
void run_attend_impl(AttendJob<T>& job) {
  namespace pol = policy;
  const ActivationChoice& a = job.activation;
  switch (a.kind) {
    case ActivationKind::softmax:
      return run_with(pol::Softmax{}, job);
    case ActivationKind::sigmoid_bias:
      return run_with(a.value_given ? pol::SigmoidBias(a.value) : pol::SigmoidBias{}, job);
    case ActivationKind::normalized_sigmoid:
      return run_with(pol::NormalizedSigmoid(a.value), job);
    case ActivationKind::head_softmax:
      return run_with(pol::HeadSoftmax{}, job);
    case ActivationKind::linear:
      return run_with(pol::Linear{}, job);
    case ActivationKind::relu:
      return run_with(pol::ReLU{}, job);
    case ActivationKind::softcap:
      return run_with(pol::Softcap(a.value), job);
  }
}

}  // namespace attend_detail

}  // namespace attnkit::cli
