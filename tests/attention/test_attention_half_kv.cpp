// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention() over bf16 and f16 K and V on every architecture: against the double reference on
// the rounded K and V, and bit for bit against the float kernel given the same rounded values
// (the kernel widens them exactly), on the prefill, decode and head-softmax paths, with
// contiguous and strided K / V, P capture, sink logits, gates and key ranges.
#include <algorithm>
#include <string>
#include <vector>

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

namespace {

/// K or V rounded to KV, stored in the layout `layout` (0: [B, H, N, D] contiguous; 1: rows of
/// d contiguous but heads interleaved, [B, N, H, D] transposed; 2: d strided, [B, H, D, N]
/// transposed), with the same (rounded) values as float, contiguous and in the same layout (the
/// layout picks the kernel's path, so the bit-for-bit comparison uses the same one).
template <class KV>
struct Rounded {
  Tensor<KV, 4> store;
  TensorView<const KV, 4> view;
  Tensor<float, 4> exact;  ///< [B, H, N, D] contiguous, the rounded values as float
  Tensor<float, 4> fstore;
  TensorView<const float, 4> fview;  ///< the rounded values as float, in `layout`
  Rounded(const Tensor<float, 4>& x, int layout) : exact(x.shape()) {
    const auto s = x.shape();
    const Shape<4> stored = layout == 0   ? s
                            : layout == 1 ? Shape<4>{s[0], s[2], s[1], s[3]}
                                          : Shape<4>{s[0], s[1], s[3], s[2]};
    store = Tensor<KV, 4>(stored);
    fstore = Tensor<float, 4>(stored);
    auto arrange = [&](auto v) {
      return layout == 0 ? v : layout == 1 ? v.transpose(1, 2) : v.transpose(2, 3);
    };
    view = arrange(store.cview());
    fview = arrange(fstore.cview());
    TensorView<KV, 4> w = arrange(store.view());
    TensorView<float, 4> fw = arrange(fstore.view());
    for (index_t a = 0; a < s[0]; ++a)
      for (index_t b = 0; b < s[1]; ++b)
        for (index_t c = 0; c < s[2]; ++c)
          for (index_t e = 0; e < s[3]; ++e) {
            const KV h = KV::from_float(x(a, b, c, e));
            w(a, b, c, e) = h;
            exact(a, b, c, e) = h.to_float();
            fw(a, b, c, e) = h.to_float();
          }
  }
};

/// Runs `pol` over 16-bit K / V and over float K / V of the same values; compares the two bit
/// for bit and the 16-bit result with the reference.
template <class KV, class Policy>
void check_half(const Policy& pol, const ref::Spec& spec, const Problem& p, unsigned seed,
                int layout, DecodeMode mode, bool capture) {
  Data<float> data(p, seed);
  const Rounded<KV> k(data.k, layout), v(data.v, (layout + 1) % 3);
  AttentionOptions opts;
  opts.decode = mode;
  Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv}, 5.0f), want({p.b, p.hq, p.nq, p.dv}, 6.0f);
  Tensor<float, 4> probs({p.b, p.hq, p.nq, p.nk}, -3.0f), wprobs({p.b, p.hq, p.nq, p.nk}, -4.0f);
  if (capture) {
    attention(pol, data.q.cview(), k.view, v.view, out.view(), probs.view(), opts);
    attention(pol, data.q.cview(), k.fview, v.fview, want.view(), wprobs.view(), opts);
  } else {
    attention(pol, data.q.cview(), k.view, v.view, out.view(), opts);
    attention(pol, data.q.cview(), k.fview, v.fview, want.view(), opts);
  }
  Tensor<double, 4> rout, rprobs;
  ref::attention<float>(spec, data.q.cview(), k.exact.cview(), v.exact.cview(), rout, rprobs);
  std::string first;
  const long bad = out_mismatches<float>(p, out.cview(), rout, rprobs, v.exact.cview(), {}, first);
  INFO(p.str() << " activation=" << spec.activation << " layout=" << layout
               << " decode=" << int(mode) << " capture=" << capture << " first: " << first);
  CHECK(bad == 0);
  CHECK(std::equal(out.begin(), out.end(), want.begin()));
  if (capture) CHECK(std::equal(probs.begin(), probs.end(), wprobs.begin()));
}

