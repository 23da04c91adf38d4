// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Weight<T>: a weight matrix [out, in] kept in the dtype it is stored in (T, bf16 or f16), and
// the matrix-times-weightᵀ products that read it in place: a GEMV kernel for a few rows (the
// decode step, memory bound: each weight element is read once and widened in registers) and
// widened panels through kernel::gemm for many rows (prefill, compute bound).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "attnkit/core/error.hpp"
#include "attnkit/core/half.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/scratch_stack.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/kernel/gemm.hpp"
#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/batch.hpp"
#include "attnkit/simd/widen.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::block {

/// The element type a Weight stores.
enum class WeightType : std::uint8_t {
  native,  ///< T itself (any strides)
  bf16,    ///< bfloat16, rows contiguous
  f16,     ///< IEEE binary16, rows contiguous
};

/// A weight matrix [out, in] (torch.nn.Linear's layout) viewed in its stored element type: T,
/// bf16 or f16. Converts implicitly from a view of any of the three, so modules take
/// float32 weights and memory-mapped bf16/f16 checkpoints alike. A half view must have
/// contiguous rows (stride 1 along `in`). Like a TensorView it does not own the storage.
/// \tparam T the compute type, float or double
template <std::floating_point T>
class Weight {
 public:
  Weight() = default;
  /// A weight of T (any strides).
  Weight(TensorView<const T, 2> w) noexcept  // NOLINT(google-explicit-constructor)
      : native_(w), shape_(w.shape()) {}
  /// A weight of T (any strides).
  Weight(TensorView<T, 2> w) noexcept  // NOLINT(google-explicit-constructor)
      : Weight(TensorView<const T, 2>(w)) {}
  /// A bf16 weight; throws shape_error unless its rows are contiguous.
  Weight(TensorView<const attnkit::bf16, 2> w)  // NOLINT(google-explicit-constructor)
      : bf16_(w), shape_(w.shape()), type_(WeightType::bf16) {
    check_rows(w.stride(1));
  }
  /// An f16 weight; throws shape_error unless its rows are contiguous.
  Weight(TensorView<const attnkit::f16, 2> w)  // NOLINT(google-explicit-constructor)
      : f16_(w), shape_(w.shape()), type_(WeightType::f16) {
    check_rows(w.stride(1));
  }

  WeightType type() const noexcept { return type_; }
  const Shape<2>& shape() const noexcept { return shape_; }
  index_t extent(std::size_t i) const noexcept { return shape_[i]; }
  bool empty() const noexcept { return shape_[0] == 0 || shape_[1] == 0; }
  /// Bytes of the stored elements (what a pass over the weight reads).
  std::size_t bytes() const noexcept {
    const std::size_t e = type_ == WeightType::native ? sizeof(T) : 2;
    return static_cast<std::size_t>(shape_[0]) * static_cast<std::size_t>(shape_[1]) * e;
  }
  /// The first stored element (for identity checks: tied embeddings share it).
  const void* data() const noexcept {
    switch (type_) {
      case WeightType::bf16:
        return bf16_.data();
      case WeightType::f16:
        return f16_.data();
      default:
        return native_.data();
    }
  }

  /// The view of a weight of T; throws error for a bf16 or f16 weight.
  TensorView<const T, 2> native() const {
    if (type_ != WeightType::native)
      throw error("attnkit: Weight: a bf16/f16 weight has no view of the compute type");
    return native_;
  }
  const TensorView<const attnkit::bf16, 2>& bf16_view() const noexcept { return bf16_; }
  const TensorView<const attnkit::f16, 2>& f16_view() const noexcept { return f16_; }

  /// Element (r, c) as T (exact: bf16 and f16 widen without rounding).
  T operator()(index_t r, index_t c) const noexcept {
    switch (type_) {
      case WeightType::bf16:
        return static_cast<T>(bf16_(r, c).to_float());
      case WeightType::f16:
        return static_cast<T>(f16_(r, c).to_float());
      default:
        return native_(r, c);
    }
  }

  /// dst[0, in) = row r as T (exact); r must be in [0, out).
  void row(index_t r, T* dst) const noexcept {
    const index_t n = shape_[1];
    if (type_ == WeightType::native) {
      for (index_t c = 0; c < n; ++c) dst[c] = native_(r, c);
      return;
    }
    if constexpr (std::is_same_v<T, float>) {
      simd::dispatch([&](auto a) {
        using A = decltype(a);
        if (type_ == WeightType::bf16)
          simd::widen_row<A>(bf16_.data() + r * bf16_.stride(0), n, dst);
        else
          simd::widen_row<A>(f16_.data() + r * f16_.stride(0), n, dst);
      });
    } else {
      for (index_t c = 0; c < n; ++c) dst[c] = (*this)(r, c);
    }
  }

