// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The packed GEMM behind kernel::gemm: a register-blocked broadcast-FMA micro-kernel, cache
// blocking (NC / KC / MC) and packing of A and B panels into aligned
// per-thread buffers, for fp32 and fp64 on every kernel architecture.
//
// Loops:                for jc in n by NC            B block [KC, NC] packed per thread (L2)
//                         for pc in k by KC
//                           for ic in m by MC        A block [MC, KC] packed per thread
//                             for ir in MC by MR     A micro-panel [MR, KC] stays in L1
//                               for jr in NC by NR   micro-kernel: C[MR, NR] += A·B over KC
// (ir outside jr, unlike BLIS: measured faster on Zen 5 for every shape benchmarked, most for
// small k, where writing C dominates and this order writes it in sequential row streams.)
// Threads take row or column slices of C (on micro-tile boundaries) and run the serial loops on
// them without synchronisation; the k loop is never split, so every C element is summed in the
// same k order whatever the thread count (results are bit-identical for 1 or N threads).
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "attnkit/core/aligned.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/simd/batch.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::kernel {

/// Register and cache blocking of the packed GEMM for element type T on architecture Arch.
/// mr × (nv · width) is the micro-tile held in registers; kc, mc, nc are the cache blocks
/// (kc · mr elements of A stay in L1, kc · nc of B in L2). Tuned on Zen 5 (48 KiB L1d, 1 MiB L2).
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
struct GemmBlocking {
  static constexpr int mr = simd::has_avx512<Arch> ? 14 : (simd::has_avx<Arch> ? 6 : 4);
  static constexpr int nv = 2;
  static constexpr int nr = nv * static_cast<int>(simd::width<T, Arch>);
  static constexpr index_t kc = 384;
  static constexpr index_t mc = mr * (simd::has_avx512<Arch> ? 72 : 96);
  static constexpr index_t nc = 512;
};

namespace detail {

/// Calls f(std::integral_constant<int, 0>{}) ... f(std::integral_constant<int, N - 1>{}): a loop
/// the compiler unrolls for sure, so register arrays indexed by I stay in registers.
template <int N, class F>
[[gnu::always_inline]] inline void static_for(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }
  (std::make_integer_sequence<int, N>{});
}

/// A per-thread growable scratch buffer (slot 0: packed A, 1: packed B, 2: tile_gemm_nt), aligned,
/// kept for the life of the thread so repeated GEMMs do not allocate.
template <class T>
inline T* scratch(int slot, std::size_t n) {
  struct Buffer {
    aligned_ptr<unsigned char> data;
    std::size_t bytes = 0;
  };
  thread_local Buffer buffers[3];
  Buffer& b = buffers[slot];
  const std::size_t need = n * sizeof(T);
  if (need > b.bytes) {
    b.data = make_aligned<unsigned char>(need);
    b.bytes = need;
  }
  return reinterpret_cast<T*>(b.data.get());
}

}  // namespace detail

/// The micro-kernel: acc[MR, NR] = Σ_p A(0..MR, p) ⊗ b[p, 0..NR) over kc steps, then
/// C[0..m_rem, 0..n_rem) = alpha · acc + beta · C (C not read when beta == 0).
/// a: with PackedA, a packed A micro-panel, kc × MR (A(i, p) = a[p·MR + i]); otherwise MR rows
/// of a row-major A read in place (A(i, p) = a[i·lda + p]; all MR rows must exist).
/// b: packed B micro-panel, kc × NR, 64-byte aligned.
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
/// \tparam MR rows of the register tile
/// \tparam NV vectors per row of the register tile (NR = NV · width)
/// \tparam PackedA whether a is a packed micro-panel (else rows of A in place)
template <class T, class Arch, int MR, int NV, bool PackedA>
[[gnu::hot]] inline void gemm_micro_kernel(index_t kc, const T* __restrict a, index_t lda,
                                           const T* __restrict b, T alpha, T beta, T* c,
                                           index_t rs_c, index_t cs_c, index_t m_rem,
                                           index_t n_rem) noexcept {
  using B = simd::batch<T, Arch>;
  constexpr int w = static_cast<int>(B::size);
  constexpr int nr = NV * w;
  B acc[MR][NV];
  detail::static_for<MR>(
      [&](auto i) { detail::static_for<NV>([&](auto v) { acc[i][v] = B(T(0)); }); });
  for (index_t p = 0; p < kc; ++p) {
    B bv[NV];
    detail::static_for<NV>([&](auto v) { bv[v] = B::load_aligned(b + v * w); });
    detail::static_for<MR>([&](auto i) {
      const B ai(PackedA ? a[i] : a[i * lda]);
      detail::static_for<NV>([&](auto v) { acc[i][v] = xsimd::fma(ai, bv[v], acc[i][v]); });
    });
    a += PackedA ? MR : 1;
    b += nr;
  }
  const B av(alpha);
  if (cs_c == 1 && m_rem == MR && n_rem == nr) {
    if (beta == T(0)) {
      detail::static_for<MR>([&](auto i) {
        detail::static_for<NV>(
            [&](auto v) { (acc[i][v] * av).store_unaligned(c + i * rs_c + v * w); });
      });
    } else {
      const B bv(beta);
      detail::static_for<MR>([&](auto i) {
        detail::static_for<NV>([&](auto v) {
          T* cp = c + i * rs_c + v * w;
          xsimd::fma(acc[i][v], av, bv * B::load_unaligned(cp)).store_unaligned(cp);
        });
      });
    }
    return;
  }
  alignas(64) T tile[MR * nr];
  detail::static_for<MR>([&](auto i) {
    detail::static_for<NV>([&](auto v) { (acc[i][v] * av).store_aligned(tile + i * nr + v * w); });
  });
  for (index_t i = 0; i < m_rem; ++i) {
    for (index_t j = 0; j < n_rem; ++j) {
      T& cij = c[i * rs_c + j * cs_c];
      cij = beta == T(0) ? tile[i * nr + j] : tile[i * nr + j] + beta * cij;
    }
  }
}

