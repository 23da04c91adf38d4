// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The AVX2 and SSE2 kernels on an AVX-512 machine: simd::set_max_arch caps the dispatch, and a
// sample of activations, masks, gates, the decode path and P capture is checked against the
// double reference under every cap. Built without ATTNKIT_DISPATCH_COMPILED_BEST (the other
// test executables instantiate the best compiled architecture only).
#include <limits>
#include <vector>

#include "attnkit/simd/arch.hpp"

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

TEST_CASE("set_max_arch caps the dispatched architecture", "[attention][arch]") {
  {
    ArchCap cap(simd::ArchLevel::generic);
    CHECK(std::string(simd::dispatch_arch_name()) == "sse2");
  }
  if (simd::arch_available<simd::avx2>()) {
    ArchCap cap(simd::ArchLevel::avx2);
    CHECK(std::string(simd::dispatch_arch_name()) == simd::avx2::name());
  }
  CHECK(simd::max_arch() == simd::ArchLevel::avx512);
}

TEST_CASE("every architecture: activations, masks, gates, decode, capture", "[attention][arch]") {
  const auto ps = problems();
  std::vector<float> hw;
  for (simd::ArchLevel level :
       {simd::ArchLevel::generic, simd::ArchLevel::avx2, simd::ArchLevel::avx512}) {
    ArchCap cap(level);
    INFO("arch cap " << level_name(level) << " -> " << simd::dispatch_arch_name());
    for (std::size_t pi : {1u, 2u, 3u, 5u, 8u}) {
      const Problem& p = ps[pi];
      const unsigned seed = 300 + static_cast<unsigned>(pi);
      ref::Spec spec;
      spec.activation = "softmax";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, seed, true);
      check<double>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, seed + 1);

      spec.activation = "sigmoid";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::sliding, 13}};
      check<float>(pol::AttentionPolicy(pol::Sigmoid{}, pol::SlidingWindow(13)), spec, p, seed + 2,
                   true);

      spec.activation = "normalized-sigmoid";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::sinks, 2, 9}};
      check<double>(pol::AttentionPolicy(pol::NormalizedSigmoid{}, pol::Sinks(2, 9)), spec, p,
                    seed + 3);

      spec.activation = "head-softmax";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      check<float>(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::Causal{}), spec, p, seed + 4,
                   true);

      spec.activation = "linear";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::none}};
      hw.assign(static_cast<std::size_t>(p.b * p.hq * p.nq), 0.0f);
      for (std::size_t i = 0; i < hw.size(); ++i) hw[i] = static_cast<float>(i % 7) - 3.0f;
      spec.gate = "headwise";
      spec.gate_values.assign(hw.begin(), hw.end());
      pol::HeadwiseSigmoid<float> hg(TensorView<const float, 3>(hw.data(), {p.b, p.hq, p.nq}));
      check<float>(pol::AttentionPolicy(pol::Linear{}, pol::NoMask{}, pol::NoScoreMod{}, hg), spec,
                   p, seed + 5);
      spec.gate = "none";
      spec.gate_values.clear();

      spec.activation = "softcap";
      spec.cap = 5.0;
      spec.terms = {ref::MaskTerm{ref::MaskTerm::prefix_lm, 7}};
      check<float>(pol::AttentionPolicy(pol::Softcap(5.0), pol::PrefixLM(7)), spec, p, seed + 6);
    }
    AttentionOptions always;
    always.decode = DecodeMode::always;
    // One decode row per head with groups of 4, 3 and 2 query heads: the last, shorter tile of
    // each key range (20, 40 and 6 keys) runs in blocks of 4 and 2 keys over blocks of 4, 2 and 1
    // rows (qk_rows_tail_rm).
    for (const Problem& p : {Problem{1, 8, 2, 1, 4500, 64, 64}, Problem{2, 4, 4, 3, 700, 16, 80},
                             Problem{1, 6, 2, 1, 1000, 16, 16}, Problem{1, 4, 2, 1, 70, 32, 32}}) {
      ref::Spec spec;
      spec.activation = "softmax";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), spec, p, 11, false, always);
      spec.activation = "relu";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::sliding, 200}};
      check<double>(pol::AttentionPolicy(pol::ReLU{}, pol::SlidingWindow(200)), spec, p, 12, false,
                    always);
    }
  }
}

