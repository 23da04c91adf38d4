// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// text::Tokenizer against the oracle: tests/text/oracle.mjs runs the JavaScript port of the Hugging
// Face tokenizers (@lenml/tokenizers, installed by npm under the build tree) over corpus.txt with
// each packaged tokenizer.json and writes the ids; this executable reads the same files and must
// give the same ids (with and without the special tokens), the same decoded text, and streamed
// pieces that are whole UTF-8 and add up to that text. A file with a component this reader does
// not implement, or a malformed one, must fail to load with an error naming what is wrong.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/io/json.hpp"
#include "attnkit/text/tokenizer.hpp"

using namespace attnkit;

namespace {

const json::Value& oracle() {
  static const json::Value v = json::parse_file(ATTNKIT_TOKENIZER_ORACLE);
  return v;
}

std::vector<std::int32_t> ids_of(const json::Value& a) {
  std::vector<std::int32_t> r;
  for (const json::Value& x : a.as_array()) r.push_back(static_cast<std::int32_t>(x.as_int()));
  return r;
}

bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const int n = text::detail::utf8_sequence(s, i);
    if (n <= 0) return false;
    i += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

TEST_CASE("every packaged tokenizer gives the oracle's ids and text", "[text][tokenizer]") {
  // llama3: byte-level BPE, ignore_merges; qwen3: NFC, byte-level BPE, merges as pairs; llama2:
  // SentencePiece-style BPE ("▁" normalizers, byte fallback, unk, a BOS template, Strip decoder);
  // llama2-metaspace: the same model with the Metaspace pre-tokenizer (prepend_scheme first, no
  // split) and decoder instead of the normalizers and the Strip.
  const std::string name =
      GENERATE(as<std::string>{}, "llama3", "qwen3", "llama2", "llama2-metaspace");
  INFO("tokenizer " << name);
  const json::Value& o = oracle().at(name);
  const text::Tokenizer tok = text::Tokenizer::load(o.get_string("file"));
  const auto& texts = o.at("texts").as_array();
  REQUIRE(texts.size() > 20);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string& s = texts[i].as_string();
    INFO("line " << i << ": " << s);
    const std::vector<std::int32_t> want = ids_of(o.at("ids").at(i));
    const std::vector<std::int32_t> got = tok.encode(s, false);
    CHECK(got == want);
    CHECK(tok.encode(s, true) == ids_of(o.at("ids_special").at(i)));
    CHECK(tok.decode(want) == o.at("decoded").at(i).as_string());
    // Streaming: every piece is whole UTF-8, and the pieces add up to decode().
    text::StreamDecoder stream(tok);
    std::string joined;
    for (std::int32_t id : want) {
      const std::string piece = stream.push(id);
      CHECK(valid_utf8(piece));
      joined += piece;
    }
    joined += stream.finish();
    CHECK(joined == tok.decode(want));
  }
}

TEST_CASE("tokenizer: special tokens, unknown ids, bad UTF-8", "[text][tokenizer]") {
  const json::Value& o = oracle().at("llama3");
  const text::Tokenizer tok = text::Tokenizer::load(o.get_string("file"));
  const auto bos = tok.id_of("<|begin_of_text|>");
  REQUIRE(bos.has_value());
  CHECK(tok.is_special(*bos));
  CHECK(tok.token(*bos) == "<|begin_of_text|>");
  const std::vector<std::int32_t> ids{*bos, tok.encode("hi", false)[0]};
  CHECK(tok.decode(ids) == "<|begin_of_text|>hi");
  CHECK(tok.decode(ids, true) == "hi");
  const std::vector<std::int32_t> bad{-1};
  CHECK_THROWS_WITH(tok.decode(bad), Catch::Contains("token id -1"));
  const std::vector<std::int32_t> past{tok.size()};
  CHECK_THROWS_AS(tok.decode(past), text::tokenizer_error);
  CHECK_THROWS_WITH(tok.encode("ok \xC3\x28 no"), Catch::Contains("not valid UTF-8"));
  CHECK_THROWS_WITH(tok.encode("cut \xE4\xB8"), Catch::Contains("not valid UTF-8"));
  // A character split over tokens is held back until complete; a broken tail becomes U+FFFD.
  text::StreamDecoder stream(tok);
  const std::vector<std::int32_t> cjk = tok.encode("\xE4\xB8\xAD", false);  // one character
  std::string out;
  for (std::int32_t id : cjk) out += stream.push(id);
  CHECK(out == "\xE4\xB8\xAD");
  CHECK(text::detail::utf8_lossy("a\xE4\xB8") == "a\xEF\xBF\xBD");
  CHECK(text::detail::utf8_lossy("\xF0\x9F\x98") == "\xEF\xBF\xBD");
  CHECK(text::detail::utf8_lossy("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(text::detail::utf8_lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

namespace {

/// A tokenizer.json in a fresh folder of the build tree, with the given pieces.
std::string write_tokenizer(const std::string& name, const std::string& normalizer,
                            const std::string& pre, const std::string& model,
                            const std::string& decoder) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("attnkit_tok_" + name);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json")
      << "{\"added_tokens\": [], \"normalizer\": " << normalizer << ", \"pre_tokenizer\": " << pre
      << ", \"post_processor\": null, \"decoder\": " << decoder << ", \"model\": " << model << "}";
  return dir.string();
}

const std::string byte_level =
    R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})";
const std::string tiny_bpe =
    R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";

}  // namespace

