// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// MaskSpec: a mask composed at run time from a spec string of docs/CLI.md ("causal+sliding=128",
// "padding=len.npy+document=seg.npy"): the AND of the terms of mask.hpp, one kernel
// instantiation for every combination of terms. The terms a spec may name form a registry, a
// mask_term_list: each mask type carries its name, form, help and from_spec, so a new term is
// its policy plus one list entry (BasicMaskSpec<your list> for a user's own terms).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
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

/// What a file-backed term's array must hold.
enum class MaskArrayKind : std::uint8_t {
  integers,  ///< integers (padding lengths, document ids)
  flags,     ///< booleans, any nonzero value true (keep flags, a block layout)
};

/// What a file-backed term asks the loader for.
struct MaskArrayRequest {
  std::string_view term;  ///< the term's name ("padding", "keep", "document", "block-sparse")
  std::string file;       ///< the FILE text of the spec
  MaskArrayKind kind;     ///< what the elements must be (a loader may reject other dtypes)
};

/// Supplies the array of a file-backed term; may throw (the exception passes through
/// parse_mask_spec unchanged, so its message should name the file).
using MaskArrayLoader = std::function<MaskArray(const MaskArrayRequest&)>;

/// A list of mask types that a spec string may name: the mask-term registry. Each type carries
/// its spec name, form, help line and a `from_spec` constructor (policy/mask.hpp); adding a term
/// to `--mask` is its policy plus one entry in a list (docs/extending.md).
template <class... M>
struct mask_term_list {};

/// Every built-in term, in the order help texts list them.
using builtin_mask_terms =
    mask_term_list<NoMask, Causal, CausalTopLeft, SlidingWindow, LocalWindow, Sinks, PrefixLM,
                   KeyPadding, KeepMask, Document, BlockSparse>;

/// A list with more terms appended: `extend_mask_terms<builtin_mask_terms, MyTerm>`.
template <class List, class... More>
struct extend_mask_terms_t;
template <class... M, class... More>
struct extend_mask_terms_t<mask_term_list<M...>, More...> {
  using type = mask_term_list<M..., More...>;
};
template <class List, class... More>
using extend_mask_terms = typename extend_mask_terms_t<List, More...>::type;

/// What a registered mask term supplies besides being a mask: `spec_name` (the text before
/// '='), `spec_form` and `spec_help` for help texts, and `static M from_spec(Args&)` building the
/// term from its value (detail::MaskTermArgs). `spec_value` (optional) makes the type match only
/// `name=value` exactly (causal=top-left).
template <class M>
concept registered_mask_term = mask_policy<M> && requires {
  { M::spec_name } -> std::convertible_to<std::string_view>;
  { M::spec_form } -> std::convertible_to<std::string_view>;
  { M::spec_help } -> std::convertible_to<std::string_view>;
};

namespace detail {
template <class List>
struct mask_term_variant;
template <class... M>
struct mask_term_variant<mask_term_list<M...>> {
  static_assert((registered_mask_term<M> && ...),
                "every type of a mask_term_list needs spec_name, spec_form, spec_help, from_spec");
  using type = std::variant<M...>;
};

/// Calls f(std::type_identity<M>{}) for each term type M of the list, in order.
template <class F, class... M>
void for_each_mask_term(mask_term_list<M...>, F&& f) {
  (f(std::type_identity<M>{}), ...);
}
}  // namespace detail

/// The forms of the terms of a list, as messages list them ("none, causal, ...").
template <class Terms = builtin_mask_terms>
std::string mask_term_forms() {
  std::string out;
  detail::for_each_mask_term(Terms{}, [&](auto tag) {
    using M = typename decltype(tag)::type;
    out += (out.empty() ? "" : ", ") + std::string(M::spec_form);
  });
  return out;
}

/// One help line per term of a list: the form, padded to `width`, then the help text.
template <class Terms = builtin_mask_terms>
std::string mask_term_help(std::string_view indent = "  ", std::size_t width = 24) {
  std::string out;
  detail::for_each_mask_term(Terms{}, [&](auto tag) {
    using M = typename decltype(tag)::type;
    std::string form(M::spec_form);
    if (form.size() < width)
      form.resize(width, ' ');
    else
      form += ' ';
    out += std::string(indent) + form + std::string(M::spec_help) + "\n";
  });
  return out;
}