 private:
  static void check_rows(index_t col_stride) {
    if (col_stride != 1)
      throw shape_error(
          "attnkit: Weight: a bf16/f16 weight needs contiguous rows (stride 1 "
          "along in), got stride " +
          std::to_string(col_stride));
  }

  TensorView<const T, 2> native_{};
  TensorView<const attnkit::bf16, 2> bf16_{};
  TensorView<const attnkit::f16, 2> f16_{};
  Shape<2> shape_{0, 0};
  WeightType type_ = WeightType::native;
};

namespace detail {

/// Rows of x a GEMV pass holds in registers; more rows take widened panels and the GEMM.
inline constexpr index_t gemv_max_rows = 4;
/// Weight elements below which a GEMV stays on one thread.
inline constexpr index_t gemv_parallel_volume = index_t{1} << 16;
/// Weight elements up to which a one-row GEMV takes the cache-resident kernel (AVX-512:
/// gemv_small_avx512); it depends on the weight's shape only, so a weight always takes the same
/// kernel (and gives the same bits) whatever the thread count.
inline constexpr index_t gemv_small_volume = gemv_parallel_volume;

/// Bytes ahead of each weight row's current load that the GEMV prefetches, with the
/// non-temporal hint (the weights are read once per call).
inline constexpr index_t gemv_prefetch_bytes = 2048;
/// Weight rows one x row's GEMV reads at once, from S equal parts of the thread's rows: S
/// independent streams. Measured on Zen 5 (AVX-512), bf16 weights [151936, 896] and [896, 4864]:
/// one stream of consecutive rows read about 25-31 GB/s on one thread, four streams with the
/// prefetch 41-42 GB/s (the streaming-read benchmark: about 37-42); on two threads 56-67 against
/// 72-80 GB/s.
inline constexpr int gemv_stream_count = 4;

/// Prefetches (non-temporal) the line `bytes` past p. Address arithmetic only: a prefetch is a
/// hint that never faults, so it may point past the end of the weight.
inline void prefetch_ahead(const void* p, index_t bytes) noexcept {
#if defined(__SSE2__) || defined(_M_X64)
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p) + static_cast<std::uintptr_t>(bytes);
  _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_NTA);
#else
  (void)p;
  (void)bytes;
#endif
}

/// y[o] = Σ_c x[c] · w[o, c] for the S weight rows o of `rows`, read together (S streams), each
/// with U accumulators. The arithmetic of a row does not depend on S or on the other rows, so
/// every row gives the same bits whichever group it is read in.
template <class Arch, class E, int S, int U>
void gemv_streams(const float* x, const E* w, index_t ws, index_t in, const index_t* rows, float* y,
                  index_t ys1) noexcept {
  using B = simd::batch<float, Arch>;
  constexpr index_t W = simd::width<float, Arch>;
  const E* wr[S];
  B acc[S][U];
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s) {
    wr[s] = w + rows[s] * ws;
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) acc[s][u] = B(0.0f);
  }
  index_t c = 0;
  for (; c + U * W <= in; c += U * W)
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      const B xv = B::load_unaligned(x + c + u * W);
#pragma GCC unroll 8
      for (int s = 0; s < S; ++s) {
        if ((u * W * static_cast<index_t>(sizeof(E))) % 64 == 0)  // once per cache line
          prefetch_ahead(wr[s] + c + u * W, gemv_prefetch_bytes);
        acc[s][u] = xsimd::fma(simd::load_widen<Arch>(wr[s] + c + u * W), xv, acc[s][u]);
      }
    }
  for (; c + W <= in; c += W) {
    const B xv = B::load_unaligned(x + c);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s)
      acc[s][0] = xsimd::fma(simd::load_widen<Arch>(wr[s] + c), xv, acc[s][0]);
  }
  if (c < in) {
    const B xv = simd::load_partial<Arch>(x + c, in - c);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s)
      acc[s][0] = xsimd::fma(simd::load_widen_partial<Arch>(wr[s] + c, in - c), xv, acc[s][0]);
  }
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s) {
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) acc[s][0] += acc[s][u];
    y[rows[s] * ys1] = simd::reduce_add(acc[s][0]);
  }
}

