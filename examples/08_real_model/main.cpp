// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A real model end to end: a Hugging Face folder (config.json, model.safetensors or its shards,
// tokenizer.json) loaded with its weights in place (BF16 stays BF16), a prompt encoded with the
// folder's tokenizer, the greedy continuation streamed as text, attention heatmaps labelled with
// the tokens, the attention every head pays to a keyword of a Chinese prompt, massive
// activations, and the attention variants run on the same weights and prompt.
//
// usage: 08_real_model [MODEL_DIR] [--prompt TEXT] [--keyword WORD] [--max-new-tokens N]
//                      [--out DIR] [--threads T]
//   Without MODEL_DIR the example writes a small stand-in folder to OUT/stand_in (random BF16
//   weights, 2 layers, hidden 64, and a character-level tokenizer.json with byte fallback), so
//   the whole flow runs anywhere; its continuations are random text. OUT (default
//   build/main/real_model) also receives the heatmaps (SVG).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "attnkit/core/parallel.hpp"
#include "attnkit/inspect/capture.hpp"
#include "attnkit/inspect/heatmap.hpp"
#include "attnkit/inspect/massive_activations.hpp"
#include "attnkit/inspect/stats.hpp"
#include "attnkit/io/json.hpp"
#include "attnkit/io/safetensors.hpp"
#include "attnkit/model/generate.hpp"
#include "attnkit/model/variants.hpp"
#include "attnkit/text/tokenizer.hpp"

namespace {

using attnkit::index_t;
using attnkit::Tensor;
namespace ins = attnkit::inspect;
namespace mdl = attnkit::model;
namespace pol = attnkit::policy;
namespace json = attnkit::json;

/// The default prompt: "Please write a short poem about spring. Spring has come, the flowers
/// bloom, the birds sing." The keyword is 春天 (spring).
const char* const kPrompt = "请写一首关于春天的短诗。春天来了，花开了，鸟儿在唱歌。";
const char* const kKeyword = "春天";

/// Writes a stand-in model folder: a character-level tokenizer.json (every character of the
/// prompt and printable ASCII, byte fallback for anything else) and a small LLaMA with random
/// BF16 weights over that vocabulary.
void write_stand_in(const std::string& dir, const std::string& prompt) {
  std::filesystem::create_directories(dir);
  // Vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then characters.
  std::vector<std::string> vocab = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab.emplace_back(name);
  }
  std::set<std::string> chars;
  for (char c = 32; c < 127; ++c) chars.insert(std::string(1, c));
  for (std::size_t i = 0; i < prompt.size();) {
    const int n = attnkit::text::detail::utf8_sequence(prompt, i);
    const std::size_t len = static_cast<std::size_t>(n > 0 ? n : 1);
    chars.insert(prompt.substr(i, len));
    i += len;
  }
  vocab.insert(vocab.end(), chars.begin(), chars.end());
  json::Value v = json::Value::object({});
  for (std::size_t i = 0; i < vocab.size(); ++i)
    v.insert(vocab[i], json::Value::integer(static_cast<std::int64_t>(i)));
  auto special = [](const char* s, std::int64_t id) {
    return json::Value::object({{"id", json::Value::integer(id)},
                                {"content", json::Value::string(s)},
                                {"special", json::Value::boolean(true)}});
  };
  const json::Value tok = json::Value::object(
      {{"added_tokens",
        json::Value::array({special("<unk>", 0), special("<s>", 1), special("</s>", 2)})},
       {"normalizer", json::Value()},
       {"pre_tokenizer", json::Value()},
       {"post_processor", json::Value()},
       {"decoder",
        json::Value::object(
            {{"type", json::Value::string("Sequence")},
             {"decoders", json::Value::array(
                              {json::Value::object({{"type", json::Value::string("ByteFallback")}}),
                               json::Value::object({{"type", json::Value::string("Fuse")}})})}})},
       {"model", json::Value::object({{"type", json::Value::string("BPE")},
                                      {"vocab", v},
                                      {"merges", json::Value::array({})},
                                      {"unk_token", json::Value::string("<unk>")},
                                      {"byte_fallback", json::Value::boolean(true)}})}});
  std::ofstream(dir + "/tokenizer.json") << tok.dump();

