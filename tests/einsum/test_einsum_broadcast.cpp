// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// einsum: '...' and size-1 broadcasting, implicit output, 3 and 4 operands, strided views.
#include "einsum_test_util.hpp"

using namespace einsum_test;

TEMPLATE_TEST_CASE("einsum ellipsis", "[einsum][ellipsis]", float, double) {
  for (int rep = 0; rep < 6; ++rep) {
    const index_t b = pick(5), c = pick(7), m = pick(), k = pick(), n = pick(17);
    CAPTURE(b, c, m, k, n);
    // Batched matmul over any leading dimensions.
    check_spec<"...ij,...jk->...ik", 4>(random_tensor<TestType, 4>({b, c, m, k}),
                                        random_tensor<TestType, 4>({b, c, k, n}));
    // Fewer broadcast dimensions on one side (right-aligned) and size-1 broadcast dims.
    check_spec<"...ij,...jk->...ik", 4>(random_tensor<TestType, 4>({b, 1, m, k}),
                                        random_tensor<TestType, 3>({c, k, n}));
    check_spec<"...ij,jk", 3>(random_tensor<TestType, 3>({b, m, k}),
                              random_tensor<TestType, 2>({k, n}));
    // Ellipsis in the middle and at the end; summed broadcast dims when the output drops '...'.
    check_spec<"i...j->ij", 2>(random_tensor<TestType, 4>({m, b, c, n}));
    check_spec<"i...->...", 2>(random_tensor<TestType, 3>({m, b, c}));
    check_spec<"...i,...i->...", 2>(random_tensor<TestType, 3>({b, c, m}),
                                    random_tensor<TestType, 3>({b, c, m}));
    check_spec<"...", 3>(random_tensor<TestType, 3>({b, c, m}));          // identity
    check_spec<"...ii->...i", 2>(random_tensor<TestType, 3>({b, m, m}));  // batched diagonal
    check_spec<"...ii", 1>(random_tensor<TestType, 3>({b, m, m}));        // batched trace
  }
}

TEMPLATE_TEST_CASE("einsum size-1 broadcasting of named indices", "[einsum][broadcast]", float,
                   double) {
  for (int rep = 0; rep < 6; ++rep) {
    const index_t m = pick(), n = pick(), k = pick();
    CAPTURE(m, n, k);
    check_spec<"ij,ij->ij", 2>(random_tensor<TestType, 2>({1, n}),
                               random_tensor<TestType, 2>({m, n}));
    check_spec<"ij,ij->ij", 2>(random_tensor<TestType, 2>({m, 1}),
                               random_tensor<TestType, 2>({1, n}));
    check_spec<"ij,jk->ik", 2>(random_tensor<TestType, 2>({m, 1}),
                               random_tensor<TestType, 2>({k, n}));  // j broadcast in a
    check_spec<"bij,bjk->bik", 3>(random_tensor<TestType, 3>({1, m, k}),
                                  random_tensor<TestType, 3>({3, k, n}));  // batch broadcast
    check_spec<"ij->ij", 2>(random_tensor<TestType, 2>({1, n}));
  }
}

TEMPLATE_TEST_CASE("einsum implicit output", "[einsum][implicit]", float, double) {
  const index_t m = pick(), n = pick(), k = pick();
  CAPTURE(m, n, k);
  check_spec<"ij,jk", 2>(random_tensor<TestType, 2>({m, k}), random_tensor<TestType, 2>({k, n}));
  check_spec<"ba,ca", 2>(random_tensor<TestType, 2>({m, k}), random_tensor<TestType, 2>({n, k}));
  check_spec<"i,j", 2>(random_tensor<TestType, 1>({m}), random_tensor<TestType, 1>({n}));
  check_spec<"ij", 2>(random_tensor<TestType, 2>({m, n}));
  check_spec<"ij,ij", 0>(random_tensor<TestType, 2>({m, n}), random_tensor<TestType, 2>({m, n}));
  // Upper case sorts before lower case (ASCII), as in NumPy.
  check_spec<"aB,Bc", 2>(random_tensor<TestType, 2>({m, k}), random_tensor<TestType, 2>({k, n}));
  check_spec<"bA", 2>(random_tensor<TestType, 2>({m, n}));
  // Spaces are ignored.
  check_spec<" ij , jk -> ki ", 2>(random_tensor<TestType, 2>({m, k}),
                                   random_tensor<TestType, 2>({k, n}));
}

