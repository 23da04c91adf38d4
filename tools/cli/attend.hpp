// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit attend: what the option parsing (cmd_attend.cpp) hands to the kernel TUs
// (attend_f32.cpp, attend_f64.cpp), which instantiate attention() once per activation. Light on
// purpose: cmd_attend.cpp does not parse the kernel headers.
#pragma once

#include <cstdint>
#include <optional>

#include "attnkit/core/tensor.hpp"
#include "attnkit/policy/mask_spec.hpp"

namespace attnkit::cli {

/// The activations of docs/CLI.md. sigmoid runs as sigmoid-bias with b = 0 (the same kernel).
enum class ActivationKind : std::uint8_t {
  softmax,
  sigmoid_bias,
  normalized_sigmoid,
  head_softmax,
  linear,
  relu,
  softcap,
};

/// An activation and its runtime value.
struct ActivationChoice {
  ActivationKind kind = ActivationKind::softmax;
  bool value_given = false;  ///< sigmoid-bias: b given (else -ln Nk)
  double value = 0.0;        ///< softcap: C; sigmoid-bias: b when given; normalized-sigmoid: b
};

/// The output gates of docs/CLI.md (the kernel TUs map them onto
/// attnkit::SelectableSigmoidGate, one instantiation for all three).
enum class GateChoice : std::uint8_t { none, headwise, elementwise };

/// Everything one attend computation needs, already loaded and checked.
/// \tparam T float or double: the compute and output type
template <class T>
struct AttendJob {
  Tensor<T, 4> q, k, v;  ///< [B, Hq, Nq, D], [B, Hkv, Nk, D], [B, Hkv, Nk, Dv]
  Tensor<T, 4> out;      ///< [B, Hq, Nq, Dv]
  Tensor<T, 4> probs;    ///< [B, Hq, Nq, Nk] when capture
  bool capture = false;  ///< --probs given
  ActivationChoice activation;
  policy::MaskSpec mask;
  GateChoice gate = GateChoice::none;
  Tensor<T, 3> gate_headwise;     ///< [B, Hq, Nq]
  Tensor<T, 4> gate_elementwise;  ///< [B, Hq, Nq, Dv]
  std::optional<double> scale;    ///< --scale; default 1/sqrt(D)
};

/// Runs the fused kernel of the job's activation once (defined in attend_f32.cpp and
/// attend_f64.cpp, so each dtype's instantiations compile in their own TU).
void run_attend(AttendJob<float>& job);
void run_attend(AttendJob<double>& job);

}  // namespace attnkit::cli
