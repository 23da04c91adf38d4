// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit generate: greedy or sampled continuation of a prompt by a LLaMA-style model folder, in
// any attention variant, through a full, window or sink KV cache or an Ebbinghaus memory mode.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "attnkit/io/json.hpp"
#include "attnkit/io/npy.hpp"
#include "attnkit/model/generate.hpp"
#include "attnkit/model/sampling.hpp"
#include "attnkit/model/variants.hpp"
#include "attnkit/modules/kv_cache.hpp"
#if defined(ATTNKIT_CLI_TEXT)
#include "attnkit/text/tokenizer.hpp"
#endif

#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

namespace {

constexpr const char* generate_help =
    "usage: attnkit generate --model DIR (--prompt-ids 1,2,3 | --prompt TEXT)\n"
    "                        [--variant NAME] [--max-new-tokens N]\n"
    "                        [--greedy | --temperature T --top-k K --top-p P --seed S]\n"
    "                        [--cache full|window=W|sinks=S,W] [--memory MODE]\n"
    "                        [--kv-dtype f32|bf16|f16] [--ignore-eos] [--dump-logits L.npy]\n"
    "                        [--threads T]\n\n"
    "Continues the prompt with the LLaMA-style model in DIR (config.json + model.safetensors,\n"
    "F32/F16/BF16; an optional self_attn.g_proj gate). --prompt TEXT is encoded with\n"
    "DIR/tokenizer.json (with the special tokens its post-processor adds), and the\n"
    "continuation is streamed to stdout as text while it is generated (special tokens left\n"
    "out); the JSON line then adds \"text\". --variant picks the attention activation\n"
    "(one of the names below; default: config key attnkit_activation, else softmax); the mask\n"
    "is causal.\n"
    "Greedy by default; --temperature T (> 0) samples, after --top-k K (0: all) and --top-p P\n"
    "(nucleus, default 1), from a generator seeded by --seed (default 0). --max-new-tokens\n"
    "defaults to 16. --dump-logits writes the prefill logits [Nprompt, vocab] as float32.\n"
    "--cache: full (default), window=W (the last W tokens), sinks=S,W (StreamingLLM: the first\n"
    "S tokens and the last W, positions inside the cache). --memory: the Ebbinghaus retention\n"
    "memory over the full cache: baseline (default, no forgetting), soft-delete (keys scaled\n"
    "by retention R = exp(-dt/S)), sparse (tokens with R < 0.01 dropped, their work skipped).\n"
    "--kv-dtype: what the caches store keys and values as: f32 (default), bf16 or f16 (half\n"
    "the memory and bytes read per step; attention computes in float).\n"
    "Generation stops after an end-of-sequence token (eos_token_id of generation_config.json,\n"
    "else of config.json; it ends \"ids\") unless --ignore-eos is given.\n"
    "stdout ends with one JSON line: {\"ids\": [...], \"prompt_tokens\", \"new_tokens\",\n"
    "\"prefill_ms\", \"tokens_per_s\", \"mode\", \"memory_tokens\", \"mean_retention\",\n"
    "\"sparsity\", \"cache\", \"kv_dtype\", \"stop\": \"eos\" or \"length\", \"layers\": [per "
    "layer:\n"
    "memory_tokens, mean_retention, sparsity]}.\n";

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

/// The prompt's tokenizer (--prompt): encodes the prompt and streams the continuation as text.
struct PromptText {
#if defined(ATTNKIT_CLI_TEXT)
  std::optional<text::Tokenizer> tok;
#endif
  bool active() const noexcept {
#if defined(ATTNKIT_CLI_TEXT)
    return tok.has_value();
#else
    return false;
#endif
  }
};

template <class ScoreMod, class Activation>
int run_generate(const std::string& dir, const Activation& activation,
                 const std::vector<std::int64_t>& prompt, long long max_new,
                 model::Sampler<>& sampler, const attnkit::modules::CachePolicy& cache,
                 attnkit::modules::KVDtype kv_dtype, const std::string& dump, bool ignore_eos,
                 const PromptText& text) {
  using Policy = policy::AttentionPolicy<Activation, policy::Causal, ScoreMod,
                                         modules::SelectableSigmoidGate<float>>;
  const auto m = model::Decoder<Policy, float>::load(dir, Policy(activation));
  model::DecoderState<float> state(cache, kv_dtype);
  model::GenerateHooks<float> hooks;
  if (!dump.empty())
    hooks.prefill = [&](const Tensor<float, 2>& logits) {
      write_atomically(dump, [&](const std::string& tmp) { io::write_npy(tmp, logits); });
    };
  std::string streamed;
#if defined(ATTNKIT_CLI_TEXT)
  std::optional<text::StreamDecoder> stream;
  if (text.active()) {
    for (std::int64_t id : prompt)
      if (id >= m.config.vocab_size)
        throw error("attnkit: generate: the tokenizer gives id " + std::to_string(id) +
                    ", outside the model's vocabulary of " + std::to_string(m.config.vocab_size) +
                    " (another model's tokenizer.json?)");
    stream.emplace(*text.tok, true);
    hooks.token = [&](std::int64_t id) {
      if (id > std::numeric_limits<std::int32_t>::max()) return;
      const std::string piece = stream->push(static_cast<std::int32_t>(id));
      streamed += piece;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    };
  }
#endif
  const model::GenerationResult r =
      model::generate(m, prompt, static_cast<index_t>(max_new), sampler, state, hooks,
                      ignore_eos ? std::span<const std::int64_t>{}
                                 : std::span<const std::int64_t>(m.config.eos_token_ids));
  std::string json = r.json();
  if (text.active()) {
#if defined(ATTNKIT_CLI_TEXT)
    const std::string tail = stream->finish();
    streamed += tail;
    std::printf("%s\n", tail.c_str());
#endif
    // The JSON line gains "text": the continuation as streamed (special tokens left out).
    json.insert(json.rfind('}'), ", \"text\": " + json::Value::string(streamed).dump());
  }
  std::printf("%s\n", json.c_str());
  return 0;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  Args args("generate",
            generate_help + std::string("\nActivations (--variant):\n") + policy::activation_help(),
            argc, argv,
            {"model", "prompt-ids", "prompt", "variant", "max-new-tokens", "temperature", "top-k",
             "top-p", "seed", "cache", "memory", "dump-logits", "kv-dtype"},
            {"greedy", "ignore-eos"});
  if (!args.positional().empty())
    throw usage_error("generate: unexpected argument '" + args.positional().front() + "'");
  const std::string dir = args.require("model");
  if (!std::filesystem::is_directory(dir))
    throw usage_error("generate: --model " + dir + " is not a directory");
  if (args.has("prompt") == args.has("prompt-ids"))
    throw usage_error("generate: give exactly one of --prompt-ids and --prompt");
  PromptText text;
  std::vector<std::int64_t> prompt;
  if (args.has("prompt")) {
    if (!std::filesystem::exists(dir + "/tokenizer.json"))
      throw usage_error("generate: --prompt needs " + dir +
                        "/tokenizer.json, which does not exist; pass token ids with --prompt-ids");
#if defined(ATTNKIT_CLI_TEXT)
    text.tok.emplace(text::Tokenizer::load(dir));
    for (std::int32_t id : text.tok->encode(args.require("prompt"))) prompt.push_back(id);
    if (prompt.empty()) throw usage_error("generate: --prompt gives no tokens");
#else
    throw usage_error(
        "generate: --prompt needs the attnkit::text component (tokenizers), which this attnkit "
        "was built without; pass token ids with --prompt-ids");
#endif
  } else {
    prompt = parse_ids(args.require("prompt-ids"));
  }
  const long long max_new = args.get_int("max-new-tokens", 16, 0, 1 << 20);
  const std::string cache_spec = args.get("cache", "full");
  const std::string memory = args.get("memory", "baseline");
  attnkit::modules::CachePolicy cache;
  attnkit::modules::MemoryMode mode = attnkit::modules::MemoryMode::baseline;
  try {
    cache = attnkit::modules::parse_cache_policy(cache_spec);
  } catch (const error& e) {
    throw usage_error("generate: --cache: " + std::string(e.what()).substr(9));
  }
  try {
    mode = attnkit::modules::parse_memory_mode(memory);
  } catch (const error& e) {
    throw usage_error("generate: --memory: " + std::string(e.what()).substr(9));
  }
  if (mode != attnkit::modules::MemoryMode::baseline) {
    if (!std::holds_alternative<attnkit::modules::FullCache>(cache))
      throw usage_error("generate: --memory " + memory + " works on the full cache, not --cache " +
                        cache_spec);
    cache = attnkit::modules::RetentionCache{mode, {}};
  }
  attnkit::modules::KVDtype kv_dtype = attnkit::modules::KVDtype::compute;
  try {
    kv_dtype = attnkit::modules::parse_kv_dtype(args.get("kv-dtype", "f32"));
  } catch (const error& e) {
    throw usage_error("generate: --kv-dtype: " + std::string(e.what()).substr(9));
  }
  model::Sampler<> sampler;
  const bool sampled = args.has("temperature") || args.has("top-k") || args.has("top-p");
  if (args.has("greedy") && sampled)
    throw usage_error("generate: --greedy excludes --temperature, --top-k and --top-p");
  if (sampled) {
    sampler.greedy = false;
    auto& [penalty, banned, temperature, top_k, top_p] = sampler.processors.steps;
    (void)penalty;
    (void)banned;
    temperature.value = args.get_double("temperature", 1.0);
    if (!(temperature.value > 0))
      throw usage_error("generate: --temperature must be > 0 (use --greedy for argmax)");
    top_k.k = static_cast<index_t>(args.get_int("top-k", 0, 0, 1LL << 40));
    top_p.p = args.get_double("top-p", 1.0);
    if (!(top_p.p > 0 && top_p.p <= 1)) throw usage_error("generate: --top-p must be in (0, 1]");
    sampler.seed(static_cast<std::uint64_t>(args.get_int("seed", 0, 0, 1LL << 62)));
  }
  const model::DecoderConfig config = model::DecoderConfig::load(dir + "/config.json");
  std::string variant = args.get("variant", config.attnkit_activation);
  if (variant.empty()) variant = "softmax";
  const std::string dump = args.get("dump-logits", "");
  const bool ignore_eos = args.has("ignore-eos");
  const policy::ActivationSpec act = parse_activation_option("generate", "variant", variant);
  // The folder's positions choose the score mod: ALiBi, or none (RoPE or no positions).
  return policy::visit_activation(act, [&](const auto& a) {
    if (config.positions == model::PositionKind::alibi)
      return run_generate<policy::ALiBi>(dir, a, prompt, max_new, sampler, cache, kv_dtype, dump,
                                         ignore_eos, text);
    return run_generate<policy::NoScoreMod>(dir, a, prompt, max_new, sampler, cache, kv_dtype, dump,
                                            ignore_eos, text);
  });
}

}  // namespace attnkit::cli
