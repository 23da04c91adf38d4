// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden models of tests/golden/data: sigmoid, sigmoid with b = -ln n, normalized sigmoid.
#include "golden_util.hpp"

namespace mdl = attnkit::model;

TEST_CASE("golden: SigmoidLlama", "[model][golden]") {
  golden::check_variant<mdl::SigmoidLlama>("sigmoid");
}

TEST_CASE("golden: SigmoidBiasLlama (b = -ln n)", "[model][golden]") {
  golden::check_variant<mdl::SigmoidBiasLlama>("sigmoid-bias");
}

TEST_CASE("golden: NormalizedSigmoidLlama", "[model][golden]") {
  golden::check_variant<mdl::NormalizedSigmoidLlama>("normalized-sigmoid");
}
