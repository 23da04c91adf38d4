// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// fp32 GEMM: packed kernel on every architecture over awkward shapes and layouts, the public
// gemm/gemm_batched, and thread-count independence, against a long double reference.
#include <catch2/catch.hpp>

#include "gemm_test_util.hpp"

TEST_CASE("packed_gemm fp32: awkward shapes, all layouts, every architecture", "[kernel][gemm]") {
  attnkit_test::test_packed_all_archs<float>();
}

TEST_CASE("gemm fp32: public entry, small path, batched, special alpha/beta", "[kernel][gemm]") {
  attnkit_test::test_public_gemm<float>();
}

TEST_CASE("gemm fp32: 1, 2 and 3 threads give bit-identical results", "[kernel][gemm][threads]") {
  attnkit_test::test_threads_bit_identical<float>();
}