TEST_CASE("tokenizer files with components not implemented fail loudly", "[text][tokenizer]") {
  // A tiny file that works: "ab" is one token.
  const text::Tokenizer ok =
      text::Tokenizer::load(write_tokenizer("ok", "null", byte_level, tiny_bpe, byte_level));
  CHECK(ok.encode("abab", false) == std::vector<std::int32_t>{2, 2});
  CHECK(ok.decode(ok.encode("aba", false)) == "aba");
  CHECK_THROWS_WITH(ok.encode("abc", false), Catch::Contains("the byte 99 has no token"));
  auto fails = [](const std::string& name, const std::string& norm, const std::string& pre,
                  const std::string& model, const std::string& dec, const std::string& what) {
    INFO(name);
    CHECK_THROWS_WITH(text::Tokenizer::load(write_tokenizer(name, norm, pre, model, dec)),
                      Catch::Contains(what));
  };
  fails("lowercase", R"({"type": "Lowercase"})", byte_level, tiny_bpe, byte_level,
        "the normalizer Lowercase is not supported");
  fails("wordpiece", "null", byte_level, R"({"type": "WordPiece", "vocab": {}})", byte_level,
        "the model WordPiece");
  fails("removed", "null",
        R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": false})",
        tiny_bpe, byte_level, "the Split behavior Removed");
  fails("ctc", "null", byte_level, tiny_bpe, R"({"type": "CTC"})", "the decoder CTC");
  fails("no decoder", "null", byte_level, tiny_bpe, "null", "without a decoder");
  fails("bad merge", "null", byte_level,
        R"({"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]})", byte_level,
        "names a token not in the vocabulary");
  fails("three", "null", byte_level,
        R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b c"]})", byte_level,
        "is not two tokens");
  fails(
      "bad regex", "null",
      R"({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false})",
      tiny_bpe, byte_level, "does not compile");
  fails("no vocab", "null", byte_level, R"({"type": "BPE", "merges": []})", byte_level,
        "malformed");
  fails("bad id", "null", byte_level, R"({"type": "BPE", "vocab": {"a": -4}, "merges": []})",
        byte_level, "out of range");
  fails("sparse ids", "null", byte_level,
        R"({"type": "BPE", "vocab": {"a": 0, "b": 1000000000}, "merges": []})", byte_level,
        "not dense");
  {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "attnkit_tok_json";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "tokenizer.json") << "{\"model\": [1, 2";
    CHECK_THROWS_AS(text::Tokenizer::load(dir.string()), text::tokenizer_error);
  }
  CHECK_THROWS_WITH(text::Tokenizer::load("/nonexistent/folder"),
                    Catch::Contains("no tokenizer.json"));
}

TEST_CASE("SentencePiece-style BPE: words encode alone unless a merge crosses a word boundary",
          "[text][tokenizer]") {
  // No pre-tokenizer: the whole normalized text "▁a▁b▁a" is one piece. Without a merge that
  // joins a token ending in another character to one starting with ▁, the words are encoded one
  // by one (and cached); the ids must be those of BPE over the whole text either way.
  const std::string norm =
      R"({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},)"
      R"( {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})";
  const std::string fuse = R"({"type": "Fuse"})";
  const text::Tokenizer words = text::Tokenizer::load(write_tokenizer(
      "sp_words", norm, "null",
      R"({"type": "BPE", "vocab": {"▁": 0, "a": 1, "b": 2, "▁a": 3, "▁b": 4, "▁▁": 5},)"
      R"( "merges": ["▁ ▁", "▁ a", "▁ b"]})",
      fuse));
  CHECK(words.encode("a b a", false) == std::vector<std::int32_t>{3, 4, 3});
  CHECK(words.encode("a  b", false) == std::vector<std::int32_t>{3, 5, 2});  // "▁▁b": ▁▁ first
  CHECK(words.encode(" a", false) == std::vector<std::int32_t>{5, 1});
  // "a ▁" crosses the boundary of "▁a|▁b": the text is then encoded whole, "▁ a▁b".
  const text::Tokenizer crossing = text::Tokenizer::load(write_tokenizer(
      "sp_crossing", norm, "null",
      R"({"type": "BPE", "vocab": {"▁": 0, "a": 1, "b": 2, "▁a": 3, "▁b": 4, "a▁": 5, "a▁b": 6},)"
      R"( "merges": ["a ▁", "a▁ b", "▁ a", "▁ b"]})",
      fuse));
  CHECK(crossing.encode("a b", false) == std::vector<std::int32_t>{0, 6});
  CHECK(crossing.encode("b a", false) == std::vector<std::int32_t>{4, 3});
}
