// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// inspect/: statistics on hand-computed cases, capture through the kernel and the decoder hooks,
// massive activations, attention boosting, the causality-leak checker (the naive head-softmax
// leak is caught, every attnkit mask passes), PNG decoded back and SVG parsed.
//
// Compile time: the kernel is instantiated for two policies only (softmax and head softmax over
// one run-time selectable mask type with a KeyBias), plus the golden softmax decoder.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/core/parallel.hpp"
#include "attnkit/inspect/boost.hpp"
#include "attnkit/inspect/capture.hpp"
#include "attnkit/inspect/causality.hpp"
#include "attnkit/inspect/heatmap.hpp"
#include "attnkit/inspect/heatmap_png.hpp"
#include "attnkit/inspect/massive_activations.hpp"
#include "attnkit/inspect/report.hpp"
#include "attnkit/inspect/stats.hpp"
#include "attnkit/model/variants.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace {

using attnkit::index_t;
using attnkit::Tensor;
using attnkit::TensorView;
namespace ins = attnkit::inspect;
namespace pol = attnkit::policy;

// ---- a mask chosen at run time, so that one kernel instantiation covers every mask -----------

using MaskVariant =
    std::variant<pol::NoMask, pol::Causal, pol::SlidingWindow, pol::LocalWindow, pol::Sinks,
                 pol::PrefixLM, pol::Document, pol::And<pol::Causal, pol::Document>,
                 pol::And<pol::Causal, pol::KeepMask>, pol::And<pol::Causal, pol::BlockSparse>>;

/// Forwards visible/classify/bind to the real mask it holds (their own tile classifiers run).
struct AnyMask {
  MaskVariant m;
  bool visible(index_t b, index_t h, index_t i, index_t j) const {
    return std::visit([&](const auto& x) { return static_cast<bool>(x.visible(b, h, i, j)); }, m);
  }
  pol::TileClass classify(index_t b, index_t h, index_t i0, index_t i1, index_t j0,
                          index_t j1) const {
    return std::visit([&](const auto& x) { return x.classify(b, h, i0, i1, j0, j1); }, m);
  }
  AnyMask bind(const pol::Geometry& g) const {
    return AnyMask{std::visit([&](const auto& x) { return MaskVariant(x.bind(g)); }, m)};
  }
};

using SoftmaxAny = pol::AttentionPolicy<pol::Softmax, AnyMask, pol::KeyBias>;
using HeadSoftmaxAny = pol::AttentionPolicy<pol::HeadSoftmax, AnyMask, pol::KeyBias>;

template <class Policy>
Policy make_policy(MaskVariant m, index_t nk) {
  using A = typename Policy::activation_type;
  return Policy(A{}, AnyMask{std::move(m)}, pol::KeyBias::boost(nk, {}, 0.0f));
}

Tensor<float, 4> random_tensor(attnkit::Shape<4> s, unsigned seed) {
  Tensor<float, 4> t(s);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (float& x : t) x = nd(rng);
  return t;
}

/// The naive head-softmax bug: softmax across heads (dim=1) of scores with an additive -1e9 causal
/// mask, in fp32 as PyTorch would compute it. Every masked key gets the weight 1/H.
void naive_head_softmax(TensorView<const float, 4> q, TensorView<const float, 4> k,
                        TensorView<const float, 4> v, TensorView<float, 4> out) {
  const index_t nb = q.extent(0), nh = q.extent(1), n = q.extent(2), d = q.extent(3);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> s(static_cast<std::size_t>(nh));
  attnkit::fill(out, 0.0f);
  for (index_t b = 0; b < nb; ++b)
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) {
        float mx = -INFINITY, sum = 0;
        for (index_t h = 0; h < nh; ++h) {
          float dot = 0;
          for (index_t c = 0; c < d; ++c) dot += q(b, h, i, c) * k(b, h, j, c);
          s[static_cast<std::size_t>(h)] = dot * scale + (j > i ? -1e9f : 0.0f);
          mx = std::max(mx, s[static_cast<std::size_t>(h)]);
        }
        for (auto& x : s) sum += (x = std::exp(x - mx));
        for (index_t h = 0; h < nh; ++h)
          for (index_t c = 0; c < v.extent(3); ++c)
            out(b, h, i, c) += s[static_cast<std::size_t>(h)] / sum * v(b, h, j, c);
      }
}

/// Runs the many small attention calls of the leak checks on one thread (the property does not
/// depend on the thread count; OpenMP barriers on an oversubscribed CI machine cost 100x).
struct SingleThread {
  int saved = attnkit::max_threads();
  SingleThread() { attnkit::set_threads(1); }
  ~SingleThread() { attnkit::set_threads(saved); }
  SingleThread(const SingleThread&) = delete;
  SingleThread& operator=(const SingleThread&) = delete;
};

