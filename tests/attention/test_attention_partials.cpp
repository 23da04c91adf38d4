// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Learned sink logits (policy::SinkLogits), the per-row state of attention_partial, key ranges
// (AttentionOptions::keys) and merge_partials against the double reference, on every
// architecture: the keys split in 2 to 5 random ranges (some empty), each range's partial
// result merged, equals the reference of the whole sequence, on the prefill and decode paths; the
// query rows cut in ranges as well (AttentionOptions::queries) give the same rows.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

/// One sink logit per query head in [-4, 4]; head 0 dominant (+30) and the last one negligible
/// (-30) when there are at least 3 heads.
std::vector<double> draw_sinks(index_t hq, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-4.0, 4.0);
  std::vector<double> z(static_cast<std::size_t>(hq));
  for (auto& x : z) x = u(g);
  if (hq >= 3) {
    z.front() = 30.0;
    z.back() = -30.0;
  }
  return z;
}

/// Counts the rows whose state differs from the reference's (exact for -inf and 0).
template <class T>
long state_mismatches(TensorView<const T, 3> got, const Tensor<double, 3>& want,
                      std::string& first) {
  const double rel = std::is_same_v<T, float> ? 1e-4 : 1e-10;
  long bad = 0;
  for (index_t b = 0; b < got.extent(0); ++b)
    for (index_t h = 0; h < got.extent(1); ++h)
      for (index_t i = 0; i < got.extent(2); ++i) {
        const double g = double(got(b, h, i)), w = want(b, h, i);
        const bool ok =
            std::isinf(w) || w == 0.0 ? g == w : std::abs(g - w) <= rel * (1 + std::abs(w));
        if (!ok && bad++ == 0)
          first = "state(" + std::to_string(b) + "," + std::to_string(h) + "," + std::to_string(i) +
                  ") = " + std::to_string(g) + ", reference " + std::to_string(w);
      }
  return bad;
}

