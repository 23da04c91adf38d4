// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Heatmaps of attention weights: a viridis raster (for PNG, see heatmap_png.hpp) and a
// self-contained SVG with token labels on the axes and a color bar. Masked pairs are gray.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/inspect/capture.hpp"
#include "attnkit/io/dtype.hpp"

namespace attnkit::inspect {

/// An 8-bit RGB color.
struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  friend constexpr bool operator==(const Rgb&, const Rgb&) = default;
};

/// The color of masked (invisible) pairs.
inline constexpr Rgb masked_color{224, 224, 224};

/// The viridis colormap (matplotlib) at t in [0, 1] (clamped; NaN is 0): linear interpolation
/// between 9 anchors of the original table.
inline Rgb viridis(double t) noexcept {
  static constexpr std::uint8_t anchors[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},
                                                 {44, 113, 142}, {33, 144, 141}, {39, 173, 129},
                                                 {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
  if (!(t > 0)) t = 0;
  if (t > 1) t = 1;
  const double x = t * 8.0;
  const int i = std::min(7, static_cast<int>(x));
  const double f = x - i;
  auto mix = [&](int c) {
    return static_cast<std::uint8_t>(
        std::lround(anchors[i][c] + f * (anchors[i + 1][c] - anchors[i][c])));
  };
  return Rgb{mix(0), mix(1), mix(2)};
}

/// How to draw a heatmap.
struct HeatmapOptions {
  /// Pixels per cell; 0 picks about 512 px for the larger side (between 1 and 24 px).
  index_t cell = 0;
  /// Color range; NaN: lo = min(0, smallest visible value), hi = largest visible value.
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
  std::string title;  ///< SVG title line
};

/// An RGB picture: rows top to bottom, 3 bytes per pixel.
struct Raster {
  index_t width = 0;
  index_t height = 0;
  std::vector<std::uint8_t> rgb;  ///< [height, width, 3]
};

namespace detail {

/// The range and cell size a heatmap of `values` uses.
template <class T>
void heatmap_layout(TensorView<const T, 2> values, TensorView<const std::uint8_t, 2> visible,
                    const HeatmapOptions& opts, double& lo, double& hi, index_t& cell) {
  const index_t nr = values.extent(0), nc = values.extent(1);
  if (visible.data() != nullptr && visible.shape() != values.shape())
    throw_shape_mismatch("heatmap", "visible", visible.shape(), values.shape());
  double mn = std::numeric_limits<double>::infinity(), mx = -mn;
  for (index_t r = 0; r < nr; ++r)
    for (index_t c = 0; c < nc; ++c) {
      if (visible.data() != nullptr && visible(r, c) == 0) continue;
      const double x = static_cast<double>(values(r, c));
      if (!std::isfinite(x)) continue;
      mn = std::min(mn, x);
      mx = std::max(mx, x);
    }
  if (mn > mx) mn = mx = 0;
  lo = std::isnan(opts.lo) ? std::min(0.0, mn) : opts.lo;
  hi = std::isnan(opts.hi) ? mx : opts.hi;
  if (!(hi > lo)) hi = lo + 1;
  cell = opts.cell > 0 ? opts.cell
                       : std::clamp<index_t>(512 / std::max<index_t>(1, std::max(nr, nc)), 1, 24);
}

template <class T>
Rgb cell_color(TensorView<const T, 2> values, TensorView<const std::uint8_t, 2> visible, index_t r,
               index_t c, double lo, double hi) {
  if (visible.data() != nullptr && visible(r, c) == 0) return masked_color;
  return viridis((static_cast<double>(values(r, c)) - lo) / (hi - lo));
}

inline std::string hex(Rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

inline std::string fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", x);
  return buf;
}

}  // namespace detail

/// Escapes text for XML content and attribute values.
inline std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n') {
          out += '?';
        } else {
          out += ch;
        }
    }
  }
  return out;
}

