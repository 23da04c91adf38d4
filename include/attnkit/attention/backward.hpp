// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention_backward(policy, q, k, v, out, state, dout, dq, dk, dv, options, extra): the fused
// backward pass of attention() for every activation and mask, MHA/GQA/MQA, with attention
// dropout, the sigmoid output gates and learned sink logits. Nothing of size Nq·Nk is stored:
// each (query tile, key tile) pair recomputes S and P from Q, K and the forward's per-row state.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>

#include "attnkit/attention/attention.hpp"
#include "attnkit/kernel/tile_gemm.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit {

/// The optional gradients of attention_backward besides dq, dk and dv. An empty view or span is
/// not computed.
template <class T>
struct AttentionGradExtras {
  /// d loss / d values of a policy::HeadwiseSigmoid gate, [B, Hq, Nq].
  TensorView<T, 3> dgate_heads;
  /// d loss / d values of a policy::ElementwiseSigmoid gate, [B, Hq, Nq, Dv].
  TensorView<T, 4> dgate;
  /// d loss / d z_h of policy::SinkLogits, [Hq] (0 from a call whose keys do not hold key 0).
  std::span<double> dsinks;
};

namespace attention_detail {

/// The gate's policy::SigmoidGateValues (its optional `sigmoid_gate_values` hook), else none.
template <class G>
policy::SigmoidGateValues gate_values_of(const G& g) {
  using policy::sigmoid_gate_values;
  if constexpr (requires { sigmoid_gate_values(g); }) {
    return sigmoid_gate_values(g);
  } else {
    return policy::SigmoidGateValues::none;
  }
}

/// Rows and keys per tile of the backward pass.
inline constexpr index_t grad_tile = 64;

/// Strided operands of one backward call.
template <class T>
struct GradOperands {
  const T *q, *k, *v, *o, *dout, *state;
  Strides<4> qs, ks, vs, os, dos;
  Strides<3> ss;
  T *dq, *dk, *dv;
  Strides<4> dqs, dks, dvs;
  T* dgate_heads;  ///< null: not computed (non-null only for a headwise sigmoid gate)
  Strides<3> dghs;
  T* dgate;  ///< null: not computed (non-null only for an elementwise sigmoid gate)
  Strides<4> dgs;
  double* dsink_rows;  ///< [B, Hq] per batch entry, summed over B by the caller; null: none
  Geometry g;          ///< local: g.nq rows of q, g.nk keys of k and v
  index_t key0;        ///< absolute index of key 0 of k (KeyRange)
  index_t qoff;        ///< absolute position of query row 0
  index_t row0;        ///< row of the whole call of query row 0 (gate, dropout)
  index_t group;       ///< Hq / Hkv
  T scale;
  AttentionDropout dropout;
};

/// The backward kernel for one (Arch, T, Policy). A work unit is (batch entry, kv head) with the
/// query heads of that kv head (head softmax: a batch entry with every head). It holds the
/// unit's Q, dA (dout times the gate) and dQ rows, and per key tile dK and dV: for each key
/// tile j, for each query tile i the mask does not call Empty,
///   S = scale Q_i K_jᵀ, dP = dA_i V_jᵀ                     (two tile GEMMs)
///   P and dS elementwise from S, dP and the row state     (activation, mask, dropout)
///   dV_j += Pᵀ dA_i, dK_j += dSᵀ Q_i, dQ_i += dS K_j        (three tile GEMMs)
/// Every sum runs in a fixed order inside one unit, so the result does not depend on the
/// thread count.
template <class Arch, class T, class Policy>
struct BackwardKernel {
  using B = xsimd::batch<T, Arch>;
  using Activation = typename Policy::activation_type;
  static constexpr index_t W = static_cast<index_t>(B::size);
  static constexpr index_t tile = grad_tile;
  static constexpr Normalization norm = Activation::normalization;
  static constexpr bool heads = norm == Normalization::over_heads;
  static constexpr bool identity_map = policy::is_identity_map<Activation>;
  static constexpr bool simd_deriv = policy::has_simd_derivative<Activation>;
  static constexpr bool sinks = policy::has_sink_logits<Activation>;
  static constexpr bool gated = !Policy::gate_type::is_identity;
  /// A score mod: its slope is kept per pair, and a -inf score gets P = dS = 0.
  static constexpr bool modded = !Policy::score_mod_type::is_identity;
  static constexpr T log2e = T(1.4426950408889634);

