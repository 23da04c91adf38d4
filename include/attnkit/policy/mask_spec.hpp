// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// MaskSpec: a mask composed at run time from a spec string of docs/CLI.md ("causal+sliding=128",
// "padding=len.npy+document=seg.npy"): the AND of the terms of mask.hpp, one kernel
// instantiation for every combination of terms.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/policy/concepts.hpp"
#include "attnkit/policy/mask.hpp"

namespace attnkit::policy {

/// An integer array named by a file-backed mask term (padding, keep, document, block-sparse),
/// supplied by the caller: attnkit itself does no file I/O for masks.
struct MaskArray {
  std::vector<index_t> shape;   ///< extents, outermost first
  std::vector<index_t> values;  ///< the elements in C order (bool arrays as 0 and 1)
};

/// Supplies the array of a file-backed term. Called with the term's name ("padding", "keep",
/// "document" or "block-sparse") and the FILE text of the spec; may throw (the exception passes
/// through parse_mask_spec unchanged, so its message should name the file).
using MaskArrayLoader = std::function<MaskArray(std::string_view term, const std::string& file)>;

/// One term of a MaskSpec: a mask of mask.hpp chosen at run time.
using MaskSpecTerm = std::variant<NoMask, Causal, CausalTopLeft, SlidingWindow, LocalWindow, Sinks,
                                  PrefixLM, KeyPadding, KeepMask, Document, BlockSparse>;

/// A mask whose terms are chosen at run time: key j is visible when every term says so (the `+`
/// of docs/CLI.md). classify() is the AND of the terms' tile classes, so a tile any term calls
/// Empty is still skipped and a tile every term calls Full is still untested. An empty spec sees
/// everything (NoMask). Copies share the arrays of file-backed terms.
class MaskSpec {
 public:
  MaskSpec() = default;

  /// Appends a term (NoMask terms are dropped: they change nothing).
  /// \param term the mask
  /// \param text how the term reads in the spec, for messages (e.g. "keep=flags.npy")
  /// \param storage keeps alive the arrays the term's views point into
  void add(MaskSpecTerm term, std::string text, std::shared_ptr<const void> storage = {}) {
    if (std::holds_alternative<NoMask>(term)) return;
    terms_.push_back(std::move(term));
    texts_.push_back(std::move(text));
    storage_.push_back(std::move(storage));
  }

  /// Number of terms (NoMask terms excluded).
  std::size_t size() const noexcept { return terms_.size(); }
  /// Whether the spec has no term (every key is visible).
  bool empty() const noexcept { return terms_.empty(); }
  /// The n-th term.
  const MaskSpecTerm& term(std::size_t n) const { return terms_.at(n); }
  /// How the n-th term reads in the spec.
  const std::string& text(std::size_t n) const { return texts_.at(n); }

  /// Whether key j is visible to the query at absolute position i of head h, batch entry b.
  bool visible(index_t b, index_t h, index_t i, index_t j) const {
    for (const MaskSpecTerm& t : terms_)
      if (!std::visit([&](const auto& m) { return m.visible(b, h, i, j); }, t)) return false;
    return true;
  }

  /// The AND of the terms' classes of the tile [i0, i1) x [j0, j1) (absolute query positions).
  TileClass classify(index_t b, index_t h, index_t i0, index_t i1, index_t j0, index_t j1) const {
    TileClass c = TileClass::full;
    for (const MaskSpecTerm& t : terms_) {
      c = detail::and_class(
          c, std::visit([&](const auto& m) { return m.classify(b, h, i0, i1, j0, j1); }, t));
      if (c == TileClass::empty) break;
    }
    return c;
  }

  /// Checks the arrays of the file-backed terms against the call's shapes (shape_error naming
  /// the term, its shape and the expected one) and binds every term.
  MaskSpec bind(const Geometry& g) const {
    MaskSpec r = *this;
    for (std::size_t n = 0; n < r.terms_.size(); ++n) {
      check_shape(n, g);
      std::visit([&](auto& m) { m = m.bind(g); }, r.terms_[n]);
    }
    return r;
  }