TEMPLATE_TEST_CASE("einsum indices summed within one input", "[einsum][sum]", float, double) {
  const index_t m = pick(), n = pick(17), k = pick(), p = pick(17);
  CAPTURE(m, n, k, p);
  check_spec<"ij,jk->k", 1>(random_tensor<TestType, 2>({m, k}), random_tensor<TestType, 2>({k, n}));
  check_spec<"ijp,jk->ik", 2>(random_tensor<TestType, 3>({m, k, p}),
                              random_tensor<TestType, 2>({k, n}));
  check_spec<"i,j->", 0>(random_tensor<TestType, 1>({m}), random_tensor<TestType, 1>({n}));
  check_spec<"ii,jk->jk", 2>(random_tensor<TestType, 2>({m, m}),
                             random_tensor<TestType, 2>({n, k}));
  check_spec<"iij,jk->ik", 2>(random_tensor<TestType, 3>({m, m, k}),
                              random_tensor<TestType, 2>({k, n}));
}

TEMPLATE_TEST_CASE("einsum with 3 and 4 operands", "[einsum][multi]", float, double) {
  for (int rep = 0; rep < 6; ++rep) {
    const index_t a = pick(17), b = pick(), c = pick(), d = pick(17), e = pick(7);
    CAPTURE(a, b, c, d, e);
    check_spec<"ij,jk,kl->il", 2>(random_tensor<TestType, 2>({a, b}),
                                  random_tensor<TestType, 2>({b, c}),
                                  random_tensor<TestType, 2>({c, d}));
    check_spec<"i,i,i->", 0>(random_tensor<TestType, 1>({b}), random_tensor<TestType, 1>({b}),
                             random_tensor<TestType, 1>({b}));
    check_spec<"i,i,i->i", 1>(random_tensor<TestType, 1>({b}), random_tensor<TestType, 1>({b}),
                              random_tensor<TestType, 1>({b}));
    check_spec<"abc,cd,d->a", 1>(random_tensor<TestType, 3>({a, e, b}),
                                 random_tensor<TestType, 2>({b, d}),
                                 random_tensor<TestType, 1>({d}));
    check_spec<"ab,bc,cd,da->", 0>(
        random_tensor<TestType, 2>({a, b}), random_tensor<TestType, 2>({b, c}),
        random_tensor<TestType, 2>({c, d}), random_tensor<TestType, 2>({d, a}));
    check_spec<"bi,bj,bk,ijk->b", 1>(
        random_tensor<TestType, 2>({e, a}), random_tensor<TestType, 2>({e, 3}),
        random_tensor<TestType, 2>({e, d}), random_tensor<TestType, 3>({a, 3, d}));
    check_spec<"i,j,k->ijk", 3>(random_tensor<TestType, 1>({a}), random_tensor<TestType, 1>({e}),
                                random_tensor<TestType, 1>({d}));
    check_spec<"...i,...j,ij->...", 1>(random_tensor<TestType, 2>({e, a}),
                                       random_tensor<TestType, 2>({1, d}),
                                       random_tensor<TestType, 2>({a, d}));
  }
}

TEMPLATE_TEST_CASE("einsum greedy order contracts the cheap pair first", "[einsum][multi][plan]",
                   float, double) {
  // (ij,jk),kl costs 2·64·64·64 + 2·64·64·2, ij,(jk,kl) costs 2·64·64·2 twice: greedy picks the
  // pair whose result is smallest, jk·kl -> [64, 2].
  const auto plan = attnkit::EinsumPlan<TestType>::make("ij,jk,kl->il", Shape<2>{64, 64},
                                                        Shape<2>{64, 64}, Shape<2>{64, 2});
  REQUIRE(plan.num_contractions() == 2);
  REQUIRE(plan.flops() == Approx(2.0 * 64 * 64 * 2 * 2));
}