std::string golden_softmax_dir() { return std::string(ATTNKIT_GOLDEN_DIR) + "/softmax"; }

// ---- PNG and SVG readers ----------------------------------------------------------------------

std::uint32_t crc32(const std::uint8_t* p, std::size_t n) {
  std::uint32_t c = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int b = 0; b < 8; ++b) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

struct PngInfo {
  std::uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  std::vector<std::string> chunks;
};

/// Walks the chunks: signature, every CRC, IHDR first, IEND last.
PngInfo parse_png_chunks(const std::vector<std::uint8_t>& f) {
  static const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  PngInfo info;
  REQUIRE(f.size() > 8);
  REQUIRE(std::equal(sig, sig + 8, f.begin()));
  std::size_t pos = 8;
  while (pos + 12 <= f.size()) {
    const std::uint32_t len = be32(&f[pos]);
    REQUIRE(pos + 12 + len <= f.size());
    const std::string type(f.begin() + static_cast<std::ptrdiff_t>(pos + 4),
                           f.begin() + static_cast<std::ptrdiff_t>(pos + 8));
    CHECK(crc32(&f[pos + 4], len + 4) == be32(&f[pos + 8 + len]));
    if (type == "IHDR") {
      REQUIRE(len == 13);
      info.width = be32(&f[pos + 8]);
      info.height = be32(&f[pos + 12]);
      info.bit_depth = f[pos + 16];
      info.color_type = f[pos + 17];
    }
    info.chunks.push_back(type);
    pos += 12 + len;
  }
  CHECK(pos == f.size());
  return info;
}

/// A small XML well-formedness check (what an SVG viewer needs): one root, balanced tags,
/// quoted attributes, valid entities, no stray '<' or '&'. Returns the texts of <text> elements,
/// unescaped.
std::vector<std::string> parse_xml(const std::string& s, std::string& root) {
  std::vector<std::string> stack, texts;
  std::size_t p = 0;
  int roots = 0;
  auto unescape = [&](const std::string& t) {
    std::string out;
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (t[i] != '&') {
        REQUIRE(t[i] != '<');
        out += t[i];
        continue;
      }
      const std::size_t e = t.find(';', i);
      REQUIRE(e != std::string::npos);
      const std::string ent = t.substr(i + 1, e - i - 1);
      if (ent == "amp")
        out += '&';
      else if (ent == "lt")
        out += '<';
      else if (ent == "gt")
        out += '>';
      else if (ent == "quot")
        out += '"';
      else if (ent == "apos")
        out += '\'';
      else
        FAIL("bad entity &" << ent << ";");
      i = e;
    }
    return out;
  };
  if (s.compare(0, 5, "<?xml") == 0) p = s.find("?>") + 2;
  std::string text;
  while (p < s.size()) {
    const std::size_t lt = s.find('<', p);
    const std::string chunk = s.substr(p, lt == std::string::npos ? std::string::npos : lt - p);
    const std::string plain = unescape(chunk);
    if (!stack.empty() && stack.back() == "text") text += plain;
    if (stack.empty()) {
      for (char c : plain) REQUIRE(std::isspace(static_cast<unsigned char>(c)));
    }
    if (lt == std::string::npos) break;
    const std::size_t gt = s.find('>', lt);
    REQUIRE(gt != std::string::npos);
    std::string tag = s.substr(lt + 1, gt - lt - 1);
    p = gt + 1;
    if (tag[0] == '/') {
      REQUIRE(!stack.empty());
      REQUIRE(stack.back() == tag.substr(1));
      if (stack.back() == "text") texts.push_back(text);
      stack.pop_back();
      continue;
    }
    const bool self_closing = tag.back() == '/';
    if (self_closing) tag.pop_back();
    std::size_t i = 0;
    while (i < tag.size() && !std::isspace(static_cast<unsigned char>(tag[i]))) ++i;
    const std::string name = tag.substr(0, i);
    REQUIRE(!name.empty());
    while (i < tag.size()) {  // attributes: name="value"
      while (i < tag.size() && std::isspace(static_cast<unsigned char>(tag[i]))) ++i;
      if (i >= tag.size()) break;
      const std::size_t eq = tag.find('=', i);
      REQUIRE(eq != std::string::npos);
      REQUIRE(eq + 1 < tag.size());
      const char quote = tag[eq + 1];
      REQUIRE((quote == '"' || quote == '\''));
      const std::size_t close = tag.find(quote, eq + 2);
      REQUIRE(close != std::string::npos);
      unescape(tag.substr(eq + 2, close - eq - 2));
      i = close + 1;
    }
    if (stack.empty()) {
      ++roots;
      root = name;
    }
    if (!self_closing) {
      stack.push_back(name);
      if (name == "text") text.clear();
    }
  }
  CHECK(stack.empty());
  CHECK(roots == 1);
  return texts;
}

}  // namespace