  const index_t V = static_cast<index_t>(vocab.size()), H = 64, L = 2, HQ = 4, HKV = 2, D = 16,
                I = 128;
  std::ofstream(dir + "/config.json")
      << "{\"model_type\": \"llama\", \"hidden_size\": " << H << ", \"intermediate_size\": " << I
      << ", \"num_attention_heads\": " << HQ << ", \"num_key_value_heads\": " << HKV
      << ", \"num_hidden_layers\": " << L << ", \"vocab_size\": " << V << ", \"head_dim\": " << D
      << ", \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": true, "
         "\"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"bfloat16\"}\n";
  std::mt19937 rng(8);
  std::vector<std::unique_ptr<Tensor<float, 2>>> keep;
  std::vector<attnkit::io::SafetensorsEntry> entries;
  auto mat = [&](const std::string& name, index_t r, index_t c, double stddev) {
    keep.push_back(std::make_unique<Tensor<float, 2>>(attnkit::Shape<2>{r, c}));
    std::normal_distribution<float> nd(0.0f, static_cast<float>(stddev));
    for (float& x : *keep.back()) x = nd(rng);
    entries.emplace_back(name, *keep.back(), attnkit::io::DType::bf16);
  };
  std::vector<std::unique_ptr<Tensor<float, 1>>> keep1;
  auto ones = [&](const std::string& name, index_t n) {
    keep1.push_back(std::make_unique<Tensor<float, 1>>(attnkit::Shape<1>{n}, 1.0f));
    entries.emplace_back(name, *keep1.back(), attnkit::io::DType::bf16);
  };
  mat("model.embed_tokens.weight", V, H, 1.0);
  const double s = 1.0 / std::sqrt(double(H));
  for (index_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ones(p + "input_layernorm.weight", H);
    ones(p + "post_attention_layernorm.weight", H);
    mat(p + "self_attn.q_proj.weight", HQ * D, H, s);
    mat(p + "self_attn.k_proj.weight", HKV * D, H, s);
    mat(p + "self_attn.v_proj.weight", HKV * D, H, s);
    mat(p + "self_attn.o_proj.weight", H, HQ * D, s);
    mat(p + "mlp.gate_proj.weight", I, H, s);
    mat(p + "mlp.up_proj.weight", I, H, s);
    mat(p + "mlp.down_proj.weight", H, I, 1.0 / std::sqrt(double(I)));
  }
  ones("model.norm.weight", H);
  attnkit::io::write_safetensors(dir + "/model.safetensors", entries);
}

/// Greedy continuation of `prompt` with the decoder of activation A on the folder's weights;
/// streams the text when `stream` (and appends it to `streamed`). Returns the generated ids and
/// the decode rate.
template <class A>
std::pair<std::vector<std::int64_t>, double> continue_prompt(
    const std::string& dir, const attnkit::text::Tokenizer& tok,
    const std::vector<std::int64_t>& prompt, index_t n, bool stream,
    std::string* streamed = nullptr) {
  const auto m = mdl::LlamaDecoder<A>::load(dir);
  mdl::Sampler<> sampler;
  mdl::DecoderState<float> state;
  mdl::GenerateHooks<float> hooks;
  attnkit::text::StreamDecoder text(tok, true);
  if (stream)
    hooks.token = [&](std::int64_t id) {
      const std::string piece = text.push(static_cast<std::int32_t>(id));
      if (streamed != nullptr) *streamed += piece;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    };
  const auto r = mdl::generate(m, prompt, n, sampler, state, hooks, m.config.eos_token_ids);
  if (stream) {
    const std::string rest = text.finish();
    if (streamed != nullptr) *streamed += rest;
    std::printf("%s\n", rest.c_str());
  }
  return {r.ids, r.tokens_per_s()};
}

