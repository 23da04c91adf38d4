// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// MultiHeadAttention under the elementwise activations (sigmoid, sigmoid with b = -ln n, linear,
// relu) and softmax across heads against the double reference.
#include "mha_reference.hpp"

using namespace block_test;
namespace pol = attnkit::policy;

namespace {
template <class Act>
using Gated = pol::AttentionPolicy<Act, pol::Causal, pol::NoScoreMod,
                                   attnkit::modules::SelectableSigmoidGate<float>>;
}

TEST_CASE("MultiHeadAttention: sigmoid, sigmoid-bias, linear, relu, head-softmax",
          "[attention][mha]") {
  const auto heads = GENERATE(table<index_t, index_t>({{4, 4}, {4, 2}, {4, 1}}));
  const int gate = GENERATE(0, 1, 2);
  const index_t n = GENERATE(1, 6, 21);
  const index_t hq = std::get<0>(heads), hkv = std::get<1>(heads);
  check_mha<Gated<pol::Sigmoid>>("sigmoid", 2, n, 40, hq, hkv, 16, gate, 2e-5);
  check_mha<Gated<pol::SigmoidBias>>("sigmoid-bias", 1, n, 40, hq, hkv, 16, gate, 2e-5);
  check_mha<Gated<pol::Linear>>("linear", 1, n, 40, hq, hkv, 16, gate, 2e-5);
  check_mha<Gated<pol::ReLU>>("relu", 1, n, 40, hq, hkv, 16, gate, 2e-5);
  check_mha<Gated<pol::HeadSoftmax>>("head-softmax", 2, n, 40, hq, hkv, 16, gate, 2e-5);
}
