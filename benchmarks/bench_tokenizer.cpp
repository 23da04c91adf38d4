// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// text::Tokenizer::encode and decode speed on English text (bytes/s), one thread, paragraph by
// paragraph, with the piece cache emptied before each iteration. The tokenizer is the file
// ATTNKIT_TOKENIZER names (a tokenizer.json or a folder holding one); the text is the file
// ATTNKIT_TOKENIZER_TEXT names, else the repository's own documentation.
// tools/bench_tokenizer.sh sets both up (the npm-packaged tokenizer.json files) and times the
// JavaScript port of the Hugging Face tokenizers on the same text in the same run.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attnkit/text/tokenizer.hpp"

#include "bench_main.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The text: ATTNKIT_TOKENIZER_TEXT, else README.md and docs/*.md of the source tree.
const std::string& english() {
  static const std::string text = [] {
    if (const char* p = std::getenv("ATTNKIT_TOKENIZER_TEXT")) return read_file(p);
    std::string t = read_file(ATTNKIT_SOURCE_DIR "/README.md");
    for (const auto& e : std::filesystem::directory_iterator(ATTNKIT_SOURCE_DIR "/docs"))
      if (e.path().extension() == ".md") t += read_file(e.path().string());
    return t;
  }();
  return text;
}

/// The text cut at blank lines: each paragraph is encoded on its own, as a prompt or a document
/// chunk would be (a SentencePiece-style file has no pre-tokenizer, so one call over megabytes
/// would be one piece).
std::vector<std::string_view> paragraphs(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find("\n\n", at);
    end = end == std::string_view::npos ? text.size() : end + 2;
    out.push_back(text.substr(at, end - at));
    at = end;
  }
  return out;
}

/// The tokenizer of $ATTNKIT_TOKENIZER (loaded once); without it, marks `state` skipped with an
/// error saying so and returns null.
const attnkit::text::Tokenizer* tokenizer(benchmark::State& state) {
  static const std::optional<attnkit::text::Tokenizer> tok =
      []() -> std::optional<attnkit::text::Tokenizer> {
    const char* p = std::getenv("ATTNKIT_TOKENIZER");
    if (p == nullptr) return std::nullopt;
    return attnkit::text::Tokenizer::load(p);
  }();
  if (!tok)
    state.SkipWithError(
        "set ATTNKIT_TOKENIZER to a tokenizer.json (tools/bench_tokenizer.sh does)");
  return tok ? &*tok : nullptr;
}

void BM_TokenizerEncode(benchmark::State& state) {
  const attnkit::text::Tokenizer* tok = tokenizer(state);
  if (tok == nullptr) return;
  const std::string& text = english();
  const std::vector<std::string_view> parts = paragraphs(text);
  std::size_t tokens = 0;
  for (auto _ : state) {
    state.PauseTiming();
    tok->clear_cache();  // cold: no piece of an earlier iteration is cached
    state.ResumeTiming();
    tokens = 0;
    for (std::string_view p : parts) {
      const std::vector<std::int32_t> ids = tok->encode(p, false);
      tokens += ids.size();
      benchmark::DoNotOptimize(ids.data());
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["text_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_TokenizerEncode)->Unit(benchmark::kMillisecond);

void BM_TokenizerDecode(benchmark::State& state) {
  const attnkit::text::Tokenizer* tok = tokenizer(state);
  if (tok == nullptr) return;
  const std::string& text = english();
  std::vector<std::int32_t> ids;
  for (std::string_view p : paragraphs(text)) {
    const std::vector<std::int32_t> part = tok->encode(p, false);
    ids.insert(ids.end(), part.begin(), part.end());
  }
  for (auto _ : state) {
    const std::string back = tok->decode(ids);
    benchmark::DoNotOptimize(back.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_TokenizerDecode)->Unit(benchmark::kMillisecond);

}  // namespace

ATTNKIT_BENCHMARK_MAIN();
