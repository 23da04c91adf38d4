// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden models of tests/golden/data: sigmoid, sigmoid with b = -ln n, normalized sigmoid.
#include "golden_util.hpp"

namespace mdl = attnkit::model;

TEST_CASE("golden: MySigmoidLlama", "[model][golden]") {
  golden::check_variant<mdl::MySigmoidLlama>("sigmoid");
}

TEST_CASE("golden: MySigmoidWithBLlama (b = -ln n)", "[model][golden]") {
  golden::check_variant<mdl::MySigmoidWithBLlama>("sigmoid-bias");
}

TEST_CASE("golden: MyNormalizedSigmoidLlama", "[model][golden]") {
  golden::check_variant<mdl::MyNormalizedSigmoidLlama>("normalized-sigmoid");
}
