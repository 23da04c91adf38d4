// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Masks: the visible set per (batch, head, query, key) of docs/CLI.md ("Masks"), each with a tile
// classifier. Query positions are absolute: i' = i + (Nk - Nq) (bottom-right alignment).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/policy/concepts.hpp"

namespace attnkit::policy {

namespace detail {
/// Full if every term is Full, Empty if any is Empty, else Partial.
constexpr TileClass and_class(TileClass a, TileClass b) noexcept {
  if (a == TileClass::empty || b == TileClass::empty) return TileClass::empty;
  if (a == TileClass::full && b == TileClass::full) return TileClass::full;
  return TileClass::partial;
}
/// Full if any term is Full, Empty if every term is Empty, else Partial.
constexpr TileClass or_class(TileClass a, TileClass b) noexcept {
  if (a == TileClass::full || b == TileClass::full) return TileClass::full;
  if (a == TileClass::empty && b == TileClass::empty) return TileClass::empty;
  return TileClass::partial;
}
/// A runtime array of a mask whose shape does not fit the call: shape_error naming the array,
/// its shape, and the expected layout with its extents ("expected [B, Nk] = [2, 9]").
template <class Got, class Want>
[[noreturn]] void layout_mismatch(std::string_view array, const Got& got, std::string_view layout,
                                  const Want& want) {
  throw shape_error("attnkit: attention: " + std::string(array) + " has shape " +
                    shape_string(got) + ", expected " + std::string(layout) + " = " +
                    shape_string(want));
}
/// Class of the tile for the causal condition j <= i.
constexpr TileClass causal_class(index_t i0, index_t i1, index_t j0, index_t j1) noexcept {
  if (j0 > i1 - 1) return TileClass::empty;
  if (j1 - 1 <= i0) return TileClass::full;
  return TileClass::partial;
}
}  // namespace detail

/// Every key is visible.
struct NoMask {
  static constexpr std::string_view spec_name = "none";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_form = "none";
  static constexpr std::string_view spec_help = "every key (changes nothing)";
  template <class Args>
  static NoMask from_spec(Args& a) {
    a.no_value();
    return {};
  }
  bool visible(index_t, index_t, index_t, index_t) const noexcept { return true; }
  TileClass classify(index_t, index_t, index_t, index_t, index_t, index_t) const noexcept {
    return TileClass::full;
  }
  NoMask bind(const Geometry&) const noexcept { return *this; }
};

/// j <= i' (bottom-right alignment: the last query row sees every key; with a KV cache the new
/// rows see the cache and themselves). `causal` and `causal=bottom-right` in a mask spec.
struct Causal {
  static constexpr std::string_view spec_name = "causal";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_form = "causal";
  static constexpr std::string_view spec_help =
      "j <= i' (also spelled causal=bottom-right: the last row sees every key)";
  template <class Args>
  static Causal from_spec(Args& a) {
    if (a.has_value() && a.value() != "bottom-right")
      a.fail("the alignment of causal is bottom-right (the default) or top-left, not '" +
             std::string(a.value()) + "'");
    return {};
  }
  bool visible(index_t, index_t, index_t i, index_t j) const noexcept { return j <= i; }
  TileClass classify(index_t, index_t, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    return detail::causal_class(i0, i1, j0, j1);
  }
  Causal bind(const Geometry&) const noexcept { return *this; }
};

/// j <= i, the raw query row (top-left alignment, PyTorch's `is_causal=True` and
/// scaled_dot_product_attention: row i sees keys 0..i whatever Nk - Nq). Differs from Causal
/// only when Nq != Nk. `causal=top-left` in a mask spec.
struct CausalTopLeft {
  static constexpr std::string_view spec_name = "causal";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_value = "top-left";  ///< only `causal=top-left`
  static constexpr std::string_view spec_form = "causal=top-left";
  static constexpr std::string_view spec_help = "j <= i (PyTorch's is_causal)";
  template <class Args>
  static CausalTopLeft from_spec(Args&) {
    return {};
  }
  index_t offset = 0;  ///< Nk - Nq of the bound call: i = i' - offset (bind sets it)
  bool visible(index_t, index_t, index_t ip, index_t j) const noexcept { return j <= ip - offset; }
  TileClass classify(index_t, index_t, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    return detail::causal_class(i0 - offset, i1 - offset, j0, j1);
  }
  CausalTopLeft bind(const Geometry& g) const noexcept {
    CausalTopLeft m;
    m.offset = g.query_offset();
    return m;
  }
};

/// j <= i' and i' - j < W.
struct SlidingWindow {
  static constexpr std::string_view spec_name = "sliding";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_form = "sliding=W";
  static constexpr std::string_view spec_help = "j <= i' and i' - j < W (W >= 1)";
  template <class Args>
  static SlidingWindow from_spec(Args& a) {
    return SlidingWindow(a.integer(a.value(), "W", 1));
  }
  index_t window = 1;  ///< W >= 1
  SlidingWindow() = default;
  /// \param w the window W (>= 1)
  explicit SlidingWindow(index_t w) : window(w) {
    if (w < 1) throw error("attnkit: SlidingWindow: the window must be >= 1");
  }
  bool visible(index_t, index_t, index_t i, index_t j) const noexcept {
    return j <= i && i - j < window;
  }
  TileClass classify(index_t, index_t, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    const TileClass c = detail::causal_class(i0, i1, j0, j1);
    if (c == TileClass::empty || i0 - (j1 - 1) >= window) return TileClass::empty;
    if (c == TileClass::full && (i1 - 1) - j0 < window) return TileClass::full;
    return TileClass::partial;
  }
  SlidingWindow bind(const Geometry&) const noexcept { return *this; }
};

/// |i' - j| <= W (both sides).
struct LocalWindow {
  static constexpr std::string_view spec_name = "local";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_form = "local=W";
  static constexpr std::string_view spec_help = "|i' - j| <= W (W >= 0, both sides)";
  template <class Args>
  static LocalWindow from_spec(Args& a) {
    return LocalWindow(a.integer(a.value(), "W", 0));
  }
  index_t window = 0;  ///< W >= 0
  LocalWindow() = default;
  /// \param w the half width W (>= 0)
  explicit LocalWindow(index_t w) : window(w) {
    if (w < 0) throw error("attnkit: LocalWindow: the window must be >= 0");
  }
  bool visible(index_t, index_t, index_t i, index_t j) const noexcept {
    return (i >= j ? i - j : j - i) <= window;
  }
  TileClass classify(index_t, index_t, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    if (j0 - (i1 - 1) > window || i0 - (j1 - 1) > window) return TileClass::empty;
    if (std::max((i1 - 1) - j0, (j1 - 1) - i0) <= window) return TileClass::full;
    return TileClass::partial;
  }
  LocalWindow bind(const Geometry&) const noexcept { return *this; }
};

/// StreamingLLM: j <= i' and (j < S or i' - j < W).
struct Sinks {
  static constexpr std::string_view spec_name = "sinks";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_form = "sinks=S,W";
  static constexpr std::string_view spec_help = "j <= i' and (j < S or i' - j < W) (StreamingLLM)";
  template <class Args>
  static Sinks from_spec(Args& a) {
    const auto f = a.fields(2);
    return Sinks(a.integer(f[0], "S", 0), a.integer(f[1], "W", 1));
  }
  index_t sinks = 0;   ///< S >= 0
  index_t window = 1;  ///< W >= 1
  Sinks() = default;
  /// \param s the number of sink keys S, \param w the window W
  Sinks(index_t s, index_t w) : sinks(s), window(w) {
    if (s < 0 || w < 1) throw error("attnkit: Sinks: needs S >= 0 and W >= 1");
  }
  bool visible(index_t, index_t, index_t i, index_t j) const noexcept {
    return j <= i && (j < sinks || i - j < window);
  }
  TileClass classify(index_t, index_t, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    const TileClass c = detail::causal_class(i0, i1, j0, j1);
    if (c == TileClass::empty) return c;
    if (j0 >= sinks && i0 - (j1 - 1) >= window) return TileClass::empty;
    if (c == TileClass::full && (j1 <= sinks || (i1 - 1) - j0 < window)) return TileClass::full;
    return TileClass::partial;
  }
  Sinks bind(const Geometry&) const noexcept { return *this; }
};

/// j < P or j <= i' (bidirectional prefix, causal after it).
struct PrefixLM {
  static constexpr std::string_view spec_name = "prefix-lm";  ///< mask-term registry
  static constexpr std::string_view spec_form = "prefix-lm=P";
  static constexpr std::string_view spec_help = "j < P or j <= i' (P >= 0)";
  template <class Args>
  static PrefixLM from_spec(Args& a) {
    return PrefixLM(a.integer(a.value(), "P", 0));
  }
  index_t prefix = 0;  ///< P >= 0
  PrefixLM() = default;
  /// \param p the prefix length P
  explicit PrefixLM(index_t p) : prefix(p) {
    if (p < 0) throw error("attnkit: PrefixLM: the prefix must be >= 0");
  }
  bool visible(index_t, index_t, index_t i, index_t j) const noexcept {
    return j < prefix || j <= i;
  }
  TileClass classify(index_t, index_t, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    if (j1 <= prefix) return TileClass::full;
    const TileClass c = detail::causal_class(i0, i1, j0, j1);
    if (j0 >= prefix) return c;
    return c == TileClass::full ? TileClass::full : TileClass::partial;
  }
  PrefixLM bind(const Geometry&) const noexcept { return *this; }
};

/// j < len[b]: padded keys of a batch of sequences of different lengths.
struct KeyPadding {
  static constexpr std::string_view spec_name = "padding";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_form = "padding=FILE";
  static constexpr std::string_view spec_help = "j < len[b] (FILE: integer [B])";
  template <class Args>
  static KeyPadding from_spec(Args& a) {
    return KeyPadding(a.integer_list(a.value(), "[B]"));
  }
  std::shared_ptr<const std::vector<index_t>> lengths;  ///< [B]
  KeyPadding() = default;
  /// \param len the number of real keys of each batch entry
  explicit KeyPadding(std::vector<index_t> len)
      : lengths(std::make_shared<const std::vector<index_t>>(std::move(len))) {}
  index_t length(index_t b) const noexcept { return (*lengths)[static_cast<std::size_t>(b)]; }
  bool visible(index_t b, index_t, index_t, index_t j) const noexcept { return j < length(b); }
  TileClass classify(index_t b, index_t, index_t, index_t, index_t j0, index_t j1) const noexcept {
    const index_t len = length(b);
    if (j1 <= len) return TileClass::full;
    if (j0 >= len) return TileClass::empty;
    return TileClass::partial;
  }
  KeyPadding bind(const Geometry& g) const {
    const index_t n = lengths ? static_cast<index_t>(lengths->size()) : 0;
    if (n != g.batch)
      detail::layout_mismatch("KeyPadding lengths", Shape<1>{n}, "[B]", Shape<1>{g.batch});
    return *this;
  }
};

/// keep[b, j] != 0: per-key keep flags (e.g. retention >= threshold). Classifies a tile in O(1)
/// from per-row prefix counts built once at construction.
struct KeepMask {
  static constexpr std::string_view spec_name = "keep";  ///< mask-term registry (mask_spec.hpp)
  static constexpr std::string_view spec_form = "keep=FILE";
  static constexpr std::string_view spec_help = "keep[b, j] != 0 (FILE: bool/uint8 [B, Nk])";
  template <class Args>
  static KeepMask from_spec(Args& a) {
    return KeepMask(a.template flags<2>(a.value(), "[B, Nk]"));
  }
  TensorView<const std::uint8_t, 2> keep;                  ///< [B, Nk]; must outlive the policy
  std::shared_ptr<const std::vector<std::int32_t>> count;  ///< [B, Nk + 1] prefix counts
  KeepMask() = default;
  /// \param flags a [B, Nk] view of keep flags
  explicit KeepMask(TensorView<const std::uint8_t, 2> flags) : keep(flags) {
    const index_t nb = flags.extent(0), nk = flags.extent(1);
    auto c = std::make_shared<std::vector<std::int32_t>>(static_cast<std::size_t>(nb * (nk + 1)));
    for (index_t b = 0; b < nb; ++b) {
      std::int32_t* row = c->data() + b * (nk + 1);
      row[0] = 0;
      for (index_t j = 0; j < nk; ++j) row[j + 1] = row[j] + (flags(b, j) != 0 ? 1 : 0);
    }
    count = std::move(c);
  }
  bool visible(index_t b, index_t, index_t, index_t j) const noexcept { return keep(b, j) != 0; }
  TileClass classify(index_t b, index_t, index_t, index_t, index_t j0, index_t j1) const noexcept {
    const std::int32_t* row = count->data() + b * (keep.extent(1) + 1);
    const std::int32_t n = row[j1] - row[j0];
    if (n == 0) return TileClass::empty;
    if (n == j1 - j0) return TileClass::full;
    return TileClass::partial;
  }
  KeepMask bind(const Geometry& g) const {
    if (keep.extent(0) != g.batch || keep.extent(1) != g.nk)
      detail::layout_mismatch("KeepMask flags", keep.shape(), "[B, Nk]", Shape<2>{g.batch, g.nk});
    return *this;
  }
};

/// seg[b, i'] == seg[b, j]: block-diagonal attention over packed documents. Tiles are
/// classified in O(1) from the length of the run of equal ids at each position and, for
/// non-decreasing ids, from the id range of each side.
struct Document {
  static constexpr std::string_view spec_name = "document";  ///< mask-term registry
  static constexpr std::string_view spec_form = "document=FILE";
  static constexpr std::string_view spec_help = "seg[b, i'] == seg[b, j] (FILE: integer [B, Nk])";
  template <class Args>
  static Document from_spec(Args& a) {
    return Document(a.template integers<2>(a.value(), "[B, Nk]"));
  }
  TensorView<const index_t, 2> segments;                    ///< [B, Nk]; must outlive the policy
  std::shared_ptr<const std::vector<index_t>> run_end;      ///< [B, Nk]: end of the run at j
  std::shared_ptr<const std::vector<std::uint8_t>> sorted;  ///< [B]: ids non-decreasing
  Document() = default;
  /// \param seg a [B, Nk] view of segment ids per absolute position
  explicit Document(TensorView<const index_t, 2> seg) : segments(seg) {
    const index_t nb = seg.extent(0), nk = seg.extent(1);
    auto re = std::make_shared<std::vector<index_t>>(static_cast<std::size_t>(nb * nk));
    auto so = std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(nb), 1);
    for (index_t b = 0; b < nb; ++b) {
      for (index_t j = nk; j-- > 0;) {
        const bool same_next = j + 1 < nk && seg(b, j + 1) == seg(b, j);
        (*re)[static_cast<std::size_t>(b * nk + j)] =
            same_next ? (*re)[static_cast<std::size_t>(b * nk + j + 1)] : j + 1;
        if (j + 1 < nk && seg(b, j + 1) < seg(b, j)) (*so)[static_cast<std::size_t>(b)] = 0;
      }
    }
    run_end = std::move(re);
    sorted = std::move(so);
  }
  bool visible(index_t b, index_t, index_t i, index_t j) const noexcept {
    return i >= 0 && i < segments.extent(1) && segments(b, i) == segments(b, j);
  }
  TileClass classify(index_t b, index_t, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    if (i1 <= 0) return TileClass::empty;
    if (i0 < 0) return TileClass::partial;
    const index_t nk = segments.extent(1);
    const index_t* re = run_end->data() + b * nk;
    const bool q_uniform = re[i0] >= i1, k_uniform = re[j0] >= j1;
    if (q_uniform && k_uniform)
      return segments(b, i0) == segments(b, j0) ? TileClass::full : TileClass::empty;
    if ((*sorted)[static_cast<std::size_t>(b)] != 0) {
      if (segments(b, i1 - 1) < segments(b, j0) || segments(b, j1 - 1) < segments(b, i0))
        return TileClass::empty;
    }
    return TileClass::partial;
  }
  Document bind(const Geometry& g) const {
    if (segments.extent(0) != g.batch || segments.extent(1) != g.nk)
      detail::layout_mismatch("Document segment ids", segments.shape(), "[B, Nk]",
                              Shape<2>{g.batch, g.nk});
    return *this;
  }
};