/// The heatmap of `values` [R, C] as a raster: one `cell`-pixel square per value, viridis over
/// [lo, hi], masked pairs (visible == 0; `visible` may be empty) gray.
/// \tparam T float or double
template <class T>
Raster heatmap_raster(TensorView<const T, 2> values, TensorView<const std::uint8_t, 2> visible = {},
                      const HeatmapOptions& opts = {}) {
  double lo = 0, hi = 1;
  index_t cell = 1;
  detail::heatmap_layout(values, visible, opts, lo, hi, cell);
  Raster img;
  img.width = values.extent(1) * cell;
  img.height = values.extent(0) * cell;
  img.rgb.resize(static_cast<std::size_t>(img.width * img.height * 3));
  for (index_t r = 0; r < values.extent(0); ++r)
    for (index_t c = 0; c < values.extent(1); ++c) {
      const Rgb col = detail::cell_color(values, visible, r, c, lo, hi);
      for (index_t y = r * cell; y < (r + 1) * cell; ++y)
        for (index_t x = c * cell; x < (c + 1) * cell; ++x) {
          std::uint8_t* p = img.rgb.data() + (y * img.width + x) * 3;
          p[0] = col.r;
          p[1] = col.g;
          p[2] = col.b;
        }
    }
  return img;
}

/// The heatmap of `values` [R, C] as an SVG document: cells (runs of equal color merged), the
/// row labels on the left (queries), the column labels below (keys, rotated), a title and a
/// color bar with the range. Labels are optional (empty vectors) and escaped; when cells are
/// small only every k-th label is drawn.
/// \tparam T float or double
template <class T>
std::string heatmap_svg(TensorView<const T, 2> values, TensorView<const std::uint8_t, 2> visible,
                        const std::vector<std::string>& row_labels,
                        const std::vector<std::string>& col_labels,
                        const HeatmapOptions& opts = {}) {
  const index_t nr = values.extent(0), nc = values.extent(1);
  if (!row_labels.empty() && static_cast<index_t>(row_labels.size()) != nr)
    throw shape_error("attnkit: heatmap_svg: " + std::to_string(row_labels.size()) +
                      " row labels for " + std::to_string(nr) + " rows");
  if (!col_labels.empty() && static_cast<index_t>(col_labels.size()) != nc)
    throw shape_error("attnkit: heatmap_svg: " + std::to_string(col_labels.size()) +
                      " column labels for " + std::to_string(nc) + " columns");
  double lo = 0, hi = 1;
  index_t cell = 1;
  detail::heatmap_layout(values, visible, opts, lo, hi, cell);
  if (opts.cell <= 0) cell = std::max<index_t>(cell, 4);
  constexpr double char_w = 6.6, font = 11;
  auto longest = [](const std::vector<std::string>& v) {
    std::size_t m = 0;
    for (const auto& s : v) m = std::max(m, s.size());
    return static_cast<double>(m);
  };
  const double left = 24 + char_w * longest(row_labels);
  const double top = opts.title.empty() ? 12 : 30;
  const double gw = static_cast<double>(nc * cell), gh = static_cast<double>(nr * cell);
  const double bottom = 24 + char_w * longest(col_labels);
  const double bar_x = left + gw + 16, bar_h = std::max(gh, 60.0);
  const double width = bar_x + 14 + 8 + char_w * 9, height = top + std::max(gh, bar_h) + bottom;
  const index_t every = std::max<index_t>(1, static_cast<index_t>(std::ceil(font / cell)));
  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + detail::fmt(width) + "\" height=\"" +
       detail::fmt(height) + "\" viewBox=\"0 0 " + detail::fmt(width) + " " + detail::fmt(height) +
       "\" font-family=\"monospace\" font-size=\"" + detail::fmt(font) + "\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  if (!opts.title.empty())
    s += "<text x=\"" + detail::fmt(left) + "\" y=\"18\" font-size=\"13\">" +
         xml_escape(opts.title) + "</text>\n";
  s += "<g shape-rendering=\"crispEdges\">\n";
  for (index_t r = 0; r < nr; ++r) {
    index_t c = 0;
    while (c < nc) {
      const Rgb col = detail::cell_color(values, visible, r, c, lo, hi);
      index_t e = c + 1;
      while (e < nc && detail::cell_color(values, visible, r, e, lo, hi) == col) ++e;
      s += "<rect x=\"" + detail::fmt(left + static_cast<double>(c * cell)) + "\" y=\"" +
           detail::fmt(top + static_cast<double>(r * cell)) + "\" width=\"" +
           std::to_string((e - c) * cell) + "\" height=\"" + std::to_string(cell) + "\" fill=\"" +
           detail::hex(col) + "\"/>\n";
      c = e;
    }
  }
  s += "</g>\n";
  for (index_t r = 0; r < nr && !row_labels.empty(); r += every)
    s += "<text x=\"" + detail::fmt(left - 4) + "\" y=\"" +
         detail::fmt(top + (static_cast<double>(r) + 0.5) * static_cast<double>(cell) + 4) +
         "\" text-anchor=\"end\">" + xml_escape(row_labels[static_cast<std::size_t>(r)]) +
         "</text>\n";
  for (index_t c = 0; c < nc && !col_labels.empty(); c += every) {
    const double x = left + (static_cast<double>(c) + 0.5) * static_cast<double>(cell) + 4;
    const double y = top + gh + 6;
    s += "<text x=\"" + detail::fmt(x) + "\" y=\"" + detail::fmt(y) +
         "\" text-anchor=\"end\" transform=\"rotate(-90 " + detail::fmt(x) + " " + detail::fmt(y) +
         ")\">" + xml_escape(col_labels[static_cast<std::size_t>(c)]) + "</text>\n";
  }
  s += "<text x=\"" + detail::fmt(left) + "\" y=\"" + detail::fmt(height - 6) +
       "\" fill=\"#555555\">keys (columns) / queries (rows)</text>\n";
  // Color bar: hi at the top, lo at the bottom.
  s += "<defs><linearGradient id=\"bar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int i = 0; i <= 8; ++i)
    s += "<stop offset=\"" + detail::fmt(i / 8.0) + "\" stop-color=\"" +
         detail::hex(viridis(i / 8.0)) + "\"/>";
  s += "</linearGradient></defs>\n";
  s += "<rect x=\"" + detail::fmt(bar_x) + "\" y=\"" + detail::fmt(top) +
       "\" width=\"14\" height=\"" + detail::fmt(bar_h) + "\" fill=\"url(#bar)\"/>\n";
  s += "<text x=\"" + detail::fmt(bar_x + 18) + "\" y=\"" + detail::fmt(top + 9) + "\">" +
       detail::fmt(hi) + "</text>\n";
  s += "<text x=\"" + detail::fmt(bar_x + 18) + "\" y=\"" + detail::fmt(top + bar_h) + "\">" +
       detail::fmt(lo) + "</text>\n";
  s += "</svg>\n";
  return s;
}