/// Packs rows [0, mc) × cols [0, kc) of strided A (a0 = &A(0, 0)) into MR-row micro-panels:
/// panel r holds A(r·MR + i, p) at dst[r·MR·kc + p·MR + i], rows past mc zero.
/// \tparam T float or double
/// \tparam MR micro-panel height
template <class T, int MR>
inline void pack_a(index_t mc, index_t kc, const T* a0, index_t rs, index_t cs, T* dst) noexcept {
  for (index_t ir = 0; ir < mc; ir += MR) {
    const index_t mr = std::min<index_t>(MR, mc - ir);
    T* d = dst + ir * kc;
    if (cs == 1 && mr == MR) {
      // Rows contiguous along k: read MR rows side by side.
      const T* src[MR];
      for (int i = 0; i < MR; ++i) src[i] = a0 + (ir + i) * rs;
      for (index_t p = 0; p < kc; ++p)
        for (int i = 0; i < MR; ++i) d[p * MR + i] = src[i][p];
    } else {
      for (index_t p = 0; p < kc; ++p) {
        const T* col = a0 + ir * rs + p * cs;
        for (index_t i = 0; i < mr; ++i) d[p * MR + i] = col[i * rs];
        for (index_t i = mr; i < MR; ++i) d[p * MR + i] = T(0);
      }
    }
  }
}

/// Packs rows [0, kc) × cols [0, nc) of strided B (b0 = &B(0, 0)) into NR-column micro-panels:
/// panel q holds B(p, q·NR + j) at dst[q·NR·kc + p·NR + j], columns past nc zero. Only panels
/// [q0, q1) are packed (threads share the work).
/// \tparam T float or double
/// \tparam NR micro-panel width
template <class T, int NR>
inline void pack_b(index_t kc, index_t nc, const T* b0, index_t rs, index_t cs, T* dst, index_t q0,
                   index_t q1) noexcept {
  for (index_t q = q0; q < q1; ++q) {
    const index_t j0 = q * NR;
    const index_t nr = std::min<index_t>(NR, nc - j0);
    T* d = dst + j0 * kc;
    if (cs == 1) {
      for (index_t p = 0; p < kc; ++p) {
        const T* src = b0 + p * rs + j0;
        T* dp = d + p * NR;
        if (nr == NR) {
          std::copy_n(src, NR, dp);
        } else {
          std::copy_n(src, nr, dp);
          std::fill(dp + nr, dp + NR, T(0));
        }
      }
    } else {
      // A transposed B: contiguous writes, strided reads (measured 4x faster than reading
      // each column once with strided writes).
      const T* src = b0 + j0 * cs;
      for (index_t p = 0; p < kc; ++p) {
        T* dp = d + p * NR;
        for (index_t j = 0; j < nr; ++j) dp[j] = src[j * cs + p * rs];
        for (index_t j = nr; j < NR; ++j) dp[j] = T(0);
      }
    }
  }
}