  const Policy& pol;
  const GradOperands<T>& x;

  /// The buffers of one unit, carved from the thread's scratch.
  struct Ws {
    T *qc, *dac, *kc, *dqc, *lse, *drow, *kt, *vt, *dkj, *dvj, *s, *dp, *keep, *slope, *grow;
    TileClass* cls;
    Ws(index_t nh, index_t nkv, const Geometry& g) {
      const index_t st = heads ? g.heads_q : 1;
      auto carve = [&](Carver c) {
        qc = c.take<T>(nh * g.nq * g.d);
        dac = c.take<T>(nh * g.nq * g.dv);
        kc = c.take<T>(nkv * g.nk * g.d);
        dqc = c.take<T>(nh * g.nq * g.d);
        lse = c.take<T>(nh * g.nq);
        drow = c.take<T>(nh * g.nq);
        kt = c.take<T>(nkv * g.d * tile);
        vt = c.take<T>(nkv * g.dv * tile);
        dkj = c.take<T>(nkv * tile * g.d);
        dvj = c.take<T>(nkv * tile * g.dv);
        s = c.take<T>(st * tile * tile);
        dp = c.take<T>(st * tile * tile);
        keep = c.take<T>(st * tile * tile);
        slope = c.take<T>(modded ? st * tile * tile : 0);
        grow = c.take<T>(g.dv);
        cls = c.take<TileClass>(nh);
        return c.used();
      };
      const std::size_t bytes = carve(Carver(nullptr));
      carve(Carver(thread_scratch(ScratchSlot::unit).get(bytes)));
    }
  };

  index_t unit_heads() const noexcept { return heads ? x.g.heads_q : x.group; }
  index_t unit_kv_heads() const noexcept { return heads ? x.g.heads_kv : 1; }

  void run() const {
    const Geometry& g = x.g;
    const long units = static_cast<long>(heads ? g.batch : g.batch * g.heads_kv);
    parallel_units(
        units, [&] { return Ws(unit_heads(), unit_kv_heads(), g); },
        [&](Ws& ws, long u) {
          const index_t b = heads ? static_cast<index_t>(u) : static_cast<index_t>(u) / g.heads_kv;
          const index_t kv0 = heads ? 0 : static_cast<index_t>(u) % g.heads_kv;
          run_unit(ws, b, heads ? 0 : kv0 * x.group, kv0);
        });
  }

  /// The row pieces: Q and dA = dout · gate copied, D = Σ dout · out, the row state, the gate
  /// and sink gradients.
  void prepare_rows(Ws& ws, index_t b, index_t h0) const {
    const Geometry& g = x.g;
    const index_t nh = unit_heads();
    for (index_t hl = 0; hl < nh; ++hl) {
      const index_t h = h0 + hl;
      double sink_grad = 0;
      for (index_t i = 0; i < g.nq; ++i) {
        const index_t r = hl * g.nq + i;
        const T* qs = x.q + b * x.qs[0] + h * x.qs[1] + i * x.qs[2];
        for (index_t p = 0; p < g.d; ++p) ws.qc[r * g.d + p] = qs[p * x.qs[3]];
        const T* os = x.o + b * x.os[0] + h * x.os[1] + i * x.os[2];
        const T* ds = x.dout + b * x.dos[0] + h * x.dos[1] + i * x.dos[2];
        if constexpr (gated) {
          std::fill(ws.grow, ws.grow + g.dv, T(1));
          pol.gate.apply_row(b, h, x.row0 + i, ws.grow, g.dv);
        }
        T dsum = 0;
        T* da = ws.dac + r * g.dv;
        for (index_t c = 0; c < g.dv; ++c) {
          const T dov = ds[c * x.dos[3]], ov = os[c * x.os[3]];
          dsum += dov * ov;
          da[c] = gated ? dov * ws.grow[c] : dov;
          if (x.dgate)
            x.dgate[b * x.dgs[0] + h * x.dgs[1] + i * x.dgs[2] + c * x.dgs[3]] =
                dov * ov * (T(1) - ws.grow[c]);
        }
        if (x.dgate_heads)
          x.dgate_heads[b * x.dghs[0] + h * x.dghs[1] + i * x.dghs[2]] = dsum * (T(1) - ws.grow[0]);
        ws.drow[r] = dsum;
        if constexpr (norm == Normalization::over_keys_exp || norm == Normalization::over_keys_sum)
          ws.lse[r] = x.state[b * x.ss[0] + h * x.ss[1] + i * x.ss[2]];
        if constexpr (sinks) {
          // P_sink = exp(z_h - lse) takes no value: d z_h = -Σ_i P_sink,i · D_i.
          if (x.dsink_rows && x.key0 == 0)
            sink_grad -= std::exp(pol.activation.sink_logit(h) - double(ws.lse[r])) * double(dsum);
        }
      }
      if (x.dsink_rows) x.dsink_rows[b * g.heads_q + h] = sink_grad;
    }
    std::fill(ws.dqc, ws.dqc + nh * g.nq * g.d, T(0));
  }