namespace {

/// A key bias with -inf on runs of keys (a whole 64-key tile and more in batch entry 0, every
/// fifth key elsewhere) and on every key of the last batch entry when there are two.
std::vector<float> neg_inf_bias(const Problem& p) {
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> bias(static_cast<std::size_t>(p.b * p.nk), 0.25f);
  for (index_t b = 0; b < p.b; ++b)
    for (index_t j = 0; j < p.nk; ++j) {
      float& x = bias[static_cast<std::size_t>(b * p.nk + j)];
      if ((b == 0 && j < 70) || j % 5 == 2 || (p.b > 1 && b == p.b - 1)) x = ninf;
    }
  return bias;
}

}  // namespace

TEST_CASE("every architecture: a score of -inf means weight 0, a row of them a zero row",
          "[attention][arch][edge]") {
  const auto ps = problems();
  for (simd::ArchLevel level :
       {simd::ArchLevel::generic, simd::ArchLevel::avx2, simd::ArchLevel::avx512}) {
    ArchCap cap(level);
    INFO("arch cap " << level_name(level) << " -> " << simd::dispatch_arch_name());
    for (std::size_t pi : {1u, 2u, 5u, 8u}) {
      const Problem& p = ps[pi];
      const unsigned seed = 400 + static_cast<unsigned>(pi);
      const std::vector<float> bias = neg_inf_bias(p);
      const pol::KeyBias kb(TensorView<const float, 2>(bias.data(), {p.b, p.nk}));
      ref::Spec spec;
      spec.key_bias.assign(bias.begin(), bias.end());
      spec.terms = {ref::MaskTerm{ref::MaskTerm::none}};  // Full tiles: no mask test
      spec.activation = "softmax";
      check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::NoMask{}, kb), spec, p, seed, true);
      AttentionOptions always;
      always.decode = DecodeMode::always;
      check<float>(pol::AttentionPolicy(pol::Softmax{}, pol::NoMask{}, kb), spec, p, seed, true,
                   always);
      spec.activation = "linear";
      check<float>(pol::AttentionPolicy(pol::Linear{}, pol::NoMask{}, kb), spec, p, seed + 1, true);
      spec.activation = "normalized-sigmoid";
      check<double>(pol::AttentionPolicy(pol::NormalizedSigmoid{}, pol::NoMask{}, kb), spec, p,
                    seed + 2, true);
      spec.activation = "head-softmax";
      check<float>(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::NoMask{}, kb), spec, p, seed + 3,
                   true);
      spec.activation = "sigmoid";
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      check<float>(pol::AttentionPolicy(pol::Sigmoid{}, pol::Causal{}, kb), spec, p, seed + 4,
                   true);
    }
  }
}

TEST_CASE("every architecture: normalized sigmoid where every sigmoid underflows",
          "[attention][arch][edge]") {
  // s + b near -1e4 (fp64) or -200 (fp32): sigmoid(s + b) is 0 in the type, the weights are
  // still sigmoid / sum in the limit, softmax of s (the reference computes them in log space).
  const auto ps = problems();
  for (simd::ArchLevel level :
       {simd::ArchLevel::generic, simd::ArchLevel::avx2, simd::ArchLevel::avx512}) {
    ArchCap cap(level);
    INFO("arch cap " << level_name(level) << " -> " << simd::dispatch_arch_name());
    for (std::size_t pi : {1u, 3u, 5u, 8u}) {
      const Problem& p = ps[pi];
      const unsigned seed = 500 + static_cast<unsigned>(pi);
      ref::Spec spec;
      spec.activation = "normalized-sigmoid";
      spec.bias_given = true;
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}};
      spec.bias = -1e4;
      check<double>(pol::AttentionPolicy(pol::NormalizedSigmoid(-1e4), pol::Causal{}), spec, p,
                    seed, true);
      spec.bias = -200;
      spec.terms = {ref::MaskTerm{ref::MaskTerm::sliding, 7}};
      check<float>(pol::AttentionPolicy(pol::NormalizedSigmoid(-200), pol::SlidingWindow(7)), spec,
                   p, seed + 1, true);
      AttentionOptions always;
      always.decode = DecodeMode::always;
      check<float>(pol::AttentionPolicy(pol::NormalizedSigmoid(-200), pol::SlidingWindow(7)), spec,
                   p, seed + 2, true, always);
      // b = -40: rows on both sides of the kernel's fast range (e^-m representable).
      spec.bias = -40;
      check<float>(pol::AttentionPolicy(pol::NormalizedSigmoid(-40), pol::SlidingWindow(7)), spec,
                   p, seed + 3, true);
    }
  }
}