/// A mask whose terms are chosen at run time: key j is visible when every term says so (the `+`
/// of docs/CLI.md). classify() is the AND of the terms' tile classes, so a tile any term calls
/// Empty is still skipped and a tile every term calls Full is still untested. An empty spec sees
/// everything (NoMask). Copies share the arrays of file-backed terms.
/// \tparam Terms the mask_term_list the spec may name (builtin_mask_terms for MaskSpec)
template <class Terms>
class BasicMaskSpec {
 public:
  /// One term: any type of the list.
  using Term = typename detail::mask_term_variant<Terms>::type;

  BasicMaskSpec() = default;

  /// Appends a term (NoMask terms are dropped: they change nothing).
  /// \param term the mask
  /// \param text how the term reads in the spec, for messages (e.g. "keep=flags.npy")
  /// \param storage keeps alive the arrays the term's views point into
  void add(Term term, std::string text, std::shared_ptr<const void> storage = {}) {
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
  const Term& term(std::size_t n) const { return terms_.at(n); }
  /// How the n-th term reads in the spec.
  const std::string& text(std::size_t n) const { return texts_.at(n); }

  /// Whether key j is visible to the query at absolute position i of head h, batch entry b.
  bool visible(index_t b, index_t h, index_t i, index_t j) const {
    for (const Term& t : terms_)
      if (!std::visit([&](const auto& m) { return m.visible(b, h, i, j); }, t)) return false;
    return true;
  }

  /// The AND of the terms' classes of the tile [i0, i1) x [j0, j1) (absolute query positions).
  TileClass classify(index_t b, index_t h, index_t i0, index_t i1, index_t j0, index_t j1) const {
    TileClass c = TileClass::full;
    for (const Term& t : terms_) {
      c = detail::and_class(
          c, std::visit([&](const auto& m) { return m.classify(b, h, i0, i1, j0, j1); }, t));
      if (c == TileClass::empty) break;
    }
    return c;
  }

  /// Binds every term; a term whose array does not fit the call's shapes throws shape_error
  /// naming the term as the spec spells it ("mask term 'keep=flags.npy': ...").
  BasicMaskSpec bind(const Geometry& g) const {
    BasicMaskSpec r = *this;
    for (std::size_t n = 0; n < r.terms_.size(); ++n) {
      try {
        std::visit([&](auto& m) { m = m.bind(g); }, r.terms_[n]);
      } catch (const shape_error& e) {
        std::string_view what = e.what();
        constexpr std::string_view prefix = "attnkit: attention: ";
        if (what.starts_with(prefix)) what.remove_prefix(prefix.size());
        throw shape_error("attnkit: mask term '" + texts_[n] + "': " + std::string(what));
      }
    }
    return r;
  }

 private:
  std::vector<Term> terms_;
  std::vector<std::string> texts_;
  std::vector<std::shared_ptr<const void>> storage_;
};

/// The runtime mask of the built-in terms (`--mask`).
using MaskSpec = BasicMaskSpec<builtin_mask_terms>;
/// One term of a MaskSpec.
using MaskSpecTerm = MaskSpec::Term;

static_assert(mask_policy<MaskSpec>);

namespace detail {

/// What a term's `from_spec` reads its value with: the text after '=', numbers, fields, arrays.
/// Every error names the spec and the term.
class MaskTermArgs {
 public:
  MaskTermArgs(std::string where, std::string_view name, std::string_view form,
               std::optional<std::string_view> value, const MaskArrayLoader& load)
      : where_(std::move(where)), name_(name), form_(form), value_(value), load_(load) {}

  /// Throws attnkit::error naming the spec and the term.
  [[noreturn]] void fail(const std::string& what) const { throw error(where_ + what); }

  /// Whether the term has a value (`name=value`).
  bool has_value() const noexcept { return value_.has_value(); }
  /// The value; an error naming the form ("needs a value, as in sliding=W") when there is none.
  std::string_view value() const {
    if (!value_) fail("needs a value, as in " + std::string(form_));
    return *value_;
  }
  /// An error when the term has a value.
  void no_value() const {
    if (value_) fail("'" + std::string(name_) + "' takes no value");
  }