  /// d map / d s for the lanes t (scores) with map values m.
  B derivative(const Activation& act, const B& t, const B& m) const {
    if constexpr (simd_deriv) {
      return act.simd_derivative(t, m);
    } else {
      alignas(64) T buf[W];
      t.store_aligned(buf);
      for (index_t l = 0; l < W; ++l) buf[l] = static_cast<T>(act.derivative(double(buf[l])));
      return B::load_aligned(buf);
    }
  }

  /// The score mod on a tile of scores, keeping d apply / d s in `slope`.
  void apply_mod(index_t b, index_t h, index_t i0, index_t bq, index_t j0, index_t bk, T* s,
                 T* slope) const {
    for (index_t r = 0; r < bq; ++r)
      for (index_t c = 0; c < bk; ++c) {
        T& v = s[r * tile + c];
        const index_t i = i0 + r + x.qoff, j = x.key0 + j0 + c;
        slope[r * tile + c] = pol.score_mod.slope(b, h, i, j, v);
        v = pol.score_mod.apply(b, h, i, j, v);
      }
  }

  /// Marks the invisible pairs of a Partial tile (marker score) and fills the dropout factors.
  void mask_and_keep(index_t b, index_t h, index_t i0, index_t bq, index_t j0, index_t bk,
                     bool partial, T* s, T* keep) const {
    if (partial)
      for (index_t r = 0; r < bq; ++r)
        for (index_t c = 0; c < bk; ++c)
          if (!pol.mask.visible(b, h, i0 + r + x.qoff, x.key0 + j0 + c))
            s[r * tile + c] = marker<T>;
    if (x.dropout.enabled()) {
      const T kf = static_cast<T>(x.dropout.keep_scale());
      for (index_t r = 0; r < bq; ++r) {
        const std::uint64_t row = x.dropout.row_key(b, h, x.row0 + i0 + r);
        for (index_t c = 0; c < bk; ++c)
          keep[r * tile + c] = x.dropout.row_keeps(row, x.key0 + j0 + c) ? kf : T(0);
      }
    }
  }

