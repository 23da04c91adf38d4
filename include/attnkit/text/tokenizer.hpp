// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Tokenizers from Hugging Face tokenizer.json files: the byte-level BPE of GPT-2, Llama 3, Qwen
// and the like (a Split pre-tokenizer with the file's own regular expression, run by PCRE2 with
// Unicode properties, then the byte-to-character map) and the SentencePiece-style BPE of Llama 2
// and Mistral (the "▁" normalizers, byte fallback, unknown token); Unicode normalizers; added and
// special tokens; encode, decode and incremental decode that never emits a broken UTF-8 sequence. A
// component of the file that this reader does not implement is an error naming it, never a silent
// difference. Part of the optional attnkit::text component (CMake), which links PCRE2
// (libpcre2-dev) and utf8proc (libutf8proc-dev: the Unicode normalization forms); the umbrella
// header leaves it out.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <pcre2.h>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utf8proc.h>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/io/json.hpp"

namespace attnkit::text {

/// A tokenizer.json that cannot be read, or holds something this reader does not implement.
class tokenizer_error : public error {
 public:
  using error::error;
};

namespace detail {

/// c as UTF-8.
inline void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

/// The UTF-8 sequence at s[i]: `length` 1-4 when it is valid and complete, else 0; `prefix` the
/// bytes of it that are valid so far (at least 1), so that an ill-formed one is replaced by one
/// U+FFFD per maximal subpart; `incomplete` when s ends inside a sequence valid so far.
struct Utf8Seq {
  int length = 0, prefix = 1;
  bool incomplete = false;
};
inline Utf8Seq utf8_at(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return {1, 1, false};
  int n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return {0, 1, false};  // a stray continuation byte, C0, C1, F5..FF
  }
  for (int k = 1; k < n; ++k) {
    if (i + static_cast<std::size_t>(k) >= s.size()) return {0, k, true};
    const unsigned char t = b(i + static_cast<std::size_t>(k));
    if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF)) return {0, k, false};
  }
  return {n, n, false};
}

/// The length of the valid UTF-8 sequence at s[i] (1-4), 0 when the bytes there are not one,
/// -1 when s ends inside a sequence that is valid so far.
inline int utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const Utf8Seq q = utf8_at(s, i);
  return q.length > 0 ? q.length : q.incomplete ? -1 : 0;
}

/// s with every maximal ill-formed subsequence replaced by U+FFFD (as the WHATWG decoder does).
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const Utf8Seq q = utf8_at(s, i);
    if (q.length > 0) {
      out.append(s.substr(i, static_cast<std::size_t>(q.length)));
      i += static_cast<std::size_t>(q.length);
    } else {
      out += "\xEF\xBF\xBD";
      i += static_cast<std::size_t>(q.prefix);
    }
  }
  return out;
}

/// The GPT-2 byte-level alphabet: byte b as a printable character (UTF-8), and back.
struct ByteAlphabet {
  std::array<std::string, 256> encode;
  std::unordered_map<std::string, unsigned char> decode;
  ByteAlphabet() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t c =
          printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      append_utf8(encode[static_cast<std::size_t>(b)], c);
      decode.emplace(encode[static_cast<std::size_t>(b)], static_cast<unsigned char>(b));
    }
  }
};

inline const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;
  return a;
}

/// A compiled PCRE2 pattern (UTF, Unicode properties, JIT when available).
class Regex {
 public:
  explicit Regex(const std::string& pattern) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    re_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                            PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr));
    if (!re_) {
      std::array<PCRE2_UCHAR, 256> msg{};
      pcre2_get_error_message(code, msg.data(), msg.size());
      throw tokenizer_error("attnkit: tokenizer: the pattern " + pattern + " does not compile (" +
                            std::string(reinterpret_cast<const char*>(msg.data())) + " at offset " +
                            std::to_string(offset) + ")");
    }
    jit_ = pcre2_jit_compile(re_.get(), PCRE2_JIT_COMPLETE) == 0;
  }

  /// Calls f(begin, end) for each non-overlapping match in s, left to right (an empty match
  /// advances by one character). s must be valid UTF-8.
  template <class F>
  void for_each_match(std::string_view s, F&& f) const {
    std::unique_ptr<pcre2_match_data, MatchDataFree> md(
        pcre2_match_data_create_from_pattern(re_.get(), nullptr));
    PCRE2_SIZE start = 0;
    while (start <= s.size()) {
      const auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
      const int rc =
          jit_ ? pcre2_jit_match(re_.get(), subject, s.size(), start, 0, md.get(), nullptr)
               : pcre2_match(re_.get(), subject, s.size(), start, PCRE2_NO_UTF_CHECK, md.get(),
                             nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0) throw tokenizer_error("attnkit: tokenizer: regular expression match failed");
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      const std::size_t b = ov[0], e = ov[1];
      if (e > b) {
        f(b, e);
        start = e;
      } else {  // an empty match: step over one character
        if (b >= s.size()) return;
        const int n = utf8_sequence(s, b);
        start = b + static_cast<std::size_t>(n > 0 ? n : 1);
      }
    }
  }

 private:
  struct CodeFree {
    void operator()(pcre2_code* c) const noexcept { pcre2_code_free(c); }
  };
  struct MatchDataFree {
    void operator()(pcre2_match_data* m) const noexcept { pcre2_match_data_free(m); }
  };
  std::unique_ptr<pcre2_code, CodeFree> re_;
  bool jit_ = false;
};

/// The regex of the ByteLevel pre-tokenizer with use_regex (GPT-2).
inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

/// The merges: (left id, right id) -> (rank, merged id), an open-addressing table (linear
/// probing, a power-of-two size at most half full): the BPE loop's one hot lookup.
class PairTable {
 public:
  struct Entry {
    std::uint64_t key = empty;
    std::int32_t rank = 0, id = 0;
  };
  static constexpr std::uint64_t empty = ~std::uint64_t{0};

