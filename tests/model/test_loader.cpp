// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The model-folder loader: zero-copy F32, read mode, and clear errors (file and key named) for a
// malformed config, a missing or mis-shaped tensor, a wrong dtype, a gate the policy lacks, bad
// token ids, the model families' keys, and sharded checkpoints whose index does not match.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "attnkit/io/safetensors.hpp"

#include "golden_util.hpp"

namespace fs = std::filesystem;
namespace mdl = attnkit::model;
using attnkit::index_t;

namespace {

/// A scratch copy of a golden folder whose config and/or tensors the test then breaks.
struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name) {
    dir = fs::temp_directory_path() / ("attnkit_loader_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(golden::folder("softmax") + "/config.json", dir / "config.json");
    fs::copy_file(golden::folder("softmax") + "/model.safetensors", dir / "model.safetensors");
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path() const { return dir.string(); }
  void write_config(const std::string& text) const { std::ofstream(dir / "config.json") << text; }
  /// Rewrites model.safetensors from the golden one with `edit` applied to the entry list.
  template <class Edit>
  void rewrite_tensors(Edit edit) const {
    const auto src =
        attnkit::io::SafetensorsFile::open(golden::folder("softmax") + "/model.safetensors");
    std::vector<attnkit::Tensor<float, 2>> mats;
    std::vector<attnkit::Tensor<float, 1>> vecs;
    mats.reserve(src.names().size());
    vecs.reserve(src.names().size());
    std::vector<attnkit::io::SafetensorsEntry> entries;
    for (const std::string& n : src.names()) {
      if (src.info(n).rank() == 2) {
        mats.push_back(src.load_f32<2>(n));
        entries.emplace_back(n, mats.back().cview());
      } else {
        vecs.push_back(src.load_f32<1>(n));
        entries.emplace_back(n, vecs.back().cview());
      }
    }
    edit(entries);
    attnkit::io::write_safetensors((dir / "model.safetensors").string(), entries);
  }
};

std::string config_text(const std::string& extra_or_replace) {
  std::ifstream in(golden::folder("softmax") + "/config.json");
  std::string t((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return extra_or_replace.empty() ? t : extra_or_replace;
}

}  // namespace

TEST_CASE("loader: F32 is zero-copy when mapped; read mode converts", "[model][loader]") {
  const auto mapped = mdl::SoftmaxLlama::load(golden::folder("softmax"));
  CHECK(mapped.zero_copy());
  const auto read =
      mdl::SoftmaxLlama::load(golden::folder("softmax"), {}, attnkit::io::LoadMode::read);
  CHECK_FALSE(read.zero_copy());
  const std::vector<std::int64_t> ids{1, 2, 3};
  const auto a = mapped.forward(ids), b = read.forward(ids);
  for (index_t j = 0; j < a.extent(1); ++j) CHECK(a(2, j) == b(2, j));
  // A copy shares the weights (the mapping outlives the original).
  auto copy = std::make_unique<mdl::SoftmaxLlama>(mapped);
  const auto c = copy->forward(ids);
  CHECK(c(0, 5) == a(0, 5));
  // double precision loads the same folder (converted).
  const auto d = attnkit::model::Decoder<mdl::LlamaPolicy<attnkit::policy::Softmax>, double>::load(
      golden::folder("softmax"));
  const auto want = attnkit::io::read_npy_as<double, 2>(golden::folder("softmax") + "/logits.npy");
  const auto ids_all =
      attnkit::io::read_npy_as<std::int64_t, 1>(golden::folder("softmax") + "/input_ids.npy");
  const auto ld = d.forward(std::vector<std::int64_t>(ids_all.begin(), ids_all.end()));
  double err = 0;
  for (index_t i = 0; i < ld.extent(0); ++i)
    for (index_t j = 0; j < ld.extent(1); ++j) err = std::max(err, std::abs(ld(i, j) - want(i, j)));
  CHECK(err <= 1e-5);  // logits.npy is float32: its own rounding dominates
}

TEST_CASE("loader: malformed config.json names the file and the key", "[model][loader]") {
  Scratch s("config");
  s.write_config("{\"hidden_size\": 64");
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()), Catch::Contains("config.json"));
  s.write_config("[1, 2]");
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()), Catch::Contains("expected a JSON object"));
  std::string t = config_text("");
  const auto pos = t.find("\"num_hidden_layers\"");
  s.write_config(t.substr(0, pos) + t.substr(t.find('\n', pos) + 1));
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("config.json") && Catch::Contains("num_hidden_layers"));
  std::string bad = config_text("");
  bad.replace(bad.find("\"num_key_value_heads\": 2"), 24, "\"num_key_value_heads\": 3");
  s.write_config(bad);
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("not a multiple of num_key_value_heads 3"));
  std::string neg = config_text("");
  neg.replace(neg.find("\"vocab_size\": 97"), 16, "\"vocab_size\": -97");
  s.write_config(neg);
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()), Catch::Contains("vocab_size"));
  std::string str = config_text("");
  str.replace(str.find("\"hidden_size\": 64"), 17, "\"hidden_size\": \"64\"");
  s.write_config(str);
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()), Catch::Contains("hidden_size"));
  fs::remove(s.dir / "config.json");
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()), Catch::Contains("config.json: cannot open"));
}