 private:
  template <class GotShape, class WantShape>
  [[noreturn]] void shape_mismatch(std::size_t n, const GotShape& got, const char* layout,
                                   const WantShape& want) const {
    throw shape_error("attnkit: mask term '" + texts_[n] + "': the array has shape " +
                      shape_string(got) + ", expected " + layout + " = " + shape_string(want));
  }

  void check_shape(std::size_t n, const Geometry& g) const {
    const MaskSpecTerm& t = terms_[n];
    if (const auto* p = std::get_if<KeyPadding>(&t)) {
      const index_t len = p->lengths ? static_cast<index_t>(p->lengths->size()) : 0;
      if (len != g.batch) shape_mismatch(n, Shape<1>{len}, "[B]", Shape<1>{g.batch});
    } else if (const auto* k = std::get_if<KeepMask>(&t)) {
      if (k->keep.shape() != Shape<2>{g.batch, g.nk})
        shape_mismatch(n, k->keep.shape(), "[B, Nk]", Shape<2>{g.batch, g.nk});
    } else if (const auto* d = std::get_if<Document>(&t)) {
      if (d->segments.shape() != Shape<2>{g.batch, g.nk})
        shape_mismatch(n, d->segments.shape(), "[B, Nk]", Shape<2>{g.batch, g.nk});
    } else if (const auto* s = std::get_if<BlockSparse>(&t)) {
      const Shape<4> want{g.batch, g.heads_q, (g.nq + s->block_q - 1) / s->block_q,
                          (g.nk + s->block_k - 1) / s->block_k};
      if (s->layout.shape() != want)
        shape_mismatch(n, s->layout.shape(), "[B, Hq, ceil(Nq/BQ), ceil(Nk/BK)]", want);
    }
  }

  std::vector<MaskSpecTerm> terms_;
  std::vector<std::string> texts_;
  std::vector<std::shared_ptr<const void>> storage_;
};

static_assert(mask_policy<MaskSpec>);

namespace detail {

/// The terms of docs/CLI.md's mask table, as the messages list them.
inline constexpr const char* mask_spec_terms =
    "none, causal (= causal=bottom-right), causal=top-left, sliding=W, local=W, sinks=S,W, "
    "prefix-lm=P, padding=FILE, keep=FILE, document=FILE, block-sparse=FILE,BQ,BK";

/// Parses one mask spec; every error names the spec and the term.
class MaskSpecParser {
 public:
  MaskSpecParser(std::string_view spec, const MaskArrayLoader& load) : spec_(spec), load_(load) {}

  MaskSpec parse() {
    MaskSpec out;
    if (spec_.empty())
      throw error("attnkit: mask spec is empty (use 'none' for no mask; terms: " +
                  std::string(mask_spec_terms) + ")");
    std::size_t pos = 0;
    while (true) {
      const std::size_t end = std::min(spec_.find('+', pos), spec_.size());
      term_ = spec_.substr(pos, end - pos);
      if (term_.empty())
        throw error(where_spec() + "empty term at position " + std::to_string(pos) +
                    " (terms are joined by a single '+')");
      parse_term(out);
      if (end == spec_.size()) break;
      pos = end + 1;
    }
    return out;
  }

 private:
  std::string where_spec() const { return "attnkit: mask spec '" + std::string(spec_) + "': "; }
  std::string where() const {
    if (term_ == spec_) return where_spec();
    return where_spec() + "term '" + std::string(term_) + "': ";
  }