  /// The value split into n comma-separated fields at its last n - 1 commas (the first field,
  /// a file name, may hold commas).
  std::vector<std::string_view> fields(std::size_t n) const {
    std::string_view v = value();
    std::vector<std::string_view> out(n);
    for (std::size_t k = n; k-- > 1;) {
      const std::size_t c = v.rfind(',');
      if (c == std::string_view::npos || c == 0)
        fail("needs " + std::to_string(n) + " comma-separated values, as in " + std::string(form_));
      out[k] = v.substr(c + 1);
      v = v.substr(0, c);
    }
    out[0] = v;
    return out;
  }

  /// A decimal integer >= lo; `what` names it ("W" of "sliding=W").
  index_t integer(std::string_view txt, std::string_view what, index_t lo) const {
    const std::string name = std::string(what) + " of " + std::string(form_);
    if (txt.empty()) fail("missing " + name);
    long long x = 0;
    const auto [p, ec] = std::from_chars(txt.data(), txt.data() + txt.size(), x);
    if (ec == std::errc::result_out_of_range)
      fail(name + " is out of range: '" + std::string(txt) + "'");
    if (ec != std::errc() || p != txt.data() + txt.size())
      fail(name + " must be an integer, got '" + std::string(txt) + "'");
    if (x < lo) fail(name + " must be >= " + std::to_string(lo) + ", got " + std::to_string(x));
    return static_cast<index_t>(x);
  }

  /// The array FILE names (from the loader), checked for rank and element count.
  MaskArray array(std::string_view file, std::size_t rank, const char* layout,
                  MaskArrayKind kind) const {
    if (file.empty()) fail("missing FILE after '" + std::string(name_) + "='");
    if (!load_) fail("a file-backed term needs a MaskArrayLoader or a map of arrays");
    MaskArray a = load_(MaskArrayRequest{name_, std::string(file), kind});
    if (a.shape.size() != rank)
      throw shape_error(where_ + "expected a rank-" + std::to_string(rank) + " array " + layout +
                        ", " + std::string(file) + " holds shape " + shape_string(a.shape));
    index_t n = 1;
    for (index_t e : a.shape) {
      if (e < 0) throw shape_error(where_ + "negative extent in " + shape_string(a.shape));
      if (e != 0 && n > std::numeric_limits<index_t>::max() / e)
        throw shape_error(where_ + "the shape " + shape_string(a.shape) + " is too large");
      n *= e;
    }
    if (static_cast<std::size_t>(n) != a.values.size())
      throw shape_error(where_ + "the loader gave " + std::to_string(a.values.size()) +
                        " values for shape " + shape_string(a.shape));
    return a;
  }

  /// The flags array FILE names as a rank-R view (nonzero: 1), kept alive with the spec.
  template <std::size_t R>
  TensorView<const std::uint8_t, R> flags(std::string_view file, const char* layout) {
    const MaskArray a = array(file, R, layout, MaskArrayKind::flags);
    auto f = std::make_shared<std::vector<std::uint8_t>>(a.values.size());
    for (std::size_t n = 0; n < a.values.size(); ++n) (*f)[n] = a.values[n] != 0 ? 1 : 0;
    const TensorView<const std::uint8_t, R> v(f->data(), shape_of<R>(a));
    storage_.push_back(std::move(f));
    return v;
  }
  /// The rank-1 integer array FILE names, as values.
  std::vector<index_t> integer_list(std::string_view file, const char* layout) const {
    return array(file, 1, layout, MaskArrayKind::integers).values;
  }
  /// The integer array FILE names as a rank-R view, kept alive with the spec.
  template <std::size_t R>
  TensorView<const index_t, R> integers(std::string_view file, const char* layout) {
    MaskArray a = array(file, R, layout, MaskArrayKind::integers);
    const Shape<R> shape = shape_of<R>(a);
    auto vals = std::make_shared<std::vector<index_t>>(std::move(a.values));
    const TensorView<const index_t, R> v(vals->data(), shape);
    storage_.push_back(std::move(vals));
    return v;
  }

  /// What the views of flags() and integers() point into (null when there are none).
  std::shared_ptr<const void> storage() const {
    if (storage_.empty()) return {};
    return std::make_shared<const std::vector<std::shared_ptr<const void>>>(storage_);
  }