  static std::uint64_t key(std::int32_t a, std::int32_t b) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    table_.assign(cap, Entry{});
    mask_ = cap - 1;
    size_ = 0;
  }
  /// Inserts unless the key is there (the first rank wins).
  void insert(std::uint64_t k, std::int32_t rank, std::int32_t id) {
    if (2 * (size_ + 1) > table_.size()) grow();
    for (std::size_t i = slot(k);; i = (i + 1) & mask_) {
      if (table_[i].key == k) return;
      if (table_[i].key == empty) {
        table_[i] = Entry{k, rank, id};
        ++size_;
        return;
      }
    }
  }
  const Entry* find(std::uint64_t k) const noexcept {
    if (table_.empty()) return nullptr;
    for (std::size_t i = slot(k);; i = (i + 1) & mask_) {
      if (table_[i].key == k) return &table_[i];
      if (table_[i].key == empty) return nullptr;
    }
  }

 private:
  std::size_t slot(std::uint64_t k) const noexcept {
    return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
  }
  void grow() {
    std::vector<Entry> old = std::move(table_);
    reserve(std::max<std::size_t>(old.size(), 8));
    for (const Entry& e : old)
      if (e.key != empty) insert(e.key, e.rank, e.id);
  }
  std::vector<Entry> table_;
  std::size_t mask_ = 0, size_ = 0;
};

/// Hashes std::string and std::string_view alike (lookups by view allocate nothing).
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

inline std::string where(const std::string& file) { return file.empty() ? "" : " (" + file + ")"; }

/// "▁" (U+2581), SentencePiece's space.
inline constexpr std::string_view sp_space = "\xE2\x96\x81";

/// Every occurrence of `from` (not empty) in s replaced by `to`, left to right, the replacements
/// not searched again.
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

}  // namespace detail

/// One added token of tokenizer.json ("added_tokens").
struct AddedToken {
  std::int32_t id = 0;
  std::string content;
  bool special = false;
  bool normalized = false;  ///< matched on the normalized text (not supported with a normalizer)
};

/// A tokenizer read from tokenizer.json: the BPE model, byte-level (GPT-2, Llama 3, Qwen) or on
/// characters with byte fallback (Llama 2, Mistral), with the pieces around it listed at the top
/// of this file. Copies share the thread-local piece cache; encode() and decode() are const and
/// may run on several threads at once.
class Tokenizer {
 public:
  /// Reads `path`: a tokenizer.json file, or a folder holding one. Throws tokenizer_error naming
  /// the file and the component it cannot implement, or what is malformed.
  static Tokenizer load(const std::string& path) {
    std::string file = path;
    if (std::filesystem::is_directory(path))
      file = (std::filesystem::path(path) / "tokenizer.json").string();
    if (!std::filesystem::is_regular_file(file))
      throw tokenizer_error("attnkit: tokenizer: no tokenizer.json at " + path);
    json::Value doc;
    try {
      doc = json::parse_file(file);
    } catch (const error& e) {
      throw tokenizer_error("attnkit: tokenizer: " + file + ": " + e.what());
    }
    Tokenizer t;
    t.file_ = file;
    static std::atomic<std::uint64_t> next_uid{1};
    t.uid_ = next_uid.fetch_add(1);
    try {
      t.read(doc);
    } catch (const json::access_error& e) {
      throw tokenizer_error("attnkit: tokenizer: " + file + " is malformed: " + e.what());
    }
    return t;
  }