  /// An integer argument >= lo; `what` names it ("W of sliding=W").
  index_t integer(std::string_view txt, const std::string& what, index_t lo) const {
    if (txt.empty()) throw error(where() + "missing " + what);
    long long x = 0;
    const auto [p, ec] = std::from_chars(txt.data(), txt.data() + txt.size(), x);
    if (ec == std::errc::result_out_of_range)
      throw error(where() + what + " is out of range: '" + std::string(txt) + "'");
    if (ec != std::errc() || p != txt.data() + txt.size())
      throw error(where() + what + " must be an integer, got '" + std::string(txt) + "'");
    if (x < lo)
      throw error(where() + what + " must be >= " + std::to_string(lo) + ", got " +
                  std::to_string(x));
    return static_cast<index_t>(x);
  }

  /// The array of a file-backed term, checked for rank and element count.
  MaskArray array(std::string_view name, std::string_view file, std::size_t rank,
                  const char* layout) const {
    if (file.empty()) throw error(where() + "missing FILE after '" + std::string(name) + "='");
    if (!load_)
      throw error(where() + "a file-backed term needs a MaskArrayLoader or a map of arrays");
    MaskArray a = load_(name, std::string(file));
    if (a.shape.size() != rank)
      throw shape_error(where() + "expected a rank-" + std::to_string(rank) + " array " + layout +
                        ", " + std::string(file) + " holds shape " + shape_string(a.shape));
    index_t n = 1;
    for (index_t e : a.shape) {
      if (e < 0) throw shape_error(where() + "negative extent in " + shape_string(a.shape));
      if (e != 0 && n > std::numeric_limits<index_t>::max() / e)
        throw shape_error(where() + "the shape " + shape_string(a.shape) + " is too large");
      n *= e;
    }
    if (static_cast<std::size_t>(n) != a.values.size())
      throw shape_error(where() + "the loader gave " + std::to_string(a.values.size()) +
                        " values for shape " + shape_string(a.shape));
    return a;
  }

  static std::shared_ptr<std::vector<std::uint8_t>> flags(const MaskArray& a) {
    auto f = std::make_shared<std::vector<std::uint8_t>>(a.values.size());
    for (std::size_t n = 0; n < a.values.size(); ++n) (*f)[n] = a.values[n] != 0 ? 1 : 0;
    return f;
  }