/// The reference of the whole sequence; one attention_partial call over all keys; the keys
/// split at `parts - 1` random cuts, one attention_partial per range (AttentionOptions::keys),
/// merged in order and, as a second check, merged in two nested steps. Every result and state
/// is compared with the reference.
template <class T, class Policy>
void check_split(const Policy& pol, const ref::Spec& spec, const Problem& p, unsigned seed,
                 int parts, DecodeMode mode) {
  Data<T> data(p, seed, 1.5);
  Tensor<double, 4> rout, rprobs;
  Tensor<double, 3> rstate;
  ref::attention<T>(spec, data.q.cview(), data.k.cview(), data.v.cview(), rout, rprobs, &rstate);
  std::string first;
  long bad = 0;
  AttentionOptions opts;
  opts.decode = mode;
  // One call over every key.
  Tensor<T, 4> full({p.b, p.hq, p.nq, p.dv}, T(9));
  Tensor<T, 3> fstate({p.b, p.hq, p.nq}, T(9));
  attention_partial(pol, data.q.cview(), data.k.cview(), data.v.cview(), full.view(), fstate.view(),
                    opts);
  bad += out_mismatches<T>(p, full.cview(), rout, rprobs, data.v.cview(), {}, first);
  bad += state_mismatches<T>(fstate.cview(), rstate, first);
  // The ranges.
  std::mt19937 g(seed * 7 + 1);
  std::vector<index_t> cuts{0, p.nk};
  for (int c = 1; c < parts; ++c) cuts.push_back(static_cast<index_t>(g() % (p.nk + 1)));
  std::sort(cuts.begin(), cuts.end());
  std::vector<Tensor<T, 4>> outs;
  std::vector<Tensor<T, 3>> states;
  std::vector<AttentionPartial<T>> views;
  for (int r = 0; r < parts; ++r) {
    const index_t a = cuts[static_cast<std::size_t>(r)], e = cuts[static_cast<std::size_t>(r) + 1];
    outs.emplace_back(Shape<4>{p.b, p.hq, p.nq, p.dv}, T(7));
    states.emplace_back(Shape<3>{p.b, p.hq, p.nq}, T(7));
    opts.keys = KeyRange{a, p.nk};
    attention_partial(pol, data.q.cview(), data.k.cview().slice(a, e, 2),
                      data.v.cview().slice(a, e, 2), outs.back().view(), states.back().view(),
                      opts);
  }
  for (int r = 0; r < parts; ++r) views.push_back({outs[r].cview(), states[r].cview()});
  Tensor<T, 4> merged({p.b, p.hq, p.nq, p.dv}, T(5));
  Tensor<T, 3> mstate({p.b, p.hq, p.nq}, T(5));
  merge_partials(pol, views, merged.view(), mstate.view());
  bad += out_mismatches<T>(p, merged.cview(), rout, rprobs, data.v.cview(), {}, first);
  bad += state_mismatches<T>(mstate.cview(), rstate, first);
  // Nested: the first two ranges merged in place into the first, then that with the rest.
  merge_partials(pol, std::span(views).first(2), outs[0].view(), states[0].view());
  views.erase(views.begin() + 1);
  Tensor<T, 4> nested({p.b, p.hq, p.nq, p.dv}, T(3));
  merge_partials(pol, views, nested.view());
  bad += out_mismatches<T>(p, nested.cview(), rout, rprobs, data.v.cview(), {}, first);
  // A grid: the query rows cut in 1 to 3 ranges too (AttentionOptions::queries), each block of
  // rows x keys computed alone, the blocks of each row range merged into its rows of `grid`.
  std::vector<index_t> rcuts{0, p.nq};
  for (int c = 1 + int(g() % 3); c > 1; --c)
    rcuts.push_back(static_cast<index_t>(g() % (p.nq + 1)));
  std::sort(rcuts.begin(), rcuts.end());
  Tensor<T, 4> grid({p.b, p.hq, p.nq, p.dv}, T(11));
  for (std::size_t rr = 0; rr + 1 < rcuts.size(); ++rr) {
    const index_t ra = rcuts[rr], re = rcuts[rr + 1];
    std::vector<Tensor<T, 4>> bo;
    std::vector<Tensor<T, 3>> bs;
    std::vector<AttentionPartial<T>> bv;
    opts.queries = QueryRange{ra, p.nq};
    for (int r = 0; r < parts; ++r) {
      const index_t a = cuts[static_cast<std::size_t>(r)],
                    e = cuts[static_cast<std::size_t>(r) + 1];
      bo.emplace_back(Shape<4>{p.b, p.hq, re - ra, p.dv}, T(7));
      bs.emplace_back(Shape<3>{p.b, p.hq, re - ra}, T(7));
      opts.keys = KeyRange{a, p.nk};
      attention_partial(pol, data.q.cview().slice(ra, re, 2), data.k.cview().slice(a, e, 2),
                        data.v.cview().slice(a, e, 2), bo.back().view(), bs.back().view(), opts);
    }
    for (int r = 0; r < parts; ++r) bv.push_back({bo[r].cview(), bs[r].cview()});
    merge_partials(pol, bv, grid.view().slice(ra, re, 2));
  }
  opts.queries.reset();
  bad += out_mismatches<T>(p, grid.cview(), rout, rprobs, data.v.cview(), {}, first);
  std::string cut_list;
  for (index_t c : cuts) cut_list += std::to_string(c) + " ";
  for (index_t c : rcuts) cut_list += (c == 0 ? "| " : "") + std::to_string(c) + " ";
  INFO(p.str() << " activation=" << spec.activation << " sinks=" << spec.sink_logits.size()
               << " cuts=" << cut_list << " decode=" << int(mode) << " first: " << first);
  CHECK(bad == 0);
}

/// check_split for activation `act` under every runtime mask term (MaskSpec), both paths.
template <class T, class Act>
void split_all_masks(const Act& act, const ref::Spec& base, const Problem& p, unsigned seed) {
  MaskStore st;
  int n = 0;
  for_each_mask(p, st, seed, [&](auto mask, const ref::MaskTerm& term, const std::string& name) {
    if constexpr (std::is_constructible_v<pol::MaskSpecTerm, decltype(mask)>) {
      INFO("mask " << name);
      pol::MaskSpec ms;
      ms.add(mask, name);
      ref::Spec spec = base;
      spec.terms = {term};
      const int parts = 2 + n % 4;
      const DecodeMode mode = n % 2 == 0 ? DecodeMode::never : DecodeMode::always;
      check_split<T>(pol::AttentionPolicy(act, ms), spec, p, seed + unsigned(n), parts, mode);
      ++n;
    }
  });
}

}  // namespace

