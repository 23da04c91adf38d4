// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Register-blocked SIMD micro-kernels of the fused attention kernel. Scores are kept transposed,
// S^T[j][lane] with one query row per SIMD lane, so the online softmax reduces over keys with
// vertical max/add only, K rows are read in place (broadcasts, no packing) and only Q is packed
// (Q^T, once per work unit). A decode tile of a few query rows takes a row-major S[row][key]
// instead (qk_rows_tile_rm, pv_rows_tile), whose activation runs along the keys.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "attnkit/attention/detail/tile_math.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/simd/batch.hpp"
#include "attnkit/simd/widen.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::attention_detail {

/// Blocking of the micro-kernels for one architecture and element type.
template <class Arch, class T>
struct Blocking {
  static constexpr index_t width = static_cast<index_t>(xsimd::batch<T, Arch>::size);
  static constexpr bool wide = is_avx512<Arch>;  // 32 vector registers
  /// keys per S^T micro-tile (rows) and query vectors per micro-tile (columns)
  static constexpr int qk_keys = wide ? 6 : 2;
  static constexpr int qk_vectors = 4;
  /// query lanes per P·V micro-tile and Dv vectors per micro-tile
  static constexpr int pv_rows = wide ? 3 : 2;
  static constexpr int pv_vectors = wide ? 8 : 4;
};

/// The epilogue of a score tile that stores the scores as they are.
struct NoEpilogue {
  template <class B>
  B operator()(const B& s) const noexcept {
    return s;
  }
};