// ---- statistics ---------------------------------------------------------------------------------

TEST_CASE("inspect: statistics of a hand-computed causal head", "[inspect][stats]") {
  // Rows see keys 0..i (causal); row sums are 1.
  Tensor<float, 2> p({4, 4});
  const float rows[4][4] = {
      {1, 0, 0, 0}, {0.5f, 0.5f, 0, 0}, {0.25f, 0.25f, 0.5f, 0}, {0.1f, 0.2f, 0.3f, 0.4f}};
  Tensor<std::uint8_t, 2> vis({4, 4});
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 4; ++j) {
      p(i, j) = rows[i][j];
      vis(i, j) = j <= i ? 1 : 0;
    }
  Tensor<float, 2> ref(p);
  ref(3, 0) = 0.4f;  // the "softmax" reference differs in row 3: |ΔP| = 0.3 at (3, 0) and (3, 3)
  ref(3, 3) = 0.1f;
  ins::StatsOptions opts;
  opts.sink_keys = 1;
  opts.sparsity_threshold = 0.15;
  const ins::HeadStats s = ins::attention_stats<float>(p.cview(), vis.cview(), ref.cview(), opts);
  CHECK(s.rows == 4);
  CHECK(s.row_sum.min == Approx(1.0).margin(1e-6));
  CHECK(s.row_sum.max == Approx(1.0).margin(1e-6));
  CHECK(s.row_sum.mean == Approx(1.0).margin(1e-6));
  CHECK(s.min == Approx(0.1).margin(1e-7));  // the smallest *visible* weight (masked 0s ignored)
  CHECK(s.max == Approx(1.0));
  const double h3 =
      -(0.1 * std::log(0.1) + 0.2 * std::log(0.2) + 0.3 * std::log(0.3) + 0.4 * std::log(0.4));
  CHECK(s.entropy == Approx((0.0 + std::log(2.0) + 1.5 * std::log(2.0) + h3) / 4).epsilon(1e-6));
  // Sink mass on key 0: rows 1..3 see more than the sink (row 0 does not count).
  CHECK(s.sink_mass == Approx((0.5 + 0.25 + 0.1) / 3).epsilon(1e-6));
  // 10 visible pairs, one (0.1) below 0.15.
  CHECK(s.sparsity == Approx(0.1));
  CHECK(s.max_abs_dp_vs_softmax == Approx(0.3).epsilon(1e-6));

  // Without a reference ΔP is NaN; without a visible set every pair counts (sparsity: the six 0s
  // and the 0.1 are below 0.15 out of 16).
  const ins::HeadStats s2 = ins::attention_stats<float>(p.cview(), {}, {}, opts);
  CHECK(std::isnan(s2.max_abs_dp_vs_softmax));
  CHECK(s2.sparsity == Approx(7.0 / 16));
  CHECK(s2.min == 0.0);

  // Keyword mass on key 2: rows 2 and 3 see it: (0.5 + 0.3) / 2.
  const std::vector<index_t> kw{2, 2};
  CHECK(ins::keyword_mass<float>(p.cview(), vis.cview(), kw) == Approx(0.4));
  const std::vector<index_t> bad{4};
  CHECK_THROWS_WITH(ins::keyword_mass<float>(p.cview(), vis.cview(), bad),
                    Catch::Contains("key position 4"));
}

TEST_CASE("inspect: statistics of unnormalized and signed weights", "[inspect][stats]") {
  // A sigmoid-like row (sum 0.75) and a linear-attention row with a negative weight.
  Tensor<double, 2> p({2, 3});
  p(0, 0) = 0.5;
  p(0, 1) = 0.25;
  p(0, 2) = 0.0;
  p(1, 0) = -1.0;
  p(1, 1) = 3.0;
  p(1, 2) = 0.0;
  ins::StatsOptions opts;
  opts.sink_keys = 1;
  const ins::HeadStats s = ins::attention_stats<double>(p.cview(), {}, {}, opts);
  CHECK(s.row_sum.min == Approx(0.75));
  CHECK(s.row_sum.max == Approx(2.0));
  CHECK(s.row_sum.mean == Approx(1.375));
  CHECK(s.min == -1.0);
  CHECK(s.max == 3.0);
  // Entropy of |P| / Σ|P|: (2/3, 1/3) and (1/4, 3/4).
  auto h = [](double a, double b) { return -(a * std::log(a) + b * std::log(b)); };
  CHECK(s.entropy == Approx((h(2.0 / 3, 1.0 / 3) + h(0.25, 0.75)) / 2));
  CHECK(s.sink_mass == Approx((2.0 / 3 + 0.25) / 2));
  const std::vector<index_t> k0{0};
  CHECK(ins::keyword_mass<double>(p.cview(), {}, k0) == Approx((2.0 / 3 + 0.25) / 2));
  // All-zero rows: no entropy, no NaN.
  Tensor<double, 2> z({2, 2});
  const ins::HeadStats sz = ins::attention_stats<double>(z.cview(), {}, {}, opts);
  CHECK(sz.entropy == 0.0);
  CHECK(sz.sink_mass == 0.0);
  CHECK(sz.row_sum.mean == 0.0);
}