  /// Token ids of `text` (UTF-8; throws tokenizer_error for invalid UTF-8). With
  /// add_special_tokens the post-processor's special tokens are added (a TemplateProcessing
  /// post-processor's BOS, say).
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true) const {
    for (std::size_t i = 0; i < text.size();) {
      const int n = detail::utf8_sequence(text, i);
      if (n <= 0)
        throw tokenizer_error("attnkit: tokenizer: the text is not valid UTF-8 (byte " +
                              std::to_string(i) + ")");
      i += static_cast<std::size_t>(n);
    }
    std::vector<std::int32_t> ids;
    Scratch& sc = scratch();
    if (add_special_tokens) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
    // Added tokens split the text first; the pieces between them go through the pipeline.
    std::size_t pos = 0, seg = 0;
    while (pos < text.size()) {
      const AddedToken* hit = match_added(text, pos);
      if (hit == nullptr) {
        ++pos;
        continue;
      }
      encode_plain(text.substr(seg, pos - seg), ids, sc, seg == 0);
      ids.push_back(hit->id);
      pos += hit->content.size();
      seg = pos;
    }
    encode_plain(text.substr(seg), ids, sc, seg == 0);
    if (add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  /// The raw bytes the ids stand for (added tokens as their content; special ones left out with
  /// skip_special): what decode() turns into text. Throws tokenizer_error for an unknown id.
  std::string decode_bytes(std::span<const std::int32_t> ids, bool skip_special = false) const {
    index_t strip_left = strip_start();
    return decode_bytes_from(ids, skip_special, strip_left);
  }

  /// How many leading characters of a sequence's text the decoder strips (its Strip step).
  index_t strip_start() const noexcept { return strip_start_; }

  /// decode_bytes() of ids that continue a sequence: `strip_left` is how many leading characters
  /// the decoder may still strip (strip_start() at the start of a sequence, then what this call
  /// leaves): what StreamDecoder calls token by token.
  std::string decode_bytes_from(std::span<const std::int32_t> ids, bool skip_special,
                                index_t& strip_left) const {
    std::string out;
    for (std::int32_t id : ids) {
      check_id(id);
      const std::size_t u = static_cast<std::size_t>(id);
      if (added_flag_[u] != 0) {
        if (skip_special && added_flag_[u] == 2) continue;
        out += tokens_[u];
        strip_left = 0;
        continue;
      }
      std::string_view b = bytes_[u];
      // The decoder's Strip: up to strip_left leading characters of the sequence's text.
      for (; strip_left > 0 && b.starts_with(strip_char_); --strip_left)
        b.remove_prefix(strip_char_.size());
      if (!b.empty() || strip_first_only_) strip_left = 0;
      out += b;
    }
    return out;
  }

  /// The text of the ids: their bytes, ill-formed UTF-8 replaced by U+FFFD.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special = false) const {
    return detail::utf8_lossy(decode_bytes(ids, skip_special));
  }

  /// The vocabulary string of id (the byte-level characters, or an added token's content).
  const std::string& token(std::int32_t id) const {
    check_id(id);
    return tokens_[static_cast<std::size_t>(id)];
  }
  /// Whether id is a token of the file (of its vocabulary or an added one).
  bool contains(std::int64_t id) const noexcept {
    return id >= 0 && static_cast<std::size_t>(id) < known_.size() &&
           known_[static_cast<std::size_t>(id)] != 0;
  }
  /// The id of a vocabulary string or added token, if any.
  std::optional<std::int32_t> id_of(std::string_view token) const {
    const auto it = vocab_.find(token);
    if (it != vocab_.end()) return it->second;
    for (const AddedToken& a : added_)
      if (a.content == token) return a.id;
    return std::nullopt;
  }
  /// One past the largest id.
  std::int32_t size() const noexcept { return static_cast<std::int32_t>(tokens_.size()); }
  const std::vector<AddedToken>& added_tokens() const noexcept { return added_; }
  /// Whether id is a special added token.
  bool is_special(std::int32_t id) const noexcept {
    return id >= 0 && static_cast<std::size_t>(id) < added_flag_.size() &&
           added_flag_[static_cast<std::size_t>(id)] == 2;
  }
  const std::string& file() const noexcept { return file_; }
  /// Forgets the pieces encode() has cached on the calling thread (benchmarks measure cold
  /// calls with it; the cache never changes the ids).
  void clear_cache() const {
    Scratch& sc = scratch();
    sc.seen.clear();
    sc.seen_ids.clear();
  }

 private:
  struct Piece {  // one pre-tokenizer step
    enum Kind { split, byte_level, metaspace } kind = split;
    std::shared_ptr<const detail::Regex> regex;  // split: the pattern; byte_level: GPT-2's or none
    bool add_prefix_space = false;
    // metaspace: spaces become `replacement`, prepended to the text (always, or only to the part
    // at the start of the text: first) unless it starts with one; split cuts before each one.
    std::string replacement;
    enum Prepend { always, first, never } prepend = always;
    bool split_words = true;
  };
  std::string file_;
  std::uint64_t uid_ = 0;  // which thread-local scratch (piece cache) is this tokenizer's
  std::unordered_map<std::string, std::int32_t, detail::StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> tokens_;        // id -> vocabulary string / added content
  std::vector<std::string> bytes_;         // id -> the bytes of a byte-level vocabulary string
  std::vector<unsigned char> known_;       // id is in the vocabulary or added
  std::vector<unsigned char> added_flag_;  // 0 model token, 1 added, 2 special added
  std::vector<AddedToken> added_;
  std::array<std::vector<const AddedToken*>, 256> added_by_byte_{};  // by first byte, longest first
  detail::PairTable merges_;
  std::vector<Piece> pre_;
  bool ignore_merges_ = false;
  std::array<std::int32_t, 256> byte_id_{};    // the token of each byte's character, -1 for none
  std::vector<std::int32_t> prefix_, suffix_;  // TemplateProcessing's special tokens
  struct Normalizer {
    enum Kind { nfc, nfd, nfkc, nfkd, prepend, replace } kind;
    std::string a, b;  // prepend: a; replace: a -> b
  };
  std::vector<Normalizer> norm_;
  bool byte_level_ = false;  // the pre-tokenizer maps bytes to characters (ByteLevel)
  // No merge joins a token ending in another character to one starting with "▁" (and "▁" is a
  // token): BPE of the whole text equals BPE of its words "▁...▁word" cut before each "▁" that
  // follows another character, so each word is encoded (and cached) on its own.
  bool word_split_ = true;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  std::int32_t unk_id_ = -1;
  std::array<std::int32_t, 256> fallback_id_{};  // <0xXX> of each byte, -1 for none
  index_t strip_start_ = 0;  // leading strip_char_ characters the decoder removes from a sequence
  bool strip_first_only_ = false;  // Metaspace: only the first token's leading space
  std::string strip_char_ = " ";

  /// Throws tokenizer_error for an id that is not a token of the file.
  void check_id(std::int32_t id) const {
    if (!contains(id))
      throw tokenizer_error("attnkit: tokenizer: token id " + std::to_string(id) +
                            " is not in the vocabulary" + detail::where(file_));
  }

  [[noreturn]] void unsupported(const std::string& what) const {
    throw tokenizer_error("attnkit: tokenizer: " + file_ + ": " + what +
                          " is not supported (implemented: the BPE model, byte-level or on "
                          "characters with byte fallback; the normalizers NFC, NFD, NFKC, NFKD, "
                          "Prepend, Replace; the pre-tokenizers Split, ByteLevel, Metaspace; the "
                          "post-processors ByteLevel, TemplateProcessing; the decoders ByteLevel, "
                          "Replace, ByteFallback, Fuse, Strip, Metaspace)");
  }

  const AddedToken* match_added(std::string_view text, std::size_t pos) const {
    for (const AddedToken* a : added_by_byte_[static_cast<unsigned char>(text[pos])])
      if (text.compare(pos, a->content.size(), a->content) == 0) return a;
    return nullptr;
  }

  void read(const json::Value& doc) {
    using json::Value;
    auto type_of = [](const Value& v) {
      return v.is_object() ? v.get_string("type", "?") : std::string("?");
    };
    // normalizer
    if (const Value* n = doc.find("normalizer"); n != nullptr && !n->is_null()) read_norm(*n);
    // model
    const Value& m = doc.at("model");
    if (type_of(m) != "BPE") unsupported("the model " + type_of(m));
    auto nonempty = [&](const char* key) {
      const Value* v = m.find(key);
      return v != nullptr && !v->is_null() && !(v->is_string() && v->as_string().empty());
    };
    if (nonempty("dropout")) unsupported("BPE dropout");
    byte_fallback_ = m.get_bool("byte_fallback", false);
    fuse_unk_ = m.get_bool("fuse_unk", false);
    if (nonempty("continuing_subword_prefix")) unsupported("BPE continuing_subword_prefix");
    if (nonempty("end_of_word_suffix")) unsupported("BPE end_of_word_suffix");
    ignore_merges_ = m.get_bool("ignore_merges", false);
    const detail::ByteAlphabet& alpha = detail::byte_alphabet();
    std::int32_t top = -1;
    for (const auto& [tok, idv] : m.at("vocab").as_object()) {
      const std::int64_t id = idv.as_int();
      if (id < 0 || id > std::numeric_limits<std::int32_t>::max() / 2)
        throw tokenizer_error("attnkit: tokenizer: " + file_ + ": vocabulary id " +
                              std::to_string(id) + " of \"" + tok + "\" is out of range");
      vocab_.emplace(tok, static_cast<std::int32_t>(id));
      top = std::max(top, static_cast<std::int32_t>(id));
    }
    std::int32_t added_top = -1;
    const Value* added = doc.find("added_tokens");
    if (added != nullptr && !added->is_null())
      for (const Value& a : added->as_array()) {
        const std::int64_t id = a.get_int("id");
        if (id < 0 || id > std::numeric_limits<std::int32_t>::max() / 2)
          throw tokenizer_error("attnkit: tokenizer: " + file_ + ": added token id " +
                                std::to_string(id) + " is out of range");
        added_top = std::max(added_top, static_cast<std::int32_t>(id));
      }
    // Ids index arrays: they must be about as dense as a real vocabulary's (a hostile file's
    // id of 10^9 is an error, not gigabytes of empty entries).
    const std::size_t entries =
        vocab_.size() + (added != nullptr && !added->is_null() ? added->size() : 0);
    if (static_cast<std::size_t>(std::max(top, added_top)) >= 2 * entries + 256)
      throw tokenizer_error("attnkit: tokenizer: " + file_ + ": token id " +
                            std::to_string(std::max(top, added_top)) + " for " +
                            std::to_string(entries) + " tokens: the ids are not dense");
    const std::size_t n = static_cast<std::size_t>(std::max(top, added_top) + 1);
    tokens_.assign(n, {});
    bytes_.assign(n, {});
    known_.assign(n, 0);
    added_flag_.assign(n, 0);
    for (const auto& [tok, id] : vocab_) {
      const std::size_t u = static_cast<std::size_t>(id);
      tokens_[u] = tok;
      known_[u] = 1;
    }
    for (int c = 0; c < 256; ++c) {
      const auto it = vocab_.find(alpha.encode[static_cast<std::size_t>(c)]);
      byte_id_[static_cast<std::size_t>(c)] = it == vocab_.end() ? -1 : it->second;
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", c);
      const auto fb = vocab_.find(hex);
      fallback_id_[static_cast<std::size_t>(c)] = fb == vocab_.end() ? -1 : fb->second;
    }
    if (const Value* u = m.find("unk_token"); u != nullptr && !u->is_null()) {
      const auto it = vocab_.find(u->as_string());
      if (it == vocab_.end())
        throw tokenizer_error("attnkit: tokenizer: " + file_ + ": the unk_token \"" +
                              u->as_string() + "\" is not in the vocabulary");
      unk_id_ = it->second;
    }
    // merges: "a b" strings or ["a", "b"] pairs, by rank.
    const Value::Array& merges = m.at("merges").as_array();
    merges_.reserve(merges.size());
    for (std::size_t r = 0; r < merges.size(); ++r) {
      std::string a, b;
      if (merges[r].is_string()) {
        const std::string& s = merges[r].as_string();
        const std::size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          throw tokenizer_error("attnkit: tokenizer: " + file_ + ": merge " + std::to_string(r) +
                                " \"" + s + "\" is not two tokens");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        const Value::Array& p = merges[r].as_array();
        if (p.size() != 2)
          throw tokenizer_error("attnkit: tokenizer: " + file_ + ": merge " + std::to_string(r) +
                                " is not a pair");
        a = p[0].as_string();
        b = p[1].as_string();
      }
      const auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
      if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
        throw tokenizer_error("attnkit: tokenizer: " + file_ + ": merge " + std::to_string(r) +
                              " (\"" + a + "\", \"" + b +
                              "\") names a token not in the vocabulary");
      merges_.insert(detail::PairTable::key(ia->second, ib->second), static_cast<std::int32_t>(r),
                     im->second);  // the first rank wins
      // A merge that joins a token ending in another character to one starting with "▁" could
      // cross a word boundary; without any, words merge independently (see encode_plain).
      if (b.starts_with(detail::sp_space) && !a.ends_with(detail::sp_space)) word_split_ = false;
    }
    word_split_ = word_split_ && vocab_.count(std::string(detail::sp_space)) != 0;
    // added tokens
    if (added != nullptr && !added->is_null()) {
      for (const Value& a : added->as_array()) {
        AddedToken t;
        t.id = static_cast<std::int32_t>(a.get_int("id"));
        t.content = a.get_string("content");
        t.special = a.get_bool("special", false);
        t.normalized = a.get_bool("normalized", false);
        for (const char* flag : {"single_word", "lstrip", "rstrip"})
          if (a.get_bool(flag, false)) unsupported(std::string("an added token with ") + flag);
        if (t.content.empty())
          throw tokenizer_error("attnkit: tokenizer: " + file_ + ": added token " +
                                std::to_string(t.id) + " is empty");
        const std::size_t u = static_cast<std::size_t>(t.id);
        tokens_[u] = t.content;
        bytes_[u] = t.content;
        known_[u] = 1;
        added_flag_[u] = t.special ? 2 : 1;
        added_.push_back(std::move(t));
      }
      for (const AddedToken& t : added_)
        added_by_byte_[static_cast<unsigned char>(t.content[0])].push_back(&t);
      for (auto& list : added_by_byte_)  // longest first: the leftmost-longest match
        std::stable_sort(list.begin(), list.end(), [](const AddedToken* x, const AddedToken* y) {
          return x->content.size() > y->content.size();
        });
    }
    // pre-tokenizer
    if (const Value* p = doc.find("pre_tokenizer"); p != nullptr && !p->is_null()) {
      if (type_of(*p) == "Sequence") {
        for (const Value& s : p->at("pretokenizers").as_array()) read_pre(s);
      } else {
        read_pre(*p);
      }
    }
    // post-processor
    if (const Value* p = doc.find("post_processor"); p != nullptr && !p->is_null()) read_post(*p);
    for (const AddedToken& a : added_)
      if (!norm_.empty() && a.normalized)
        unsupported("an added token matched after normalization (\"" + a.content + "\")");
    // decoder: each model token's bytes, once
    std::vector<const Value*> steps;
    if (const Value* d = doc.find("decoder"); d != nullptr && !d->is_null()) {
      if (type_of(*d) == "Sequence") {
        for (const Value& x : d->at("decoders").as_array()) steps.push_back(&x);
      } else {
        steps.push_back(d);
      }
    } else {
      unsupported("a file without a decoder");
    }
    // Each model token's bytes: its string through the decoder's per-token steps in order.
    for (std::size_t u = 0; u < tokens_.size(); ++u)
      if (added_flag_[u] == 0 && known_[u]) bytes_[u] = tokens_[u];
    bool fused = false;
    for (const Value* st : steps) {
      const std::string type = type_of(*st);
      auto each = [&](auto&& f) {
        for (std::size_t u = 0; u < tokens_.size(); ++u)
          if (added_flag_[u] == 0 && known_[u]) f(bytes_[u]);
      };
      if (fused && type != "Strip") unsupported("the decoder " + type + " after Fuse");
      if (type == "ByteLevel") {
        each([&](std::string& t) {  // each character one byte of the alphabet
          std::string b;
          for (std::size_t i = 0; i < t.size();) {
            const int len = detail::utf8_sequence(t, i);
            const auto it = len > 0 ? alpha.decode.find(t.substr(i, static_cast<std::size_t>(len)))
                                    : alpha.decode.end();
            if (it == alpha.decode.end()) return;  // not a byte-level string: its own text
            b += static_cast<char>(it->second);
            i += static_cast<std::size_t>(len);
          }
          t = std::move(b);
        });
      } else if (type == "ByteFallback") {
        each([&](std::string& t) {
          const auto hex = [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
          };
          if (t.size() == 6 && t.starts_with("<0x") && t.back() == '>' && hex(t[3]) && hex(t[4]))
            t = std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
        });
      } else if (type == "Replace") {
        const std::string from = st->at("pattern").at("String").as_string();
        const std::string to = st->get_string("content");
        if (from.empty()) unsupported("a Replace decoder with an empty pattern");
        each([&](std::string& t) { detail::replace_all(t, from, to); });
      } else if (type == "Metaspace") {
        // Each token's replacement becomes a space; unless prepend_scheme is never, the first
        // token of a sequence loses one leading space (strip_first_only_).
        const std::string from = st->get_string("replacement", std::string(detail::sp_space));
        if (from.empty()) unsupported("a Metaspace decoder with an empty replacement");
        each([&](std::string& t) { detail::replace_all(t, from, " "); });
        if (metaspace_prepend(*st) != Piece::never) {
          if (strip_start_ != 0) unsupported("a Metaspace decoder with a Strip decoder");
          strip_char_ = " ";
          strip_start_ = 1;
          strip_first_only_ = true;
        }
      } else if (type == "Fuse") {
        fused = true;
      } else if (type == "Strip") {
        if (!fused) unsupported("a Strip decoder before Fuse");
        if (strip_first_only_) unsupported("a Strip decoder with a Metaspace decoder");
        if (st->get_int("stop", 0) != 0) unsupported("a Strip decoder with stop > 0");
        strip_char_ = st->get_string("content");
        strip_start_ = static_cast<index_t>(st->get_int("start", 0));
        if (strip_char_.empty()) unsupported("a Strip decoder with empty content");
      } else {
        unsupported("the decoder " + type);
      }
    }
  }

  void read_norm(const json::Value& n) {
    const std::string type = n.get_string("type", "?");
    if (type == "Sequence") {
      for (const json::Value& x : n.at("normalizers").as_array()) read_norm(x);
    } else if (type == "NFC") {
      norm_.push_back({Normalizer::nfc, {}, {}});
    } else if (type == "NFD") {
      norm_.push_back({Normalizer::nfd, {}, {}});
    } else if (type == "NFKC") {
      norm_.push_back({Normalizer::nfkc, {}, {}});
    } else if (type == "NFKD") {
      norm_.push_back({Normalizer::nfkd, {}, {}});
    } else if (type == "Prepend") {
      norm_.push_back({Normalizer::prepend, n.get_string("prepend"), {}});
    } else if (type == "Replace") {
      const json::Value& pat = n.at("pattern");
      if (!pat.contains("String")) unsupported("a Replace normalizer with a regex pattern");
      const std::string from = pat.at("String").as_string();
      if (from.empty()) unsupported("a Replace normalizer with an empty pattern");
      norm_.push_back({Normalizer::replace, from, n.get_string("content")});
    } else {
      unsupported("the normalizer " + type);
    }
  }

  /// The normalizers applied to text (valid UTF-8).
  std::string normalize(std::string_view text) const {
    std::string s(text);
    for (const Normalizer& nz : norm_) {
      switch (nz.kind) {
        case Normalizer::prepend:
          if (!s.empty()) s.insert(0, nz.a);
          break;
        case Normalizer::replace:
          detail::replace_all(s, nz.a, nz.b);
          break;
        default: {
          const int opts =
              UTF8PROC_STABLE |
              (nz.kind == Normalizer::nfc || nz.kind == Normalizer::nfkc ? UTF8PROC_COMPOSE
                                                                         : UTF8PROC_DECOMPOSE) |
              (nz.kind == Normalizer::nfkc || nz.kind == Normalizer::nfkd ? UTF8PROC_COMPAT : 0);
          utf8proc_uint8_t* out = nullptr;
          const utf8proc_ssize_t n = utf8proc_map(
              reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
              static_cast<utf8proc_ssize_t>(s.size()), &out, static_cast<utf8proc_option_t>(opts));
          if (n < 0)
            throw tokenizer_error(
                std::string("attnkit: tokenizer: Unicode normalization failed: ") +
                utf8proc_errmsg(n));
          s.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
          std::free(out);
        }
      }
    }
    return s;
  }

  /// A Metaspace step's prepend scheme (pre-tokenizer or decoder): prepend_scheme when given,
  /// else add_prefix_space (default true) as always / never.
  Piece::Prepend metaspace_prepend(const json::Value& s) const {
    const std::string scheme =
        s.get_string("prepend_scheme", s.get_bool("add_prefix_space", true) ? "always" : "never");
    if (scheme == "always") return Piece::always;
    if (scheme == "first") return Piece::first;
    if (scheme != "never") unsupported("the Metaspace prepend_scheme " + scheme);
    return Piece::never;
  }

  void read_pre(const json::Value& s) {
    const std::string type = s.get_string("type", "?");
    Piece p;
    if (type == "Split") {
      const json::Value& pat = s.at("pattern");
      std::string re;
      if (const auto* r = pat.find("Regex")) {
        re = r->as_string();
      } else {
        re = pat.at("String").as_string();  // a literal: quote it
        re = "\\Q" + re + "\\E";
      }
      if (s.get_string("behavior", "") != "Isolated")
        unsupported("the Split behavior " + s.get_string("behavior", "?"));
      if (s.get_bool("invert", false)) unsupported("an inverted Split");
      p.kind = Piece::split;
      p.regex = std::make_shared<const detail::Regex>(re);
    } else if (type == "Metaspace") {
      // Hugging Face's semantics (metaspace_prepend); split (default true) cuts before every
      // replacement.
      p.kind = Piece::metaspace;
      p.replacement = s.get_string("replacement", std::string(detail::sp_space));
      if (p.replacement.empty()) unsupported("a Metaspace pre-tokenizer with an empty replacement");
      p.prepend = metaspace_prepend(s);
      p.split_words = s.get_bool("split", true);
    } else if (type == "ByteLevel") {
      p.kind = Piece::byte_level;
      byte_level_ = true;
      p.add_prefix_space = s.get_bool("add_prefix_space", false);
      if (s.get_bool("use_regex", true))
        p.regex = std::make_shared<const detail::Regex>(std::string(detail::gpt2_pattern));
    } else {
      unsupported("the pre-tokenizer " + type);
    }
    pre_.push_back(std::move(p));
  }

  void read_post(const json::Value& p) {
    const std::string type = p.get_string("type", "?");
    if (type == "ByteLevel") return;  // offsets only
    if (type == "Sequence") {
      for (const json::Value& s : p.at("processors").as_array()) read_post(s);
      return;
    }
    if (type != "TemplateProcessing") unsupported("the post-processor " + type);
    bool seen_a = false;
    for (const json::Value& item : p.at("single").as_array()) {
      if (const auto* sp = item.find("SpecialToken")) {
        const std::string name = sp->get_string("id");
        const json::Value& st = p.at("special_tokens").at(name);
        for (const json::Value& id : st.at("ids").as_array()) {
          const std::int64_t v = id.as_int();
          if (!contains(v))
            throw tokenizer_error("attnkit: tokenizer: " + file_ + ": the post-processor's " +
                                  name + " has id " + std::to_string(v) + ", which is not a token");
          (seen_a ? suffix_ : prefix_).push_back(static_cast<std::int32_t>(v));
        }
      } else if (const auto* seq = item.find("Sequence")) {
        if (seq->get_string("id") != "A")
          unsupported("a TemplateProcessing single template with B");
        seen_a = true;
      }
    }
  }

  /// What one encode() call reuses: the pieces, the byte-level word, the merge symbols, and the
  /// ids of each distinct piece seen so far (text repeats its words).
  struct Scratch {
    std::string buf;  // the text the pieces index
    std::vector<std::pair<std::size_t, std::size_t>> pieces, next;
    std::string word;
    std::vector<std::int32_t> sym;
    std::unordered_map<std::string, std::pair<std::uint32_t, std::uint32_t>, detail::StringHash,
                       std::equal_to<>>
        seen;
    std::vector<std::int32_t> seen_ids;
  };

  /// The calling thread's scratch for this tokenizer (and its copies): the piece cache persists
  /// across calls, up to about a million pieces, then starts again.
  Scratch& scratch() const {
    thread_local std::unordered_map<std::uint64_t, Scratch> per_tokenizer;
    if (per_tokenizer.size() >= 8 && per_tokenizer.count(uid_) == 0) per_tokenizer.clear();
    Scratch& sc = per_tokenizer[uid_];
    if (sc.seen.size() > (std::size_t{1} << 20) || sc.seen_ids.size() > (std::size_t{1} << 24)) {
      sc.seen.clear();
      sc.seen_ids.clear();
    }
    return sc;
  }

  /// Pre-tokenizes and BPE-encodes text without added tokens, appending the ids.
  void encode_plain(std::string_view text, std::vector<std::int32_t>& ids, Scratch& sc,
                    bool at_start) const {
    if (text.empty()) return;
    // The pre-tokenizer steps cut the normalized text into pieces (ranges of sc.buf); ByteLevel
    // maps each piece's bytes afterwards, in bpe().
    if (norm_.empty()) {
      sc.buf.assign(text);
    } else {
      sc.buf = normalize(text);
    }
    sc.pieces.assign(1, {0, sc.buf.size()});
    for (const Piece& step : pre_) {
      if (step.kind == Piece::byte_level && step.add_prefix_space) {
        std::string grown;
        std::vector<std::pair<std::size_t, std::size_t>> moved;
        for (const auto& [b, e] : sc.pieces) {
          const std::size_t at = grown.size();
          if (e > b && sc.buf[b] != ' ') grown += ' ';
          grown.append(sc.buf, b, e - b);
          moved.emplace_back(at, grown.size());
        }
        sc.buf = std::move(grown);
        sc.pieces = std::move(moved);
      }
      if (step.kind == Piece::metaspace) {
        std::string grown;
        std::vector<std::pair<std::size_t, std::size_t>> moved;
        const std::string& r = step.replacement;
        for (std::size_t i = 0; i < sc.pieces.size(); ++i) {
          const auto [b, e] = sc.pieces[i];
          const std::size_t at = grown.size();
          for (std::size_t c = b; c < e; ++c) {
            if (sc.buf[c] == ' ')
              grown += r;
            else
              grown += sc.buf[c];
          }
          const bool prepend = step.prepend == Piece::always ||
                               (step.prepend == Piece::first && at_start && i == 0 && b == 0);
          if (prepend && e > b && std::string_view(grown).substr(at).rfind(r, 0) != 0)
            grown.insert(at, r);
          if (!step.split_words) {
            moved.emplace_back(at, grown.size());
            continue;
          }
          // Cut before each replacement (it starts the next piece: "▁a▁▁b" -> ▁a, ▁, ▁b).
          std::size_t from = at;
          for (std::size_t k = grown.find(r, at + 1); k != std::string::npos;
               k = grown.find(r, k + r.size())) {
            if (k > from) moved.emplace_back(from, k);
            from = k;
          }
          if (grown.size() > from) moved.emplace_back(from, grown.size());
        }
        sc.buf = std::move(grown);
        sc.pieces = std::move(moved);
      }
      if (step.regex) {
        sc.next.clear();
        for (const auto& piece : sc.pieces) {
          const std::size_t b = piece.first, e = piece.second;  // (lambdas capture no bindings)
          std::size_t last = b;
          step.regex->for_each_match(std::string_view(sc.buf).substr(b, e - b),
                                     [&](std::size_t mb, std::size_t me) {
                                       if (b + mb > last) sc.next.emplace_back(last, b + mb);
                                       sc.next.emplace_back(b + mb, b + me);
                                       last = b + me;
                                     });
          if (last < e) sc.next.emplace_back(last, e);
        }
        std::swap(sc.pieces, sc.next);
      }
    }
    for (const auto& [b, e] : sc.pieces) {
      const std::string_view all = std::string_view(sc.buf).substr(b, e - b);
      if (byte_level_ || !word_split_) {
        bpe(all, ids, sc);
        continue;
      }
      // SentencePiece style (often no pre-tokenizer: the whole text is one piece): cut the piece
      // into its words; the same ids (word_split_), and the piece cache reuses repeated words.
      constexpr std::string_view mark = detail::sp_space;
      std::size_t last = 0;
      for (std::size_t at = all.find(mark, 1); at != std::string_view::npos;
           at = all.find(mark, at + mark.size()))
        if (at < mark.size() || all.substr(at - mark.size(), mark.size()) != mark) {
          bpe(all.substr(last, at - last), ids, sc);
          last = at;
        }
      bpe(all.substr(last), ids, sc);
    }
  }

  /// BPE of one piece's bytes (the ids of a piece seen before in this call are reused).
  void bpe(std::string_view piece, std::vector<std::int32_t>& ids, Scratch& sc) const {
    if (piece.empty()) return;
    if (const auto it = sc.seen.find(piece); it != sc.seen.end()) {
      const auto [off, len] = it->second;
      ids.insert(ids.end(), sc.seen_ids.begin() + off, sc.seen_ids.begin() + off + len);
      return;
    }
    const std::size_t first = ids.size();
    bpe_uncached(piece, ids, sc);
    if (sc.seen_ids.size() + (ids.size() - first) < std::numeric_limits<std::uint32_t>::max()) {
      const auto off = static_cast<std::uint32_t>(sc.seen_ids.size());
      sc.seen_ids.insert(sc.seen_ids.end(), ids.begin() + static_cast<std::ptrdiff_t>(first),
                         ids.end());
      sc.seen.emplace(std::string(piece),
                      std::pair{off, static_cast<std::uint32_t>(ids.size() - first)});
    }
  }

  void bpe_uncached(std::string_view piece, std::vector<std::int32_t>& ids, Scratch& sc) const {
    const detail::ByteAlphabet& alpha = detail::byte_alphabet();
    if (ignore_merges_) {
      sc.word.clear();
      if (byte_level_) {
        for (char c : piece) sc.word += alpha.encode[static_cast<unsigned char>(c)];
      } else {
        sc.word.assign(piece);
      }
      const auto it = vocab_.find(sc.word);
      if (it != vocab_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    // The initial symbols: each byte's character (byte-level), or each character, else its
    // bytes' <0xXX> tokens (byte fallback), else the unknown token.
    std::vector<std::int32_t>& sym = sc.sym;
    sym.clear();
    auto no_token = [&](std::string_view what) {
      throw tokenizer_error("attnkit: tokenizer: " + file_ + ": " + std::string(what) +
                            " has no token (and the model has no byte fallback or unk_token)");
    };
    if (byte_level_) {
      for (char c : piece) {
        const std::int32_t id = byte_id_[static_cast<unsigned char>(c)];
        if (id < 0) no_token("the byte " + std::to_string(static_cast<unsigned char>(c)));
        sym.push_back(id);
      }
    } else {
      bool last_unk = false;
      for (std::size_t i = 0; i < piece.size();) {
        const int len = std::max(detail::utf8_sequence(piece, i), 1);
        const std::string_view ch = piece.substr(i, static_cast<std::size_t>(len));
        i += static_cast<std::size_t>(len);
        if (const auto it = vocab_.find(ch); it != vocab_.end()) {
          sym.push_back(it->second);
          last_unk = false;
          continue;
        }
        bool fell_back = byte_fallback_;
        for (char c : ch) fell_back = fell_back && fallback_id_[static_cast<unsigned char>(c)] >= 0;
        if (fell_back) {
          for (char c : ch) sym.push_back(fallback_id_[static_cast<unsigned char>(c)]);
          last_unk = false;
        } else if (unk_id_ >= 0) {
          if (!(fuse_unk_ && last_unk)) sym.push_back(unk_id_);
          last_unk = true;
        } else {
          no_token("the character \"" + std::string(ch) + "\"");
        }
      }
    }
    merge(sym);
    ids.insert(ids.end(), sym.begin(), sym.end());
  }

  /// Applies the merges to the symbols: the adjacent pair of lowest rank first (leftmost among
  /// equals), until none applies; a heap over the pairs and a linked list over the symbols.
  void merge(std::vector<std::int32_t>& sym) const {
    const std::size_t n = sym.size();
    if (n < 2) return;
    auto rank_of = [&](std::int32_t a, std::int32_t b) {
      return merges_.find(detail::PairTable::key(a, b));
    };
    if (n <= 8) {  // short: rescan (fewer steps than the heap's bookkeeping)
      while (sym.size() > 1) {
        std::int32_t best = std::numeric_limits<std::int32_t>::max(), merged = -1;
        std::size_t at = 0;
        for (std::size_t i = 0; i + 1 < sym.size(); ++i)
          if (const auto* m = rank_of(sym[i], sym[i + 1]); m != nullptr && m->rank < best) {
            best = m->rank;
            merged = m->id;
            at = i;
          }
        if (merged < 0) return;
        sym[at] = merged;
        sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(at) + 1);
      }
      return;
    }
    struct Cand {
      std::int32_t rank;
      std::size_t pos;
      std::int32_t left, right;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<std::size_t> next(n), prev(n);
    std::vector<unsigned char> alive(n, 1);
    for (std::size_t i = 0; i < n; ++i) {
      next[i] = i + 1;
      prev[i] = i == 0 ? n : i - 1;
    }
    std::vector<Cand> heap;
    auto push = [&](std::size_t i) {
      if (i >= n || next[i] >= n) return;
      if (const auto* m = rank_of(sym[i], sym[next[i]]))
        heap.push_back(Cand{m->rank, i, sym[i], sym[next[i]]}),
            std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    };
    for (std::size_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
      const Cand c = heap.back();
      heap.pop_back();
      const std::size_t i = c.pos;
      if (!alive[i] || next[i] >= n || sym[i] != c.left || sym[next[i]] != c.right) continue;
      const std::size_t j = next[i];
      sym[i] = rank_of(c.left, c.right)->id;
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] < n) prev[next[j]] = i;
      if (prev[i] < n) push(prev[i]);
      push(i);
    }
    std::size_t w = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (alive[i]) sym[w++] = sym[i];
    sym.resize(w);
  }
};