/// One variant on the same weights: its greedy continuation and the keyword mass of its heads.
template <class A>
void variant_row(const char* name, const std::string& dir, const attnkit::text::Tokenizer& tok,
                 const std::vector<std::int64_t>& prompt, const std::vector<index_t>& kw,
                 index_t n) {
  const auto m = mdl::LlamaDecoder<A>::load(dir);
  ins::Selection sel;
  sel.softmax_reference = false;
  const auto cap = ins::capture_prefill(m, prompt, sel);
  double mass = 0;
  for (const auto& c : cap.heads) mass += ins::keyword_mass(c, kw);
  mass /= double(cap.heads.size());
  const auto [ids, rate] = continue_prompt<A>(dir, tok, prompt, n, false);
  std::vector<std::int32_t> ids32(ids.begin(), ids.end());
  std::string text = tok.decode(ids32, true);
  for (char& c : text)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  std::printf("  %-19s keyword mass %.3f  continuation: %s\n", name, mass, text.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string dir, out = ATTNKIT_EXAMPLE_OUT_DIR, prompt = kPrompt, keyword = kKeyword;
    index_t new_tokens = 24;
    int threads = 0;
    for (int a = 1; a < argc; ++a) {
      const std::string arg = argv[a];
      auto value = [&]() -> std::string {
        if (a + 1 >= argc) throw attnkit::error("08_real_model: " + arg + " needs a value");
        return argv[++a];
      };
      if (arg == "--prompt") {
        prompt = value();
      } else if (arg == "--keyword") {
        keyword = value();
      } else if (arg == "--max-new-tokens") {
        new_tokens = std::max(1L, std::strtol(value().c_str(), nullptr, 10));
      } else if (arg == "--out") {
        out = value();
      } else if (arg == "--threads") {
        threads = static_cast<int>(std::strtol(value().c_str(), nullptr, 10));
      } else if (arg == "--help" || arg == "-h") {
        std::printf(
            "usage: 08_real_model [MODEL_DIR] [--prompt TEXT] [--keyword WORD] "
            "[--max-new-tokens N] [--out DIR] [--threads T]\n");
        return 0;
      } else if (!arg.empty() && arg[0] != '-' && dir.empty()) {
        dir = arg;
      } else {
        std::fprintf(stderr, "08_real_model: unknown argument '%s' (see --help)\n", arg.c_str());
        return 2;
      }
    }
    if (threads > 0) attnkit::set_threads(threads);
    const bool stand_in = dir.empty();
    if (stand_in) {
      dir = out + "/stand_in";
      write_stand_in(dir, prompt);
      std::printf("no MODEL_DIR given: a stand-in with random weights in %s\n", dir.c_str());
    }
    const auto tok = attnkit::text::Tokenizer::load(dir + "/tokenizer.json");
    const std::vector<std::int32_t> ids32 = tok.encode(prompt);
    const std::vector<std::int64_t> ids(ids32.begin(), ids32.end());
    const attnkit::text::TokenSpans sp = attnkit::text::token_spans(tok, ids);

    // ---- the model and a greedy continuation, streamed ----------------------------------------
    const auto m = mdl::SoftmaxLlama::load(dir);
    const mdl::DecoderConfig& c = m.config;
    std::printf("model %s (%s): %td layers, hidden %td, %td query / %td kv heads, vocab %td\n",
                dir.c_str(), c.model_type.c_str(), c.num_hidden_layers, c.hidden_size,
                c.num_attention_heads, c.num_key_value_heads, c.vocab_size);
    std::printf("weights: %.1f MB of matrices, %s\n", double(m.matrix_bytes()) / 1e6,
                m.zero_copy() ? "used in place in the mapped file, in their stored dtype"
                              : "some converted to float on load");
    std::printf("prompt (%zu tokens): %s\ncontinuation: ", ids.size(), prompt.c_str());
    std::fflush(stdout);
    std::string streamed;
    const auto [gen, rate] =
        continue_prompt<pol::Softmax>(dir, tok, ids, new_tokens, true, &streamed);
    std::printf("(%zu tokens, %.1f tokens/s on %d thread(s))\n", gen.size(), rate,
                attnkit::max_threads());
    // Checks (exit 1): the streamed pieces are the decoded continuation, whole characters only;
    // the stand-in's BF16 matrices were used in place.
    const std::vector<std::int32_t> gen32(gen.begin(), gen.end());
    if (streamed != attnkit::text::detail::utf8_lossy(tok.decode(gen32, true))) {
      std::fprintf(stderr, "08_real_model: the streamed text differs from decode()\n");
      return 1;
    }
    if (stand_in && !m.zero_copy()) {
      std::fprintf(stderr, "08_real_model: the stand-in's BF16 weights were converted\n");
      return 1;
    }

    // ---- heatmaps with token labels -------------------------------------------------------
    ins::Selection sel;
    sel.softmax_reference = false;
    sel.layers = {0, c.num_hidden_layers - 1};
    const auto cap = ins::capture_prefill(m, ids, sel);
    const std::string hdir = out + "/heatmaps";
    std::filesystem::create_directories(hdir);
    for (const auto& h : cap.heads) {
      ins::HeatmapOptions ho;
      ho.title = "layer " + std::to_string(h.layer) + ", head " + std::to_string(h.head);
      ins::write_text_file(
          hdir + "/layer" + std::to_string(h.layer) + "_head" + std::to_string(h.head) + ".svg",
          ins::heatmap_svg(h, sp.labels, ho));
    }
    std::printf("\nheatmaps of the first and last layer, token-labelled: %s/ (%zu SVG)\n",
                hdir.c_str(), cap.heads.size());

    // ---- keyword attention ----------------------------------------------------------------
    const std::vector<index_t> kw = sp.overlapping(keyword);
    if (kw.empty()) throw attnkit::error("08_real_model: the keyword does not occur in the prompt");
    const auto all = ins::capture_prefill(m, ids, [] {
      ins::Selection s;
      s.softmax_reference = false;
      return s;
    }());
    std::printf("\nkeyword '%s' = tokens", keyword.c_str());
    for (index_t p : kw)
      std::printf(" %td ('%s')", p, sp.labels[static_cast<std::size_t>(p)].c_str());
    std::printf("; attention mass on it, mean over heads and the rows that see it:\n");
    std::vector<std::pair<double, std::pair<index_t, index_t>>> heads;
    for (index_t l = 0; l < c.num_hidden_layers; ++l) {
      double sum = 0;
      for (const auto& h : all.heads)
        if (h.layer == l) {
          const double k = ins::keyword_mass(h, kw);
          sum += k;
          heads.push_back({k, {h.layer, h.head}});
        }
      std::printf("  layer %td: %.3f\n", l, sum / double(c.num_attention_heads));
    }
    std::sort(heads.begin(), heads.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    std::printf("  strongest heads:");
    for (std::size_t i = 0; i < std::min<std::size_t>(5, heads.size()); ++i)
      std::printf(" L%td.H%td %.3f", heads[i].second.first, heads[i].second.second, heads[i].first);
    std::printf("\n");

    // ---- massive activations ----------------------------------------------------------------
    const ins::MassiveActivationDetector det = ins::find_massive_activations(m, ids);
    const ins::MassiveActivation& top = det.largest();
    std::printf(
        "\nmassive activations (|h| >= %.0fx the layer's median |h|): %zu found; largest "
        "|h| / median = %.1f at layer %td, token %td ('%s'), channel %td\n",
        det.options().min_ratio, det.found().size(), top.ratio_to_median, top.layer, top.token,
        sp.labels[static_cast<std::size_t>(top.token)].c_str(), top.channel);

    // ---- the attention variants on the same weights -----------------------------------------
    const index_t short_n = std::min<index_t>(new_tokens, 12);
    std::printf("\nthe attention variants on the same weights (greedy, %td tokens):\n", short_n);
    variant_row<pol::Softmax>("softmax", dir, tok, ids, kw, short_n);
    variant_row<pol::Sigmoid>("sigmoid", dir, tok, ids, kw, short_n);
    variant_row<pol::SigmoidBias>("sigmoid, b=-ln n", dir, tok, ids, kw, short_n);
    variant_row<pol::HeadSoftmax>("softmax over heads", dir, tok, ids, kw, short_n);
    variant_row<pol::Linear>("linear", dir, tok, ids, kw, short_n);
    variant_row<pol::NormalizedSigmoid>("normalized sigmoid", dir, tok, ids, kw, short_n);
    variant_row<pol::ReLU>("relu", dir, tok, ids, kw, short_n);
    std::printf(
        "\n(the weights were trained, if at all, with softmax: the other variants show what\n"
        "changing only the attention activation does to the same model.)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