TEST_CASE("inspect: massive activations against the median magnitude", "[inspect][massive]") {
  Tensor<float, 2> h({3, 5}, 1.0f);
  h(2, 3) = 500.0f;
  h(0, 1) = -150.0f;
  h(1, 4) = -2.0f;  // median |h| of the 15 entries stays 1
  ins::MassiveActivationDetector det;
  det.observe<float>(7, h.cview());
  REQUIRE(det.found().size() == 2);
  CHECK(det.found()[0].layer == 7);
  CHECK(det.found()[0].token == 2);
  CHECK(det.found()[0].channel == 3);
  CHECK(det.found()[0].value == 500.0);
  CHECK(det.found()[0].ratio_to_median == Approx(500.0));
  CHECK(det.found()[1].value == -150.0);
  CHECK(det.found()[1].token == 0);
  CHECK(det.found()[1].channel == 1);
  CHECK(det.largest().ratio_to_median == Approx(500.0));

  ins::MassiveOptions strict;
  strict.min_ratio = 200;
  ins::MassiveActivationDetector d2(strict);
  d2.observe<float>(0, h.cview());
  CHECK(d2.found().size() == 1);

  // Even count: the median is the mean of the two middle magnitudes, (2 + 3) / 2.
  Tensor<double, 2> e({2, 2});
  e(0, 0) = 1;
  e(0, 1) = -2;
  e(1, 0) = 3;
  e(1, 1) = 400;
  ins::MassiveActivationDetector d3;
  d3.observe<double>(1, e.cview());
  REQUIRE(d3.found().size() == 1);
  CHECK(d3.found()[0].ratio_to_median == Approx(160.0));
  // A layer whose median is 0 reports nothing (no division by zero).
  ins::MassiveActivationDetector d4;
  Tensor<float, 2> zeros({3, 3});
  zeros(0, 0) = 9;
  d4.observe<float>(0, zeros.cview());
  CHECK(d4.found().empty());
}

// ---- capture through the kernel ---------------------------------------------------------------