  void parse_term(MaskSpec& out) const {
    const std::size_t eq = term_.find('=');
    const std::string_view name = term_.substr(0, eq);
    const bool has_arg = eq != std::string_view::npos;
    const std::string_view arg = has_arg ? term_.substr(eq + 1) : std::string_view{};
    const std::string text(term_);
    auto needs_arg = [&](const char* form) {
      if (!has_arg) throw error(where() + "needs a value, as in " + form);
    };
    auto no_arg = [&] {
      if (has_arg) throw error(where() + "'" + std::string(name) + "' takes no value");
    };
    if (name == "none") {
      no_arg();
    } else if (name == "causal") {
      if (!has_arg || arg == "bottom-right") {
        out.add(Causal{}, text);
      } else if (arg == "top-left") {
        out.add(CausalTopLeft{}, text);
      } else {
        throw error(where() + "the alignment of causal is bottom-right (the default) or "
                              "top-left, not '" + std::string(arg) + "'");
      }
    } else if (name == "sliding") {
      needs_arg("sliding=W");
      out.add(SlidingWindow(integer(arg, "W of sliding=W", 1)), text);
    } else if (name == "local") {
      needs_arg("local=W");
      out.add(LocalWindow(integer(arg, "W of local=W", 0)), text);
    } else if (name == "sinks") {
      needs_arg("sinks=S,W");
      const std::size_t comma = arg.find(',');
      if (comma == std::string_view::npos)
        throw error(where() + "needs two numbers, as in sinks=S,W");
      out.add(Sinks(integer(arg.substr(0, comma), "S of sinks=S,W", 0),
                    integer(arg.substr(comma + 1), "W of sinks=S,W", 1)),
              text);
    } else if (name == "prefix-lm") {
      needs_arg("prefix-lm=P");
      out.add(PrefixLM(integer(arg, "P of prefix-lm=P", 0)), text);
    } else if (name == "padding") {
      needs_arg("padding=FILE");
      MaskArray a = array(name, arg, 1, "[B]");
      out.add(KeyPadding(std::move(a.values)), text);
    } else if (name == "keep") {
      needs_arg("keep=FILE");
      const MaskArray a = array(name, arg, 2, "[B, Nk]");
      auto f = flags(a);
      const TensorView<const std::uint8_t, 2> view(f->data(), Shape<2>{a.shape[0], a.shape[1]});
      out.add(KeepMask(view), text, std::move(f));
    } else if (name == "document") {
      needs_arg("document=FILE");
      MaskArray a = array(name, arg, 2, "[B, Nk]");
      auto seg = std::make_shared<std::vector<index_t>>(std::move(a.values));
      const TensorView<const index_t, 2> view(seg->data(), Shape<2>{a.shape[0], a.shape[1]});
      out.add(Document(view), text, std::move(seg));
    } else if (name == "block-sparse") {
      needs_arg("block-sparse=FILE,BQ,BK");
      const std::size_t c2 = arg.rfind(',');
      const std::size_t c1 =
          c2 == std::string_view::npos || c2 == 0 ? std::string_view::npos : arg.rfind(',', c2 - 1);
      if (c1 == std::string_view::npos)
        throw error(where() + "needs a file and two block sizes, as in block-sparse=FILE,BQ,BK");
      const index_t bq = integer(arg.substr(c1 + 1, c2 - c1 - 1), "BQ of block-sparse", 1);
      const index_t bk = integer(arg.substr(c2 + 1), "BK of block-sparse", 1);
      const MaskArray a = array(name, arg.substr(0, c1), 4, "[B, Hq, ceil(Nq/BQ), ceil(Nk/BK)]");
      auto f = flags(a);
      const TensorView<const std::uint8_t, 4> view(
          f->data(), Shape<4>{a.shape[0], a.shape[1], a.shape[2], a.shape[3]});
      out.add(BlockSparse(view, bq, bk), text, std::move(f));
    } else {
      throw error(where_spec() + "unknown term '" + std::string(name) +
                  "' (terms: " + mask_spec_terms + ")");
    }
  }

  std::string_view spec_;
  const MaskArrayLoader& load_;
  std::string_view term_;
};

}  // namespace detail

/// Parses a mask spec of docs/CLI.md: terms joined by `+`, all required: none, causal (or
/// causal=bottom-right), causal=top-left, sliding=W, local=W, sinks=S,W, prefix-lm=P, padding=FILE, keep=FILE, document=FILE,
/// block-sparse=FILE,BQ,BK. FILE may contain ',' (block-sparse splits at its last two commas)
/// but not '+'. Throws attnkit::error naming the spec and the offending term (unknown term,
/// missing or malformed number, W < 1, ...), shape_error for an array of the wrong rank. The
/// arrays' extents are checked against the call's shapes when the mask is bound.
/// \param spec the spec string
/// \param load supplies the arrays of file-backed terms (may be empty when there are none)
inline MaskSpec parse_mask_spec(std::string_view spec, const MaskArrayLoader& load = {}) {
  return detail::MaskSpecParser(spec, load).parse();
}

/// parse_mask_spec with the arrays of file-backed terms given by FILE text.
/// \param arrays FILE text -> array; a FILE missing from the map is an error naming it
inline MaskSpec parse_mask_spec(std::string_view spec,
                                const std::map<std::string, MaskArray, std::less<>>& arrays) {
  const MaskArrayLoader load = [&](std::string_view term, const std::string& file) {
    const auto it = arrays.find(file);
    if (it == arrays.end())
      throw error("attnkit: mask term '" + std::string(term) + "=" + file + "': no array named '" +
                  file + "' was given");
    return it->second;
  };
  return parse_mask_spec(spec, load);
}

}  // namespace attnkit::policy