/// C = alpha · A · B + beta · C on the calling thread, for strided operands (element (i, j)
/// of X at x + i · rs_x + j · cs_x). Requires m, n, k > 0 and alpha != 0; C must not alias
/// A or B. Uses the calling thread's scratch buffers.
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
[[gnu::noinline]] void packed_gemm_serial(index_t m, index_t n, index_t k, T alpha, const T* a,
                                          index_t rs_a, index_t cs_a, const T* b, index_t rs_b,
                                          index_t cs_b, T beta, T* c, index_t rs_c, index_t cs_c) {
  using Blk = GemmBlocking<T, Arch>;
  constexpr int MR = Blk::mr;
  constexpr int NR = Blk::nr;
  const index_t nc_max = std::min<index_t>(Blk::nc, (n + NR - 1) / NR * NR);
  const index_t kc_max = std::min<index_t>(Blk::kc, k);
  T* bpack = detail::scratch<T>(1, static_cast<std::size_t>(kc_max * nc_max));
  T* apack = detail::scratch<T>(0, static_cast<std::size_t>(Blk::mc * kc_max));
  // A with contiguous rows is read in place (packing it costs as much as the product when n
  // is small, e.g. P · V); then only a partial last micro-panel is packed.
  const bool a_in_place = cs_a == 1;
  for (index_t jc = 0; jc < n; jc += Blk::nc) {
    const index_t nc = std::min<index_t>(Blk::nc, n - jc);
    const index_t panels = (nc + NR - 1) / NR;
    for (index_t pc = 0; pc < k; pc += Blk::kc) {
      const index_t kc = std::min<index_t>(Blk::kc, k - pc);
      const T beta_eff = pc == 0 ? beta : T(1);
      pack_b<T, NR>(kc, nc, b + pc * rs_b + jc * cs_b, rs_b, cs_b, bpack, 0, panels);
      for (index_t ic = 0; ic < m; ic += Blk::mc) {
        const index_t mc = std::min<index_t>(Blk::mc, m - ic);
        const T* a_blk = a + ic * rs_a + pc * cs_a;
        if (!a_in_place) {
          pack_a<T, MR>(mc, kc, a_blk, rs_a, cs_a, apack);
        } else if (mc % MR != 0) {
          const index_t ir = mc / MR * MR;
          pack_a<T, MR>(mc - ir, kc, a_blk + ir * rs_a, rs_a, cs_a, apack + ir * kc);
        }
        // ir outer, jr inner: the A micro-panel stays in L1 while B panels stream from L2,
        // and C is written row block by row block, left to right (sequential streams; this
        // halves the time of output-bound products such as QKᵀ with small k).
        for (index_t ir = 0; ir < mc; ir += MR) {
          const index_t m_rem = std::min<index_t>(MR, mc - ir);
          for (index_t q = 0; q < panels; ++q) {
            const index_t jr = q * NR;
            const index_t n_rem = std::min<index_t>(NR, nc - jr);
            T* c_tile = c + (ic + ir) * rs_c + (jc + jr) * cs_c;
            if (a_in_place && m_rem == MR) {
              gemm_micro_kernel<T, Arch, MR, Blk::nv, false>(kc, a_blk + ir * rs_a, rs_a,
                                                             bpack + jr * kc, alpha, beta_eff,
                                                             c_tile, rs_c, cs_c, m_rem, n_rem);
            } else {
              gemm_micro_kernel<T, Arch, MR, Blk::nv, true>(kc, apack + ir * kc, 1, bpack + jr * kc,
                                                            alpha, beta_eff, c_tile, rs_c, cs_c,
                                                            m_rem, n_rem);
            }
          }
        }
      }
    }
  }
}

/// packed_gemm_serial on `threads` OpenMP threads (1: no parallel region). The threads split
/// C into row slices (multiples of MR; each thread packs B itself) when m ≥ n, else column
/// slices (multiples of NR); each slice runs packed_gemm_serial with no synchronisation
/// (robust when the machine is oversubscribed). Slices start on micro-tile boundaries and the
/// k loop is never split, so results are bit-identical for any thread count.
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
void packed_gemm(index_t m, index_t n, index_t k, T alpha, const T* a, index_t rs_a, index_t cs_a,
                 const T* b, index_t rs_b, index_t cs_b, T beta, T* c, index_t rs_c, index_t cs_c,
                 int threads) {
  using Blk = GemmBlocking<T, Arch>;
  const index_t row_tiles = (m + Blk::mr - 1) / Blk::mr;
  const index_t col_tiles = (n + Blk::nr - 1) / Blk::nr;
  const bool split_rows = row_tiles >= col_tiles;
  const index_t tiles = split_rows ? row_tiles : col_tiles;
  if (threads > tiles) threads = static_cast<int>(tiles);
  auto slice = [&](int t, int nt) {
    const index_t per = (tiles + nt - 1) / nt;
    const index_t t0 = std::min<index_t>(tiles, t * per);
    const index_t t1 = std::min<index_t>(tiles, t0 + per);
    if (t0 >= t1) return;
    if (split_rows) {
      const index_t r0 = t0 * Blk::mr, r1 = std::min<index_t>(m, t1 * Blk::mr);
      packed_gemm_serial<T, Arch>(r1 - r0, n, k, alpha, a + r0 * rs_a, rs_a, cs_a, b, rs_b, cs_b,
                                  beta, c + r0 * rs_c, rs_c, cs_c);
    } else {
      const index_t c0 = t0 * Blk::nr, c1 = std::min<index_t>(n, t1 * Blk::nr);
      packed_gemm_serial<T, Arch>(m, c1 - c0, k, alpha, a, rs_a, cs_a, b + c0 * cs_b, rs_b, cs_b,
                                  beta, c + c0 * cs_c, rs_c, cs_c);
    }
  };
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    slice(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  slice(0, 1);
}

}  // namespace attnkit::kernel

ATTNKIT_SIMD_WARNINGS_POP