/// S^T[j][lane0 + v·W ..] = epi(Σ_d K[j][d] · Q^T[d][lane0 + v·W ..]) for MK keys and NV
/// vectors. The epilogue maps each finished register (an elementwise activation fused into the
/// tile: no store and reload of the scores).
/// \param qt Q^T of the lane group, row stride `lanes` \param k first key row, row stride ks,
/// element stride kd \param st S^T, row stride `lanes`
template <class Arch, class T, int MK, int NV, class Epi = NoEpilogue>
inline void qk_block(const T* qt, index_t lanes, const T* k, index_t ks, index_t kd, index_t d,
                     T* st, const Epi& epi = {}) noexcept {
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  B acc[MK][NV];
  for (int r = 0; r < MK; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = B(T(0));
  const T* kr[MK];
  for (int r = 0; r < MK; ++r) kr[r] = k + r * ks;
  for (index_t p = 0; p < d; ++p) {
    B qv[NV];
    for (int v = 0; v < NV; ++v) qv[v] = B::load_aligned(qt + p * lanes + v * W);
    for (int r = 0; r < MK; ++r) {
      const B kb(kr[r][p * kd]);
      for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(kb, qv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MK; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) epi(acc[r][v]).store_aligned(st + r * lanes + v * W);
}

/// S^T[0..bk)[0..lanes) = epi(K[0..bk) · Q^T): the whole score tile of one lane group.
template <class Arch, class T, class Epi = NoEpilogue>
inline void qk_tile(const T* qt, index_t lanes, const T* k, index_t ks, index_t kd, index_t d,
                    index_t bk, T* st, const Epi& epi = {}) noexcept {
  using Bl = Blocking<Arch, T>;
  constexpr index_t W = Bl::width;
  constexpr int MK = Bl::qk_keys;
  const index_t nv = lanes / W;
  for (index_t v0 = 0; v0 < nv;) {
    const index_t left = nv - v0;
    const T* q = qt + v0 * W;
    T* s = st + v0 * W;
    auto run = [&](auto nv_tag) {
      constexpr int NV = decltype(nv_tag)::value;
      index_t j = 0;
      for (; j + MK <= bk; j += MK)
        qk_block<Arch, T, MK, NV>(q, lanes, k + j * ks, ks, kd, d, s + j * lanes, epi);
      for (; j < bk; ++j)
        qk_block<Arch, T, 1, NV>(q, lanes, k + j * ks, ks, kd, d, s + j * lanes, epi);
      return index_t{NV};
    };
    if (left >= 4) {
      v0 += run(std::integral_constant<int, 4>{});
    } else if (left >= 2) {
      v0 += run(std::integral_constant<int, 2>{});
    } else {
      v0 += run(std::integral_constant<int, 1>{});
    }
  }
}

/// W elements of E at p as a batch of T: a plain load, or 16-bit storage (bf16, f16) widened to
/// float in registers.
template <class Arch, class T, class E>
inline xsimd::batch<T, Arch> load_elems(const E* p) noexcept {
  if constexpr (std::is_same_v<E, T>) {
    return xsimd::batch<T, Arch>::load_unaligned(p);
  } else {
    static_assert(std::is_same_v<T, float>, "attnkit: 16-bit K and V are widened to float");
    return simd::load_widen<Arch>(p);
  }
}

/// The first n (< W) elements of E at p as a batch of T, zeros above.
template <class Arch, class T, class E>
inline xsimd::batch<T, Arch> load_elems_partial(const E* p, index_t n) noexcept {
  if constexpr (std::is_same_v<E, T>) {
    return simd::load_partial<Arch>(p, n);
  } else {
    return simd::load_widen_partial<Arch>(p, n);
  }
}

#if defined(__AVX512F__)
/// The first steps of a transposing reduction of four AVX-512 accumulators: quarter r of the
/// result holds a_r's 16 lanes folded to 4 (halves of each accumulator added, then quarters of
/// each pair), so summing within each quarter finishes the four lane sums at once.
inline __m512 fold_quarters(__m512 a0, __m512 a1, __m512 a2, __m512 a3) noexcept {
  auto halves = [](__m512 a, __m512 b) {  // [a.lo + a.hi (8) | b.lo + b.hi (8)]
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  };
  auto quarters = [](__m512 t0, __m512 t1) {  // [t0 q0+q1, t0 q2+q3, t1 q0+q1, t1 q2+q3]
    return _mm512_add_ps(_mm512_shuffle_f32x4(t0, t1, 0x88), _mm512_shuffle_f32x4(t0, t1, 0xDD));
  };
  return quarters(halves(a0, a1), halves(a2, a3));
}

/// The lane sums of eight AVX-512 accumulators in one transposing reduction: lane 4q of the
/// result holds the sum of a_q's lanes and lane 4q + 1 that of a_(4 + q) (q < 4).
inline __m512 lane_sums_8(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5,
                          __m512 a6, __m512 a7) noexcept {
  const __m512 u0 = fold_quarters(a0, a1, a2, a3);
  const __m512 u1 = fold_quarters(a4, a5, a6, a7);
  const __m512 x = _mm512_add_ps(_mm512_unpacklo_ps(u0, u1), _mm512_unpackhi_ps(u0, u1));
  return _mm512_add_ps(x, _mm512_permute_ps(x, 0x4E));  // quarter q: [u0 q, u1 q, u0 q, u1 q]
}
#endif

/// S^T[j][r] = Σ_d K[j][d] · Q[r][d] for MK keys and R query rows, vectorized along d: each K
/// vector is loaded once for the R rows (16-bit K widened in registers), each dot product ends
/// in one lane sum.
/// \param qr Q rows, row stride dp (a multiple of W, zeros past d) \param k first key row, row
/// stride ks, contiguous along d \param st S^T, row stride `lanes`
template <class Arch, class T, int MK, int R, class E>
inline void qk_rows_block(const T* qr, index_t dp, const E* k, index_t ks, index_t d, T* st,
                          index_t lanes) noexcept {
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  B acc[MK][R];
  for (int m = 0; m < MK; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = B(T(0));
  const index_t full = d / W * W;
  auto step = [&](const B(&kv)[MK], index_t c) {
    for (int r = 0; r < R; ++r) {
      const B qv = B::load_aligned(qr + r * dp + c);
      for (int m = 0; m < MK; ++m) acc[m][r] = xsimd::fma(kv[m], qv, acc[m][r]);
    }
  };
  for (index_t c = 0; c < full; c += W) {
    B kv[MK];
    for (int m = 0; m < MK; ++m) kv[m] = load_elems<Arch, T>(k + m * ks + c);
    step(kv, c);
  }
  if (full < d) {
    B kv[MK];
    for (int m = 0; m < MK; ++m) kv[m] = load_elems_partial<Arch, T>(k + m * ks + full, d - full);
    step(kv, full);
  }
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch> && std::is_same_v<T, float> && MK == 2 && R == 4) {
    // The 8 lane sums at once (a transposing reduction: 26 instructions instead of 8 separate
    // reductions of about 8 each): lane_sums_8 leaves acc[m][r] in lane m of quarter r; one
    // permute gathers [acc[0][0..3], acc[1][0..3]] into lanes 0..7, and two masked stores write
    // the two keys' rows.
    const __m512 y = lane_sums_8(acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1],
                                 acc[1][2], acc[1][3]);
    const __m512 z = _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0), y);
    _mm512_mask_storeu_ps(st, 0x000F, z);
    _mm512_mask_storeu_ps(st + lanes - 4, 0x00F0, z);
    return;
  }
#endif
  for (int m = 0; m < MK; ++m)
    for (int r = 0; r < R; ++r) st[m * lanes + r] = simd::reduce_add(acc[m][r]);
}