TEST_CASE("sink logits join the softmax-family denominator", "[attention][sinks]") {
  const auto ps = problems();
  for (simd::ArchLevel level :
       {simd::ArchLevel::generic, simd::ArchLevel::avx2, simd::ArchLevel::avx512}) {
    ArchCap cap(level);
    INFO("arch cap " << level_name(level) << " -> " << simd::dispatch_arch_name());
    for (std::size_t pi = 0; pi < ps.size(); ++pi) {
      const Problem& p = ps[pi];
      const std::vector<double> z = draw_sinks(p.hq, 900 + unsigned(pi));
      ref::Spec spec;
      spec.sink_logits = z;
      MaskStore st;
      int n = 0;
      for_each_mask<Masks::core>(
          p, st, 910 + unsigned(pi),
          [&](auto mask, const ref::MaskTerm& term, const std::string& name) {
            if constexpr (std::is_constructible_v<pol::MaskSpecTerm, decltype(mask)>) {
              INFO("mask " << name);
              pol::MaskSpec ms;  // one kernel for every term
              ms.add(mask, name);
              spec.terms = {term};
              AttentionOptions opts;
              opts.decode = n % 2 == 0 ? DecodeMode::never : DecodeMode::always;
              const bool capture = n % 3 == 0;
              ++n;
              spec.activation = "softmax";
              check<float>(pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z), ms), spec, p,
                           920 + unsigned(pi), capture, opts);
              spec.activation = "normalized-sigmoid";
              check<float>(pol::AttentionPolicy(pol::SinkLogits(pol::NormalizedSigmoid{}, z), ms),
                           spec, p, 930 + unsigned(pi), capture, opts);
            }
          });
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      spec.activation = "softcap";
      spec.cap = 5.0;
      check<double>(pol::AttentionPolicy(pol::SinkLogits(pol::Softcap(5.0), z), pol::Causal{}),
                    spec, p, 940 + unsigned(pi), true);
    }
  }
}

TEST_CASE("attention_partial and merge_partials: key ranges merge to the whole",
          "[attention][partials]") {
  const auto ps = problems();
  for (simd::ArchLevel level :
       {simd::ArchLevel::generic, simd::ArchLevel::avx2, simd::ArchLevel::avx512}) {
    ArchCap cap(level);
    INFO("arch cap " << level_name(level) << " -> " << simd::dispatch_arch_name());
    for (std::size_t pi = 0; pi < ps.size(); ++pi) {
      const Problem& p = ps[pi];
      const unsigned seed = 1000 + 37 * unsigned(pi);
      ref::Spec spec;
      spec.activation = "softmax";
      split_all_masks<float>(pol::Softmax{}, spec, p, seed);
      if (level != simd::ArchLevel::avx512) continue;  // the others on the best path only
      const std::vector<double> z = draw_sinks(p.hq, seed);
      spec.sink_logits = z;
      split_all_masks<float>(pol::SinkLogits(pol::Softmax{}, z), spec, p, seed + 100);
      spec.activation = "normalized-sigmoid";
      split_all_masks<double>(pol::SinkLogits(pol::NormalizedSigmoid{}, z), spec, p, seed + 200);
      spec.sink_logits.clear();
      spec.activation = "sigmoid-bias";  // b = -ln of the whole sequence's keys
      split_all_masks<float>(pol::SigmoidBias{}, spec, p, seed + 300);
      spec.activation = "head-softmax";
      split_all_masks<float>(pol::HeadSoftmax{}, spec, p, seed + 400);
      spec.activation = "relu";
      split_all_masks<double>(pol::ReLU{}, spec, p, seed + 500);
      // A score mod that depends on the absolute key position.
      spec.activation = "softmax";
      spec.alibi_slopes = pol::ALiBi::standard(p.hq).slopes;
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      check_split<float>(
          pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}, pol::ALiBi::standard(p.hq)), spec, p,
          seed + 600, 3, DecodeMode::automatic);
      spec.alibi_slopes.clear();
    }
  }
}