TEST_CASE("inspect: capture through the kernel, uniform scores by hand", "[inspect][capture]") {
  // q = 0: every visible score is 0, so causal softmax rows are uniform over keys 0..i, and
  // head softmax gives every head 1/H.
  constexpr index_t nh = 4, n = 70, d = 8;
  Tensor<float, 4> q({1, nh, n, d});
  const Tensor<float, 4> k = random_tensor({1, nh, n, d}, 1), v = random_tensor({1, nh, n, d}, 2);
  ins::Selection sel;
  sel.heads = {3, 1};
  sel.rows = {0, 1, 69, 40};
  const auto caps = ins::capture_attention<SoftmaxAny, float>(
      make_policy<SoftmaxAny>(pol::Causal{}, n), q.cview(), k.cview(), v.cview(), sel);
  REQUIRE(caps.size() == 2);
  CHECK(caps[0].head == 1);
  CHECK(caps[1].head == 3);
  REQUIRE(caps[0].rows == std::vector<index_t>{0, 1, 40, 69});
  for (const auto& c : caps) {
    REQUIRE(c.probs.shape() == attnkit::Shape<2>{4, n});
    for (index_t r = 0; r < 4; ++r) {
      const index_t i = c.position(r);
      for (index_t j = 0; j < n; ++j) {
        CHECK(c.visible(r, j) == (j <= i ? 1 : 0));
        CHECK(c.probs(r, j) == Approx(j <= i ? 1.0 / double(i + 1) : 0.0).margin(1e-6));
      }
    }
    ins::StatsOptions o;
    o.sink_keys = 1;
    const ins::HeadStats s = ins::attention_stats(c, o);
    double ent = 0, sink = 0;
    for (index_t i : {0, 1, 40, 69}) ent += std::log(double(i + 1));
    for (index_t i : {1, 40, 69}) sink += 1.0 / double(i + 1);
    CHECK(s.entropy == Approx(ent / 4).epsilon(1e-5));
    CHECK(s.sink_mass == Approx(sink / 3).epsilon(1e-5));
    CHECK(s.row_sum.min == Approx(1.0).epsilon(1e-5));
    CHECK(s.max_abs_dp_vs_softmax == 0.0);  // softmax is its own reference
  }

  // Head softmax on the same inputs: P = 1/H on visible pairs; the softmax reference (the
  // kernel, same mask) is 1/(i+1), so max |ΔP| = |1/4 - 1| = 0.75 at row 0.
  const auto hs = ins::capture_attention<HeadSoftmaxAny, float>(
      make_policy<HeadSoftmaxAny>(pol::Causal{}, n), q.cview(), k.cview(), v.cview(), sel);
  REQUIRE(hs.size() == 2);
  const ins::HeadStats s = ins::attention_stats(hs[0]);
  CHECK(s.max_abs_dp_vs_softmax == Approx(0.75).epsilon(1e-6));
  CHECK(s.max == Approx(0.25).epsilon(1e-6));
  CHECK(s.min == Approx(0.25).epsilon(1e-6));
  CHECK(s.row_sum.max == Approx(0.25 * 70).epsilon(1e-5));

  // Bounded memory: the per-call buffer is checked against the limit.
  sel.max_buffer_bytes = 1000;
  CHECK_THROWS_WITH(
      (ins::capture_attention<SoftmaxAny, float>(make_policy<SoftmaxAny>(pol::Causal{}, n),
                                                 q.cview(), k.cview(), v.cview(), sel)),
      Catch::Contains("max_buffer_bytes"));
  sel.max_buffer_bytes = std::size_t{1} << 30;
  sel.heads = {4};
  CHECK_THROWS_WITH(
      (ins::capture_attention<SoftmaxAny, float>(make_policy<SoftmaxAny>(pol::Causal{}, n),
                                                 q.cview(), k.cview(), v.cview(), sel)),
      Catch::Contains("head 4 is outside [0, 4)"));
}

TEST_CASE("inspect: attention boosting moves keyword mass as computed by hand",
          "[inspect][boost]") {
  // q = 0: before the boost row i puts 1/(i+1) on keyword key 5; with bias b it puts
  // e^b / (i + e^b).
  constexpr index_t nh = 2, n = 12, d = 4;
  Tensor<float, 4> q({1, nh, n, d});
  const Tensor<float, 4> k = random_tensor({1, nh, n, d}, 3), v = random_tensor({1, nh, n, d}, 4);
  const std::vector<index_t> keys{5};
  const float b = 2.0f;
  const auto eff = ins::boost_effect<SoftmaxAny, float>(make_policy<SoftmaxAny>(pol::Causal{}, n),
                                                        q.cview(), k.cview(), v.cview(), keys, b);
  REQUIRE(eff.size() == 2);
  double before = 0, after = 0;
  for (index_t i = 5; i < n; ++i) {
    before += 1.0 / double(i + 1);
    after += std::exp(double(b)) / (double(i) + std::exp(double(b)));
  }
  for (const auto& e : eff) {
    CHECK(e.before == Approx(before / 7).epsilon(1e-5));
    CHECK(e.after == Approx(after / 7).epsilon(1e-5));
    CHECK(e.after > e.before);
  }
}

// ---- the causality-leak checker ----------------------------------------------------------------

TEST_CASE("inspect: the leak checker catches softmax across heads with an additive mask",
          "[inspect][leak]") {
  const SingleThread one;
  constexpr index_t nh = 4, n = 40, d = 8;
  const Tensor<float, 4> q = random_tensor({1, nh, n, d}, 5), k = random_tensor({1, nh, n, d}, 6),
                         v = random_tensor({1, nh, n, d}, 7);
  const ins::LeakReport naive =
      ins::check_causality_attention<float>(naive_head_softmax, q.cview(), k.cview(), v.cview());
  CHECK(naive.leak);
  CHECK(naive.cut == 1);
  CHECK(naive.position == 0);
  CHECK(naive.runs == 1);
  CHECK(naive.max_change > 0.01);

  // Ours: the same activation, structural mask: no output before the cut moves by a single bit.
  const auto ours = [&](TensorView<const float, 4> qq, TensorView<const float, 4> kk,
                        TensorView<const float, 4> vv, TensorView<float, 4> out) {
    attnkit::attention<HeadSoftmaxAny, float>(make_policy<HeadSoftmaxAny>(pol::Causal{}, n), qq, kk,
                                              vv, out);
  };
  const ins::LeakReport r =
      ins::check_causality_attention<float>(ours, q.cview(), k.cview(), v.cview());
  CHECK_FALSE(r.leak);
  CHECK(r.runs == n - 1);
  CHECK(r.max_change == 0.0);
}

