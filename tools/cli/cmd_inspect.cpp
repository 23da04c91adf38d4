// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit inspect: the prefill pass of a LLaMA-style model folder with the attention weights
// captured through the kernel: per-head statistics and massive activations as one JSON
// document, PNG and SVG heatmaps per layer and head, and the causality-leak verdict.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "attnkit/inspect/capture.hpp"
#include "attnkit/inspect/causality.hpp"
#include "attnkit/inspect/heatmap.hpp"
#include "attnkit/inspect/heatmap_png.hpp"
#include "attnkit/inspect/massive_activations.hpp"
#include "attnkit/inspect/report.hpp"
#include "attnkit/inspect/stats.hpp"
#include "attnkit/model/variants.hpp"
#if defined(ATTNKIT_CLI_TEXT)
#include "attnkit/text/tokenizer.hpp"
#endif

#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

namespace {

constexpr const char* inspect_help =
    "usage: attnkit inspect --model DIR (--prompt-ids 1,2,3 | --prompt TEXT) [--variant NAME]\n"
    "                       [--layers 0,1] [--heads 0,3] [--stats S.json] [--keyword WORD]\n"
    "                       [--heatmaps OUTDIR] [--leak-check] [--threads T]\n\n"
    "--prompt TEXT is encoded with DIR/tokenizer.json (with the special tokens its\n"
    "post-processor adds). With a tokenizer.json in DIR the heatmap axes show the tokens' text,\n"
    "else their ids. --keyword WORD (needs the tokenizer) adds \"keyword\": {\"text\",\n"
    "\"positions\": the tokens that overlap an occurrence of WORD in the decoded prompt,\n"
    "\"heads\": [{\"layer\", \"head\", \"mass\"}]}: per head the mean over the rows that see a\n"
    "keyword token of the share of |P| on those tokens.\n\n"
    "Runs the prefill pass of the LLaMA-style model in DIR (config.json + model.safetensors) on\n"
    "the prompt and captures the attention weights P of the chosen layers and query heads\n"
    "(default: all) through the kernel. --variant picks the activation as in `attnkit generate`\n"
    "(default: config key attnkit_activation, else softmax); the mask is causal.\n\n"
    "Statistics per layer and head (one JSON document, to S.json with --stats, else one line on\n"
    "stdout): {\"variant\", \"tokens\", \"heads\": [{\"layer\", \"head\", \"row_sum\": {\"min\",\n"
    "\"max\", \"mean\"}, \"min\", \"max\", \"entropy\", \"sink_mass\", \"sparsity\",\n"
    "\"max_abs_dp_vs_softmax\"}, ...], \"massive_activations\": [{\"layer\", \"token\",\n"
    "\"channel\", \"value\", \"ratio_to_median\"}, ...]}. min/max and sparsity (|P| < 0.01) are "
    "over\n"
    "the visible pairs; entropy (nats) and sink_mass (share on the first 4 keys) are means over\n"
    "rows of |P| normalized per row; max_abs_dp_vs_softmax compares with softmax on the same\n"
    "q and k. Massive activations: hidden-state entries >= 100x the median |h| of their layer.\n\n"
    "--heatmaps OUTDIR writes layerL_headH.png and layerL_headH.svg (tokens on the axes).\n"
    "--leak-check perturbs the future tokens of every position and prints `leak: none` or\n"
    "`leak: FOUND at layer L, position P` (exit status 0 either way).\n";

/// Comma-separated integers in [lo, hi).
std::vector<std::int64_t> parse_list(const std::string& s, const char* option, std::int64_t lo,
                                     std::int64_t hi, const std::string& range_note) {
  std::vector<std::int64_t> v;
  std::size_t i = 0;
  while (i <= s.size()) {
    const std::size_t j = std::min(s.find(',', i), s.size());
    const std::string tok = s.substr(i, j - i);
    std::int64_t x = 0;
    const auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), x);
    if (tok.empty() || ec != std::errc() || p != tok.data() + tok.size())
      throw usage_error("inspect: --" + std::string(option) +
                        " must be comma-separated integers, got '" + s + "'");
    if (x < lo || x >= hi)
      throw usage_error("inspect: --" + std::string(option) + " " + tok + " is outside [" +
                        std::to_string(lo) + ", " + std::to_string(hi) + ")" + range_note);
    v.push_back(x);
    i = j + 1;
  }
  return v;
}

std::vector<index_t> to_index(const std::vector<std::int64_t>& v) {
  return std::vector<index_t>(v.begin(), v.end());
}