#if defined(__AVX512F__)
/// The 16 lane sums of a0..a15 as one vector (lane r = Σ a_r): pairs added within 128-bit
/// lanes (unpack), then quads (shuffle), then across the four 128-bit lanes.
inline __m512 lane_sums_16(const __m512* a) noexcept {
  __m512 u[8], z[4];
  for (int i = 0; i < 8; ++i)
    u[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                         _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int k = 0; k < 4; ++k)  // z[k]: rows 4k..4k+3 in each 128-bit lane
    z[k] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * k], u[2 * k + 1], 0x44),
                         _mm512_shuffle_ps(u[2 * k], u[2 * k + 1], 0xEE));
  const __m512 s01 =
      _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], 0x88), _mm512_shuffle_f32x4(z[0], z[1], 0xDD));
  const __m512 s23 =
      _mm512_add_ps(_mm512_shuffle_f32x4(z[2], z[3], 0x88), _mm512_shuffle_f32x4(z[2], z[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xDD));
}

/// One x row over the weight rows [o0, o1) of a weight small enough to stay in the caches
/// (gemv_small_volume elements): 16 rows at a time, one accumulator each, their 16 lane sums in
/// one transposing reduction (lane_sums_16) and one store; no prefetch. The rows left over (fewer
/// than 16) take the same arithmetic one at a time, so every row gives the same bits. Against
/// gemv_one (four rows per pass, a lane sum each, prefetches meant for DRAM) the projections of a
/// hidden-64 model (64 x 64, 96 x 64, 64 x 96 floats) ran 1.9-2.1x as fast (AVX-512).
template <class E>
void gemv_small_avx512(const float* x, const E* w, index_t ws, index_t in, index_t o0, index_t o1,
                       float* y, index_t ys1) noexcept {
  using Arch = xsimd::avx512bw;
  constexpr index_t W = 16;
  const index_t full = in - in % W, tail = in - full;
  index_t o = o0;
  for (; o + W <= o1; o += W) {
    __m512 acc[W];
    for (index_t r = 0; r < W; ++r) acc[r] = _mm512_setzero_ps();
    const E* wr = w + o * ws;
    for (index_t c = 0; c < full; c += W) {
      const __m512 xv = _mm512_loadu_ps(x + c);
#pragma GCC unroll 16
      for (index_t r = 0; r < W; ++r)
        acc[r] = _mm512_fmadd_ps(simd::load_widen<Arch>(wr + r * ws + c), xv, acc[r]);
    }
    if (tail > 0) {
      const __m512 xv = simd::load_partial<Arch>(x + full, tail);
#pragma GCC unroll 16
      for (index_t r = 0; r < W; ++r)
        acc[r] =
            _mm512_fmadd_ps(simd::load_widen_partial<Arch>(wr + r * ws + full, tail), xv, acc[r]);
    }
    const __m512 sums = lane_sums_16(acc);
    if (ys1 == 1) {
      _mm512_storeu_ps(y + o, sums);
    } else {
      alignas(64) float t[W];
      _mm512_store_ps(t, sums);
      for (index_t r = 0; r < W; ++r) y[(o + r) * ys1] = t[r];
    }
  }
  for (; o < o1; ++o) {  // one row in lane 0 of the same reduction, the other 15 zero
    __m512 acc[W];
    for (index_t r = 0; r < W; ++r) acc[r] = _mm512_setzero_ps();
    const E* wr = w + o * ws;
    for (index_t c = 0; c < full; c += W)
      acc[0] = _mm512_fmadd_ps(simd::load_widen<Arch>(wr + c), _mm512_loadu_ps(x + c), acc[0]);
    if (tail > 0)
      acc[0] = _mm512_fmadd_ps(simd::load_widen_partial<Arch>(wr + full, tail),
                               simd::load_partial<Arch>(x + full, tail), acc[0]);
    y[o * ys1] = _mm512_cvtss_f32(lane_sums_16(acc));
  }
}
#endif

/// One x row over weight rows [o0, o1): gemv_streams over gemv_stream_count equal parts of the
/// range (row i of each part together), the rows left over one at a time.
template <class Arch, class E>
void gemv_one(const float* x, const E* w, index_t ws, index_t in, index_t o0, index_t o1, float* y,
              index_t ys1) noexcept {
  constexpr int S = gemv_stream_count, U = 2;
  const index_t q = (o1 - o0) / S;
  for (index_t i = 0; i < q; ++i) {
    index_t rows[S];
    for (int s = 0; s < S; ++s) rows[s] = o0 + s * q + i;
    gemv_streams<Arch, E, S, U>(x, w, ws, in, rows, y, ys1);
  }
  for (index_t o = o0 + S * q; o < o1; ++o) gemv_streams<Arch, E, 1, U>(x, w, ws, in, &o, y, ys1);
}

