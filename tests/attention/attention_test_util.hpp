// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Shared helpers of the attention tests: random problems, every mask term as (policy, docs/CLI.md
// reference term) pairs, and the comparison with tests/reference/attention_ref.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/attention/attention.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/policy/mask_spec.hpp"
#include "attnkit/simd/arch.hpp"

#include "reference/attention_ref.hpp"

namespace attnkit::test {

namespace pol = attnkit::policy;

/// Caps the dispatched architecture (simd::set_max_arch) and restores the previous cap at scope
/// exit (a failing CHECK must not leak the cap).
struct ArchCap {
  simd::ArchLevel previous;
  explicit ArchCap(simd::ArchLevel level) : previous(simd::set_max_arch(level)) {}
  ~ArchCap() { simd::set_max_arch(previous); }
  ArchCap(const ArchCap&) = delete;
  ArchCap& operator=(const ArchCap&) = delete;
};

inline const char* level_name(simd::ArchLevel l) {
  switch (l) {
    case simd::ArchLevel::generic:
      return "generic";
    case simd::ArchLevel::avx2:
      return "avx2";
    default:
      return "avx512";
  }
}

/// The shapes of one attention problem.
struct Problem {
  index_t b, hq, hkv, nq, nk, d, dv;
  std::string str() const {
    std::ostringstream o;
    o << "B=" << b << " Hq=" << hq << " Hkv=" << hkv << " Nq=" << nq << " Nk=" << nk << " D=" << d
      << " Dv=" << dv;
    return o.str();
  }
};

/// Awkward shapes: 1, odd, primes, Nq < Nk, Nq > Nk, sizes around the SIMD width and the
/// 64-row / 64-key tiles, the head layouts MHA, GQA and MQA (1/1, 4/4, 8/2, 8/1).
inline std::vector<Problem> problems() {
  return {
      {1, 1, 1, 1, 1, 1, 1},    {2, 4, 4, 17, 17, 16, 16},     {1, 8, 2, 37, 101, 64, 80},
      {1, 8, 1, 5, 131, 3, 3},  {1, 1, 1, 130, 130, 128, 128}, {2, 4, 4, 67, 65, 80, 64},
      {1, 8, 2, 64, 64, 16, 1}, {1, 4, 4, 97, 61, 1, 16},      {1, 8, 1, 71, 193, 16, 16},
  };
}

/// Random q, k, v in [-amp, amp].
template <class T>
struct Data {
  Tensor<T, 4> q, k, v;
  Data(const Problem& p, unsigned seed, double amp = 1.0)
      : q({p.b, p.hq, p.nq, p.d}), k({p.b, p.hkv, p.nk, p.d}), v({p.b, p.hkv, p.nk, p.dv}) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<double> u(-amp, amp);
    for (auto& x : q) x = static_cast<T>(u(g));
    for (auto& x : k) x = static_cast<T>(u(g));
    std::uniform_real_distribution<double> uv(-1.0, 1.0);
    for (auto& x : v) x = static_cast<T>(uv(g));
  }
};

/// Storage of the runtime mask values (lengths, flags, ids, layouts) of one problem.
struct MaskStore {
  std::vector<index_t> lengths;
  std::vector<std::uint8_t> keep;
  std::vector<index_t> seg;
  std::vector<std::uint8_t> layout;
};

/// Which mask policies for_each_mask instantiates: every term of docs/CLI.md plus Custom, or the
/// core ones (none, causal, padding, keep: Empty, Full and Partial tiles, rows with no key).
/// Mask handling is one code path for every activation, so the activation tests run every
/// mask type on one activation per kernel path (softmax, elementwise, normalized, across
/// heads) and the core ones on the others; every activation also runs every term through the
/// runtime MaskSpec (check_masks with Via::mask_spec).
enum class Masks { all, core };