TEST_CASE("loader: missing, mis-shaped and wrongly typed tensors name the file and key",
          "[model][loader]") {
  Scratch s("tensors");
  s.rewrite_tensors([](auto& e) {
    e.erase(std::find_if(e.begin(), e.end(), [](const auto& x) {
      return x.name == "model.layers.1.mlp.up_proj.weight";
    }));
  });
  CHECK_THROWS_WITH(
      mdl::SoftmaxLlama::load(s.path()),
      Catch::Contains("model.safetensors") && Catch::Contains("model.layers.1.mlp.up_proj.weight"));
  attnkit::Tensor<float, 2> wrong({96, 63});
  s.rewrite_tensors([&](auto& e) {
    for (auto& x : e)
      if (x.name == "model.layers.0.mlp.gate_proj.weight")
        x = attnkit::io::SafetensorsEntry(x.name, wrong.cview());
  });
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("model.layers.0.mlp.gate_proj.weight") &&
                        Catch::Contains("[96, 63]") && Catch::Contains("expected [96, 64]"));
  attnkit::Tensor<std::int32_t, 1> ints({64});
  s.rewrite_tensors([&](auto& e) {
    for (auto& x : e)
      if (x.name == "model.norm.weight") x = attnkit::io::SafetensorsEntry(x.name, ints.cview());
  });
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("model.norm.weight") && Catch::Contains("I32"));
  // A gate in the file but a policy without one: an error, not a silently ungated model.
  attnkit::Tensor<float, 2> g({4, 64});
  s.rewrite_tensors(
      [&](auto& e) { e.emplace_back("model.layers.0.self_attn.g_proj.weight", g.cview()); });
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()), Catch::Contains("NoGate"));
  CHECK_NOTHROW(mdl::GatedSoftmaxLlama::load(s.path()));
  attnkit::Tensor<float, 2> g3({3, 64});
  s.rewrite_tensors(
      [&](auto& e) { e.emplace_back("model.layers.0.self_attn.g_proj.weight", g3.cview()); });
  CHECK_THROWS_WITH(mdl::GatedSoftmaxLlama::load(s.path()),
                    Catch::Contains("g_proj.weight' has shape [3, 64]"));
  // A truncated file.
  fs::resize_file(s.dir / "model.safetensors", 100);
  CHECK_THROWS_AS(mdl::SoftmaxLlama::load(s.path()), attnkit::error);
}