/// y[r, o] = Σ_c x[r, c] · w[o, c] for r < M and o in [o0, o1): R weight rows at a time share
/// each x load (R·M accumulators), each row prefetched gemv_prefetch_bytes / R ahead. Weight rows
/// of E (float, bf16, f16) at w + o·ws, widened in registers; x rows at stride xs, y strides
/// ys0 / ys1.
template <class Arch, class E, int M, int R>
void gemv_rows(const float* x, index_t xs, const E* w, index_t ws, index_t in, index_t o0,
               index_t o1, float* y, index_t ys0, index_t ys1) noexcept {
  using B = simd::batch<float, Arch>;
  constexpr index_t W = simd::width<float, Arch>;
  const index_t full = in - in % W;
  auto finish = [&](B* acc_row, index_t o) {
    for (int m = 0; m < M; ++m) y[m * ys0 + o * ys1] = simd::reduce_add(acc_row[m]);
  };
  index_t o = o0;
  for (; o + R <= o1; o += R) {
    B acc[R][M];
    for (int i = 0; i < R; ++i)
      for (int m = 0; m < M; ++m) acc[i][m] = B(0.0f);
    const E* wr[R];
    for (int i = 0; i < R; ++i) wr[i] = w + (o + i) * ws;
    for (index_t c = 0; c < full; c += W) {
      B xv[M];
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) xv[m] = B::load_unaligned(x + m * xs + c);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        if ((c * static_cast<index_t>(sizeof(E))) % 64 == 0)
          prefetch_ahead(wr[i] + c, gemv_prefetch_bytes / R);
        const B wv = simd::load_widen<Arch>(wr[i] + c);
#pragma GCC unroll 4
        for (int m = 0; m < M; ++m) acc[i][m] = xsimd::fma(wv, xv[m], acc[i][m]);
      }
    }
    if (full < in) {
      const index_t t = in - full;
      B xv[M];
      for (int m = 0; m < M; ++m) xv[m] = simd::load_partial<Arch>(x + m * xs + full, t);
      for (int i = 0; i < R; ++i) {
        const B wv = simd::load_widen_partial<Arch>(wr[i] + full, t);
        for (int m = 0; m < M; ++m) acc[i][m] = xsimd::fma(wv, xv[m], acc[i][m]);
      }
    }
    for (int i = 0; i < R; ++i) finish(acc[i], o + i);
  }
  if constexpr (R > 1) {  // fewer than R rows left: one at a time, the same arithmetic
    if (o < o1) gemv_rows<Arch, E, M, 1>(x, xs, w, ws, in, o, o1, y, ys0, ys1);
  }
}

/// The GEMV of M x rows over weight rows [o0, o1): the stream kernel for one x row, the
/// multi-row kernel (4 weight rows) for two to four.
template <class Arch, class E>
void gemv_range(const float* x, index_t xs, index_t m, const E* w, index_t ws, index_t in,
                index_t o0, index_t o1, float* y, index_t ys0, index_t ys1) noexcept {
  switch (m) {
    case 1:
      gemv_one<Arch, E>(x, w, ws, in, o0, o1, y, ys1);
      break;
    case 2:
      gemv_rows<Arch, E, 2, 4>(x, xs, w, ws, in, o0, o1, y, ys0, ys1);
      break;
    case 3:
      gemv_rows<Arch, E, 3, 4>(x, xs, w, ws, in, o0, o1, y, ys0, ys1);
      break;
    default:
      gemv_rows<Arch, E, 4, 4>(x, xs, w, ws, in, o0, o1, y, ys0, ys1);
      break;
  }
}

/// gemv_range over all `out` weight rows, split into one contiguous range per thread. Every row's
/// arithmetic is the same whichever range and group it falls in, so the result has the same bits
/// for any thread count. m in [1, gemv_max_rows].
template <class E>
void gemv(const float* x, index_t xs, index_t m, const E* w, index_t ws, index_t out, index_t in,
          float* y, index_t ys0, index_t ys1) {
  simd::dispatch([&](auto a) {
    using A = decltype(a);
    const index_t parts =
        out * in < gemv_parallel_volume ? 1 : std::min<index_t>(out, worker_threads());
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512bw, A>) {
      if (m == 1 && out * in < gemv_small_volume) {
        gemv_small_avx512<E>(x, w, ws, in, 0, out, y, ys1);
        return;
      }
    }
#endif
    if (parts <= 1) {
      gemv_range<A, E>(x, xs, m, w, ws, in, 0, out, y, ys0, ys1);
      return;
    }
    parallel_for(static_cast<long>(parts), [&](long t) {
      const index_t o0 = out * static_cast<index_t>(t) / parts,
                    o1 = out * (static_cast<index_t>(t) + 1) / parts;
      gemv_range<A, E>(x, xs, m, w, ws, in, o0, o1, y, ys0, ys1);
    });
  });
}