/// Each token of a sequence with its place in the decoded sequence: for labels (heatmap axes)
/// and for finding the tokens that spell a word.
struct TokenSpans {
  std::string text;                 ///< the decoded bytes of the whole sequence
  std::vector<std::size_t> starts;  ///< byte offset of each token in text, then text.size()
  std::vector<std::string> labels;  ///< each token's text (ill-formed UTF-8 as U+FFFD)

  /// The tokens that overlap an occurrence of `word` (not empty) in text, ascending.
  std::vector<index_t> overlapping(std::string_view word) const {
    const std::size_t n = labels.size();
    std::vector<bool> hit(n, false);
    for (std::size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1))
      for (std::size_t i = 0; i < n; ++i)
        if (starts[i] < at + word.size() && starts[i + 1] > at) hit[i] = true;
    std::vector<index_t> out;
    for (std::size_t i = 0; i < n; ++i)
      if (hit[i]) out.push_back(static_cast<index_t>(i));
    return out;
  }
};

/// The spans of ids (the decoder's leading strip applied once, as for the whole sequence).
/// Throws tokenizer_error for an id that is not a token of the file.
inline TokenSpans token_spans(const Tokenizer& tok, std::span<const std::int64_t> ids) {
  TokenSpans s;
  index_t strip_left = tok.strip_start();
  for (std::int64_t id : ids) {
    const std::int32_t one[1] = {static_cast<std::int32_t>(id)};
    const std::string bytes = tok.decode_bytes_from(one, false, strip_left);
    s.starts.push_back(s.text.size());
    s.text += bytes;
    s.labels.push_back(detail::utf8_lossy(bytes));
  }
  s.starts.push_back(s.text.size());
  return s;
}