/// Asks for the cache lines of the n elements at base + offset ahead of their use. The address
/// is computed as an integer: it may lie past the array (a prefetch never faults), and no
/// out-of-bounds pointer is formed.
template <class T>
inline void prefetch_row(const T* base, index_t offset, index_t n) noexcept {
#if defined(__GNUC__)
  const std::uintptr_t a =
      reinterpret_cast<std::uintptr_t>(base) + static_cast<std::uintptr_t>(offset) * sizeof(T);
  for (std::uintptr_t c = 0; c < static_cast<std::uintptr_t>(n) * sizeof(T); c += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(a + c), 0, 3);
#else
  (void)base;
  (void)offset;
  (void)n;
#endif
}

/// S^T[0..bk)[0..lanes) of a lane group with only `nl` rows (decode, a short query): rows
/// [0, nl) by qk_rows_block, lanes [nl, lanes) zero, as qk_tile leaves them. K contiguous along d.
/// Memory bound: along the keys it prefetches the K row two tiles ahead and the tile's V row
/// (v, row stride vs, dv elements; null for none), which O += P V reads next.
template <class Arch, class T, class E>
inline void qk_rows_tile(const T* qr, index_t dp, index_t nl, index_t lanes, const E* k, index_t ks,
                         index_t d, index_t bk, T* st, const E* v, index_t vs,
                         index_t dv) noexcept {
  // Two key tiles ahead for K (into L1: farther or into L2 only measured slower), the tile's V
  // rows as its scores are computed.
  constexpr index_t ahead = 128;
  auto keys = [&](auto mk_tag, index_t j) {
    constexpr int MK = decltype(mk_tag)::value;
    for (int m = 0; m < MK; ++m) {
      prefetch_row(k, (j + m + ahead) * ks, d);
      if (v != nullptr) prefetch_row(v, (j + m) * vs, dv);
    }
    index_t r0 = 0;
    for (; r0 + 4 <= nl; r0 += 4)
      qk_rows_block<Arch, T, MK, 4, E>(qr + r0 * dp, dp, k + j * ks, ks, d, st + j * lanes + r0,
                                       lanes);
    if (nl - r0 >= 2) {
      qk_rows_block<Arch, T, MK, 2, E>(qr + r0 * dp, dp, k + j * ks, ks, d, st + j * lanes + r0,
                                       lanes);
      r0 += 2;
    }
    if (r0 < nl)
      qk_rows_block<Arch, T, MK, 1, E>(qr + r0 * dp, dp, k + j * ks, ks, d, st + j * lanes + r0,
                                       lanes);
  };
  index_t j = 0;
  for (; j + 2 <= bk; j += 2) keys(std::integral_constant<int, 2>{}, j);
  if (j < bk) keys(std::integral_constant<int, 1>{}, j);
  if (nl < lanes)
    for (index_t jj = 0; jj < bk; ++jj)
      std::fill(st + jj * lanes + nl, st + (jj + 1) * lanes, T(0));
}

