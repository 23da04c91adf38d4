// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// PNG heatmaps through stb_image_write (Debian: libstb-dev, <stb/stb_image_write.h>). Optional:
// the umbrella header does not include this file, so the library needs no image writer.
//
// stb is compiled here as private static functions (STB_IMAGE_WRITE_STATIC), so several TUs may
// include this header. If a TU has already included <stb/stb_image_write.h> itself, its
// declarations are used and the program must link that TU's stb implementation.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#if !defined(INCLUDE_STB_IMAGE_WRITE_H)
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define ATTNKIT_STB_IMAGE_WRITE_HERE
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#if defined(ATTNKIT_STB_IMAGE_WRITE_HERE)
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef ATTNKIT_STB_IMAGE_WRITE_HERE
#endif

#include "attnkit/core/error.hpp"
#include "attnkit/inspect/capture.hpp"
#include "attnkit/inspect/heatmap.hpp"
#include "attnkit/io/dtype.hpp"

namespace attnkit::inspect {

namespace detail {
inline void check_png_size(const Raster& img) {
  if (img.width < 1 || img.height < 1 || img.width > (std::numeric_limits<int>::max() / 3) ||
      img.height > std::numeric_limits<int>::max() ||
      static_cast<index_t>(img.rgb.size()) != img.width * img.height * 3)
    throw error("attnkit: PNG: bad raster " + std::to_string(img.width) + " x " +
                std::to_string(img.height) + " with " + std::to_string(img.rgb.size()) + " bytes");
}
}  // namespace detail

/// The PNG file (8-bit RGB, zlib-compressed by stb) of a raster, in memory.
inline std::vector<std::uint8_t> encode_png(const Raster& img) {
  detail::check_png_size(img);
  std::vector<std::uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<std::uint8_t>*>(ctx);
    const auto* p = static_cast<const std::uint8_t*>(data);
    v->insert(v->end(), p, p + size);
  };
  if (stbi_write_png_to_func(sink, &out, static_cast<int>(img.width), static_cast<int>(img.height),
                             3, img.rgb.data(), static_cast<int>(img.width * 3)) == 0)
    throw error("attnkit: PNG: stb_image_write could not encode the image");
  return out;
}

/// Writes a raster as a PNG file; throws io::file_error naming the file when it cannot.
inline void write_png(const std::string& path, const Raster& img) {
  const std::vector<std::uint8_t> bytes = encode_png(img);
  write_text_file(path, std::string(bytes.begin(), bytes.end()));
}

/// Writes the heatmap of `values` [R, C] (masked pairs gray) as a PNG file.
/// \tparam T float or double
template <class T>
void write_heatmap_png(const std::string& path, TensorView<const T, 2> values,
                       TensorView<const std::uint8_t, 2> visible = {},
                       const HeatmapOptions& opts = {}) {
  write_png(path, heatmap_raster<T>(values, visible, opts));
}

/// Writes the heatmap of one captured (layer, head) as a PNG file.
template <class T>
void write_heatmap_png(const std::string& path, const HeadCapture<T>& c,
                       const HeatmapOptions& opts = {}) {
  write_png(path, heatmap_raster<T>(c.probs.cview(), c.visible.cview(), opts));
}

}  // namespace attnkit::inspect