/// layout[b, h, i / BQ, j / BK] != 0 with i the query row (not the absolute position): a runtime
/// block layout [B, Hq, ceil(Nq / BQ), ceil(Nk / BK)]. Tiles are classified in O(1) from 2-D
/// prefix counts of the layout built once at construction.
struct BlockSparse {
  static constexpr std::string_view spec_name = "block-sparse";  ///< mask-term registry
  static constexpr std::string_view spec_form = "block-sparse=FILE,BQ,BK";
  static constexpr std::string_view spec_help =
      "layout[b, h, i / BQ, j / BK] != 0 (FILE: bool/uint8 [B, Hq, ceil(Nq/BQ), ceil(Nk/BK)])";
  template <class Args>
  static BlockSparse from_spec(Args& a) {
    const auto f = a.fields(3);  // FILE may hold commas: split at the last two
    const index_t bq = a.integer(f[1], "BQ", 1), bk = a.integer(f[2], "BK", 1);
    const auto layout = a.template flags<4>(f[0], "[B, Hq, ceil(Nq/BQ), ceil(Nk/BK)]");
    return BlockSparse(layout, bq, bk);
  }
  TensorView<const std::uint8_t, 4> layout;  ///< [B, Hq, nbq, nbk]; must outlive the policy
  index_t block_q = 1;                       ///< BQ
  index_t block_k = 1;                       ///< BK
  index_t row_offset = 0;  ///< Nk - Nq, set by bind (absolute position minus query row)
  std::shared_ptr<const std::vector<std::int32_t>> count;  ///< [B, Hq, nbq + 1, nbk + 1]
  BlockSparse() = default;
  /// \param lay the block layout, \param bq rows per block, \param bk keys per block
  BlockSparse(TensorView<const std::uint8_t, 4> lay, index_t bq, index_t bk)
      : layout(lay), block_q(bq), block_k(bk) {
    if (bq < 1 || bk < 1) throw error("attnkit: BlockSparse: block sizes must be >= 1");
    const index_t nb = lay.extent(0), nh = lay.extent(1), r = lay.extent(2), c = lay.extent(3);
    auto cnt = std::make_shared<std::vector<std::int32_t>>(
        static_cast<std::size_t>(nb * nh * (r + 1) * (c + 1)), 0);
    for (index_t b = 0; b < nb; ++b)
      for (index_t h = 0; h < nh; ++h) {
        std::int32_t* p = cnt->data() + (b * nh + h) * (r + 1) * (c + 1);
        for (index_t x = 0; x < r; ++x)
          for (index_t y = 0; y < c; ++y)
            p[(x + 1) * (c + 1) + y + 1] = p[x * (c + 1) + y + 1] + p[(x + 1) * (c + 1) + y] -
                                           p[x * (c + 1) + y] + (lay(b, h, x, y) != 0 ? 1 : 0);
      }
    count = std::move(cnt);
  }
  bool visible(index_t b, index_t h, index_t i, index_t j) const noexcept {
    const index_t r = i - row_offset;
    return r >= 0 && layout(b, h, r / block_q, j / block_k) != 0;
  }
  TileClass classify(index_t b, index_t h, index_t i0, index_t i1, index_t j0,
                     index_t j1) const noexcept {
    const index_t r0 = std::max<index_t>(i0 - row_offset, 0), r1 = i1 - row_offset;
    if (r1 <= r0) return TileClass::empty;
    const index_t x0 = r0 / block_q, x1 = (r1 - 1) / block_q + 1;
    const index_t y0 = j0 / block_k, y1 = (j1 - 1) / block_k + 1;
    const index_t c = layout.extent(3);
    const std::int32_t* p =
        count->data() + (b * layout.extent(1) + h) * (layout.extent(2) + 1) * (c + 1);
    const index_t n =
        p[x1 * (c + 1) + y1] - p[x0 * (c + 1) + y1] - p[x1 * (c + 1) + y0] + p[x0 * (c + 1) + y0];
    if (n == 0) return TileClass::empty;
    if (n == (x1 - x0) * (y1 - y0)) return TileClass::full;
    return TileClass::partial;
  }
  BlockSparse bind(const Geometry& g) const {
    const Shape<4> want{g.batch, g.heads_q, (g.nq + block_q - 1) / block_q,
                        (g.nk + block_k - 1) / block_k};
    if (layout.shape() != want)
      detail::layout_mismatch("BlockSparse layout", layout.shape(),
                              "[B, Hq, ceil(Nq/BQ), ceil(Nk/BK)]", want);
    BlockSparse r = *this;
    r.row_offset = g.query_offset();
    return r;
  }
};