#if defined(__AVX512F__)
/// The 4 keys x 4 rows block of qk_rows_block_rm on AVX-512 (float scores, K as E): sixteen named
/// accumulators, the partial last vector of d folded in as one more step (as arrays with a
/// separate tail, GCC kept the accumulators on the stack: twice the time per key). The 16 lane
/// sums end in one transposing reduction: u[m] holds key m's partial sums of row r in quarter r
/// (halves, then quarters of pairs of accumulators added); a 4 x 4 transposing add within each
/// quarter leaves quarter r = the four keys of row r, stored as they are.
template <class Arch, class E>
[[gnu::always_inline]] inline void qk_rows_block_rm_4x4(const float* qr, index_t dp, const E* k,
                                                        index_t ks, index_t d, float* s,
                                                        index_t ss) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  const float* q0 = qr;
  const float* q1 = qr + dp;
  const float* q2 = qr + 2 * dp;
  const float* q3 = qr + 3 * dp;
  const E* k0 = k;
  const E* k1 = k + ks;
  const E* k2 = k + 2 * ks;
  const E* k3 = k + 3 * ks;
  B a00(0.0f), a01(0.0f), a02(0.0f), a03(0.0f), a10(0.0f), a11(0.0f), a12(0.0f), a13(0.0f),
      a20(0.0f), a21(0.0f), a22(0.0f), a23(0.0f), a30(0.0f), a31(0.0f), a32(0.0f), a33(0.0f);
  // The 8 loaded vectors are kept in registers (simd::in_register): folded into the FMAs they
  // cost 20 loads per 16 FMAs instead of 8, and the block ran 10% longer from L1 or L2.
  auto step = [&](B x0, B x1, B x2, B x3, index_t c) {
    B y0 = B::load_aligned(q0 + c), y1 = B::load_aligned(q1 + c);
    B y2 = B::load_aligned(q2 + c), y3 = B::load_aligned(q3 + c);
    simd::in_register(x0);
    simd::in_register(x1);
    simd::in_register(x2);
    simd::in_register(x3);
    simd::in_register(y0);
    simd::in_register(y1);
    simd::in_register(y2);
    simd::in_register(y3);
    a00 = xsimd::fma(x0, y0, a00);
    a01 = xsimd::fma(x0, y1, a01);
    a02 = xsimd::fma(x0, y2, a02);
    a03 = xsimd::fma(x0, y3, a03);
    a10 = xsimd::fma(x1, y0, a10);
    a11 = xsimd::fma(x1, y1, a11);
    a12 = xsimd::fma(x1, y2, a12);
    a13 = xsimd::fma(x1, y3, a13);
    a20 = xsimd::fma(x2, y0, a20);
    a21 = xsimd::fma(x2, y1, a21);
    a22 = xsimd::fma(x2, y2, a22);
    a23 = xsimd::fma(x2, y3, a23);
    a30 = xsimd::fma(x3, y0, a30);
    a31 = xsimd::fma(x3, y1, a31);
    a32 = xsimd::fma(x3, y2, a32);
    a33 = xsimd::fma(x3, y3, a33);
  };
  const index_t full = d / W * W;
  for (index_t c = 0; c < full; c += W)
    step(load_elems<Arch, float>(k0 + c), load_elems<Arch, float>(k1 + c),
         load_elems<Arch, float>(k2 + c), load_elems<Arch, float>(k3 + c), c);
  if (full < d) {
    const index_t n = d - full;
    step(load_elems_partial<Arch, float>(k0 + full, n),
         load_elems_partial<Arch, float>(k1 + full, n),
         load_elems_partial<Arch, float>(k2 + full, n),
         load_elems_partial<Arch, float>(k3 + full, n), full);
  }
  const __m512 u0 = fold_quarters(a00, a01, a02, a03);
  const __m512 u1 = fold_quarters(a10, a11, a12, a13);
  const __m512 u2 = fold_quarters(a20, a21, a22, a23);
  const __m512 u3 = fold_quarters(a30, a31, a32, a33);
  const __m512 x01 = _mm512_add_ps(_mm512_unpacklo_ps(u0, u1), _mm512_unpackhi_ps(u0, u1));
  const __m512 x23 = _mm512_add_ps(_mm512_unpacklo_ps(u2, u3), _mm512_unpackhi_ps(u2, u3));
  const __m512 y =
      _mm512_add_ps(_mm512_shuffle_ps(x01, x23, 0x44), _mm512_shuffle_ps(x01, x23, 0xEE));
  _mm_storeu_ps(s, _mm512_castps512_ps128(y));
  _mm_storeu_ps(s + ss, _mm512_extractf32x4_ps(y, 1));
  _mm_storeu_ps(s + 2 * ss, _mm512_extractf32x4_ps(y, 2));
  _mm_storeu_ps(s + 3 * ss, _mm512_extractf32x4_ps(y, 3));
}
#endif

/// S[r][j] = Σ_d Q[r][d] · K[j][d] for MK keys and R query rows into a row-major score tile
/// (row stride ss): the decode tile's layout, whose activation runs along the keys. Each K vector
/// is loaded once for the R rows (16-bit K widened in registers). `Tail` only makes the blocks of
/// qk_rows_tail_rm functions of their own (see there).
template <class Arch, class T, int MK, int R, class E, bool Tail = false>
inline void qk_rows_block_rm(const T* qr, index_t dp, const E* k, index_t ks, index_t d, T* s,
                             index_t ss) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch> && std::is_same_v<T, float> && MK == 4 && R == 4) {
    qk_rows_block_rm_4x4<Arch, E>(qr, dp, k, ks, d, s, ss);
    return;
  }