/// Calls fn(mask, ref_term, name) for every mask term of docs/CLI.md (and Custom, then
/// causal=top-left), or for the core
/// ones, with runtime values drawn for problem p (some rows fully masked where the term allows).
template <Masks which = Masks::all, class Fn>
void for_each_mask(const Problem& p, MaskStore& st, unsigned seed, Fn&& fn) {
  using ref::MaskTerm;
  std::mt19937 g(seed);
  fn(pol::NoMask{}, MaskTerm{MaskTerm::none}, "none");
  fn(pol::Causal{}, MaskTerm{MaskTerm::causal}, "causal");
  const index_t w = 1 + static_cast<index_t>(g() % 40);
  const index_t lw = static_cast<index_t>(g() % 20);
  const index_t s = static_cast<index_t>(g() % 5), sw = 1 + static_cast<index_t>(g() % 30);
  const index_t pre = static_cast<index_t>(g() % (p.nk + 1));
  if constexpr (which == Masks::all) {
    fn(pol::SlidingWindow(w), MaskTerm{MaskTerm::sliding, w}, "sliding=" + std::to_string(w));
    fn(pol::LocalWindow(lw), MaskTerm{MaskTerm::local, lw}, "local=" + std::to_string(lw));
    fn(pol::Sinks(s, sw), MaskTerm{MaskTerm::sinks, s, sw},
       "sinks=" + std::to_string(s) + "," + std::to_string(sw));
    fn(pol::PrefixLM(pre), MaskTerm{MaskTerm::prefix_lm, pre}, "prefix-lm=" + std::to_string(pre));
  }
  {
    st.lengths.assign(static_cast<std::size_t>(p.b), 0);
    for (auto& l : st.lengths) l = static_cast<index_t>(g() % (p.nk + 1));
    if (p.b > 1) st.lengths[0] = 0;  // a batch entry with no key at all: zero rows
    MaskTerm t{MaskTerm::padding};
    t.ints.assign(st.lengths.begin(), st.lengths.end());
    fn(pol::KeyPadding(st.lengths), t, "padding");
  }
  {
    st.keep.assign(static_cast<std::size_t>(p.b * p.nk), 0);
    // Runs of kept and dropped keys so that Empty, Full and Partial tiles all occur.
    for (index_t bb = 0; bb < p.b; ++bb) {
      index_t j = 0;
      while (j < p.nk) {
        const index_t run = 1 + static_cast<index_t>(g() % 90);
        const std::uint8_t val = static_cast<std::uint8_t>(g() % 3 != 0);
        for (index_t r = 0; r < run && j < p.nk; ++r, ++j)
          st.keep[static_cast<std::size_t>(bb * p.nk + j)] = val;
      }
    }
    MaskTerm t{MaskTerm::keep};
    t.ints.assign(st.keep.begin(), st.keep.end());
    fn(pol::KeepMask(TensorView<const std::uint8_t, 2>(st.keep.data(), {p.b, p.nk})), t, "keep");
  }
  if constexpr (which == Masks::core) return;
  {
    st.seg.assign(static_cast<std::size_t>(p.b * p.nk), 0);
    for (index_t bb = 0; bb < p.b; ++bb) {
      index_t id = 0;
      const bool unsorted = bb % 2 == 1;
      for (index_t j = 0; j < p.nk; ++j) {
        if (g() % 40 == 0) id = unsorted ? static_cast<index_t>(g() % 4) : id + 1;
        st.seg[static_cast<std::size_t>(bb * p.nk + j)] = id;
      }
    }
    MaskTerm t{MaskTerm::document};
    t.ints.assign(st.seg.begin(), st.seg.end());
    fn(pol::Document(TensorView<const index_t, 2>(st.seg.data(), {p.b, p.nk})), t, "document");
  }
  {
    const index_t bq = 1 + static_cast<index_t>(g() % 70), bk = 1 + static_cast<index_t>(g() % 70);
    const index_t nbq = (p.nq + bq - 1) / bq, nbk = (p.nk + bk - 1) / bk;
    st.layout.assign(static_cast<std::size_t>(p.b * p.hq * nbq * nbk), 0);
    for (auto& x : st.layout) x = static_cast<std::uint8_t>(g() % 2);
    MaskTerm t{MaskTerm::block_sparse, bq, bk};
    t.ints.assign(st.layout.begin(), st.layout.end());
    t.nbq = nbq;
    t.nbk = nbk;
    fn(pol::BlockSparse(TensorView<const std::uint8_t, 4>(st.layout.data(), {p.b, p.hq, nbq, nbk}),
                        bq, bk),
       t, "block-sparse=" + std::to_string(bq) + "," + std::to_string(bk));
  }
  {
    auto pred = [](index_t b, index_t h, index_t i, index_t j) { return (i + j + b + h) % 3 != 0; };
    MaskTerm t{MaskTerm::custom};
    t.predicate = pred;
    fn(pol::Custom(pred), t, "custom");
  }
  // Last, so the positions of the terms above stay what test_attention_features indexes.
  fn(pol::CausalTopLeft{}, MaskTerm{MaskTerm::causal_top_left, p.nk - p.nq}, "causal=top-left");
}

/// Tolerances: |got - ref| <= rel · Σ_j |P_ij v_jc| + abs.
template <class T>
struct Tolerance {
  double rel = std::is_same_v<T, float> ? 2e-4 : 1e-10;
  double abs = std::is_same_v<T, float> ? 2e-5 : 1e-12;
};