/// A user predicate `f(b, h, i_abs, j) -> bool`; every tile is Partial.
/// \tparam F a copyable callable (index_t, index_t, index_t, index_t) -> bool
template <class F>
struct Custom {
  F predicate;
  explicit Custom(F f) : predicate(std::move(f)) {}
  bool visible(index_t b, index_t h, index_t i, index_t j) const {
    return static_cast<bool>(predicate(b, h, i, j));
  }
  TileClass classify(index_t, index_t, index_t, index_t, index_t, index_t) const noexcept {
    return TileClass::partial;
  }
  Custom bind(const Geometry&) const { return *this; }
};

/// Visible when every term is (the `+` of docs/CLI.md).
/// \tparam Masks models of mask_policy
template <class... Masks>
struct And {
  static_assert(sizeof...(Masks) >= 1, "attnkit: And needs at least one mask");
  static_assert((mask_policy<Masks> && ...),
                "attnkit: every Masks of And must model attnkit::policy::mask_policy: needs "
                "visible(b, h, i, j), classify(b, h, i0, i1, j0, j1) and bind(geometry)");
  std::tuple<Masks...> terms;
  And() = default;
  explicit And(Masks... m) : terms(std::move(m)...) {}
  bool visible(index_t b, index_t h, index_t i, index_t j) const {
    return std::apply([&](const auto&... m) { return (m.visible(b, h, i, j) && ...); }, terms);
  }
  TileClass classify(index_t b, index_t h, index_t i0, index_t i1, index_t j0, index_t j1) const {
    TileClass c = TileClass::full;
    std::apply(
        [&](const auto&... m) {
          ((c = c == TileClass::empty ? c : detail::and_class(c, m.classify(b, h, i0, i1, j0, j1))),
           ...);
        },
        terms);
    return c;
  }
  And bind(const Geometry& g) const {
    And r = *this;
    std::apply([&](auto&... m) { ((m = m.bind(g)), ...); }, r.terms);
    return r;
  }
};