/// Labels of the rows and keys of a capture from token labels (one per key position).
template <class T>
void capture_labels(const HeadCapture<T>& c, const std::vector<std::string>& tokens,
                    std::vector<std::string>& rows, std::vector<std::string>& keys) {
  rows.clear();
  keys.clear();
  if (tokens.empty()) return;
  if (static_cast<index_t>(tokens.size()) != c.keys())
    throw shape_error("attnkit: heatmap: " + std::to_string(tokens.size()) + " token labels for " +
                      std::to_string(c.keys()) + " keys");
  keys = tokens;
  for (std::size_t r = 0; r < c.rows.size(); ++r)
    rows.push_back(tokens.at(static_cast<std::size_t>(c.position(static_cast<index_t>(r)))));
}

/// The SVG heatmap of one captured (layer, head) with token labels on both axes (`tokens`: one
/// label per key position, or empty) and the title "layer L, head H".
template <class T>
std::string heatmap_svg(const HeadCapture<T>& c, const std::vector<std::string>& tokens,
                        HeatmapOptions opts = {}) {
  std::vector<std::string> rows, keys;
  capture_labels(c, tokens, rows, keys);
  if (opts.title.empty())
    opts.title = "layer " + std::to_string(c.layer) + ", head " + std::to_string(c.head);
  return heatmap_svg<T>(c.probs.cview(), c.visible.cview(), rows, keys, opts);
}

/// Writes `text` to `path`; throws io::file_error naming the file when it cannot.
inline void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw io::file_error("attnkit: " + path + ": cannot open for writing");
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) throw io::file_error("attnkit: " + path + ": write failed");
}

}  // namespace attnkit::inspect