/// Elements of T a widened weight panel holds (rows × in).
inline constexpr index_t panel_elements = index_t{1} << 18;

/// y = x · Wᵀ for a bf16/f16 W through kernel::gemm on panels of W's rows widened to T.
template <std::floating_point T, class E>
void gemm_widened(TensorView<const T, 2> x, const TensorView<const E, 2>& w, TensorView<T, 2> y) {
  const index_t m = x.extent(0), out = w.extent(0), in = w.extent(1);
  index_t rows = std::max<index_t>(16, panel_elements / std::max<index_t>(in, 1));
  rows = std::min(out, rows - rows % 16);
  ScratchFrame frame;
  T* panel = frame.array<T>(rows * in).data();
  for (index_t o0 = 0; o0 < out; o0 += rows) {
    const index_t nb = std::min(rows, out - o0);
    for (index_t r = 0; r < nb; ++r) {
      const E* src = w.data() + (o0 + r) * w.stride(0);
      T* dst = panel + r * in;
      if constexpr (std::is_same_v<T, float>) {
        simd::dispatch([&](auto a) { simd::widen_row<decltype(a)>(src, in, dst); });
      } else {
        for (index_t c = 0; c < in; ++c) dst[c] = static_cast<T>(src[c].to_float());
      }
    }
    kernel::gemm<T>(m, nb, in, T(1), {x.data(), x.stride(0), x.stride(1)}, {panel, 1, in}, T(0),
                    {y.data() + o0 * y.stride(1), y.stride(0), y.stride(1)});
  }
}

}  // namespace detail

/// y[M, out] = x[M, in] · Wᵀ for a Weight of any stored type. A weight of T with a few rows of
/// x (M <= 4, float, contiguous rows) and every bf16/f16 weight with a few rows take the GEMV
/// kernel; otherwise a weight of T goes to kernel::gemm directly and a bf16/f16 weight through
/// widened panels. Results do not depend on the thread count.
template <std::floating_point T>
void matmul_transposed(TensorView<const T, 2> x, const Weight<T>& w, TensorView<T, 2> y) {
  const index_t m = x.extent(0), out = w.extent(0), in = w.extent(1);
  if (m == 0 || out == 0) return;
  if (in == 0) {
    for (index_t r = 0; r < m; ++r)
      for (index_t c = 0; c < out; ++c) y(r, c) = T(0);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (m <= detail::gemv_max_rows && x.stride(1) == 1) {
      switch (w.type()) {
        case WeightType::bf16:
          detail::gemv(x.data(), x.stride(0), m, w.bf16_view().data(), w.bf16_view().stride(0), out,
                       in, y.data(), y.stride(0), y.stride(1));
          return;
        case WeightType::f16:
          detail::gemv(x.data(), x.stride(0), m, w.f16_view().data(), w.f16_view().stride(0), out,
                       in, y.data(), y.stride(0), y.stride(1));
          return;
        default: {
          const TensorView<const T, 2> v = w.native();
          if (v.stride(1) == 1) {
            detail::gemv(x.data(), x.stride(0), m, v.data(), v.stride(0), out, in, y.data(),
                         y.stride(0), y.stride(1));
            return;
          }
        }
      }
    }
  }
  switch (w.type()) {
    case WeightType::bf16:
      detail::gemm_widened<T>(x, w.bf16_view(), y);
      return;
    case WeightType::f16:
      detail::gemm_widened<T>(x, w.f16_view(), y);
      return;
    default: {
      const TensorView<const T, 2> v = w.native();
      kernel::gemm<T>(m, out, in, T(1), {x.data(), x.stride(0), x.stride(1)},
                      {v.data(), v.stride(1), v.stride(0)}, T(0),
                      {y.data(), y.stride(0), y.stride(1)});
    }
  }
}

}  // namespace attnkit::block

ATTNKIT_SIMD_WARNINGS_POP