/// Counts the elements of out that differ from the reference rout by more than
/// tol.rel · Σ_j |P_ij v_jc| + tol.abs (P the reference's), naming the first in `first`.
template <class T>
long out_mismatches(const Problem& p, TensorView<const T, 4> out, const Tensor<double, 4>& rout,
                    const Tensor<double, 4>& rprobs, TensorView<const T, 4> v,
                    const Tolerance<T>& tol, std::string& first) {
  const index_t group = p.hq / p.hkv;
  long bad = 0;
  // Raw pointers: this runs under the sanitizers, where checked element access dominates.
  const double* rp = rprobs.data();  // contiguous [B, Hq, Nq, Nk]
  const Strides<4>& vs = v.strides();
  for (index_t b = 0; b < p.b; ++b)
    for (index_t h = 0; h < p.hq; ++h)
      for (index_t i = 0; i < p.nq; ++i)
        for (index_t c = 0; c < p.dv; ++c) {
          double mag = 0;
          const double* prow = rp + ((b * p.hq + h) * p.nq + i) * p.nk;
          const T* vcol = v.data() + b * vs[0] + (h / group) * vs[1] + c * vs[3];
          for (index_t j = 0; j < p.nk; ++j) mag += std::abs(prow[j] * double(vcol[j * vs[2]]));
          const double got = double(out(b, h, i, c)), want = rout(b, h, i, c);
          if (!(std::abs(got - want) <= tol.rel * mag + tol.abs) && bad++ == 0)
            first = "out(" + std::to_string(b) + "," + std::to_string(h) + "," + std::to_string(i) +
                    "," + std::to_string(c) + ") = " + std::to_string(got) + ", reference " +
                    std::to_string(want);
        }
  return bad;
}

/// Runs the policy and the reference on random data and compares out (and P when capture).
template <class T, class Policy>
void check(const Policy& policy, const ref::Spec& spec, const Problem& p, unsigned seed,
           bool capture = false, AttentionOptions opts = {}, double amp = 1.0,
           Tolerance<T> tol = {}) {
  Data<T> data(p, seed, amp);
  Tensor<T, 4> out({p.b, p.hq, p.nq, p.dv}, T(123));  // stale values must be overwritten
  Tensor<T, 4> probs({p.b, p.hq, p.nq, p.nk}, T(-7));
  if (capture) {
    attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), probs.view(),
              opts);
  } else {
    attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), opts);
  }
  Tensor<double, 4> rout, rprobs;
  ref::attention<T>(spec, data.q.cview(), data.k.cview(), data.v.cview(), rout, rprobs);
  std::string first;
  long bad = out_mismatches<T>(p, out.cview(), rout, rprobs, data.v.cview(), tol, first);
  if (capture) {
    for (index_t b = 0; b < p.b; ++b)
      for (index_t h = 0; h < p.hq; ++h)
        for (index_t i = 0; i < p.nq; ++i)
          for (index_t j = 0; j < p.nk; ++j) {
            const double got = double(probs(b, h, i, j)), want = rprobs(b, h, i, j);
            const bool ok = want == 0.0
                                ? got == 0.0
                                : std::abs(got - want) <= tol.rel * std::abs(want) * 10 + tol.abs;
            if (!ok && bad++ == 0)
              first = "P(" + std::to_string(b) + "," + std::to_string(h) + "," + std::to_string(i) +
                      "," + std::to_string(j) + ") = " + std::to_string(got) + ", reference " +
                      std::to_string(want);
          }
  }
  INFO(p.str() << " activation=" << spec.activation << " seed=" << seed << " first: " << first);
  CHECK(bad == 0);
}

}  // namespace attnkit::test

namespace attnkit::test {

/// How the mask terms reach the kernel in check_masks: as compile-time policies (one kernel
/// instantiation per mask type), or through the runtime pol::MaskSpec (one instantiation for
/// every term; tile classification at run time, Empty tiles still skipped).
enum class Via { policy, mask_spec };

/// Which problems check_masks runs, with which seed.
struct MaskRun {
  std::size_t first = 0;                            ///< problems()[first, last)
  std::size_t last = static_cast<std::size_t>(-1);  ///< past the end: every problem
  unsigned seed = 1;                                ///< data seed (plus the problem index)
  int capture_every = 3;                            ///< P capture on every n-th check
};

/// Checks activation `act` (reference name in `base.activation`) under every mask term (or the
/// core ones, `which`) over the problems of `run`, the terms given `via` policies or the runtime
/// MaskSpec (which holds every term of docs/CLI.md but Custom).
template <class T, Via via = Via::policy, Masks which = Masks::all, class Act>
void check_masks(const Act& act, const ref::Spec& base, const MaskRun& run) {
  const auto ps = problems();
  int n = 0;
  for (std::size_t pi = run.first; pi < run.last && pi < ps.size(); ++pi) {
    MaskStore st;
    const unsigned seed = run.seed + static_cast<unsigned>(pi);
    for_each_mask<which>(
        ps[pi], st, seed, [&](auto mask, const ref::MaskTerm& term, const std::string& name) {
          ref::Spec spec = base;
          spec.terms = {term};
          if constexpr (via == Via::policy) {
            INFO("mask " << name);
            check<T>(pol::AttentionPolicy(act, mask), spec, ps[pi], seed,
                     ++n % run.capture_every == 0);
          } else if constexpr (std::is_constructible_v<pol::MaskSpecTerm, decltype(mask)>) {
            INFO("runtime mask spec " << name);
            pol::MaskSpec ms;
            ms.add(mask, name);
            check<T>(pol::AttentionPolicy(act, ms), spec, ps[pi], seed,
                     ++n % run.capture_every == 0);
          }
        });
  }
}

}  // namespace attnkit::test