/// Incremental decoding: push ids as they are generated and take the text that is complete; a
/// multi-byte character split across tokens is held back until its last byte arrives, so the
/// pieces concatenate to decode() of all the ids and none is a broken UTF-8 sequence.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false)
      : tok_(&tok), skip_special_(skip_special), strip_left_(tok.strip_start()) {}

  /// The text that id completes (possibly empty).
  std::string push(std::int32_t id) {
    const std::int32_t one[1] = {id};
    pending_ += tok_->decode_bytes_from(one, skip_special_, strip_left_);
    // Emit up to the last position that does not start an incomplete sequence.
    std::size_t i = 0, cut = 0;
    while (i < pending_.size()) {
      const int n = detail::utf8_sequence(pending_, i);
      if (n == -1) break;  // incomplete: wait for more bytes
      i += static_cast<std::size_t>(n > 0 ? n : 1);
      cut = i;
    }
    std::string out = detail::utf8_lossy(std::string_view(pending_).substr(0, cut));
    pending_.erase(0, cut);
    return out;
  }
  /// What is left at the end (an incomplete sequence becomes U+FFFD).
  std::string finish() {
    std::string out = detail::utf8_lossy(pending_);
    pending_.clear();
    return out;
  }

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  index_t strip_left_;
  std::string pending_;
};

}  // namespace attnkit::text
