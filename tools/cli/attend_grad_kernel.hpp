// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend --grad-out: attention_partial (out and the row state) then attention_backward
// for every registered activation with the runtime mask (MaskSpec) and gate
// (SelectableSigmoidGate), and the softmax-family ones with --sink-logits; no score mods (the
// CLI leaves them out to keep the instantiations few). Included by attend_grad.cpp, which runs
// it in double whatever the --dtype.
#pragma once

#include "attnkit/attention/attention.hpp"
#include "attnkit/attention/backward.hpp"
#include "attnkit/modules/multi_head_attention.hpp"
#include "attnkit/policy/registry.hpp"

#include "attend.hpp"

namespace attnkit::cli::attend_detail {

template <class T, class Activation>
void run_grad_with(const Activation& act, AttendJob<T>& job) {
  modules::SelectableSigmoidGate<T> gate;
  gate.kind = job.gate == GateChoice::headwise      ? modules::GateKind::headwise
              : job.gate == GateChoice::elementwise ? modules::GateKind::elementwise
                                                    : modules::GateKind::none;
  gate.headwise = job.gate_headwise.view();
  gate.elementwise = job.gate_elementwise.view();
  const policy::AttentionPolicy<Activation, policy::MaskSpec, policy::NoScoreMod,
                                modules::SelectableSigmoidGate<T>>
      pol(act, job.mask, {}, gate);
  AttentionOptions options;
  options.scale = job.scale;
  Tensor<T, 3> state({job.q.extent(0), job.q.extent(1), job.q.extent(2)});
  attention_partial(pol, job.q.cview(), job.k.cview(), job.v.cview(), job.out.view(), state.view(),
                    options);
  AttentionGradExtras<T> extra;
  if (job.gate == GateChoice::headwise) extra.dgate_heads = job.dgate_headwise.view();
  if (job.gate == GateChoice::elementwise) extra.dgate = job.dgate_elementwise.view();
  if (!job.sink_logits.empty()) extra.dsinks = job.dsinks;
  attention_backward(pol, job.q.cview(), job.k.cview(), job.v.cview(), job.out.cview(),
                     state.cview(), job.dout.cview(), job.dq.view(), job.dk.view(), job.dv.view(),
                     options, extra);
}

template <class T>
void run_attend_grad_impl(AttendJob<T>& job) {
  policy::visit_activation(job.activation, [&](const auto& act) {
    using A = std::decay_t<decltype(act)>;
    if constexpr (A::normalization == policy::Normalization::over_keys_exp) {
      if (!job.sink_logits.empty())
        return run_grad_with<T>(policy::SinkLogits<A>(act, job.sink_logits), job);
    }
    run_grad_with<T>(act, job);
  });
}

}  // namespace attnkit::cli::attend_detail
