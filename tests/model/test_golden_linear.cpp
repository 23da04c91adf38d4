// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden models of tests/golden/data: linear (no activation; tied embeddings) and relu (BF16).
#include "golden_util.hpp"

namespace mdl = attnkit::model;

TEST_CASE("golden: MyLinearLlama (tied embeddings)", "[model][golden]") {
  golden::check_variant<mdl::MyLinearLlama>("linear");
  const auto m = mdl::MyLinearLlama::load(golden::folder("linear"));
  CHECK(m.config.tie_word_embeddings);
  CHECK(m.lm_head.data() == m.embed_tokens.data());
}

TEST_CASE("golden: MyReluLlama (BF16 weights)", "[model][golden]") {
  golden::check_variant<mdl::MyReluLlama>("relu");
}