  /// S -> P (dropped, in s) and dP -> dS (times scale, in dp) for one head's tile.
  void elementwise(index_t bq, index_t bk, bool partial, const T* lse, const T* drow, T* s, T* dp,
                   const T* keep, const T* slope) const {
    const Activation act = pol.activation;
    const B thr(marker_threshold<T>);
    const B scale(x.scale);
    const bool drop = x.dropout.enabled();
    const index_t nv = (bk + W - 1) / W;
    for (index_t r = 0; r < bq; ++r) {
      T* srow = s + r * tile;
      T* dprow = dp + r * tile;
      const T* krow = keep + r * tile;
      [[maybe_unused]] const T* slrow = slope + r * tile;
      const B dr(drow[r]);
      B row_c(T(0));  // lse · log2 e, or 1 / L
      if constexpr (norm == Normalization::over_keys_exp) {
        row_c = B(lse[r] * log2e);
      } else if constexpr (norm == Normalization::over_keys_sum) {
        row_c = B(lse[r] > T(0) ? T(1) / lse[r] : T(0));
      }
      for (index_t v = 0; v < nv; ++v) {
        const B t = B::load_aligned(srow + v * W);
        B dpv = B::load_aligned(dprow + v * W);
        const B kf = drop ? B::load_aligned(krow + v * W) : B(T(1));
        if (drop) dpv *= kf;
        B p, ds;
        if constexpr (norm == Normalization::over_keys_exp) {
          const B z = identity_map ? t : act.simd_map(t);
          p = exp2_batch<Arch, T>(xsimd::fms(z, B(log2e), row_c));
          if (partial) p = xsimd::select(t > thr, p, B(T(0)));
          ds = p * (dpv - dr);
          if constexpr (!identity_map) ds *= derivative(act, t, z);
        } else {
          const B f = identity_map ? t : act.simd_map(t);
          if constexpr (norm == Normalization::over_keys_sum) {
            p = f * row_c;
            ds = (dpv - dr) * row_c;
          } else {
            p = f;
            ds = dpv;
          }
          if constexpr (!identity_map) ds *= derivative(act, t, f);
          if (partial) p = xsimd::select(t > thr, p, B(T(0)));
        }
        if constexpr (modded) ds *= B::load_aligned(slrow + v * W);
        ds *= scale;
        if (partial) ds = xsimd::select(t > thr, ds, B(T(0)));
        if (drop) p *= kf;
        p.store_aligned(srow + v * W);
        ds.store_aligned(dprow + v * W);
      }
    }
  }

  /// Head softmax: P and dS across the unit's heads (those whose tile is not Empty).
  void elementwise_heads(Ws& ws, index_t bq, index_t bk) const {
    const index_t hq = x.g.heads_q;
    const B thr(marker_threshold<T>);
    const B scale(x.scale);
    const bool drop = x.dropout.enabled();
    const index_t nv = (bk + W - 1) / W;
    constexpr index_t tt = tile * tile;
    for (index_t r = 0; r < bq; ++r)
      for (index_t v = 0; v < nv; ++v) {
        const index_t off = r * tile + v * W;
        B m(marker<T>);
        for (index_t h = 0; h < hq; ++h)
          if (ws.cls[h] != TileClass::empty)
            m = xsimd::max(m, B::load_aligned(ws.s + h * tt + off));
        B sum(T(0));
        for (index_t h = 0; h < hq; ++h) {
          if (ws.cls[h] == TileClass::empty) continue;
          const B t = B::load_aligned(ws.s + h * tt + off);
          B e = exp2_batch<Arch, T>((t - m) * B(log2e));
          e = xsimd::select(t > thr, e, B(T(0)));
          e.store_aligned(ws.s + h * tt + off);
          sum += e;
        }
        const B inv = xsimd::select(sum > B(T(0)), B(T(1)) / sum, B(T(0)));
        B dsum(T(0));
        for (index_t h = 0; h < hq; ++h) {
          if (ws.cls[h] == TileClass::empty) continue;
          B dpv = B::load_aligned(ws.dp + h * tt + off);
          if (drop) dpv *= B::load_aligned(ws.keep + h * tt + off);
          dsum = xsimd::fma(B::load_aligned(ws.s + h * tt + off) * inv, dpv, dsum);
        }
        for (index_t h = 0; h < hq; ++h) {
          if (ws.cls[h] == TileClass::empty) continue;
          B dpv = B::load_aligned(ws.dp + h * tt + off);
          B kf(T(1));
          if (drop) {
            kf = B::load_aligned(ws.keep + h * tt + off);
            dpv *= kf;
          }
          const B p = B::load_aligned(ws.s + h * tt + off) * inv;
          B ds = p * (dpv - dsum) * scale;
          if constexpr (modded) ds *= B::load_aligned(ws.slope + h * tt + off);
          ds.store_aligned(ws.dp + h * tt + off);
          (drop ? p * kf : p).store_aligned(ws.s + h * tt + off);
        }
      }
  }