#endif
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  B acc[MK][R];
  for (int m = 0; m < MK; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = B(T(0));
  const index_t full = d / W * W;
  for (index_t c = 0; c < full; c += W) {
    B kv[MK];
    for (int m = 0; m < MK; ++m) kv[m] = load_elems<Arch, T>(k + m * ks + c);
    for (int r = 0; r < R; ++r) {
      const B qv = B::load_aligned(qr + r * dp + c);
      for (int m = 0; m < MK; ++m) acc[m][r] = xsimd::fma(kv[m], qv, acc[m][r]);
    }
  }
  if (full < d) {
    B kv[MK];
    for (int m = 0; m < MK; ++m) kv[m] = load_elems_partial<Arch, T>(k + m * ks + full, d - full);
    for (int r = 0; r < R; ++r) {
      const B qv = B::load_aligned(qr + r * dp + full);
      for (int m = 0; m < MK; ++m) acc[m][r] = xsimd::fma(kv[m], qv, acc[m][r]);
    }
  }
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch> && std::is_same_v<T, float> && MK == 4 && R == 2) {
    // The 8 lane sums of a 2-row group (GQA group of 2) in one transposing reduction:
    // lane_sums_8 leaves (key q / 2, row q % 2) in lane 4q and (key 2 + q / 2, row q % 2) in
    // lane 4q + 1; one permute gathers row 0's four keys into lanes 0..3 and row 1's into lanes
    // 4..7. Eight separate lane sums took ~3x the instructions.
    const __m512 y = lane_sums_8(acc[0][0], acc[0][1], acc[1][0], acc[1][1], acc[2][0], acc[2][1],
                                 acc[3][0], acc[3][1]);
    const __m512 z = _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 8, 1, 9, 4, 12, 5, 13, 0, 0, 0, 0, 0, 0, 0, 0), y);
    _mm_storeu_ps(s, _mm512_castps512_ps128(z));
    _mm_storeu_ps(s + ss, _mm512_extractf32x4_ps(z, 1));
    return;
  }
#endif
  for (int m = 0; m < MK; ++m)
    for (int r = 0; r < R; ++r) s[r * ss + m] = simd::reduce_add(acc[m][r]);
}

/// The row-major score tile S[0..nl)[0..BK) (row stride BK) of the decode path, K contiguous
/// along d. Prefetches the K rows two tiles ahead and, far ahead, one line of every fourth K and
/// V row (v, row stride vs, dv elements). The tile's own V rows are asked for by the previous
/// tile's O += P V (pv_rows_tile); a key range's first tile has only the far lines and hardware
/// prefetching. Whole tiles only. The tile is its own function and the 4 x 4 block is always
/// inlined into it: the code is then the same in every translation unit. Left to the inliner, the
/// same source compiled to different code in the benchmark's translation unit and in a small one,
/// and decode from DRAM differed by 1.2-1.4x between them (f32 and bf16).
template <class Arch, class T, index_t BK, class E>
[[gnu::noinline]] void qk_rows_tile_rm(const T* qr, index_t dp, index_t nl, const E* k, index_t ks,
                                       index_t d, T* s, const E* v, index_t vs,
                                       index_t dv) noexcept {
  constexpr index_t bk = BK, ss = BK;
  constexpr index_t ahead = 128;
  // The first line (16 elements) of every fourth K and V row, 512 keys ahead: single lines that
  // start the memory streams long before the full prefetches above reach them, holding few of
  // the core's outstanding misses. Decode from DRAM (32k keys, D = 128) ran 1.2x as fast with
  // 64 elements per row as without any, and 1.1-1.2x faster again with one line (f32 and bf16,
  // 1 and 2 threads); 2 lines, 1024 or 256 keys ahead, or every second row measured slower, every
  // eighth row the same.
  constexpr index_t far = 512, far_every = 4, far_elems = 16;
  auto keys = [&](auto mk_tag, index_t j) {
    constexpr int MK = decltype(mk_tag)::value;
    for (int m = 0; m < MK; ++m) {
      prefetch_row(k, (j + m + ahead) * ks, d);
      if ((j + m) % far_every == 0) {
        prefetch_row(k, (j + m + far) * ks, std::min(d, far_elems));
        prefetch_row(v, (j + m + far) * vs, std::min(dv, far_elems));
      }
    }
    index_t r0 = 0;
    for (; r0 + 4 <= nl; r0 += 4)
      qk_rows_block_rm<Arch, T, MK, 4, E>(qr + r0 * dp, dp, k + j * ks, ks, d, s + r0 * ss + j, ss);
    if (nl - r0 >= 2) {
      qk_rows_block_rm<Arch, T, MK, 2, E>(qr + r0 * dp, dp, k + j * ks, ks, d, s + r0 * ss + j, ss);
      r0 += 2;
    }
    if (r0 < nl)
      qk_rows_block_rm<Arch, T, MK, 1, E>(qr + r0 * dp, dp, k + j * ks, ks, d, s + r0 * ss + j, ss);
  };
  index_t j = 0;
  if constexpr (is_avx512<Arch> && std::is_same_v<T, float>)
    for (; j + 4 <= bk; j += 4) keys(std::integral_constant<int, 4>{}, j);
  for (; j + 2 <= bk; j += 2) keys(std::integral_constant<int, 2>{}, j);
  if (j < bk) keys(std::integral_constant<int, 1>{}, j);
}

