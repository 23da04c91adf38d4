// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden models of tests/golden/data: linear (no activation; tied embeddings) and relu (BF16).
#include "golden_util.hpp"

namespace mdl = attnkit::model;

TEST_CASE("golden: LinearLlama (tied embeddings)", "[model][golden]") {
  golden::check_variant<mdl::LinearLlama>("linear");
  const auto m = mdl::LinearLlama::load(golden::folder("linear"));
  CHECK(m.config.tie_word_embeddings);
  CHECK(m.lm_head.data() == m.embed_tokens.data());
}

TEST_CASE("golden: ReluLlama (BF16 weights)", "[model][golden]") {
  golden::check_variant<mdl::ReluLlama>("relu");
}
