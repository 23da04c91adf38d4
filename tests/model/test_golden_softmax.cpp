// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden models of tests/golden/data: softmax (F32, zero-copy), gated (headwise, elementwise) and
// softmax across heads against PyTorch's logits and greedy continuations.
#include "golden_util.hpp"

namespace mdl = attnkit::model;

TEST_CASE("golden: SoftmaxLlama (softmax, F32)", "[model][golden]") {
  golden::check_variant<mdl::SoftmaxLlama>("softmax");
  const auto m = mdl::SoftmaxLlama::load(golden::folder("softmax"));
  CHECK(m.zero_copy());
}

TEST_CASE("golden: GatedSoftmaxLlama (headwise and elementwise gates, F16)", "[model][golden]") {
  golden::check_variant<mdl::GatedSoftmaxLlama>("gated-headwise");
  golden::check_variant<mdl::GatedSoftmaxLlama>("gated-elementwise");
  CHECK_FALSE(mdl::GatedSoftmaxLlama::load(golden::folder("gated-headwise")).zero_copy());
}

TEST_CASE("golden: HeadSoftmaxLlama (softmax across heads)", "[model][golden]") {
  golden::check_variant<mdl::HeadSoftmaxLlama>("head-softmax");
}