/// qk_rows_tile_rm for the first bk (< BK) keys of a key range's last, shorter tile (row stride
/// BK; the columns past bk are left as they were), in the same blocks of keys and rows, without
/// prefetches (nothing of the range follows). The blocks are their own instantiations (Tail =
/// true): calling the tile's, GCC stopped inlining them into the whole tile, whose decode from
/// DRAM slowed; with these the tile's code is the same instruction for instruction. One key at a
/// time, as before, a group of 2 query rows took about 3x as long per tail key as per tile key
/// (the tail was 7% of a decode step of examples/03's sparse mode, 424 keys).
template <class Arch, class T, index_t BK, class E>
[[gnu::noinline]] void qk_rows_tail_rm(const T* qr, index_t dp, index_t nl, const E* k, index_t ks,
                                       index_t d, T* s, index_t bk) noexcept {
  constexpr index_t ss = BK;
  auto keys = [&](auto mk_tag, index_t j) {
    constexpr int MK = decltype(mk_tag)::value;
    const E* kj = k + j * ks;
    index_t r0 = 0;
    for (; r0 + 4 <= nl; r0 += 4)
      qk_rows_block_rm<Arch, T, MK, 4, E, true>(qr + r0 * dp, dp, kj, ks, d, s + r0 * ss + j, ss);
    if (nl - r0 >= 2) {
      qk_rows_block_rm<Arch, T, MK, 2, E, true>(qr + r0 * dp, dp, kj, ks, d, s + r0 * ss + j, ss);
      r0 += 2;
    }
    if (r0 < nl)
      qk_rows_block_rm<Arch, T, MK, 1, E, true>(qr + r0 * dp, dp, kj, ks, d, s + r0 * ss + j, ss);
  };
  index_t j = 0;
  if constexpr (is_avx512<Arch> && std::is_same_v<T, float>)
    for (; j + 4 <= bk; j += 4) keys(std::integral_constant<int, 4>{}, j);
  for (; j + 2 <= bk; j += 2) keys(std::integral_constant<int, 2>{}, j);
  if (j < bk) keys(std::integral_constant<int, 1>{}, j);
}

