// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit generate: greedy or sampled continuation of a prompt by a LLaMA-style model folder, in
// any attention variant, with a full KV cache.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attnkit/io/npy.hpp"
#include "attnkit/model/variants.hpp"

#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

namespace {

constexpr const char* generate_help =
    "usage: attnkit generate --model DIR (--prompt-ids 1,2,3 | --prompt TEXT)\n"
    "                        [--variant NAME] [--max-new-tokens N]\n"
    "                        [--greedy | --temperature T --top-k K --top-p P --seed S]\n"
    "                        [--cache full] [--memory baseline] [--dump-logits L.npy]\n"
    "                        [--threads T]\n\n"
    "Continues the prompt with the LLaMA-style model in DIR (config.json + model.safetensors,\n"
    "F32/F16/BF16; an optional self_attn.g_proj gate). --variant picks the attention activation\n"
    "(softmax, sigmoid, sigmoid-bias, normalized-sigmoid, head-softmax, linear, relu,\n"
    "softcap=C; default: config key attnkit_activation, else softmax); the mask is causal.\n"
    "Greedy by default; --temperature T (> 0) samples, after --top-k K (0: all) and --top-p P\n"
    "(nucleus, default 1), from a generator seeded by --seed (default 0). --max-new-tokens\n"
    "defaults to 16. --dump-logits writes the prefill logits [Nprompt, vocab] as float32.\n"
    "stdout ends with one JSON line: {\"ids\": [...], \"prompt_tokens\", \"new_tokens\",\n"
    "\"prefill_ms\", \"tokens_per_s\", \"mode\", \"memory_tokens\", \"mean_retention\",\n"
    "\"sparsity\"}.\n";

std::vector<std::int64_t> parse_ids(const std::string& s) {
  std::vector<std::int64_t> ids;
  std::size_t i = 0;
  while (i <= s.size()) {
    const std::size_t j = std::min(s.find(',', i), s.size());
    const std::string tok = s.substr(i, j - i);
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (tok.empty() || ec != std::errc() || p != tok.data() + tok.size())
      throw usage_error("generate: --prompt-ids must be comma-separated integers, got '" + s + "'");
    ids.push_back(v);
    i = j + 1;
  }
  return ids;
}

/// The next token: argmax (greedy) or a sample from softmax(logits / T) after top-k and top-p.
struct Sampler {
  bool greedy = true;
  double temperature = 1.0;
  long long top_k = 0;
  double top_p = 1.0;
  std::mt19937_64 rng{0};

  std::int64_t next(const float* logits, index_t n) {
    if (greedy) {
      index_t best = 0;
      for (index_t i = 1; i < n; ++i)
        if (logits[i] > logits[best]) best = i;
      return best;
    }
    std::vector<index_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), index_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](index_t a, index_t b) { return logits[a] > logits[b]; });
    std::size_t keep = order.size();
    if (top_k > 0) keep = std::min(keep, static_cast<std::size_t>(top_k));
    std::vector<double> p(keep);
    const double mx = logits[order[0]];
    double sum = 0;
    for (std::size_t i = 0; i < keep; ++i)
      sum += (p[i] = std::exp((double(logits[order[i]]) - mx) / temperature));
    if (top_p < 1.0) {  // the smallest prefix whose probability reaches top_p
      double acc = 0;
      std::size_t cut = keep;
      for (std::size_t i = 0; i < keep; ++i) {
        acc += p[i] / sum;
        if (acc >= top_p) {
          cut = i + 1;
          break;
        }
      }
      keep = cut;
      sum = std::accumulate(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
    }
    // u in [0, 1) from 53 random bits (the same on every platform, unlike std distributions).
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * sum;
    double acc = 0;
    for (std::size_t i = 0; i < keep; ++i) {
      acc += p[i];
      if (u < acc) return order[i];
    }
    return order[keep - 1];
  }
};