TEMPLATE_TEST_CASE("einsum on strided, transposed and broadcast views", "[einsum][strided]", float,
                   double) {
  using T = TestType;
  for (int rep = 0; rep < 6; ++rep) {
    const index_t b = pick(5), m = pick(), k = pick(), n = pick();
    CAPTURE(b, m, k, n);
    const auto big_a = random_tensor<T, 3>({b, m + 3, 2 * k + 1});
    const auto big_b = random_tensor<T, 3>({b, n, k});
    // Row padding and a column step of 2: merges fail in a, so a is packed first.
    const attnkit::TensorView<const T, 3> a(big_a.data(), {b, m, k},
                                            {(m + 3) * (2 * k + 1), 2 * k + 1, 2});
    // b transposed as a view: no copy needed (the kernel takes any strides).
    const auto bt = big_b.view().transpose(1, 2);
    const std::vector<StridedView<const T>> ins{a, bt};
    Tensor<T, 3> c1({b, m, n}), c2({b, m, n});
    attnkit::einsum<"bij,bjk->bik">(c1, a, bt);
    attnkit::einsum("bij,bjk->bik", c2, {a, bt});
    REQUIRE(bitwise_equal<T>(c1, c2));
    require_matches_ref<T>("bij,bjk->bik", c1, ins);
    // A transposed output: C's strides do not merge with [batch, M, N], so it goes through a
    // temporary; a broadcast (stride 0) operand.
    Tensor<T, 3> ct({n, m, b});
    const auto out_view = ct.view().transpose(0, 2);  // [b, m, n] with strides (1, b, m·b)
    attnkit::einsum<"bij,bjk->bik">(out_view, a, bt);
    require_matches_ref<T>("bij,bjk->bik", StridedView<T>(out_view), ins);
    const T one = T(1.5);
    const index_t zero_strides[2] = {0, 0};
    const index_t shape[2] = {k, n};
    const StridedView<const T> ones(&one, shape, zero_strides);
    Tensor<T, 3> c3({b, m, n});
    attnkit::einsum<"bij,jk->bik">(c3, a, ones);
    require_matches_ref<T>("bij,jk->bik", c3, {a, ones});
  }
}

TEMPLATE_TEST_CASE("einsum plans run many times and on other strides", "[einsum][plan]", float,
                   double) {
  using T = TestType;
  const auto a = random_tensor<T, 2>({17, 33});
  const auto b = random_tensor<T, 2>({33, 15});
  const auto plan = attnkit::EinsumPlan<T>::make("ij,jk->ik", {a.shape(), b.shape()});
  REQUIRE(plan.num_inputs() == 2);
  REQUIRE(plan.output_shape().size() == 2);
  REQUIRE(plan.flops() == Approx(2.0 * 17 * 33 * 15));
  Tensor<T, 2> c({17, 15}), first({17, 15});
  plan.run(first, {a, b});
  for (int rep = 0; rep < 3; ++rep) {
    plan.run(c, {a, b});
    REQUIRE(bitwise_equal<T>(c, first));
  }
  require_matches_ref<T>("ij,jk->ik", c, {a, b});
  // Same shapes, other strides (b stored transposed).
  Tensor<T, 2> bt_store({15, 33});
  for (index_t i = 0; i < 33; ++i)
    for (index_t j = 0; j < 15; ++j) bt_store(j, i) = b(i, j);
  plan.run(c, {a, bt_store.view().transpose(0, 1)});
  require_matches_ref<T>("ij,jk->ik", c, {a, b});
}

TEST_CASE("einsum results do not depend on the thread count", "[einsum][threads]") {
  const auto a = random_tensor<float, 3>({4, 129, 65});
  const auto b = random_tensor<float, 3>({4, 65, 127});
  Tensor<float, 3> c1({4, 129, 127}), c2({4, 129, 127});
  Tensor<float, 1> s1({65}), s2({65});
  const int threads = attnkit::max_threads();
  attnkit::set_threads(1);
  attnkit::einsum<"bij,bjk->bik">(c1, a, b);
  attnkit::einsum<"bij->j">(s1, a);
  attnkit::set_threads(threads > 1 ? threads : 2);
  attnkit::einsum<"bij,bjk->bik">(c2, a, b);
  attnkit::einsum<"bij->j">(s2, a);
  attnkit::set_threads(threads);
  REQUIRE(bitwise_equal<float>(c1, c2));
  REQUIRE(bitwise_equal<float>(s1, s2));
}