TEST_CASE("inspect: every attnkit mask passes the leak checker, non-causal ones do not",
          "[inspect][leak]") {
  // 150 positions: three key tiles of 64 and several query tiles, so the masks' tile
  // classifiers (Empty / Full / Partial) are on the path, under softmax and head softmax.
  const SingleThread one;
  constexpr index_t nh = 2, n = 150, d = 8;
  const Tensor<float, 4> q = random_tensor({1, nh, n, d}, 8), k = random_tensor({1, nh, n, d}, 9),
                         v = random_tensor({1, nh, n, d}, 10);
  Tensor<index_t, 2> seg({1, n});
  for (index_t j = 0; j < n; ++j) seg(0, j) = j < 30 ? 0 : j < 100 ? 1 : 2;
  Tensor<std::uint8_t, 2> keep({1, n});
  for (index_t j = 0; j < n; ++j) keep(0, j) = j % 3 != 1 ? 1 : 0;
  Tensor<std::uint8_t, 4> layout({1, nh, 5, 5});
  for (index_t h = 0; h < nh; ++h)
    for (index_t a = 0; a < 5; ++a)
      for (index_t c = 0; c < 5; ++c) layout(0, h, a, c) = (a + c + h) % 2 == 0 ? 1 : 0;

  auto check = [&](const char* name, const MaskVariant& m, index_t first_cut, bool leaks) {
    INFO("mask " << name);
    ins::LeakOptions opts;
    opts.first_cut = first_cut;
    for (int act = 0; act < 2; ++act) {
      INFO((act == 0 ? "softmax" : "head softmax"));
      const auto fn = [&](TensorView<const float, 4> qq, TensorView<const float, 4> kk,
                          TensorView<const float, 4> vv, TensorView<float, 4> out) {
        if (act == 0)
          attnkit::attention<SoftmaxAny, float>(make_policy<SoftmaxAny>(m, n), qq, kk, vv, out);
        else
          attnkit::attention<HeadSoftmaxAny, float>(make_policy<HeadSoftmaxAny>(m, n), qq, kk, vv,
                                                    out);
      };
      const ins::LeakReport r =
          ins::check_causality_attention<float>(fn, q.cview(), k.cview(), v.cview(), opts);
      CHECK(r.leak == leaks);
      if (!leaks) {
        CHECK(r.max_change == 0.0);
        CHECK(r.runs == n - std::max<index_t>(1, first_cut));
      }
    }
  };
  check("causal", pol::Causal{}, 1, false);
  check("sliding=7", pol::SlidingWindow(7), 1, false);
  check("sinks=4,16", pol::Sinks(4, 16), 1, false);
  check("prefix-lm=20 beyond the prefix", pol::PrefixLM(20), 20, false);
  check("causal+document",
        pol::And<pol::Causal, pol::Document>(pol::Causal{}, pol::Document(seg.cview())), 1, false);
  check("causal+keep",
        pol::And<pol::Causal, pol::KeepMask>(pol::Causal{}, pol::KeepMask(keep.cview())), 1, false);
  check("causal+block-sparse",
        pol::And<pol::Causal, pol::BlockSparse>(pol::Causal{},
                                                pol::BlockSparse(layout.cview(), 32, 32)),
        1, false);
  // Positive controls: masks that are not causal by design must be reported.
  check("none", pol::NoMask{}, 1, true);
  check("local=3 (both sides)", pol::LocalWindow(3), 1, true);
  check("document (bidirectional)", pol::Document(seg.cview()), 1, true);
  check("prefix-lm=20 inside the prefix", pol::PrefixLM(20), 1, true);

  // max_cuts spreads the cuts and keeps both ends.
  ins::LeakOptions few;
  few.max_cuts = 5;
  CHECK(ins::detail::leak_cuts(150, few) == std::vector<index_t>{1, 38, 75, 112, 149});
}