 private:
  template <std::size_t R>
  static Shape<R> shape_of(const MaskArray& a) {
    Shape<R> s{};
    for (std::size_t d = 0; d < R; ++d) s[d] = a.shape.at(d);
    return s;
  }

  std::string where_;
  std::string_view name_, form_;
  std::optional<std::string_view> value_;
  const MaskArrayLoader& load_;
  std::vector<std::shared_ptr<const void>> storage_;
};

/// Parses one mask spec against a mask_term_list; every error names the spec and the term.
template <class Terms>
class MaskSpecParser {
 public:
  MaskSpecParser(std::string_view spec, const MaskArrayLoader& load) : spec_(spec), load_(load) {}

  BasicMaskSpec<Terms> parse() {
    BasicMaskSpec<Terms> out;
    if (spec_.empty())
      throw error("attnkit: mask spec is empty (use 'none' for no mask; terms: " +
                  mask_term_forms<Terms>() + ")");
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

  void parse_term(BasicMaskSpec<Terms>& out) const {
    const std::size_t eq = term_.find('=');
    const std::string_view name = term_.substr(0, eq);
    std::optional<std::string_view> value;
    if (eq != std::string_view::npos) value = term_.substr(eq + 1);
    // A type with a fixed spec_value matches `name=value` exactly (first pass); otherwise the
    // first type of the name without one does (second pass).
    for (const bool fixed : {true, false}) {
      bool done = false;
      detail::for_each_mask_term(Terms{}, [&](auto tag) {
        using M = typename decltype(tag)::type;
        if (!done && matches<M>(name, value, fixed)) {
          add<M>(out, value);
          done = true;
        }
      });
      if (done) return;
    }
    throw error(where_spec() + "unknown term '" + std::string(name) +
                "' (terms: " + mask_term_forms<Terms>() + ")");
  }

  template <class M>
  static bool matches(std::string_view name, const std::optional<std::string_view>& value,
                      bool fixed) {
    if (M::spec_name != name) return false;
    if constexpr (requires { M::spec_value; }) {
      return fixed && value && *value == M::spec_value;
    } else {
      return !fixed;
    }
  }
  template <class M>
  void add(BasicMaskSpec<Terms>& out, std::optional<std::string_view> value) const {
    MaskTermArgs args(where(), M::spec_name, M::spec_form, value, load_);
    M term = M::from_spec(args);
    out.add(std::move(term), std::string(term_), args.storage());
  }

  std::string_view spec_;
  const MaskArrayLoader& load_;
  std::string_view term_;
};

}  // namespace detail

/// Parses a mask spec of docs/CLI.md: terms joined by `+`, all required, each a term of
/// `Terms` (builtin_mask_terms: none, causal (or causal=bottom-right), causal=top-left,
/// sliding=W, local=W, sinks=S,W, prefix-lm=P, padding=FILE, keep=FILE, document=FILE,
/// block-sparse=FILE,BQ,BK). FILE may contain ',' (block-sparse splits at its last two commas)
/// but not '+'. Throws attnkit::error naming the spec and the offending term (unknown term,
/// missing or malformed number, W < 1, ...), shape_error for an array of the wrong rank. The
/// arrays' extents are checked against the call's shapes when the mask is bound.
/// \param spec the spec string
/// \param load supplies the arrays of file-backed terms (may be empty when there are none)
template <class Terms = builtin_mask_terms>
BasicMaskSpec<Terms> parse_mask_spec(std::string_view spec, const MaskArrayLoader& load = {}) {
  return detail::MaskSpecParser<Terms>(spec, load).parse();
}

/// parse_mask_spec with the arrays of file-backed terms given by FILE text.
/// \param arrays FILE text -> array; a FILE missing from the map is an error naming it
template <class Terms = builtin_mask_terms>
BasicMaskSpec<Terms> parse_mask_spec(std::string_view spec,
                                     const std::map<std::string, MaskArray, std::less<>>& arrays) {
  const MaskArrayLoader load = [&](const MaskArrayRequest& rq) {
    const auto it = arrays.find(rq.file);
    if (it == arrays.end())
      throw error("attnkit: mask term '" + std::string(rq.term) + "=" + rq.file +
                  "': no array named '" + rq.file + "' was given");
    return it->second;
  };
  return parse_mask_spec<Terms>(spec, load);
}

}  // namespace attnkit::policy
