// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The flagship example: the LLaMA attention variants (softmax, sigmoid, sigmoid with
// b = -ln n, softmax across heads, linear, and the fixes normalized sigmoid and relu) on
// the same weights and the same prompt, with the debugging instruments: weight sums,
// entropy, attention sink, max |ΔP| against softmax on the same inputs, a causality-leak check,
// heatmaps, keyword attention and boosting, massive activations. It also shows a bug that is
// easy to miss: softmax across heads with an additive -1e9 mask lets every position see
// the future (masked keys get the weight 1/H), which the leak checker catches.
//
// usage: 01_llama_variants [MODEL_DIR] [--out DIR] [--tokens N] [--threads T]
//   MODEL_DIR defaults to the golden model of tests/golden/data/softmax (fixed-seed weights:
//   2 layers, hidden 64, 4 query / 2 kv heads, vocab 97); --out (default build/main/heatmaps)
//   receives the heatmaps; --tokens (default 256) is the length of the timed prefill; --threads
//   sets the OpenMP thread count (default: 1 for the built-in tiny model, all cores for
//   MODEL_DIR).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attnkit/core/parallel.hpp"
#include "attnkit/inspect/boost.hpp"
#include "attnkit/inspect/capture.hpp"
#include "attnkit/inspect/causality.hpp"
#include "attnkit/inspect/heatmap.hpp"
#include "attnkit/inspect/heatmap_png.hpp"
#include "attnkit/inspect/massive_activations.hpp"
#include "attnkit/inspect/stats.hpp"
#include "attnkit/model/variants.hpp"