  void run_unit(Ws& ws, index_t b, index_t h0, index_t kv0) const {
    const Geometry& g = x.g;
    const index_t nh = unit_heads(), nkv = unit_kv_heads();
    const index_t d = g.d, dv = g.dv, nq = g.nq, nk = g.nk;
    prepare_rows(ws, b, h0);
    for (index_t kl = 0; kl < nkv; ++kl)
      for (index_t j = 0; j < nk; ++j) {
        const T* src = x.k + b * x.ks[0] + (kv0 + kl) * x.ks[1] + j * x.ks[2];
        T* dst = ws.kc + (kl * nk + j) * d;
        for (index_t p = 0; p < d; ++p) dst[p] = src[p * x.ks[3]];
      }
    for (index_t j0 = 0; j0 < nk; j0 += tile) {
      const index_t bk = std::min(tile, nk - j0);
      for (index_t kl = 0; kl < nkv; ++kl) {
        T* kt = ws.kt + kl * d * tile;
        T* vt = ws.vt + kl * dv * tile;
        for (index_t c = 0; c < bk; ++c) {
          const T* kr = ws.kc + (kl * nk + j0 + c) * d;
          for (index_t p = 0; p < d; ++p) kt[p * tile + c] = kr[p];
          const T* vr = x.v + b * x.vs[0] + (kv0 + kl) * x.vs[1] + (j0 + c) * x.vs[2];
          for (index_t p = 0; p < dv; ++p) vt[p * tile + c] = vr[p * x.vs[3]];
        }
        std::fill(ws.dkj + kl * tile * d, ws.dkj + (kl + 1) * tile * d, T(0));
        std::fill(ws.dvj + kl * tile * dv, ws.dvj + (kl + 1) * tile * dv, T(0));
      }
      for (index_t i0 = 0; i0 < nq; i0 += tile) {
        const index_t bq = std::min(tile, nq - i0);
        if constexpr (heads) {
          tile_pair_heads(ws, b, i0, bq, j0, bk);
        } else {
          for (index_t hl = 0; hl < nh; ++hl) tile_pair(ws, b, h0 + hl, hl, i0, bq, j0, bk);
        }
      }
      for (index_t kl = 0; kl < nkv; ++kl)
        for (index_t c = 0; c < bk; ++c) {
          T* dkr = x.dk + b * x.dks[0] + (kv0 + kl) * x.dks[1] + (j0 + c) * x.dks[2];
          const T* sk = ws.dkj + (kl * tile + c) * d;
          for (index_t p = 0; p < d; ++p) dkr[p * x.dks[3]] = sk[p];
          T* dvr = x.dv + b * x.dvs[0] + (kv0 + kl) * x.dvs[1] + (j0 + c) * x.dvs[2];
          const T* sv = ws.dvj + (kl * tile + c) * dv;
          for (index_t p = 0; p < dv; ++p) dvr[p * x.dvs[3]] = sv[p];
        }
    }
    for (index_t hl = 0; hl < nh; ++hl)
      for (index_t i = 0; i < nq; ++i) {
        T* dst = x.dq + b * x.dqs[0] + (h0 + hl) * x.dqs[1] + i * x.dqs[2];
        const T* src = ws.dqc + (hl * nq + i) * d;
        for (index_t p = 0; p < d; ++p) dst[p * x.dqs[3]] = src[p];
      }
  }