struct Request {
  std::string dir;
  std::string variant;
  std::vector<std::int64_t> ids;
  std::vector<std::string> labels;  ///< each prompt token's text (its id without a tokenizer)
  std::string keyword;
  std::vector<index_t> keyword_positions;
  inspect::Selection sel;
  std::string stats_path;
  std::string heatmap_dir;
  bool leak_check = false;
};

template <class ScoreMod, class Activation>
int run_inspect(const Request& rq, const Activation& activation) {
  using Policy = policy::AttentionPolicy<Activation, policy::Causal, ScoreMod,
                                         modules::SelectableSigmoidGate<float>>;
  const auto m = model::Decoder<Policy, float>::load(rq.dir, Policy(activation));
  const index_t n = static_cast<index_t>(rq.ids.size());
  const std::vector<index_t> layers =
      inspect::detail::resolve(rq.sel.layers, static_cast<index_t>(m.layers.size()), "layer");

  // One pass: the kernel's capture of the chosen layers and the hidden state of every layer.
  inspect::MassiveActivationDetector det;
  const auto cap =
      inspect::capture_prefill(m, rq.ids, rq.sel, [&](index_t l, TensorView<const float, 2> h) {
        if (std::binary_search(layers.begin(), layers.end(), l)) det.observe<float>(l, h);
      });
  const inspect::StatsOptions sopts;
  std::vector<inspect::HeadStats> stats;
  for (const auto& c : cap.heads) stats.push_back(inspect::attention_stats(c, sopts));
  json::Value doc =
      inspect::stats_document(rq.variant, n, stats, det.found(), sopts, det.options());
  json::Value ids = json::Value::array();
  for (std::int64_t id : rq.ids) ids.push_back(json::Value::integer(id));
  doc.insert("token_ids", std::move(ids));
  if (!rq.keyword.empty()) {
    json::Value pos = json::Value::array(), heads = json::Value::array();
    for (index_t p : rq.keyword_positions) pos.push_back(json::Value::integer(p));
    for (const auto& c : cap.heads)
      heads.push_back(
          json::Value::object({{"layer", json::Value::integer(c.layer)},
                               {"head", json::Value::integer(c.head)},
                               {"mass", json::Value::number(inspect::keyword_mass(
                                            c, std::span<const index_t>(rq.keyword_positions)))}}));
    doc.insert("keyword", json::Value::object({{"text", json::Value::string(rq.keyword)},
                                               {"positions", std::move(pos)},
                                               {"heads", std::move(heads)}}));
  }

  std::string verdict;
  if (rq.leak_check) {
    const inspect::LeakReport r = inspect::check_causality(m, rq.ids);
    verdict = r.leak ? "leak: FOUND at layer " + std::to_string(r.stage) + ", position " +
                           std::to_string(r.position)
                     : "leak: none";
    doc.insert("leak", json::Value::object(
                           {{"found", json::Value::boolean(r.leak)},
                            {"layer", r.leak ? json::Value::integer(r.stage) : json::Value()},
                            {"position", r.leak ? json::Value::integer(r.position) : json::Value()},
                            {"runs", json::Value::integer(r.runs)}}));
  }

  if (!rq.heatmap_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(rq.heatmap_dir, ec);
    if (!std::filesystem::is_directory(rq.heatmap_dir))
      throw usage_error("inspect: --heatmaps " + rq.heatmap_dir +
                        " is not a directory and cannot be created");
    const std::vector<std::string>& labels = rq.labels;
    for (const auto& c : cap.heads) {
      const std::string base =
          rq.heatmap_dir + "/layer" + std::to_string(c.layer) + "_head" + std::to_string(c.head);
      write_atomically(base + ".png",
                       [&](const std::string& tmp) { inspect::write_heatmap_png(tmp, c); });
      const std::string svg = inspect::heatmap_svg(c, labels);
      write_atomically(base + ".svg",
                       [&](const std::string& tmp) { inspect::write_text_file(tmp, svg); });
    }
  }

  const std::string text = doc.dump();
  if (!rq.stats_path.empty()) {
    write_atomically(rq.stats_path,
                     [&](const std::string& tmp) { inspect::write_text_file(tmp, text + "\n"); });
  } else {
    std::printf("%s\n", text.c_str());
  }
  if (rq.leak_check) std::printf("%s\n", verdict.c_str());
  return 0;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args("inspect",
            inspect_help + std::string("\nActivations (--variant):\n") + policy::activation_help(),
            argc, argv,
            {"model", "prompt-ids", "prompt", "keyword", "variant", "layers", "heads", "stats",
             "heatmaps"},
            {"leak-check"});
  if (!args.positional().empty())
    throw usage_error("inspect: unexpected argument '" + args.positional().front() + "'");
  Request rq;
  rq.dir = args.require("model");
  if (!std::filesystem::is_directory(rq.dir))
    throw usage_error("inspect: --model " + rq.dir + " is not a directory");
  const model::DecoderConfig cfg = model::DecoderConfig::load(rq.dir + "/config.json");
  if (args.has("prompt") == args.has("prompt-ids"))
    throw usage_error("inspect: give exactly one of --prompt-ids and --prompt");
  const bool has_tokenizer = std::filesystem::exists(rq.dir + "/tokenizer.json");
  if ((args.has("prompt") || args.has("keyword")) && !has_tokenizer)
    throw usage_error("inspect: --" + std::string(args.has("prompt") ? "prompt" : "keyword") +
                      " needs " + rq.dir + "/tokenizer.json, which does not exist");
#if defined(ATTNKIT_CLI_TEXT)
  std::optional<text::Tokenizer> tok;
  // --prompt and --keyword need the tokenizer; the heatmap labels only use it when it loads
  // (else they are ids, and one line on stderr says why).
  const bool needed = args.has("prompt") || args.has("keyword");
  if (has_tokenizer) {
    try {
      tok.emplace(text::Tokenizer::load(rq.dir));
    } catch (const text::tokenizer_error& e) {
      if (needed) throw;
      std::fprintf(stderr, "attnkit: inspect: the heatmap labels are token ids: %s\n", e.what());
    }
  }
  if (args.has("prompt")) {
    for (std::int32_t id : tok->encode(args.require("prompt"))) {
      if (id >= cfg.vocab_size)
        throw usage_error("inspect: the tokenizer gives id " + std::to_string(id) +
                          ", outside the vocabulary of " + rq.dir);
      rq.ids.push_back(id);
    }
    if (rq.ids.empty()) throw usage_error("inspect: --prompt gives no tokens");
  }
#else
  if (args.has("prompt") || args.has("keyword"))
    throw usage_error(
        "inspect: --prompt and --keyword need the attnkit::text component (tokenizers), which "
        "this attnkit was built without");
#endif
  if (args.has("prompt-ids"))
    rq.ids = parse_list(args.require("prompt-ids"), "prompt-ids", 0, cfg.vocab_size,
                        " (the vocabulary of " + rq.dir + ")");
  for (std::int64_t id : rq.ids) rq.labels.push_back(std::to_string(id));
#if defined(ATTNKIT_CLI_TEXT)
  if (tok) {
    bool fits = true;
    for (std::int64_t id : rq.ids) fits = fits && tok->contains(id);
    if (!fits && needed)
      throw usage_error("inspect: a prompt id is not in " + rq.dir + "/tokenizer.json");
    if (fits) {
      const text::TokenSpans spans = text::token_spans(*tok, rq.ids);
      rq.labels = spans.labels;
      if (args.has("keyword")) {
        rq.keyword = args.require("keyword");
        if (rq.keyword.empty()) throw usage_error("inspect: --keyword is empty");
        rq.keyword_positions = spans.overlapping(rq.keyword);
        if (rq.keyword_positions.empty())
          throw usage_error("inspect: --keyword '" + rq.keyword + "' does not occur in the prompt");
      }
    }
  }
#endif
  if (args.has("layers"))
    rq.sel.layers = to_index(
        parse_list(*args.get("layers"), "layers", 0, cfg.num_hidden_layers,
                   " (the model has " + std::to_string(cfg.num_hidden_layers) + " layers)"));
  if (args.has("heads"))
    rq.sel.heads = to_index(
        parse_list(*args.get("heads"), "heads", 0, cfg.num_attention_heads,
                   " (the model has " + std::to_string(cfg.num_attention_heads) + " query heads)"));
  rq.stats_path = args.get("stats", "");
  rq.heatmap_dir = args.get("heatmaps", "");
  rq.leak_check = args.has("leak-check");
  if (!rq.stats_path.empty() && std::filesystem::is_directory(rq.stats_path))
    throw usage_error("inspect: --stats " + rq.stats_path + " is a directory");
  rq.variant = args.get("variant", "");
  if (rq.variant.empty()) rq.variant = cfg.attnkit_activation;
  if (rq.variant.empty()) rq.variant = "softmax";
  const policy::ActivationSpec act = parse_activation_option("inspect", "variant", rq.variant);
  // The folder's positions choose the score mod: ALiBi, or none (RoPE or no positions).
  return policy::visit_activation(act, [&](const auto& a) {
    if (cfg.positions == model::PositionKind::alibi) return run_inspect<policy::ALiBi>(rq, a);
    return run_inspect<policy::NoScoreMod>(rq, a);
  });
}

}  // namespace attnkit::cli