TEST_CASE("loader: recipe keys are checked, and unsupported keys and unused tensors fail loudly",
          "[model][loader]") {
  Scratch s("recipe");
  const std::string base = config_text("");
  auto with = [&](const std::string& keys) {
    std::string t = base;
    if (keys.find("\"model_type\"") != std::string::npos) {  // replaces the golden's llama
      const std::size_t at = t.find("\"model_type\": \"llama\",");
      REQUIRE(at != std::string::npos);
      t.erase(at, std::string("\"model_type\": \"llama\",").size());
    }
    t.insert(t.find('{') + 1, "\n  " + keys + ",");
    s.write_config(t);
  };
  auto fails = [&](const std::string& keys, const std::string& a, const std::string& b) {
    with(keys);
    INFO(keys);
    CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                      Catch::Contains("config.json") && Catch::Contains(a) && Catch::Contains(b));
  };
  fails("\"attnkit_norm\": \"batch_norm\"", "attnkit_norm", "rms_norm, layer_norm");
  fails("\"attnkit_norm_placement\": \"sandwich\"", "attnkit_norm_placement", "\"sandwich\"");
  fails("\"attnkit_mlp\": \"glu\"", "attnkit_mlp", "swiglu, gelu, moe");
  fails("\"attnkit_positions\": \"sinusoidal\"", "attnkit_positions", "rope, alibi, none");
  fails("\"attnkit_positions\": \"alibi\"", "alibi", "no positional score mod");
  fails("\"attnkit_mlp\": \"moe\"", "num_local_experts", "");
  fails("\"attnkit_mlp\": \"moe\", \"num_local_experts\": 2, \"num_experts_per_tok\": 3",
        "num_experts_per_tok 3", "exceeds num_local_experts 2");
  fails("\"attnkit_norm\": \"layer_norm\", \"layer_norm_eps\": 2", "layer_norm_eps", "[0, 1]");
  fails("\"model_type\": \"gpt2\"", "model_type", "llama, mistral, mixtral, qwen2, qwen3");
  fails("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0}",
        "rope_scaling type \"yarn\"", "not implemented");
  fails("\"rope_scaling\": {\"type\": \"linear\"}", "rope_scaling \"linear\"", "\"factor\"");
  fails("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}", "llama3",
        "low_freq_factor");
  fails(
      "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, "
      "\"high_freq_factor\": 1, \"original_max_position_embeddings\": 64}",
      "high_freq_factor", "low_freq_factor");
  fails("\"rope_scaling\": {\"type\": \"linear\", \"factor\": -2}", "factor", "> 0");
  fails("\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}", "dynamic",
        "max_position_embeddings");
  fails("\"rope_scaling\": 2", "rope_scaling", "object or null");
  fails("\"mlp_bias\": true", "mlp_bias", "biases");
  // attention_bias: the projections' biases must then be in the file.
  with("\"attention_bias\": true");
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("model.safetensors") &&
                        Catch::Contains("no tensor 'model.layers.0.self_attn.q_proj.bias'"));
  // A sliding window acts only past its length: the model loads, and a sequence that reaches
  // past it is an error naming the window.
  const std::vector<std::int64_t> five{1, 2, 3, 4, 5}, one{6};
  for (const char* keys :
       {"\"sliding_window\": 5", "\"model_type\": \"mistral\", \"sliding_window\": 5",
        "\"model_type\": \"qwen2\", \"use_sliding_window\": true, \"sliding_window\": 5"}) {
    INFO(keys);
    with(keys);
    if (std::string(keys).find("qwen2") != std::string::npos) {
      // qwen2 has q/k/v biases: give them.
      attnkit::Tensor<float, 1> qb({64}), kb({32});
      s.rewrite_tensors([&](auto& e) {
        for (int l = 0; l < 2; ++l) {
          const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
          e.emplace_back(p + "q_proj.bias", qb.cview());
          e.emplace_back(p + "k_proj.bias", kb.cview());
          e.emplace_back(p + "v_proj.bias", kb.cview());
        }
      });
    }
    const auto m = mdl::SoftmaxLlama::load(s.path());
    mdl::DecoderState<float> state;
    CHECK_NOTHROW(m.forward(five, state));
    CHECK_THROWS_WITH(m.forward(one, state), Catch::Contains("reach 6 positions, past the 5") &&
                                                 Catch::Contains("sliding window of 5"));
    const std::vector<std::int64_t> six{1, 2, 3, 4, 5, 6};
    CHECK_THROWS_WITH(m.forward(six), Catch::Contains("past the 5"));
    s.write_config(base);
    s.rewrite_tensors([](auto&) {});  // the golden tensors again
  }
  // A window that is off (qwen2's default, or use_sliding_window false) limits nothing.
  with("\"model_type\": \"qwen3\", \"sliding_window\": 2, \"use_sliding_window\": false");
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("no tensor 'model.layers.0.self_attn.q_norm.weight'"));
  std::string gelu = base;
  gelu.replace(gelu.find("\"hidden_act\": \"silu\""), 20, "\"hidden_act\": \"relu\"");
  s.write_config(gelu);
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("hidden_act") && Catch::Contains("silu"));
  // Keys that do not change the model are accepted: a sliding window that is off, null scaling.
  with("\"sliding_window\": 4096, \"use_sliding_window\": false, \"rope_scaling\": null");
  CHECK_NOTHROW(mdl::SoftmaxLlama::load(s.path()));
  // The config asks for the GELU MLP: the file's SwiGLU tensors do not stand in for it.
  std::string gelu_mlp = gelu;
  gelu_mlp.replace(gelu_mlp.find("\"hidden_act\": \"relu\""), 20,
                   "\"hidden_act\": \"gelu\", \"attnkit_mlp\": \"gelu\"");
  s.write_config(gelu_mlp);
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()), Catch::Contains("mlp.fc1.weight"));
  s.write_config(base);
  // A tensor the described model does not use (a bias) is an error, not silently ignored.
  attnkit::Tensor<float, 1> bias({96});
  s.rewrite_tensors(
      [&](auto& e) { e.emplace_back("model.layers.1.mlp.down_proj.bias", bias.cview()); });
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("model.safetensors") &&
                        Catch::Contains("'model.layers.1.mlp.down_proj.bias' is not part of") &&
                        Catch::Contains("mlp swiglu"));
  // A LayerNorm bias under an RMSNorm config, likewise.
  attnkit::Tensor<float, 1> nb({64});
  s.rewrite_tensors([&](auto& e) { e.emplace_back("model.norm.bias", nb.cview()); });
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(s.path()),
                    Catch::Contains("'model.norm.bias' is not part of"));
  // RoPE's cached inverse frequencies (older checkpoints) are recomputed, so they may be present.
  attnkit::Tensor<float, 1> inv({8});
  s.rewrite_tensors([&](auto& e) {
    e.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", inv.cview());
  });
  CHECK_NOTHROW(mdl::SoftmaxLlama::load(s.path()));
}