template <class Activation>
int run_generate(const std::string& dir, const Activation& activation,
                 const std::vector<std::int64_t>& prompt, long long max_new, Sampler sampler,
                 const std::string& dump) {
  using Policy = model::LlamaPolicy<Activation, SelectableSigmoidGate<float>>;
  const auto m = model::Decoder<Policy, float>::load(dir, Policy(activation));
  model::DecoderState<float> state;
  const auto t0 = std::chrono::steady_clock::now();
  Tensor<float, 2> logits = m.forward(prompt, state);
  const auto t1 = std::chrono::steady_clock::now();
  if (!dump.empty())
    write_atomically(dump, [&](const std::string& tmp) { io::write_npy(tmp, logits); });
  std::vector<std::int64_t> out;
  for (long long s = 0; s < max_new; ++s) {
    const std::int64_t id = sampler.next(&logits(logits.extent(0) - 1, 0), logits.extent(1));
    out.push_back(id);
    if (s + 1 < max_new) logits = m.forward(std::vector<std::int64_t>{id}, state);
  }
  const auto t2 = std::chrono::steady_clock::now();
  const double prefill_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  const long long steps = max_new > 0 ? max_new - 1 : 0;  // forward passes after the prefill
  std::string ids = "[";
  for (std::size_t i = 0; i < out.size(); ++i) ids += (i ? ", " : "") + std::to_string(out[i]);
  ids += "]";
  index_t memory = 0;
  for (const auto& l : state.layers) memory = std::max(memory, l.length);
  std::printf(
      "{\"ids\": %s, \"prompt_tokens\": %zu, \"new_tokens\": %zu, \"prefill_ms\": %.6g, "
      "\"tokens_per_s\": %.6g, \"mode\": \"full\", \"memory_tokens\": %lld, "
      "\"mean_retention\": 1, \"sparsity\": 0}\n",
      ids.c_str(), prompt.size(), out.size(), prefill_ms,
      steps > 0 && decode_s > 0 ? double(steps) / decode_s : 0.0, static_cast<long long>(memory));
  return 0;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  Args args("generate", generate_help, argc, argv,
            {"model", "prompt-ids", "prompt", "variant", "max-new-tokens", "temperature", "top-k",
             "top-p", "seed", "cache", "memory", "dump-logits"},
            {"greedy"});
  if (!args.positional().empty())
    throw usage_error("generate: unexpected argument '" + args.positional().front() + "'");
  const std::string dir = args.require("model");
  if (!std::filesystem::is_directory(dir))
    throw usage_error("generate: --model " + dir + " is not a directory");
  if (args.has("prompt") == args.has("prompt-ids"))
    throw usage_error("generate: give exactly one of --prompt-ids and --prompt");
  if (args.has("prompt")) {
    if (!std::filesystem::exists(dir + "/tokenizer.json"))
      throw usage_error("generate: --prompt needs " + dir +
                        "/tokenizer.json, which does not exist; pass token ids with --prompt-ids");
    throw usage_error(
        "generate: tokenizer.json support is not implemented yet; pass token ids "
        "with --prompt-ids");
  }
  const std::vector<std::int64_t> prompt = parse_ids(args.require("prompt-ids"));
  const long long max_new = args.get_int("max-new-tokens", 16, 0, 1 << 20);
  const std::string cache = args.get("cache", "full"), memory = args.get("memory", "baseline");
  if (cache != "full")
    throw usage_error("generate: --cache " + cache +
                      " is not implemented yet (only 'full'; window=W and sinks=S,W come later)");
  if (memory != "baseline")
    throw usage_error("generate: --memory " + memory +
                      " is not implemented yet (only 'baseline'; soft-delete and sparse come "
                      "later)");
  Sampler sampler;
  const bool sampled = args.has("temperature") || args.has("top-k") || args.has("top-p");
  if (args.has("greedy") && sampled)
    throw usage_error("generate: --greedy excludes --temperature, --top-k and --top-p");
  if (sampled) {
    sampler.greedy = false;
    sampler.temperature = args.get_double("temperature", 1.0);
    if (!(sampler.temperature > 0))
      throw usage_error("generate: --temperature must be > 0 (use --greedy for argmax)");
    sampler.top_k = args.get_int("top-k", 0, 0, 1LL << 40);
    sampler.top_p = args.get_double("top-p", 1.0);
    if (!(sampler.top_p > 0 && sampler.top_p <= 1))
      throw usage_error("generate: --top-p must be in (0, 1]");
    sampler.rng.seed(static_cast<std::uint64_t>(args.get_int("seed", 0, 0, 1LL << 62)));
  }
  std::string variant = args.get("variant", "");
  if (variant.empty())
    variant = model::DecoderConfig::load(dir + "/config.json").attnkit_activation;
  if (variant.empty()) variant = "softmax";
  const std::string dump = args.get("dump-logits", "");
  namespace pol = policy;
  if (variant == "softmax")
    return run_generate(dir, pol::Softmax{}, prompt, max_new, sampler, dump);
  if (variant == "sigmoid")
    return run_generate(dir, pol::Sigmoid{}, prompt, max_new, sampler, dump);
  if (variant == "sigmoid-bias")
    return run_generate(dir, pol::SigmoidBias{}, prompt, max_new, sampler, dump);
  if (variant == "normalized-sigmoid")
    return run_generate(dir, pol::NormalizedSigmoid{}, prompt, max_new, sampler, dump);
  if (variant == "head-softmax")
    return run_generate(dir, pol::HeadSoftmax{}, prompt, max_new, sampler, dump);
  if (variant == "linear") return run_generate(dir, pol::Linear{}, prompt, max_new, sampler, dump);
  if (variant == "relu") return run_generate(dir, pol::ReLU{}, prompt, max_new, sampler, dump);
  if (variant.rfind("softcap=", 0) == 0)
    return run_generate(dir, pol::Softcap(args.parse_double(variant.substr(8), "softcap=C")),
                        prompt, max_new, sampler, dump);
  throw usage_error("generate: unknown --variant '" + variant +
                    "' (softmax, sigmoid, sigmoid-bias, normalized-sigmoid, head-softmax, linear, "
                    "relu, softcap=C)");
}

}  // namespace attnkit::cli