namespace {

using attnkit::index_t;
using attnkit::Tensor;
using attnkit::TensorView;
namespace ins = attnkit::inspect;
namespace mdl = attnkit::model;
using Gate = attnkit::modules::SelectableSigmoidGate<float>;
namespace pol = attnkit::policy;

/// A toy word list for the default model (vocab 97): token id = index. Only labels; the weights
/// are random, so the words mean nothing to the model.
const std::vector<std::string> kWords = {"<s>",   "please", "write", "a",       "short", "poem",
                                         "about", "spring", ":",     "flowers", ",",     "birds",
                                         "and",   "warm",   "rain",  "."};
constexpr index_t kKeyword = 7;  // "spring" (春天), the keyword of the prompt

struct Setup {
  std::string dir;
  std::string out;
  std::vector<std::int64_t> prompt;       // the inspected prompt
  std::vector<std::string> labels;        // one per prompt token
  std::vector<std::int64_t> long_prompt;  // the timed prefill
};

struct Row {
  std::string name, activation;
  std::function<void()> prefill;  // one timed prefill of the long prompt (owns the model)
  double prefill_ms = 0;
  double row_sum = 0, entropy = 0, sink = 0, max_dp = 0;
  std::string leak;
};

template <class Activation>
using Model = mdl::Decoder<mdl::LlamaPolicy<Activation, Gate>, float>;

/// Times the prefill of every variant in interleaved rounds (variant 1, 2, ..., then again), so
/// that a busy spell of a shared machine hits every variant alike; the best round per variant.
void time_prefills(std::vector<Row>& rows, int rounds) {
  for (Row& r : rows) r.prefill();  // warm-up
  std::vector<std::vector<double>> ms(rows.size());
  for (int k = 0; k < rounds; ++k)
    for (std::size_t v = 0; v < rows.size(); ++v) {
      const auto t0 = std::chrono::steady_clock::now();
      rows[v].prefill();
      ms[v].push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  for (std::size_t v = 0; v < rows.size(); ++v)
    rows[v].prefill_ms = *std::min_element(ms[v].begin(), ms[v].end());
}

/// One variant: capture of every layer/head/row with the softmax reference, statistics, the leak
/// check and the heatmaps; the timing comes later (time_prefills).
template <class Activation>
Row run_variant(const Setup& s, const char* name, const char* activation, const char* folder,
                Activation act = {}) {
  using P = mdl::LlamaPolicy<Activation, Gate>;
  const auto model =
      std::make_shared<const Model<Activation>>(Model<Activation>::load(s.dir, P(act)));
  const auto& m = *model;
  Row row;
  row.name = name;
  row.activation = activation;
  row.prefill = [model, ids = s.long_prompt] { model->forward(ids); };

  const auto cap = ins::capture_prefill(m, s.prompt);
  ins::StatsOptions so;
  so.sink_keys = 1;  // the first token
  double n = 0;
  for (const auto& c : cap.heads) {
    const ins::HeadStats st = ins::attention_stats(c, so);
    row.row_sum += st.row_sum.mean;
    row.entropy += st.entropy;
    row.sink += st.sink_mass;
    row.max_dp = std::max(row.max_dp, st.max_abs_dp_vs_softmax);
    n += 1;
  }
  row.row_sum /= n;
  row.entropy /= n;
  row.sink /= n;

  const ins::LeakReport leak = ins::check_causality(m, s.prompt);
  row.leak = leak.leak ? "FOUND layer " + std::to_string(leak.stage) + " pos " +
                             std::to_string(leak.position)
                       : "none (" + std::to_string(leak.runs) + " cuts)";

  const std::string dir = s.out + "/" + folder;
  std::filesystem::create_directories(dir);
  for (const auto& c : cap.heads) {
    const std::string base =
        dir + "/layer" + std::to_string(c.layer) + "_head" + std::to_string(c.head);
    ins::HeatmapOptions ho;
    ho.title = std::string(name) + " (" + activation + "): layer " + std::to_string(c.layer) +
               ", head " + std::to_string(c.head);
    ins::write_heatmap_png(base + ".png", c);
    ins::write_text_file(base + ".svg", ins::heatmap_svg(c, s.labels, ho));
  }
  return row;
}

/// A head-softmax LLaMA (HeadSoftmaxLlama) as naive PyTorch code writes it: scores plus an
/// additive -1e9 causal mask, then softmax over the head dimension (dim=1), in fp32. For a masked
/// pair every head has the score -1e9 (fp32 absorbs the small dot product), so each gets 1/H.
void naive_head_softmax(TensorView<const float, 4> q, TensorView<const float, 4> k,
                        TensorView<const float, 4> v, TensorView<float, 4> out,
                        float* masked_weight = nullptr) {
  const index_t nb = q.extent(0), nh = q.extent(1), n = q.extent(2), d = q.extent(3);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> sc(static_cast<std::size_t>(nh));
  attnkit::fill(out, 0.0f);
  for (index_t b = 0; b < nb; ++b)
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) {
        float mx = -INFINITY, sum = 0;
        for (index_t h = 0; h < nh; ++h) {
          float dot = 0;
          for (index_t c = 0; c < d; ++c) dot += q(b, h, i, c) * k(b, h, j, c);
          sc[static_cast<std::size_t>(h)] = dot * scale + (j > i ? -1e9f : 0.0f);
          mx = std::max(mx, sc[static_cast<std::size_t>(h)]);
        }
        for (float& x : sc) sum += (x = std::exp(x - mx));
        if (masked_weight != nullptr && b == 0 && i == 0 && j == 1) *masked_weight = sc[0] / sum;
        for (index_t h = 0; h < nh; ++h)
          for (index_t c = 0; c < v.extent(3); ++c)
            out(b, h, i, c) += sc[static_cast<std::size_t>(h)] / sum * v(b, h, j, c);
      }
}

Tensor<float, 4> random_tensor(attnkit::Shape<4> shape, unsigned seed) {
  Tensor<float, 4> t(shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (float& x : t) x = nd(rng);
  return t;
}

std::string leak_text(const ins::LeakReport& r) {
  if (!r.leak)
    return "none (" + std::to_string(r.runs) +
           " cuts, outputs before each cut identical bit for bit)";
  return "FOUND: perturbing positions >= " + std::to_string(r.cut) + " changed position " +
         std::to_string(r.position) + " (max |change| " + std::to_string(r.max_change) + ")";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Setup s;
    s.dir = ATTNKIT_EXAMPLE_MODEL_DIR;
    s.out = ATTNKIT_EXAMPLE_OUT_DIR;
    long tokens = 256;
    int threads = 0;
    bool given = false;
    for (int a = 1; a < argc; ++a) {
      const std::string arg = argv[a];
      if (arg == "--out" && a + 1 < argc) {
        s.out = argv[++a];
      } else if (arg == "--threads" && a + 1 < argc) {
        threads = static_cast<int>(std::strtol(argv[++a], nullptr, 10));
      } else if (arg == "--tokens" && a + 1 < argc) {
        tokens = std::max(1L, std::strtol(argv[++a], nullptr, 10));
      } else if (arg == "--help" || arg == "-h") {
        std::printf(
            "usage: 01_llama_variants [MODEL_DIR] [--out DIR] [--tokens N] [--threads T]\n");
        return 0;
      } else if (!arg.empty() && arg[0] != '-' && !given) {
        s.dir = arg;
        given = true;
      } else {
        std::fprintf(stderr, "01_llama_variants: unknown argument '%s' (see --help)\n",
                     arg.c_str());
        return 2;
      }
    }
    // The built-in model (hidden 64) gains nothing from threads, and on a busy machine OpenMP's
    // barriers make its sub-millisecond prefills noisy: one thread unless asked.
    attnkit::set_threads(threads > 0 ? threads : given ? attnkit::max_threads() : 1);
    const auto cfg = mdl::DecoderConfig::load(s.dir + "/config.json");
    const index_t vocab = cfg.vocab_size;
    for (std::size_t i = 0; i < kWords.size(); ++i) {
      const auto id = static_cast<std::int64_t>(static_cast<index_t>(i) % vocab);
      s.prompt.push_back(id);
      s.labels.push_back(given ? "#" + std::to_string(id) : kWords[i]);
    }
    std::mt19937 rng(1);
    std::uniform_int_distribution<std::int64_t> tok(0, vocab - 1);
    s.long_prompt.resize(static_cast<std::size_t>(tokens));
    for (auto& t : s.long_prompt) t = tok(rng);

    std::printf("attnkit: the LLaMA attention variants on the same weights and prompt\n");
    std::printf("model %s: %td layers, hidden %td, %td query / %td kv heads, vocab %td\n",
                s.dir.c_str(), cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads,
                cfg.num_key_value_heads, vocab);
    std::string text;
    for (const auto& l : s.labels) text += l + " ";
    std::printf("prompt (%zu tokens): %s\n\n", s.prompt.size(), text.c_str());

    std::vector<Row> rows;
    rows.push_back(run_variant<pol::Softmax>(s, "SoftmaxLlama", "softmax", "softmax"));
    rows.push_back(run_variant<pol::Sigmoid>(s, "SigmoidLlama", "sigmoid", "sigmoid"));
    rows.push_back(
        run_variant<pol::SigmoidBias>(s, "SigmoidBiasLlama", "sigmoid, b=-ln n", "sigmoid-bias"));
    rows.push_back(
        run_variant<pol::HeadSoftmax>(s, "HeadSoftmaxLlama", "softmax over heads", "head-softmax"));
    rows.push_back(run_variant<pol::Linear>(s, "LinearLlama", "linear (none)", "linear"));
    rows.push_back(run_variant<pol::NormalizedSigmoid>(s, "NormalizedSigmoidLlama", "sigmoid / sum",
                                                       "normalized-sigmoid"));
    rows.push_back(run_variant<pol::ReLU>(s, "ReluLlama", "relu", "relu"));
    constexpr int rounds = 9;
    time_prefills(rows, rounds);

    std::printf("%-25s %-19s %10s %9s %8s %8s %9s %9s  %s\n", "variant", "activation", "prefill ms",
                "tok/s vs", "row sum", "entropy", "sink mass", "max |dP|", "leak check");
    std::printf("%-25s %-19s %10s %9s %8s %8s %9s %9s  %s\n", "", "", "", "softmax", "(mean)",
                "(nats)", "(<s>)", "vs softmax", "");
    for (const Row& r : rows)
      std::printf("%-25s %-19s %10.3f %8.2fx %8.3f %8.3f %9.3f %9.3g  %s\n", r.name.c_str(),
                  r.activation.c_str(), r.prefill_ms, rows[0].prefill_ms / r.prefill_ms, r.row_sum,
                  r.entropy, r.sink, r.max_dp, r.leak.c_str());
    std::printf(
        "\nprefill of %ld tokens on %d thread(s), best of %d interleaved rounds; statistics over "
        "every layer, head and row\nof the %zu-token prompt, means over heads; max |dP| compares "
        "each layer's P with softmax on the same q and k.\n",
        tokens, attnkit::max_threads(), rounds, s.prompt.size());

    // ---- the easy-to-miss bug: softmax across heads with an additive mask ---------------------
    {
      constexpr index_t nh = 4, n = 16, d = 16;
      const Tensor<float, 4> q = random_tensor({1, nh, n, d}, 11),
                             k = random_tensor({1, nh, n, d}, 12),
                             v = random_tensor({1, nh, n, d}, 13);
      float w = 0;
      Tensor<float, 4> tmp({1, nh, n, d});
      naive_head_softmax(q.cview(), k.cview(), v.cview(), tmp.view(), &w);
      const auto naive = ins::check_causality_attention<float>(
          [](auto qq, auto kk, auto vv, auto out) { naive_head_softmax(qq, kk, vv, out); },
          q.cview(), k.cview(), v.cview());
      using Ours = mdl::LlamaPolicy<pol::HeadSoftmax>;
      const auto ours = ins::check_causality_attention<float>(
          [](auto qq, auto kk, auto vv, auto out) {
            attnkit::attention<Ours, float>(Ours{}, qq, kk, vv, out);
          },
          q.cview(), k.cview(), v.cview());
      std::printf("\nleak check of softmax across heads (H = %td, %td positions):\n", nh, n);
      std::printf(
          "  naive (scores - 1e9 on future keys, softmax over dim=1): weight of a masked "
          "key = %.4f = 1/H\n    leak %s\n",
          double(w), leak_text(naive).c_str());
      std::printf(
          "  attnkit HeadSoftmax (structural mask: invisible pairs are exactly 0):\n"
          "    leak %s\n",
          leak_text(ours).c_str());
    }

    // ---- keyword attention and attention boosting --------------------------------------------
    {
      using Boosted =
          mdl::Decoder<pol::AttentionPolicy<pol::Softmax, pol::Causal, pol::KeyBias, Gate>, float>;
      const auto m = Boosted::load(s.dir);
      const std::vector<index_t> kw{kKeyword};
      std::printf(
          "\nkeyword attention on '%s' (position %td), softmax, mean over heads and rows "
          "that see it:\n",
          s.labels[static_cast<std::size_t>(kKeyword)].c_str(), kKeyword);
      for (float bias : {1.0f, 2.0f, 4.0f}) {
        const auto eff = ins::boost_effect(m, s.prompt, kw, bias);
        std::vector<double> before(static_cast<std::size_t>(cfg.num_hidden_layers)),
            after(before.size());
        for (const auto& e : eff) {
          before[static_cast<std::size_t>(e.layer)] += e.before / double(cfg.num_attention_heads);
          after[static_cast<std::size_t>(e.layer)] += e.after / double(cfg.num_attention_heads);
        }
        std::printf("  boost +%.0f on its score:", double(bias));
        for (std::size_t l = 0; l < before.size(); ++l)
          std::printf("  layer %zu %.3f -> %.3f", l, before[l], after[l]);
        std::printf("\n");
      }
    }

    // ---- massive activations -----------------------------------------------------------------
    {
      const auto m = Model<pol::Softmax>::load(s.dir);
      const ins::MassiveActivationDetector det = ins::find_massive_activations(m, s.prompt);
      const ins::MassiveActivation& top = det.largest();
      std::printf(
          "\nmassive activations (|h| >= %.0fx the layer's median |h|): %zu found; largest "
          "|h| / median = %.1f at layer %td, token %td ('%s'), channel %td (h = %.3f)\n",
          det.options().min_ratio, det.found().size(), top.ratio_to_median, top.layer, top.token,
          s.labels[static_cast<std::size_t>(top.token)].c_str(), top.channel, top.value);
    }

    std::printf(
        "\nheatmaps (PNG and SVG with token labels, one per variant, layer and head): %s/\n",
        s.out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