/// Visible when any term is.
/// \tparam Masks models of mask_policy
template <class... Masks>
struct Or {
  static_assert(sizeof...(Masks) >= 1, "attnkit: Or needs at least one mask");
  static_assert((mask_policy<Masks> && ...),
                "attnkit: every Masks of Or must model attnkit::policy::mask_policy: needs "
                "visible(b, h, i, j), classify(b, h, i0, i1, j0, j1) and bind(geometry)");
  std::tuple<Masks...> terms;
  Or() = default;
  explicit Or(Masks... m) : terms(std::move(m)...) {}
  bool visible(index_t b, index_t h, index_t i, index_t j) const {
    return std::apply([&](const auto&... m) { return (m.visible(b, h, i, j) || ...); }, terms);
  }
  TileClass classify(index_t b, index_t h, index_t i0, index_t i1, index_t j0, index_t j1) const {
    TileClass c = TileClass::empty;
    std::apply(
        [&](const auto&... m) {
          ((c = c == TileClass::full ? c : detail::or_class(c, m.classify(b, h, i0, i1, j0, j1))),
           ...);
        },
        terms);
    return c;
  }
  Or bind(const Geometry& g) const {
    Or r = *this;
    std::apply([&](auto&... m) { ((m = m.bind(g)), ...); }, r.terms);
    return r;
  }
};

static_assert(mask_policy<NoMask> && mask_policy<Causal> && mask_policy<SlidingWindow> &&
              mask_policy<LocalWindow> && mask_policy<Sinks> && mask_policy<PrefixLM> &&
              mask_policy<KeyPadding> && mask_policy<KeepMask> && mask_policy<Document> &&
              mask_policy<BlockSparse>);

}  // namespace attnkit::policy
