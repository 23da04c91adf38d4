// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// einsum: the named operations of attention code, each against the double reference, with the
// compile-time and runtime forms bit-identical.
#include "einsum_test_util.hpp"

using namespace einsum_test;

TEMPLATE_TEST_CASE("einsum matmul ij,jk->ik", "[einsum][matmul]", float, double) {
  for (int rep = 0; rep < 12; ++rep) {
    const index_t m = pick(), k = pick(), n = pick();
    CAPTURE(m, k, n);
    check_spec<"ij,jk->ik", 2>(random_tensor<TestType, 2>({m, k}),
                               random_tensor<TestType, 2>({k, n}));
  }
}

TEMPLATE_TEST_CASE("einsum matmul across block sizes", "[einsum][matmul]", float, double) {
  const index_t m = GENERATE(1, 63, 65, 255, 257);
  const index_t k = GENERATE(17, 256);
  const index_t n = m == 1 ? 257 : 15;
  CAPTURE(m, k, n);
  check_spec<"ij,jk->ik", 2>(random_tensor<TestType, 2>({m, k}),
                             random_tensor<TestType, 2>({k, n}));
  check_spec<"ij,kj->ik", 2>(random_tensor<TestType, 2>({m, k}),
                             random_tensor<TestType, 2>({n, k}));
}

TEMPLATE_TEST_CASE("einsum dot i,i->", "[einsum][dot]", float, double) {
  for (index_t n : {1, 2, 15, 16, 17, 63, 64, 65, 255, 256, 257}) {
    CAPTURE(n);
    check_spec<"i,i->", 0>(random_tensor<TestType, 1>({n}), random_tensor<TestType, 1>({n}));
    check_spec<"i,i", 0>(random_tensor<TestType, 1>({n}), random_tensor<TestType, 1>({n}));
  }
}

TEMPLATE_TEST_CASE("einsum outer i,j->ij", "[einsum][outer]", float, double) {
  for (int rep = 0; rep < 10; ++rep) {
    const index_t m = pick(), n = pick();
    CAPTURE(m, n);
    check_spec<"i,j->ij", 2>(random_tensor<TestType, 1>({m}), random_tensor<TestType, 1>({n}));
    check_spec<"i,j->ji", 2>(random_tensor<TestType, 1>({m}), random_tensor<TestType, 1>({n}));
  }
}

TEMPLATE_TEST_CASE("einsum hadamard product and its sum", "[einsum][hadamard]", float, double) {
  for (int rep = 0; rep < 10; ++rep) {
    const index_t m = pick(), n = pick();
    CAPTURE(m, n);
    const auto a = random_tensor<TestType, 2>({m, n});
    const auto b = random_tensor<TestType, 2>({m, n});
    check_spec<"ij,ij->ij", 2>(a, b);
    check_spec<"ij,ij->", 0>(a, b);
    check_spec<"ij,ij->ji", 2>(a, b);
  }
}

TEMPLATE_TEST_CASE("einsum batched matmul bij,bjk->bik", "[einsum][batched]", float, double) {
  for (int rep = 0; rep < 10; ++rep) {
    const index_t b = pick(17), m = pick(), k = pick(), n = pick();
    CAPTURE(b, m, k, n);
    check_spec<"bij,bjk->bik", 3>(random_tensor<TestType, 3>({b, m, k}),
                                  random_tensor<TestType, 3>({b, k, n}));
  }
}

TEMPLATE_TEST_CASE("einsum attention scores bhqd,bhkd->bhqk and PV", "[einsum][batched]", float,
                   double) {
  for (int rep = 0; rep < 6; ++rep) {
    const index_t b = pick(3), h = pick(5), q = pick(), kk = pick(), d = pick();
    CAPTURE(b, h, q, kk, d);
    check_spec<"bhqd,bhkd->bhqk", 4>(random_tensor<TestType, 4>({b, h, q, d}),
                                     random_tensor<TestType, 4>({b, h, kk, d}));
    check_spec<"bhqk,bhkd->bhqd", 4>(random_tensor<TestType, 4>({b, h, q, kk}),
                                     random_tensor<TestType, 4>({b, h, kk, d}));
    // A PyTorch-style layout: heads inside, strides that do not merge.
    check_spec<"bqhd,bkhd->bhqk", 4>(random_tensor<TestType, 4>({b, q, h, d}),
                                     random_tensor<TestType, 4>({b, kk, h, d}));
    check_spec<"bhqk,bkhd->bqhd", 4>(random_tensor<TestType, 4>({b, h, q, kk}),
                                     random_tensor<TestType, 4>({b, kk, h, d}));
  }
}

