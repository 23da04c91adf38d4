// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention() allocates nothing once its per-thread scratch has grown to the call's shapes: this
// executable replaces the global operator new with a counting one and repeats decode, prefill,
// head-softmax, capture and attention_partial calls of the same or smaller shapes, and
// attention_backward calls (a training step's).
#include <thread>

#include "attnkit/attention/backward.hpp"

#include "attention/attention_test_util.hpp"
#include "core/counting_new.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("attention allocates nothing after its first call", "[attention][alloc]") {
  for (int threads : {1, 2}) {
    const int saved = max_threads();
    set_threads(threads);
    INFO("threads " << threads);
    const auto softmax = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
    // Decode: 32 / 8 heads, one query row, 3000 keys (the split-KV path).
    const Problem dec{1, 32, 8, 1, 3000, 128, 128};
    Data<float> d(dec, 1);
    Tensor<float, 4> out({1, 32, 1, 128});
    Tensor<float, 3> state({1, 32, 1});
    auto decode = [&](index_t nk) {
      attention(softmax, d.q.cview(), d.k.cview().slice(0, nk, 2), d.v.cview().slice(0, nk, 2),
                out.view());
    };
    decode(3000);  // grows the scratch
    CHECK(count_allocations([&] { decode(3000); }) == 0);
    CHECK(count_allocations([&] {
            for (index_t nk : {2999, 2048, 2500, 3000}) decode(nk);
          }) == 0);
    CHECK(count_allocations([&] {
            attention_partial(softmax, d.q.cview(), d.k.cview(), d.v.cview(), out.view(),
                              state.view());
          }) == 0);
    // Prefill: 3 and 70 query rows.
    const Problem pre{2, 4, 2, 70, 333, 64, 64};
    Data<float> p(pre, 2);
    Tensor<float, 4> pout({2, 4, 70, 64});
    Tensor<float, 4> probs({2, 4, 70, 333});
    auto prefill = [&] {
      attention(softmax, p.q.cview(), p.k.cview(), p.v.cview(), pout.view(), probs.view());
      attention(softmax, p.q.cview().slice(0, 3, 2), p.k.cview(), p.v.cview(),
                pout.view().slice(0, 3, 2));
    };
    prefill();
    CHECK(count_allocations(prefill) == 0);
    // Head softmax over many keys (the keys split in chunks).
    const auto heads = pol::AttentionPolicy(pol::HeadSoftmax{});
    auto head = [&] { attention(heads, d.q.cview(), d.k.cview(), d.v.cview(), out.view()); };
    head();
    CHECK(count_allocations(head) == 0);
    set_threads(saved);
  }
}

TEST_CASE("attention_backward allocates nothing after its first call", "[backward][alloc]") {
  for (int threads : {1, 2}) {
    const int saved = max_threads();
    set_threads(threads);
    INFO("threads " << threads);
    const Problem p{2, 4, 2, 70, 70, 16, 16};
    Data<float> d(p, 4);
    Tensor<float, 4> out({2, 4, 70, 16}), dout({2, 4, 70, 16}, 0.5f), dq(d.q.shape()),
        dk(d.k.shape()), dv(d.v.shape());
    Tensor<float, 3> state({2, 4, 70});
    std::vector<double> z(4, 0.25), dz(4);
    const auto sinks = pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z), pol::Causal{});
    AttentionGradExtras<float> extra;
    extra.dsinks = dz;
    auto step = [&] {
      attention_partial(sinks, d.q.cview(), d.k.cview(), d.v.cview(), out.view(), state.view());
      attention_backward(sinks, d.q.cview(), d.k.cview(), d.v.cview(), out.cview(), state.cview(),
                         dout.cview(), dq.view(), dk.view(), dv.view(), {}, extra);
    };
    step();  // grows the scratch
    CHECK(count_allocations(step) == 0);
    set_threads(saved);
  }
}

// A generation loop's key count grows step by step: the decode path's shared buffers grow with
// it (with the count of 2048-key chunks) unless reserve_attention gave them room first. Each
// case runs on a new thread, whose scratch starts empty whatever the other tests did.
TEST_CASE("reserve_attention: decode steps over a growing key count allocate nothing",
          "[attention][alloc]") {
  const Problem dec{1, 8, 2, 1, 4096, 16, 16};  // small: the buffers grow with the chunk count
  Data<float> d(dec, 3);
  Tensor<float, 4> out({1, 8, 1, 16});
  const auto softmax = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  const auto heads = pol::AttentionPolicy(pol::HeadSoftmax{});
  // Allocations of the steps 2048, 2133, ... 4096 keys after a first step of 2048 keys.
  auto grow = [&](const auto& policy, bool reserve) {
    long counted = -1;
    std::thread t([&] {
      set_threads(1);
      if (reserve) reserve_attention<float>(1, 8, 2, 1, 16, 4096);
      auto step = [&](index_t nk) {
        attention(policy, d.q.cview(), d.k.cview().slice(0, nk, 2), d.v.cview().slice(0, nk, 2),
                  out.view());
      };
      step(2048);  // the unit workspace, which does not depend on the key count
      counted = count_allocations([&] {
        for (index_t nk = 2048; nk <= 4096; nk += 85) step(nk);
        step(4096);
      });
    });
    t.join();
    return counted;
  };
  CHECK(grow(softmax, false) > 0);  // the scratch grows without the reservation
  CHECK(grow(softmax, true) == 0);
  CHECK(grow(heads, false) > 0);
  CHECK(grow(heads, true) == 0);
  CHECK_THROWS_WITH(reserve_attention<float>(1, 8, 3, 1, 16, 10), Catch::Contains("Hkv 3"));
  CHECK_THROWS_WITH(reserve_attention<float>(1, 8, 2, 1, 16, -1), Catch::Contains("keys -1"));
}