TEST_CASE("inspect: the leak checker on token models reports the position", "[inspect][leak]") {
  const std::vector<std::int64_t> ids{3, 1, 4, 1, 5, 9, 2, 6};
  // Output row i: a running sum (causal) and, in column 1, a look two tokens ahead (a leak that
  // first shows at position 5 when the tokens from 7 on are perturbed).
  const auto model = [](std::span<const std::int64_t> x) {
    const index_t n = static_cast<index_t>(x.size());
    Tensor<double, 2> out({n, 2});
    double acc = 0;
    for (index_t i = 0; i < n; ++i) {
      acc += double(x[static_cast<std::size_t>(i)]);
      out(i, 0) = acc;
      out(i, 1) = i + 2 < n ? double(x[static_cast<std::size_t>(i + 2)]) : 0.0;
    }
    return out;
  };
  const ins::LeakReport r = ins::check_causality_tokens(model, ids, 10);
  CHECK(r.leak);
  CHECK(r.cut == 1);
  CHECK(r.position == 0);  // cut 1 perturbs token 2, which row 0 reads
  ins::LeakOptions late;
  late.first_cut = 7;
  const ins::LeakReport r7 = ins::check_causality_tokens(model, ids, 10, late);
  CHECK(r7.leak);
  CHECK(r7.position == 5);
  const auto causal = [&](std::span<const std::int64_t> x) {
    Tensor<double, 2> o = model(x);
    for (index_t i = 0; i < o.extent(0); ++i) o(i, 1) = 0;
    return o;
  };
  CHECK_FALSE(ins::check_causality_tokens(causal, ids, 10).leak);
}

// ---- the decoder: hooks, capture, massive activations, leak check ------------------------------

TEST_CASE("inspect: decoder capture, hidden states and leak check (golden softmax model)",
          "[inspect][model]") {
  namespace mdl = attnkit::model;
  const auto m = mdl::SoftmaxLlama::load(golden_softmax_dir());
  const std::vector<std::int64_t> ids{1, 17, 5, 60, 2, 33, 8, 91, 12, 4, 70, 3};
  const index_t n = static_cast<index_t>(ids.size());

  // Capturing does not change the pass: the logits are identical bit for bit.
  const Tensor<float, 2> plain = m.forward(ids);
  ins::Selection sel;
  sel.layers = {1};
  sel.heads = {0, 3};
  sel.rows = {0, 5, 11};
  index_t hidden_calls = 0;
  const auto cap = ins::capture_prefill(m, ids, sel, [&](index_t l, TensorView<const float, 2> h) {
    CHECK(l == hidden_calls);
    CHECK(h.shape() == attnkit::Shape<2>{n, m.config.hidden_size});
    ++hidden_calls;
  });
  CHECK(hidden_calls == m.config.num_hidden_layers);
  REQUIRE(cap.logits.shape() == plain.shape());
  CHECK(std::equal(plain.begin(), plain.end(), cap.logits.begin()));
  REQUIRE(cap.heads.size() == 2);
  for (const auto& c : cap.heads) {
    CHECK(c.layer == 1);
    REQUIRE(c.probs.shape() == attnkit::Shape<2>{3, n});
    const ins::HeadStats s = ins::attention_stats(c);
    CHECK(s.row_sum.min == Approx(1.0).epsilon(1e-5));
    CHECK(s.row_sum.max == Approx(1.0).epsilon(1e-5));
    CHECK(s.max_abs_dp_vs_softmax == 0.0);
    CHECK(c.probs(0, 0) == Approx(1.0f));  // row 0 sees only key 0
    for (index_t j = 1; j < n; ++j) CHECK(c.probs(0, j) == 0.0f);
  }
  CHECK_THROWS_WITH(ins::capture_prefill(m, ids, ins::Selection{{2}, {}, {}}),
                    Catch::Contains("layer 2 is outside [0, 2)"));

  const ins::MassiveActivationDetector det = ins::find_massive_activations(m, ids);
  CHECK(det.largest().layer >= 0);
  CHECK(det.largest().ratio_to_median > 1.0);

  const ins::LeakReport r = ins::check_causality(m, ids);
  CHECK_FALSE(r.leak);
  CHECK(r.runs == n - 1);
  CHECK(r.max_change == 0.0);

  // The statistics document parses back with the keys of docs/CLI.md.
  std::vector<ins::HeadStats> stats;
  for (const auto& c : cap.heads) stats.push_back(ins::attention_stats(c));
  stats.back().max_abs_dp_vs_softmax = std::nan("");
  const std::string text = ins::stats_document("softmax", n, stats, det.found()).dump();
  const auto doc = attnkit::json::parse(text, "stats");
  CHECK(doc.at("variant").as_string() == "softmax");
  CHECK(doc.at("tokens").as_int() == n);
  REQUIRE(doc.at("heads").size() == 2);
  const auto& h0 = doc.at("heads").at(std::size_t{0});
  for (const char* key : {"layer", "head", "row_sum", "min", "max", "entropy", "sink_mass",
                          "sparsity", "max_abs_dp_vs_softmax"})
    CHECK(h0.contains(key));
  CHECK(h0.at("row_sum").contains("mean"));
  CHECK(doc.at("heads").at(std::size_t{1}).at("max_abs_dp_vs_softmax").is_null());
  CHECK(doc.at("massive_activations").is_array());
}