TEST_CASE("Decoder::forward rejects empty prompts and ids outside the vocabulary", "[model]") {
  const auto m = mdl::SoftmaxLlama::load(golden::folder("softmax"));
  CHECK_THROWS_WITH(m.forward(std::vector<std::int64_t>{}), Catch::Contains("empty prompt"));
  CHECK_THROWS_WITH(m.forward(std::vector<std::int64_t>{1, 97}), Catch::Contains("token id 97"));
  CHECK_THROWS_WITH(m.forward(std::vector<std::int64_t>{-1}), Catch::Contains("token id -1"));
}

TEST_CASE("loader: sharded checkpoints are checked against their index", "[model][loader]") {
  const fs::path dir =
      fs::temp_directory_path() / ("attnkit_loader_shards_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(golden::folder("family-qwen2-bf16"), dir);
  const std::string index_path = (dir / "model.safetensors.index.json").string();
  std::string index;
  {
    std::ifstream in(index_path);
    index.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string first = "model-00001-of-00002.safetensors";
  const std::string second = "model-00002-of-00002.safetensors";
  CHECK_NOTHROW(mdl::SoftmaxLlama::load(dir.string()));
  auto with_index = [&](const std::string& text) { std::ofstream(index_path) << text; };
  auto replace_first = [&](std::string text, const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  // A shard path that leaves the folder.
  with_index(replace_first(index, "\"" + first + "\"", "\"../" + first + "\""));
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(dir.string()),
                    Catch::Contains("not a file name in the folder"));
  // A shard that does not exist.
  with_index(replace_first(index, "\"" + second + "\"", "\"model-00003.safetensors\""));
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(dir.string()),
                    Catch::Contains("model-00003.safetensors"));
  // A tensor listed in the wrong shard (the first tensor of the first shard, said to be in the
  // second).
  const std::size_t at = index.find(first);
  with_index(index.substr(0, at) + second + index.substr(at + first.size()));
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(dir.string()),
                    Catch::Contains("is listed in " + second + ", which does not hold it"));
  // Not an index at all.
  with_index("{\"metadata\": {}}");
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(dir.string()), Catch::Contains("weight_map"));
  // Neither model.safetensors nor an index.
  fs::remove(index_path);
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(dir.string()), Catch::Contains("model.safetensors"));
  fs::remove_all(dir);
}