#if defined(__AVX512F__)
/// pv_rows_block for bf16 V on AVX-512, NC chunks of 32 columns: one 512-bit load holds 32 bf16
/// of a V row, and a shift and a mask widen its even and odd columns (no cross-lane widening,
/// half the loads). The accumulators hold O's even and odd columns, deinterleaved from O at the
/// start and interleaved back at the end; every element of O gets the same products in the same
/// order as in pv_rows_block (through the same xsimd::fma, whatever the build makes of it), so
/// the result is the same bit for bit. bf16 decode in L2 (4 query rows, D = 128) ran 1.08x as fast
/// as with the widening loads.
template <class Arch, int MR, int NC>
inline void pv_rows_block_bf16x32(const float* p, index_t ps, const bf16* v, index_t vs, index_t bk,
                                  const float* alpha, float* o, index_t ldo,
                                  index_t next) noexcept {
  using B = xsimd::batch<float, Arch>;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m512 ae[MR][NC], ao[MR][NC];
  for (int r = 0; r < MR; ++r) {
    const __m512 a = _mm512_set1_ps(alpha ? alpha[r] : 1.0f);
    for (int c = 0; c < NC; ++c) {
      const __m512 x0 = _mm512_load_ps(o + r * ldo + c * 32);
      const __m512 x1 = _mm512_load_ps(o + r * ldo + c * 32 + 16);
      ae[r][c] = _mm512_permutex2var_ps(x0, even, x1);
      ao[r][c] = _mm512_permutex2var_ps(x0, odd, x1);
      if (alpha) {
        ae[r][c] = B(ae[r][c]) * B(a);
        ao[r][c] = B(ao[r][c]) * B(a);
      }
    }
  }
  for (index_t j = 0; j < bk; ++j) {
    const bf16* vr = v + j * vs;
    prefetch_row(v, next + j * vs, NC * 32);
    __m512 ve[NC], vo[NC];
    for (int c = 0; c < NC; ++c) {
      const __m512i x = _mm512_loadu_si512(static_cast<const void*>(vr + c * 32));
      ve[c] = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
      vo[c] = _mm512_castsi512_ps(_mm512_and_si512(x, high_half));
    }
    for (int r = 0; r < MR; ++r) {
      const __m512 pb = _mm512_set1_ps(p[r * ps + j]);
      for (int c = 0; c < NC; ++c) {
        ae[r][c] = xsimd::fma(B(pb), B(ve[c]), B(ae[r][c]));
        ao[r][c] = xsimd::fma(B(pb), B(vo[c]), B(ao[r][c]));
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NC; ++c) {
      _mm512_store_ps(o + r * ldo + c * 32, _mm512_permutex2var_ps(ae[r][c], lo, ao[r][c]));
      _mm512_store_ps(o + r * ldo + c * 32 + 16, _mm512_permutex2var_ps(ae[r][c], hi, ao[r][c]));
    }
}
#endif

/// O[r][c0 + v·W ..] = alpha[r] · O + Σ_j P[r][j] · V[j][c0 + v·W ..] for MR rows and NV vectors
/// of Dv, P row-major (row stride ps). `alpha` may be null (no rescaling). As it reads V row j
/// it prefetches the same columns `next` elements further on (the next tile's V row j).
template <class Arch, class T, int MR, int NV, class E>
inline void pv_rows_block(const T* p, index_t ps, const E* v, index_t vs, index_t bk,
                          const T* alpha, T* o, index_t ldo, index_t next) noexcept {
#if defined(__AVX512F__)
  if constexpr (is_avx512<Arch> && std::is_same_v<T, float> && std::is_same_v<E, bf16> &&
                NV % 2 == 0) {
    pv_rows_block_bf16x32<Arch, MR, NV / 2>(p, ps, v, vs, bk, alpha, o, ldo, next);
    return;
  }
#endif
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  B acc[MR][NV];
  for (int r = 0; r < MR; ++r) {
    const B a(alpha ? alpha[r] : T(1));
    for (int c = 0; c < NV; ++c) {
      acc[r][c] = B::load_aligned(o + r * ldo + c * W);
      if (alpha) acc[r][c] *= a;
    }
  }
  for (index_t j = 0; j < bk; ++j) {
    const E* vr = v + j * vs;
    prefetch_row(v, next + j * vs, NV * W);
    B vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = load_elems<Arch, T>(vr + c * W);
    // One load per V vector, not one per row (folded into the FMAs): with 4 rows the block ran
    // 1.3x as long from L1 or L2 on AVX-512. With 16 registers (AVX2) they may not all fit.
    if constexpr (is_avx512<Arch>)
      for (int c = 0; c < NV; ++c) simd::in_register(vv[c]);
    for (int r = 0; r < MR; ++r) {
      const B pb(p[r * ps + j]);
      for (int c = 0; c < NV; ++c) acc[r][c] = xsimd::fma(pb, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NV; ++c) acc[r][c].store_aligned(o + r * ldo + c * W);
}

/// O[0..nl)[0..dvp) += P · V (after rescaling by alpha when given) with P row-major [nl][bk]
/// (row stride ps); dvp a multiple of the SIMD width and O's row stride. Blocks of 4 rows (2 with
/// 16 registers) over 4 vectors of Dv: each V vector is loaded once per block of rows. Each block
/// prefetches the V rows `next` elements further on (the next tile's; they may lie past the
/// array), a row per V row it reads: V's lines are asked for while O += P V runs, not all at once
/// with K's during the score tile (qk_rows_tile_rm). Decode from DRAM (32k keys, D = 128, 1
/// thread) went from 0.50-0.56 to 0.72-0.75 of the streaming read with bf16 K and V, the same or
/// faster with f32. Blocks of rows past the first ask again (the lines are then in L1): asking in
/// the first block only, by a test in the loop, compiled to larger code and measured slower.
template <class Arch, class T, class E>
inline void pv_rows_tile(const T* p, index_t ps, index_t nl, const E* v, index_t vs, index_t bk,
                         index_t dvp, const T* alpha, T* o, index_t next) noexcept {
  using Bl = Blocking<Arch, T>;
  constexpr index_t W = Bl::width;
  constexpr int MR = Bl::wide ? 4 : 2;
  const index_t nvec = dvp / W;
  for (index_t c0 = 0; c0 < nvec;) {
    auto run = [&](auto nv_tag) {
      constexpr int NV = decltype(nv_tag)::value;
      index_t r = 0;
      auto block = [&](auto mr_tag) {
        constexpr int R = decltype(mr_tag)::value;
        pv_rows_block<Arch, T, R, NV, E>(p + r * ps, ps, v + c0 * W, vs, bk,
                                         alpha ? alpha + r : nullptr, o + r * dvp + c0 * W, dvp,
                                         next);
        r += R;
      };
      while (r + MR <= nl) block(std::integral_constant<int, MR>{});
      if constexpr (MR == 4)
        if (r + 2 <= nl) block(std::integral_constant<int, 2>{});
      if (r < nl) block(std::integral_constant<int, 1>{});
      return index_t{NV};
    };
    const index_t left = nvec - c0;
    if (left >= 4) {
      c0 += run(std::integral_constant<int, 4>{});
    } else if (left >= 2) {
      c0 += run(std::integral_constant<int, 2>{});
    } else {
      c0 += run(std::integral_constant<int, 1>{});
    }
  }
}

/// O[lane0 + r][c0 + v·W ..] = alpha[lane0 + r] · O + Σ_j P^T[j][lane0 + r] · V[j][c0 + v·W ..]
/// for MR lanes and NV vectors of Dv. `alpha` may be null (no rescaling).
template <class Arch, class T, int MR, int NV, class E>
inline void pv_block(const T* pt, index_t lanes, const E* v, index_t vs, index_t bk, const T* alpha,
                     T* o, index_t ldo) noexcept {
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  B acc[MR][NV];
  for (int r = 0; r < MR; ++r) {
    const B a(alpha ? alpha[r] : T(1));
    for (int c = 0; c < NV; ++c) {
      acc[r][c] = B::load_aligned(o + r * ldo + c * W);
      if (alpha) acc[r][c] *= a;
    }
  }
  for (index_t j = 0; j < bk; ++j) {
    const E* vr = v + j * vs;
    const T* pr = pt + j * lanes;
    B vv[NV];
    for (int c = 0; c < NV; ++c) vv[c] = load_elems<Arch, T>(vr + c * W);
    for (int r = 0; r < MR; ++r) {
      const B p(pr[r]);
      for (int c = 0; c < NV; ++c) acc[r][c] = xsimd::fma(p, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NV; ++c) acc[r][c].store_aligned(o + r * ldo + c * W);
}

/// O[0..nlanes)[0..dvp) += P^T · V (after rescaling by alpha when given); dvp is a multiple of
/// the SIMD width and O's row stride. V holds E elements (T, or 16-bit storage widened in
/// registers: each V vector is widened once per MR lanes).
template <class Arch, class T, class E>
inline void pv_tile(const T* pt, index_t lanes, index_t nlanes, const E* v, index_t vs, index_t bk,
                    index_t dvp, const T* alpha, T* o) noexcept {
  using Bl = Blocking<Arch, T>;
  constexpr index_t W = Bl::width;
  constexpr int MR = Bl::pv_rows;
  const index_t nvec = dvp / W;
  for (index_t c0 = 0; c0 < nvec;) {
    const index_t left = nvec - c0;
    auto run = [&](auto nv_tag) {
      constexpr int NV = decltype(nv_tag)::value;
      // Narrow V (NV <= 4 vectors: Dv <= 64 in AVX-512 floats) takes twice the lanes per block,
      // so 24 accumulators share each V load as with NV = 8.
      constexpr int MR2 = Bl::wide && NV <= 4 ? 2 * MR : MR;
      index_t r = 0;
      if constexpr (MR2 != MR) {
        for (; r + MR2 <= nlanes; r += MR2)
          pv_block<Arch, T, MR2, NV, E>(pt + r, lanes, v + c0 * W, vs, bk,
                                        alpha ? alpha + r : nullptr, o + r * dvp + c0 * W, dvp);
      }
      for (; r + MR <= nlanes; r += MR)
        pv_block<Arch, T, MR, NV, E>(pt + r, lanes, v + c0 * W, vs, bk, alpha ? alpha + r : nullptr,
                                     o + r * dvp + c0 * W, dvp);
      for (; r < nlanes; ++r)
        pv_block<Arch, T, 1, NV, E>(pt + r, lanes, v + c0 * W, vs, bk, alpha ? alpha + r : nullptr,
                                    o + r * dvp + c0 * W, dvp);
      return index_t{NV};
    };
    if (left >= Bl::pv_vectors) {
      c0 += run(std::integral_constant<int, Bl::pv_vectors>{});
    } else if (left >= 4) {
      c0 += run(std::integral_constant<int, 4>{});
    } else if (left >= 2) {
      c0 += run(std::integral_constant<int, 2>{});
    } else {
      c0 += run(std::integral_constant<int, 1>{});
    }
  }
}

}  // namespace attnkit::attention_detail

ATTNKIT_SIMD_WARNINGS_POP
