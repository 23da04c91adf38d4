// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden models of tests/golden/data: softmax (F32, zero-copy), gated (headwise, elementwise) and
// softmax across heads against PyTorch's logits and greedy continuations.
#include "golden_util.hpp"

namespace mdl = attnkit::model;

TEST_CASE("golden: MyLlama (softmax, F32)", "[model][golden]") {
  golden::check_variant<mdl::MyLlama>("softmax");
  const auto m = mdl::MyLlama::load(golden::folder("softmax"));
  CHECK(m.zero_copy());
}

TEST_CASE("golden: MyGatedLlama (headwise and elementwise gates, F16)", "[model][golden]") {
  golden::check_variant<mdl::MyGatedLlama>("gated-headwise");
  golden::check_variant<mdl::MyGatedLlama>("gated-elementwise");
  CHECK_FALSE(mdl::MyGatedLlama::load(golden::folder("gated-headwise")).zero_copy());
}

TEST_CASE("golden: MySoftmaxLlama (softmax across heads)", "[model][golden]") {
  golden::check_variant<mdl::MySoftmaxLlama>("head-softmax");
}