TEST_CASE("attention_partial: states of empty ranges and rows", "[attention][partials]") {
  const Problem p{2, 4, 2, 3, 0, 8, 5};
  Data<float> data(p, 5);
  const std::vector<double> z{1.0, -2.0, 0.5, 3.0};
  Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv}, 4.0f);
  Tensor<float, 3> state({p.b, p.hq, p.nq}, 4.0f);
  const auto sinks = pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z));
  AttentionOptions opts;
  opts.keys = KeyRange{0, 0};  // a sequence without keys: its empty range holds the sink
  attention_partial(sinks, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), state.view(),
                    opts);
  for (index_t h = 0; h < p.hq; ++h) {
    CHECK(state(1, h, 2) == float(z[std::size_t(h)]));
    CHECK(out(1, h, 2, 4) == 0.0f);
  }
  opts.keys = KeyRange{0, 10};  // an empty range of a longer sequence: no sink (key 0 is not in it)
  attention_partial(sinks, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), state.view(),
                    opts);
  CHECK(state(1, 2, 1) == -std::numeric_limits<float>::infinity());
  opts.keys = KeyRange{4, 10};
  attention_partial(sinks, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), state.view(),
                    opts);
  CHECK(state(0, 3, 0) == -std::numeric_limits<float>::infinity());
  attention_partial(pol::AttentionPolicy(pol::ReLU{}), data.q.cview(), data.k.cview(),
                    data.v.cview(), out.view(), state.view(), opts);
  CHECK(state(0, 3, 0) == 0.0f);
  // Rows that see no key under the mask, with and without a sink, through the kernel.
  const Problem q{1, 4, 4, 2, 70, 8, 8};
  Data<float> d2(q, 6);
  Tensor<float, 4> o2({1, 4, 2, 8});
  Tensor<float, 3> s2({1, 4, 2});
  const std::vector<index_t> none{0};
  attention_partial(pol::AttentionPolicy(pol::Softmax{}, pol::KeyPadding(none)), d2.q.cview(),
                    d2.k.cview(), d2.v.cview(), o2.view(), s2.view());
  CHECK(s2(0, 2, 1) == -std::numeric_limits<float>::infinity());
  CHECK(o2(0, 2, 1, 3) == 0.0f);
  attention_partial(pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z), pol::KeyPadding(none)),
                    d2.q.cview(), d2.k.cview(), d2.v.cview(), o2.view(), s2.view());
  CHECK(s2(0, 3, 0) == 3.0f);
  CHECK(o2(0, 3, 0, 0) == 0.0f);
}