/// \param all every problem, or (the capped architectures, whose kernels are the same code
/// with narrower loads) a sample: tiny, GQA with tails, MQA, and both decode shapes
template <class KV>
void run_all(unsigned seed, bool all) {
  auto ps = problems();
  ps.push_back({1, 16, 4, 1, 1100, 128, 128});  // decode: several chunks, D a multiple of W
  ps.push_back({1, 4, 2, 2, 1100, 40, 24});     // decode with tails along D and Dv
  for (std::size_t pi = 0; pi < ps.size(); ++pi) {
    if (!all && pi != 0 && pi != 2 && pi != 3 && pi < ps.size() - 2) continue;
    const Problem& p = ps[pi];
    MaskStore st;
    int n = 0;
    for_each_mask<Masks::core>(
        p, st, seed + unsigned(pi),
        [&](auto mask, const ref::MaskTerm& term, const std::string& name) {
          if constexpr (std::is_constructible_v<pol::MaskSpecTerm, decltype(mask)>) {
            INFO("mask " << name);
            pol::MaskSpec ms;
            ms.add(mask, name);
            ref::Spec spec;
            spec.terms = {term};
            const int layout = n % 3;
            const DecodeMode mode = n % 2 == 0 ? DecodeMode::always : DecodeMode::never;
            const bool capture = n % 4 == 1;
            const unsigned s = seed + 10 * unsigned(pi) + unsigned(n);
            ++n;
            spec.activation = "softmax";
            check_half<KV>(pol::AttentionPolicy(pol::Softmax{}, ms), spec, p, s, layout, mode,
                           capture);
            spec.activation = "sigmoid";
            check_half<KV>(pol::AttentionPolicy(pol::Sigmoid{}, ms), spec, p, s + 1,
                           (layout + 1) % 3, mode, !capture);
            spec.activation = "head-softmax";
            check_half<KV>(pol::AttentionPolicy(pol::HeadSoftmax{}, ms), spec, p, s + 2,
                           (layout + 2) % 3, mode, capture);
          }
        });
  }
}

}  // namespace

TEST_CASE("bf16 and f16 K and V: every path and architecture", "[attention][half]") {
  for (simd::ArchLevel level :
       {simd::ArchLevel::generic, simd::ArchLevel::avx2, simd::ArchLevel::avx512}) {
    ArchCap cap(level);
    INFO("arch cap " << level_name(level) << " -> " << simd::dispatch_arch_name());
    const bool all = level == simd::ArchLevel::avx512;
    run_all<bf16>(300, all);
    run_all<f16>(400, all);
  }
}

TEST_CASE("bf16 and f16 K and V: sink logits, gates, key ranges", "[attention][half]") {
  const Problem p{2, 8, 2, 3, 700, 64, 48};
  Data<float> data(p, 9);
  const std::vector<double> z{1.0, -1.0, 2.0, 0.0, 3.0, -2.0, 0.5, 1.5};
  Tensor<float, 3> g({p.b, p.hq, p.nq});
  for (index_t n = 0; n < g.size(); ++n) g.data()[n] = float(n % 7) * 0.4f - 1.2f;
  const auto pol_ =
      pol::AttentionPolicy(pol::SinkLogits(pol::NormalizedSigmoid{}, z), pol::Causal{},
                           pol::NoScoreMod{}, pol::HeadwiseSigmoid<float>(g.cview()));
  ref::Spec spec;
  spec.activation = "normalized-sigmoid";
  spec.sink_logits = z;
  spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
  spec.gate = "headwise";
  spec.gate_values.assign(g.begin(), g.end());
  for (int layout = 0; layout < 3; ++layout) {
    check_half<bf16>(pol_, spec, p, 20 + unsigned(layout), layout, DecodeMode::always, false);
    check_half<f16>(pol_, spec, p, 30 + unsigned(layout), layout, DecodeMode::never, true);
  }
  // Partial results over two key ranges of bf16 K / V merge to the float result.
  const Rounded<bf16> k(data.k, 0), v(data.v, 0);
  Tensor<float, 4> o1({p.b, p.hq, p.nq, p.dv}), o2({p.b, p.hq, p.nq, p.dv});
  Tensor<float, 4> merged({p.b, p.hq, p.nq, p.dv}), want({p.b, p.hq, p.nq, p.dv});
  Tensor<float, 3> s1({p.b, p.hq, p.nq}), s2({p.b, p.hq, p.nq});
  const auto softmax = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  AttentionOptions opts;
  opts.keys = KeyRange{0, p.nk};
  attention_partial(softmax, data.q.cview(), k.view.slice(0, 300, 2), v.view.slice(0, 300, 2),
                    o1.view(), s1.view(), opts);
  opts.keys = KeyRange{300, p.nk};
  attention_partial(softmax, data.q.cview(), k.view.slice(300, p.nk, 2), v.view.slice(300, p.nk, 2),
                    o2.view(), s2.view(), opts);
  const std::vector<AttentionPartial<float>> parts{{o1.cview(), s1.cview()},
                                                   {o2.cview(), s2.cview()}};
  merge_partials(softmax, parts, merged.view());
  attention(softmax, data.q.cview(), k.exact.cview(), v.exact.cview(), want.view());
  for (index_t n = 0; n < want.size(); ++n)
    CHECK(merged.data()[n] == Approx(want.data()[n]).margin(2e-6).epsilon(1e-5));
}