  /// The three accumulating GEMMs of one head's tile pair (P and dS in place).
  void accumulate(Ws& ws, index_t hl, index_t kl, index_t i0, index_t bq, index_t j0, index_t bk,
                  const T* p, const T* dsm) const {
    const index_t d = x.g.d, dv = x.g.dv, nq = x.g.nq, nk = x.g.nk;
    const T* qi = ws.qc + (hl * nq + i0) * d;
    const T* dai = ws.dac + (hl * nq + i0) * dv;
    // dV_j += Pᵀ dA_i, dK_j += dSᵀ Q_i, dQ_i += dS K_j
    kernel::tile_gemm<Arch>(bk, dv, bq, T(1), p, index_t{1}, tile, dai, dv, T(1),
                            ws.dvj + kl * tile * dv, dv);
    kernel::tile_gemm<Arch>(bk, d, bq, T(1), dsm, index_t{1}, tile, qi, d, T(1),
                            ws.dkj + kl * tile * d, d);
    kernel::tile_gemm<Arch>(bq, d, bk, T(1), dsm, tile, index_t{1}, ws.kc + (kl * nk + j0) * d, d,
                            T(1), ws.dqc + (hl * nq + i0) * d, d);
  }

  /// S and dP of one head's tile pair (two GEMMs).
  void scores(Ws& ws, index_t hl, index_t kl, index_t i0, index_t bq, index_t bk, T* s,
              T* dp) const {
    const index_t d = x.g.d, dv = x.g.dv, nq = x.g.nq;
    kernel::tile_gemm<Arch>(bq, bk, d, x.scale, ws.qc + (hl * nq + i0) * d, d, index_t{1},
                            ws.kt + kl * d * tile, tile, T(0), s, tile);
    kernel::tile_gemm<Arch>(bq, bk, dv, T(1), ws.dac + (hl * nq + i0) * dv, dv, index_t{1},
                            ws.vt + kl * dv * tile, tile, T(0), dp, tile);
  }

  void tile_pair(Ws& ws, index_t b, index_t h, index_t hl, index_t i0, index_t bq, index_t j0,
                 index_t bk) const {
    const TileClass cls =
        pol.mask.classify(b, h, i0 + x.qoff, i0 + bq + x.qoff, j0 + x.key0, j0 + bk + x.key0);
    if (cls == TileClass::empty) return;
    // A modded score may be -inf: every tile then selects like a Partial one.
    const bool partial = cls == TileClass::partial || modded;
    scores(ws, hl, 0, i0, bq, bk, ws.s, ws.dp);
    if constexpr (modded) apply_mod(b, h, i0, bq, j0, bk, ws.s, ws.slope);
    mask_and_keep(b, h, i0, bq, j0, bk, cls == TileClass::partial, ws.s, ws.keep);
    const index_t r0 = hl * x.g.nq + i0;
    elementwise(bq, bk, partial, ws.lse + r0, ws.drow + r0, ws.s, ws.dp, ws.keep, ws.slope);
    accumulate(ws, hl, 0, i0, bq, j0, bk, ws.s, ws.dp);
  }

  void tile_pair_heads(Ws& ws, index_t b, index_t i0, index_t bq, index_t j0, index_t bk) const {
    const index_t hq = x.g.heads_q;
    constexpr index_t tt = tile * tile;
    bool any = false;
    for (index_t h = 0; h < hq; ++h) {
      ws.cls[h] =
          pol.mask.classify(b, h, i0 + x.qoff, i0 + bq + x.qoff, j0 + x.key0, j0 + bk + x.key0);
      if (ws.cls[h] == TileClass::empty) continue;
      any = true;
      scores(ws, h, h / x.group, i0, bq, bk, ws.s + h * tt, ws.dp + h * tt);
      if constexpr (modded) apply_mod(b, h, i0, bq, j0, bk, ws.s + h * tt, ws.slope + h * tt);
      mask_and_keep(b, h, i0, bq, j0, bk, ws.cls[h] == TileClass::partial, ws.s + h * tt,
                    ws.keep + h * tt);
    }
    if (!any) return;
    elementwise_heads(ws, bq, bk);
    for (index_t h = 0; h < hq; ++h)
      if (ws.cls[h] != TileClass::empty)
        accumulate(ws, h, h / x.group, i0, bq, j0, bk, ws.s + h * tt, ws.dp + h * tt);
  }
};

}  // namespace attention_detail