TEST_CASE("query ranges: the gate, dropout and top-left causal see the rows of the whole call",
          "[attention][partials]") {
  // Rows [a, e) computed alone (QueryRange) equal those rows of one call over every row, with a
  // per-row gate, dropout (hashed on the row of the whole call) and a mask bound to Nk - Nq.
  for (const Problem& p : {Problem{2, 6, 3, 37, 53, 16, 8}, Problem{1, 4, 4, 70, 70, 32, 16}}) {
    Data<float> data(p, 17);
    Tensor<float, 3> gate_logits({p.b, p.hq, p.nq});
    std::mt19937 g(19);
    std::normal_distribution<float> n01;
    for (float& x : gate_logits) x = n01(g);
    const auto policy =
        pol::AttentionPolicy(pol::Softmax{}, pol::CausalTopLeft{}, pol::NoScoreMod{},
                             pol::HeadwiseSigmoid(gate_logits.cview()));
    AttentionOptions opts;
    opts.dropout = AttentionDropout{0.25, 99};
    Tensor<float, 4> whole({p.b, p.hq, p.nq, p.dv});
    attention(policy, data.q.cview(), data.k.cview(), data.v.cview(), whole.view(), opts);
    for (const auto& [a, e] : {std::pair<index_t, index_t>{0, 1}, {5, 23}, {p.nq - 3, p.nq}}) {
      Tensor<float, 4> rows({p.b, p.hq, e - a, p.dv});
      opts.queries = QueryRange{a, p.nq};
      attention(policy, data.q.cview().slice(a, e, 2), data.k.cview(), data.v.cview(), rows.view(),
                opts);
      long bad = 0;
      for (index_t b = 0; b < p.b; ++b)
        for (index_t h = 0; h < p.hq; ++h)
          for (index_t i = a; i < e; ++i)
            for (index_t c = 0; c < p.dv; ++c)
              bad += !(std::abs(rows(b, h, i - a, c) - whole(b, h, i, c)) <=
                       1e-5f * (1 + std::abs(whole(b, h, i, c))));
      INFO(p.str() << " rows [" << a << ", " << e << ")");
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("key ranges, sink logits and merge_partials reject bad input", "[attention][partials]") {
  const Problem p{1, 4, 2, 3, 20, 8, 8};
  Data<float> data(p, 7);
  Tensor<float, 4> out({1, 4, 3, 8});
  Tensor<float, 3> state({1, 4, 3});
  const auto softmax = pol::AttentionPolicy(pol::Softmax{});
  AttentionOptions opts;
  opts.keys = KeyRange{5, 24};  // 5 + 20 > 24
  CHECK_THROWS_AS(
      attention(softmax, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), opts),
      shape_error);
  opts.keys = KeyRange{-1, 30};
  CHECK_THROWS_AS(
      attention(softmax, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), opts),
      shape_error);
  opts.keys.reset();
  opts.queries = QueryRange{2, 4};  // 2 + 3 > 4
  CHECK_THROWS_AS(
      attention(softmax, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), opts),
      shape_error);
  opts.queries = QueryRange{-1, 4};
  CHECK_THROWS_AS(
      attention(softmax, data.q.cview(), data.k.cview(), data.v.cview(), out.view(), opts),
      shape_error);
  Tensor<float, 3> bad_state({1, 4, 2});
  CHECK_THROWS_AS(attention_partial(softmax, data.q.cview(), data.k.cview(), data.v.cview(),
                                    out.view(), bad_state.view()),
                  shape_error);
  const std::vector<double> three{0.0, 1.0, 2.0};
  CHECK_THROWS_AS(attention(pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, three)),
                            data.q.cview(), data.k.cview(), data.v.cview(), out.view()),
                  shape_error);
  const std::vector<double> nan{0.0, std::nan(""), 1.0, 2.0};
  CHECK_THROWS_AS(pol::SinkLogits(pol::Softmax{}, nan), error);
  const std::vector<double> big{0.0, inf, 1.0, 2.0};
  CHECK_THROWS_AS(pol::SinkLogits(pol::Softmax{}, big), error);

  attention_partial(softmax, data.q.cview(), data.k.cview(), data.v.cview(), out.view(),
                    state.view());
  std::vector<AttentionPartial<float>> parts{{out.cview(), state.cview()}};
  Tensor<float, 4> merged({1, 4, 3, 8});
  CHECK_THROWS_AS(
      merge_partials(softmax, std::span<const AttentionPartial<float>>{}, merged.view()), error);
  Tensor<float, 4> wrong({1, 4, 3, 7});
  CHECK_THROWS_AS(merge_partials(softmax, parts, wrong.view()), shape_error);
  parts.push_back({out.cview(), bad_state.cview()});
  CHECK_THROWS_AS(merge_partials(softmax, parts, merged.view()), shape_error);
  parts.pop_back();
  state(0, 1, 2) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(merge_partials(softmax, parts, merged.view()), error);
  state(0, 1, 2) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(merge_partials(softmax, parts, merged.view()), error);
  // One part merges to itself.
  attention_partial(softmax, data.q.cview(), data.k.cview(), data.v.cview(), out.view(),
                    state.view());
  merge_partials(softmax, parts, merged.view());
  for (index_t c = 0; c < 8; ++c)
    CHECK(merged(0, 2, 1, c) == Approx(out(0, 2, 1, c)).epsilon(1e-6));
}