// ---- heatmaps ---------------------------------------------------------------------------------

TEST_CASE("inspect: heatmap raster, PNG decoded back", "[inspect][heatmap]") {
  CHECK(ins::viridis(0.0) == ins::Rgb{68, 1, 84});
  CHECK(ins::viridis(1.0) == ins::Rgb{253, 231, 37});
  CHECK(ins::viridis(2.0) == ins::viridis(1.0));
  Tensor<float, 2> v({2, 3});
  v(0, 0) = 0.0f;
  v(0, 1) = 1.0f;
  v(0, 2) = 0.5f;
  v(1, 0) = 0.25f;
  v(1, 1) = 9.0f;  // masked: gray whatever the value (and not in the color range)
  v(1, 2) = 0.75f;
  Tensor<std::uint8_t, 2> vis({2, 3}, 1);
  vis(1, 1) = 0;
  ins::HeatmapOptions o;
  o.cell = 3;
  const ins::Raster img = ins::heatmap_raster<float>(v.cview(), vis.cview(), o);
  REQUIRE(img.width == 9);
  REQUIRE(img.height == 6);
  auto px = [&](index_t x, index_t y) {
    const std::uint8_t* p = img.rgb.data() + (y * img.width + x) * 3;
    return ins::Rgb{p[0], p[1], p[2]};
  };
  CHECK(px(0, 0) == ins::viridis(0.0));
  CHECK(px(5, 2) == ins::viridis(1.0));
  CHECK(px(8, 0) == ins::viridis(0.5));
  CHECK(px(4, 4) == ins::masked_color);
  CHECK(px(2, 5) == ins::viridis(0.25));

  const std::vector<std::uint8_t> png = ins::encode_png(img);
  const PngInfo info = parse_png_chunks(png);
  CHECK(info.width == 9);
  CHECK(info.height == 6);
  CHECK(info.bit_depth == 8);
  CHECK(info.color_type == 2);
  REQUIRE(!info.chunks.empty());
  CHECK(info.chunks.front() == "IHDR");
  CHECK(info.chunks.back() == "IEND");
  CHECK(std::count(info.chunks.begin(), info.chunks.end(), "IDAT") >= 1);
  int w = 0, h = 0, comp = 0;
  unsigned char* dec =
      stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &comp, 3);
  REQUIRE(dec != nullptr);
  CHECK(w == 9);
  CHECK(h == 6);
  CHECK(std::equal(img.rgb.begin(), img.rgb.end(), dec));
  stbi_image_free(dec);

  // The file writer writes the same bytes.
  const auto path = std::filesystem::temp_directory_path() / "attnkit_test_heatmap.png";
  ins::write_heatmap_png<float>(path.string(), v.cview(), vis.cview(), o);
  std::ifstream f(path, std::ios::binary);
  const std::vector<std::uint8_t> back((std::istreambuf_iterator<char>(f)),
                                       std::istreambuf_iterator<char>());
  CHECK(back == png);
  f.close();
  std::filesystem::remove(path);
}

TEST_CASE("inspect: SVG heatmap is well-formed XML with the token labels", "[inspect][heatmap]") {
  constexpr index_t n = 6;
  Tensor<float, 4> q({1, 1, n, 4});
  const Tensor<float, 4> k = random_tensor({1, 1, n, 4}, 11), v = random_tensor({1, 1, n, 4}, 12);
  const auto caps = ins::capture_attention<SoftmaxAny, float>(
      make_policy<SoftmaxAny>(pol::Causal{}, n), q.cview(), k.cview(), v.cview());
  REQUIRE(caps.size() == 1);
  const std::vector<std::string> tokens{"<s>", "a&b", "\"q\"", "it's", "spring", "."};
  const std::string svg = ins::heatmap_svg(caps[0], tokens);
  std::string root;
  const std::vector<std::string> texts = parse_xml(svg, root);
  CHECK(root == "svg");
  const std::multiset<std::string> got(texts.begin(), texts.end());
  for (const auto& t : tokens) CHECK(got.count(t) == 2);  // once per axis
  CHECK(got.count("layer 0, head 0") == 1);
  // One rect per run of equal color: row i has i + 1 distinct... at least the masked runs.
  CHECK(svg.find("fill=\"#e0e0e0\"") != std::string::npos);
  CHECK_THROWS_AS(ins::heatmap_svg(caps[0], std::vector<std::string>{"x"}), attnkit::shape_error);
}