TEMPLATE_TEST_CASE("einsum tensor contraction ijk,ijl->kl", "[einsum][contraction]", float,
                   double) {
  for (int rep = 0; rep < 8; ++rep) {
    const index_t i = pick(17), j = pick(17), k = pick(), l = pick();
    CAPTURE(i, j, k, l);
    check_spec<"ijk,ijl->kl", 2>(random_tensor<TestType, 3>({i, j, k}),
                                 random_tensor<TestType, 3>({i, j, l}));
    check_spec<"ijk,jil->lk", 2>(random_tensor<TestType, 3>({i, j, k}),
                                 random_tensor<TestType, 3>({j, i, l}));
    check_spec<"pqrs,tqsr->tp", 2>(random_tensor<TestType, 4>({3, j, 2, i}),
                                   random_tensor<TestType, 4>({k, j, i, 2}));
  }
}

TEMPLATE_TEST_CASE("einsum transpose ij->ji and permutations", "[einsum][transpose]", float,
                   double) {
  for (int rep = 0; rep < 8; ++rep) {
    const index_t m = pick(), n = pick(), p = pick(17);
    CAPTURE(m, n, p);
    check_spec<"ij->ji", 2>(random_tensor<TestType, 2>({m, n}));
    check_spec<"ji", 2>(random_tensor<TestType, 2>({m, n}));  // implicit: ASCII order i, j
    check_spec<"ijk->kij", 3>(random_tensor<TestType, 3>({m, n, p}));
  }
}

TEMPLATE_TEST_CASE("einsum trace ii and diagonal ii->i", "[einsum][trace][diagonal]", float,
                   double) {
  for (index_t n : {1, 2, 7, 16, 17, 64, 65}) {
    CAPTURE(n);
    const auto a = random_tensor<TestType, 2>({n, n});
    check_spec<"ii", 0>(a);
    check_spec<"ii->", 0>(a);
    check_spec<"ii->i", 1>(a);
    const auto t = random_tensor<TestType, 3>({n, 3, n});
    check_spec<"iji->j", 1>(t);
    check_spec<"iji->ij", 2>(t);
    check_spec<"iii->i", 1>(random_tensor<TestType, 3>({n, n, n}));
  }
}

TEMPLATE_TEST_CASE("einsum sum over axes", "[einsum][sum]", float, double) {
  for (int rep = 0; rep < 8; ++rep) {
    const index_t m = pick(), n = pick(), p = pick(17);
    CAPTURE(m, n, p);
    const auto a = random_tensor<TestType, 3>({m, n, p});
    check_spec<"ijk->", 0>(a);
    check_spec<"ijk->i", 1>(a);
    check_spec<"ijk->j", 1>(a);
    check_spec<"ijk->k", 1>(a);
    check_spec<"ijk->ki", 2>(a);
    check_spec<"ijk->ij", 2>(a);
  }
}

TEMPLATE_TEST_CASE("einsum matrix-vector and vector-matrix", "[einsum][matvec]", float, double) {
  for (int rep = 0; rep < 8; ++rep) {
    const index_t m = pick(), n = pick();
    CAPTURE(m, n);
    check_spec<"ij,j->i", 1>(random_tensor<TestType, 2>({m, n}), random_tensor<TestType, 1>({n}));
    check_spec<"i,ij->j", 1>(random_tensor<TestType, 1>({m}), random_tensor<TestType, 2>({m, n}));
  }
}