/// The backward pass of attention(): given the forward's inputs, its output `out` and per-row
/// `state` (attention_partial of the same call: the log-sum-exp for the softmax family, the
/// row sum for over_keys_sum activations; unused, and may be empty, for the elementwise
/// activations and head softmax), and dout = d loss / d out, writes dq, dk and dv (and the
/// extras asked for: the gate values' and sink logits' gradients).
///   q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv], out and dout [B, Hq, Nq, Dv],
///   state [B, Hq, Nq]; dq, dk and dv of the shapes of q, k and v. Any strides.
/// Options as for the forward: scale, dropout (the same seed drops the same weights), and the
/// key and query ranges (dq from a key range, dk and dv from a query range are partial sums
/// the caller adds up; `state` is then the whole row's, merge_partials's). Results are
/// identical bit for bit for any thread count: a work unit is a (batch entry, kv head), or a
/// batch entry under head softmax, which bounds the threads a call uses by that count.
/// Score mods need their derivative, `slope(b, h, i, j, s)` (every built-in has it; a compile-time
/// error otherwise); a score of -inf from a mod gets zero gradients.
/// \tparam Policy an attnkit::policy::AttentionPolicy \tparam T float or double
template <class Policy, class T>
void attention_backward(const Policy& policy, std::type_identity_t<TensorView<const T, 4>> q,
                        std::type_identity_t<TensorView<const T, 4>> k,
                        std::type_identity_t<TensorView<const T, 4>> v,
                        std::type_identity_t<TensorView<const T, 4>> out,
                        std::type_identity_t<TensorView<const T, 3>> state,
                        std::type_identity_t<TensorView<const T, 4>> dout, TensorView<T, 4> dq,
                        std::type_identity_t<TensorView<T, 4>> dk,
                        std::type_identity_t<TensorView<T, 4>> dv,
                        const AttentionOptions& options = {},
                        const AttentionGradExtras<T>& extra = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: attention_backward supports float and double tensors");
  static_assert(policy::is_attention_policy<Policy>,
                "attnkit: the policy argument of attention_backward must be an "
                "attnkit::policy::AttentionPolicy<Activation, Mask, ScoreMod, Gate>");
  static_assert(Policy::score_mod_type::is_identity ||
                    policy::has_score_slope<typename Policy::score_mod_type>,
                "attnkit: attention_backward needs the score mod's derivative: a member "
                "slope(b, h, i, j, s) = d apply / d s (policy::has_score_slope)");
  using Activation = typename Policy::activation_type;
  constexpr auto norm = Activation::normalization;
  constexpr bool needs_state =
      norm == policy::Normalization::over_keys_exp || norm == policy::Normalization::over_keys_sum;
  attention_detail::check_qkv("attention_backward", q, k, v);
  const index_t nb = q.extent(0), hq = q.extent(1), nq = q.extent(2), d = q.extent(3);
  const index_t hkv = k.extent(1), nk = k.extent(2), dvd = v.extent(3);
  const Shape<4> oshape{nb, hq, nq, dvd};
  if (out.shape() != oshape) throw_shape_mismatch("attention_backward", "out", out.shape(), oshape);
  if (dout.shape() != oshape)
    throw_shape_mismatch("attention_backward", "dout", dout.shape(), oshape);
  if ((needs_state || state.size() != 0) && state.shape() != Shape<3>{nb, hq, nq})
    throw_shape_mismatch("attention_backward", "state", state.shape(), Shape<3>{nb, hq, nq});
  if (dq.shape() != q.shape())
    throw_shape_mismatch("attention_backward", "dq", dq.shape(), q.shape());
  if (dk.shape() != k.shape())
    throw_shape_mismatch("attention_backward", "dk", dk.shape(), k.shape());
  if (dv.shape() != v.shape())
    throw_shape_mismatch("attention_backward", "dv", dv.shape(), v.shape());
  const bool want_gh = extra.dgate_heads.data() != nullptr;
  const bool want_g = extra.dgate.data() != nullptr;
  const policy::SigmoidGateValues gate_values = attention_detail::gate_values_of(policy.gate);
  if (want_gh && gate_values != policy::SigmoidGateValues::headwise)
    throw error(
        "attnkit: attention_backward: dgate_heads is the gradient of a headwise sigmoid "
        "gate (HeadwiseSigmoid), which the policy does not have");
  if (want_g && gate_values != policy::SigmoidGateValues::elementwise)
    throw error(
        "attnkit: attention_backward: dgate is the gradient of an elementwise sigmoid "
        "gate (ElementwiseSigmoid), which the policy does not have");
  if (want_gh && extra.dgate_heads.shape() != Shape<3>{nb, hq, nq})
    throw_shape_mismatch("attention_backward", "dgate_heads", extra.dgate_heads.shape(),
                         Shape<3>{nb, hq, nq});
  if (want_g && extra.dgate.shape() != oshape)
    throw_shape_mismatch("attention_backward", "dgate", extra.dgate.shape(), oshape);
  if (!extra.dsinks.empty()) {
    if (!policy::has_sink_logits<Activation>)
      throw error(
          "attnkit: attention_backward: dsinks is the gradient of sink logits, which the "
          "policy's activation does not have");
    if (static_cast<index_t>(extra.dsinks.size()) != hq)
      throw shape_error("attnkit: attention_backward: dsinks holds " +
                        std::to_string(extra.dsinks.size()) + " values for " + std::to_string(hq) +
                        " query heads");
  }
  const attention_detail::CallRanges ranges =
      attention_detail::check_options("attention_backward", options, nq, nk);
  const index_t key0 = ranges.key0, total = ranges.total, row0 = ranges.row0, rows = ranges.rows;

  const Policy bound = policy.bind(policy::Geometry{nb, hq, hkv, rows, total, d, dvd});
  // Otherwise the kernel writes every element of the outputs.
  if (nb == 0 || hq == 0 || nq == 0 || nk == 0 || dvd == 0) {
    fill(dq, T(0));
    fill(dk, T(0));
    fill(dv, T(0));
    if (want_gh) fill(extra.dgate_heads, T(0));
    if (want_g) fill(extra.dgate, T(0));
    for (double& z : extra.dsinks) z = 0;
    return;
  }

  attention_detail::GradOperands<T> x{};
  x.q = q.data();
  x.qs = q.strides();
  x.k = k.data();
  x.ks = k.strides();
  x.v = v.data();
  x.vs = v.strides();
  x.o = out.data();
  x.os = out.strides();
  x.dout = dout.data();
  x.dos = dout.strides();
  x.state = state.data();
  x.ss = state.strides();
  x.dq = dq.data();
  x.dqs = dq.strides();
  x.dk = dk.data();
  x.dks = dk.strides();
  x.dv = dv.data();
  x.dvs = dv.strides();
  x.dgate_heads = want_gh ? extra.dgate_heads.data() : nullptr;
  x.dghs = extra.dgate_heads.strides();
  x.dgate = want_g ? extra.dgate.data() : nullptr;
  x.dgs = extra.dgate.strides();
  x.g = policy::Geometry{nb, hq, hkv, nq, nk, d, dvd};
  x.key0 = key0;
  x.qoff = row0 + total - rows;
  x.row0 = row0;
  x.group = hq / hkv;
  x.scale =
      static_cast<T>(options.scale ? *options.scale : (d > 0 ? 1.0 / std::sqrt(double(d)) : 1.0));
  x.dropout = options.dropout;
  double* sink_rows = nullptr;
  if (!extra.dsinks.empty())
    sink_rows = reinterpret_cast<double*>(
        attention_detail::thread_scratch(attention_detail::ScratchSlot::call)
            .get(static_cast<std::size_t>(nb * hq) * sizeof(double)));
  x.dsink_rows = sink_rows;
  simd::dispatch([&](auto arch) {
    using Arch = decltype(arch);
    const attention_detail::BackwardKernel<Arch, T, Policy> kernel{bound, x};
    kernel.run();
  });
  if (sink_rows)
    for (index_t h = 0; h < hq; ++h) {
      double s = 0;
      for (index_t b = 0; b < nb; ++b) s += sink_rows[b * hq + h];
      extra.dsinks[static_cast<std::size_t>(h)] = s;
    }
}

}  // namespace attnkit

ATTNKIT_SIMD_WARNINGS_POP
