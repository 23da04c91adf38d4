// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Execution of einsum steps: operands bound to strides per index, the generic strided loop nest,
// and the mapping of a two-operand contraction onto kernel::gemm_batched.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "attnkit/core/aligned.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/einsum/strided_view.hpp"
#include "attnkit/kernel/gemm.hpp"

namespace attnkit::detail {

/// Index ids: 'A'..'Z' are 0..25, 'a'..'z' 26..51 (ASCII order), broadcast ('...') dimension j
/// of the spec is 52 + j.
inline constexpr std::size_t einsum_letter_ids = 52;
inline constexpr std::size_t einsum_label_capacity = einsum_letter_ids + einsum_max_rank;
/// Most distinct indices of one operand or intermediate.
inline constexpr std::size_t einsum_max_term_labels = 32;

constexpr int einsum_letter_id(char c) { return c <= 'Z' ? c - 'A' : c - 'a' + 26; }

/// "'j'" for a letter, "'...' dimension 2" for a broadcast dimension.
inline std::string einsum_label_name(std::size_t id) {
  if (id < 26) return std::string("'") + static_cast<char>('A' + id) + "'";
  if (id < einsum_letter_ids) return std::string("'") + static_cast<char>('a' + id - 26) + "'";
  return "'...' dimension " + std::to_string(id - einsum_letter_ids);
}

/// A small ordered set of index ids.
struct LabelList {
  std::array<std::uint8_t, einsum_max_term_labels> id{};
  std::size_t size = 0;

  constexpr int find(std::size_t l) const {
    for (std::size_t i = 0; i < size; ++i)
      if (id[i] == l) return static_cast<int>(i);
    return -1;
  }
  constexpr bool has(std::size_t l) const { return find(l) >= 0; }
  void push(std::size_t l) {
    if (size == einsum_max_term_labels)
      throw error("attnkit: einsum: an operand or intermediate would have more than " +
                  std::to_string(einsum_max_term_labels) + " distinct indices");
    id[size++] = static_cast<std::uint8_t>(l);
  }
  constexpr std::size_t operator[](std::size_t i) const { return id[i]; }
};

/// An operand bound to memory: the stride of each of its indices (a repeated index, as in a
/// diagonal, has the sum of its strides; a size-1 broadcast dimension has stride 0).
template <class T>
struct BoundTerm {
  T* data = nullptr;
  LabelList labels;
  std::array<index_t, einsum_max_term_labels> strides{};

  /// Stride of index l; 0 when the operand does not have it (it is broadcast along l).
  constexpr index_t stride_of(std::size_t l) const {
    const int p = labels.find(l);
    return p < 0 ? 0 : strides[static_cast<std::size_t>(p)];
  }
};

/// A contiguous row-major term over `labels` (in that order).
template <class T>
BoundTerm<T> contiguous_term(T* data, const LabelList& labels, const index_t* extent) {
  BoundTerm<T> t;
  t.data = data;
  t.labels = labels;
  index_t acc = 1;
  for (std::size_t i = labels.size; i-- > 0;) {
    t.strides[i] = acc;
    acc *= extent[labels[i]];
  }
  return t;
}

/// Number of elements of a term.
inline index_t term_size(const LabelList& labels, const index_t* extent) {
  index_t n = 1;
  for (std::size_t i = 0; i < labels.size; ++i) n *= extent[labels[i]];
  return n;
}

/// A loop nest: n_out output dimensions (outer to inner), then n_sum summed dimensions, with the
/// stride of every dimension in the output and in each of the P inputs.
template <std::size_t P>
struct LoopNest {
  std::size_t n_out = 0;
  std::size_t n_sum = 0;
  std::array<index_t, einsum_label_capacity> extent{};
  std::array<index_t, einsum_label_capacity> out_stride{};
  std::array<std::array<index_t, einsum_label_capacity>, P> in_stride{};
};

/// out[o] = Σ_sum Π_p in_p[...] over the nest. Each output element is written once, its sum
/// taken in a fixed order, so results do not depend on the thread count.
template <class T, std::size_t P>
[[gnu::noinline]] void run_loop_nest(const LoopNest<P>& nest, T* out,
                                     const std::array<const T*, P>& in) {
  const std::size_t no = nest.n_out;
  const std::size_t ns = nest.n_sum;
  const auto& ext = nest.extent;
  const auto& ist = nest.in_stride;
  const auto& ost = nest.out_stride;
  index_t out_count = 1;
  for (std::size_t d = 0; d < no; ++d) out_count *= ext[d];
  if (out_count == 0) return;
  index_t sum_count = 1;
  for (std::size_t d = no; d < no + ns; ++d) sum_count *= ext[d];

  // The value of one output element whose operands start at `base`.
  auto value = [&](const std::array<index_t, P>& base) -> T {
    if (ns == 0) {
      T v = in[0][base[0]];
      for (std::size_t p = 1; p < P; ++p) v *= in[p][base[p]];
      return v;
    }
    T acc = 0;
    if (sum_count == 0) return acc;
    const std::size_t last = no + ns - 1;
    const index_t len = ext[last];
    std::array<index_t, P> off = base;
    std::array<index_t, einsum_label_capacity> idx{};
    for (;;) {
      if constexpr (P == 1) {
        const T* a = in[0] + off[0];
        const index_t sa = ist[0][last];
        for (index_t j = 0; j < len; ++j) acc += a[j * sa];
      } else {
        const T* a = in[0] + off[0];
        const T* b = in[1] + off[1];
        const index_t sa = ist[0][last];
        const index_t sb = ist[1][last];
        if constexpr (P == 2) {
          for (index_t j = 0; j < len; ++j) acc += a[j * sa] * b[j * sb];
        } else {
          for (index_t j = 0; j < len; ++j) {
            T v = a[j * sa] * b[j * sb];
            for (std::size_t p = 2; p < P; ++p) v *= in[p][off[p] + j * ist[p][last]];
            acc += v;
          }
        }
      }
      std::size_t d = last;
      bool more = false;
      while (d-- > no) {
        ++idx[d];
        for (std::size_t p = 0; p < P; ++p) off[p] += ist[p][d];
        if (idx[d] < ext[d]) {
          more = true;
          break;
        }
        for (std::size_t p = 0; p < P; ++p) off[p] -= ist[p][d] * ext[d];
        idx[d] = 0;
      }
      if (!more) return acc;
    }
  };

  if (no == 0) {
    out[0] = value(std::array<index_t, P>{});
    return;
  }

  // One slab: output dimension 0 fixed at i0, the others walked with the innermost one tight.
  auto slab = [&](index_t i0) {
    index_t o = i0 * ost[0];
    std::array<index_t, P> off{};
    for (std::size_t p = 0; p < P; ++p) off[p] = i0 * ist[p][0];
    if (no == 1) {
      out[o] = value(off);
      return;
    }
    const std::size_t last = no - 1;
    const index_t len = ext[last];
    std::array<index_t, einsum_label_capacity> idx{};
    for (;;) {
      for (index_t j = 0; j < len; ++j) {
        std::array<index_t, P> b{};
        for (std::size_t p = 0; p < P; ++p) b[p] = off[p] + j * ist[p][last];
        out[o + j * ost[last]] = value(b);
      }
      std::size_t d = last;
      bool more = false;
      while (d-- > 1) {
        ++idx[d];
        o += ost[d];
        for (std::size_t p = 0; p < P; ++p) off[p] += ist[p][d];
        if (idx[d] < ext[d]) {
          more = true;
          break;
        }
        o -= ost[d] * ext[d];
        for (std::size_t p = 0; p < P; ++p) off[p] -= ist[p][d] * ext[d];
        idx[d] = 0;
      }
      if (!more) return;
    }
  };

  const double work = static_cast<double>(out_count) * static_cast<double>(sum_count) * P;
  if (work >= 65536.0 && ext[0] > 1) {
    parallel_for(static_cast<long>(ext[0]), [&](long i0) { slab(static_cast<index_t>(i0)); });
  } else {
    for (index_t i0 = 0; i0 < ext[0]; ++i0) slab(i0);
  }
}

/// Sorts `g` by `key` descending; stable, so equal keys keep their order.
template <class Key>
void sort_descending(LabelList& g, Key key) {
  for (std::size_t i = 1; i < g.size; ++i) {
    const std::uint8_t l = g.id[i];
    std::size_t j = i;
    while (j > 0 && key(g.id[j - 1]) < key(l)) {
      g.id[j] = g.id[j - 1];
      --j;
    }
    g.id[j] = l;
  }
}

/// C = Σ Π inputs by the generic loop nest: C's indices are the output loops (innermost = the
/// smallest output stride), every other index of an input is summed (innermost = the smallest
/// stride of the first input).
template <class T, std::size_t P>
void generic_contract(const BoundTerm<T>& c, const std::array<const BoundTerm<const T>*, P>& in,
                      const index_t* extent) {
  LabelList outs = c.labels;
  sort_descending(outs, [&](std::size_t l) { return c.stride_of(l); });
  LabelList sums;
  for (std::size_t p = 0; p < P; ++p)
    for (std::size_t i = 0; i < in[p]->labels.size; ++i) {
      const std::size_t l = in[p]->labels[i];
      if (!outs.has(l) && !sums.has(l)) sums.push(l);
    }
  sort_descending(sums, [&](std::size_t l) { return in[0]->stride_of(l); });
  LoopNest<P> nest;
  nest.n_out = outs.size;
  nest.n_sum = sums.size;
  for (std::size_t d = 0; d < outs.size + sums.size; ++d) {
    const std::size_t l = d < outs.size ? outs[d] : sums[d - outs.size];
    nest.extent[d] = extent[l];
    nest.out_stride[d] = d < outs.size ? c.stride_of(l) : 0;
    for (std::size_t p = 0; p < P; ++p) nest.in_stride[p][d] = in[p]->stride_of(l);
  }
  std::array<const T*, P> ptr{};
  for (std::size_t p = 0; p < P; ++p) ptr[p] = in[p]->data;
  run_loop_nest<T, P>(nest, c.data, ptr);
}

/// Whether the indices `g` (in this order, outer to inner) of X merge into one dimension of
/// stride `stride`: each stride is the next one times the next extent.
template <class T>
bool merge_group(const BoundTerm<T>& x, const LabelList& g, const index_t* extent,
                 index_t& stride) {
  if (g.size == 0) {
    stride = 0;
    return true;
  }
  for (std::size_t i = 0; i + 1 < g.size; ++i)
    if (x.stride_of(g[i]) != x.stride_of(g[i + 1]) * extent[g[i + 1]]) return false;
  stride = x.stride_of(g[g.size - 1]);
  return true;
}

inline LabelList concat(const LabelList& a, const LabelList& b, const LabelList& c) {
  LabelList r = a;
  for (std::size_t i = 0; i < b.size; ++i) r.push(b[i]);
  for (std::size_t i = 0; i < c.size; ++i) r.push(c[i]);
  return r;
}

/// One row block of C: cr[0, W) = Σ_p ar[p] · B[p, j0 + (0, W)], accumulated in registers (W is
/// a compile-time width, so the compiler keeps acc in vector registers).
template <class T, index_t W>
inline void small_row_block(T* cr, index_t c_ns, const T* ar, index_t a_ks, const T* b,
                            index_t b_ks, index_t b_ns, index_t k) {
  T acc[W] = {};
  if (b_ns == 1) {
    for (index_t p = 0; p < k; ++p) {
      const T x = ar[p * a_ks];
      const T* br = b + p * b_ks;
      for (index_t j = 0; j < W; ++j) acc[j] += x * br[j];
    }
  } else {
    for (index_t p = 0; p < k; ++p) {
      const T x = ar[p * a_ks];
      const T* br = b + p * b_ks;
      for (index_t j = 0; j < W; ++j) acc[j] += x * br[j * b_ns];
    }
  }
  for (index_t j = 0; j < W; ++j) cr[j * c_ns] = acc[j];
}

/// C[g] = A[g] · B[g] for small operands, a row of C at a time in register blocks of 16, 8, 4,
/// 2 and 1 columns, each sum taken over p in order. Used below a few thousand multiply-adds,
/// where calling (and packing for) the blocked GEMM costs more than the arithmetic.
template <class T>
void small_gemm_batched(index_t nb, index_t m, index_t n, index_t k, const T* a, index_t a_bs,
                        index_t a_ms, index_t a_ks, const T* b, index_t b_bs, index_t b_ks,
                        index_t b_ns, T* c, index_t c_bs, index_t c_ms, index_t c_ns) {
  for (index_t g = 0; g < nb; ++g)
    for (index_t i = 0; i < m; ++i) {
      T* cr = c + g * c_bs + i * c_ms;
      const T* ar = a + g * a_bs + i * a_ms;
      const T* bg = b + g * b_bs;
      index_t j = 0;
      for (; j + 16 <= n; j += 16)
        small_row_block<T, 16>(cr + j * c_ns, c_ns, ar, a_ks, bg + j * b_ns, b_ks, b_ns, k);
      if (j + 8 <= n) {
        small_row_block<T, 8>(cr + j * c_ns, c_ns, ar, a_ks, bg + j * b_ns, b_ks, b_ns, k);
        j += 8;
      }
      if (j + 4 <= n) {
        small_row_block<T, 4>(cr + j * c_ns, c_ns, ar, a_ks, bg + j * b_ns, b_ks, b_ns, k);
        j += 4;
      }
      if (j + 2 <= n) {
        small_row_block<T, 2>(cr + j * c_ns, c_ns, ar, a_ks, bg + j * b_ns, b_ks, b_ns, k);
        j += 2;
      }
      if (j < n) small_row_block<T, 1>(cr + j * c_ns, c_ns, ar, a_ks, bg + j * b_ns, b_ks, b_ns, k);
    }
}

/// Multiply-adds per batch entry up to which contract_pair uses small_gemm_batched.
inline constexpr index_t einsum_small_gemm_limit = 4096;

/// C = A · B for two bound operands. Indices are classified as batch (A, B, C), contracted
/// (A, B), free in A (A, C) and free in B (B, C); extent-1 indices are ignored. When at least two
/// of M, N, K are above 1 the contraction runs on kernel::gemm_batched: each group must merge
/// into one stride in every operand that has it (then no copy is made); an operand whose group
/// does not merge is first copied into a contiguous temporary [batch, M, K] / [batch, K, N]
/// (and C is computed in a temporary [batch, M, N] and copied out). Tiny products (up to
/// einsum_small_gemm_limit multiply-adds) run on small_gemm_batched instead. Everything else
/// (indices summed in one operand only, dot products, Hadamard products) runs on the generic loop
/// nest.
template <class T>
void contract_pair(const BoundTerm<const T>& a0, const BoundTerm<const T>& b0,
                   const BoundTerm<T>& c0, const index_t* extent) {
  LabelList batch, mg, ng, kg;
  bool summed_alone = false;
  for (std::size_t i = 0; i < a0.labels.size; ++i) {
    const std::size_t l = a0.labels[i];
    if (extent[l] == 1) continue;
    const bool in_b = b0.labels.has(l);
    const bool in_c = c0.labels.has(l);
    if (in_b && in_c)
      batch.push(l);
    else if (in_b)
      kg.push(l);
    else if (in_c)
      mg.push(l);
    else
      summed_alone = true;
  }
  for (std::size_t i = 0; i < b0.labels.size; ++i) {
    const std::size_t l = b0.labels[i];
    if (extent[l] == 1 || a0.labels.has(l)) continue;
    if (c0.labels.has(l))
      ng.push(l);
    else
      summed_alone = true;
  }
  const index_t nb = term_size(batch, extent);
  const index_t m = term_size(mg, extent);
  const index_t n = term_size(ng, extent);
  const index_t k = term_size(kg, extent);
  const int nontrivial = (m > 1) + (n > 1) + (k > 1);
  if (summed_alone || nontrivial < 2 || k == 0) {
    generic_contract<T, 2>(c0, {&a0, &b0}, extent);
    return;
  }
  if (nb == 0 || m == 0 || n == 0) return;

  auto by_c = [&](std::size_t l) { return c0.stride_of(l); };
  sort_descending(batch, by_c);
  sort_descending(mg, by_c);
  sort_descending(ng, by_c);
  sort_descending(kg, [&](std::size_t l) { return a0.stride_of(l); });

  index_t a_bs = 0, a_ms = 0, a_ks = 0, b_bs = 0, b_ks = 0, b_ns = 0, c_bs = 0, c_ms = 0, c_ns = 0;
  aligned_ptr<T> a_tmp, b_tmp, c_tmp;
  const T* a_data = a0.data;
  const T* b_data = b0.data;
  if (!(merge_group(a0, batch, extent, a_bs) && merge_group(a0, mg, extent, a_ms) &&
        merge_group(a0, kg, extent, a_ks))) {
    const LabelList order = concat(batch, mg, kg);
    a_tmp = make_aligned<T>(static_cast<std::size_t>(nb * m * k));
    const BoundTerm<T> t = contiguous_term(a_tmp.get(), order, extent);
    generic_contract<T, 1>(t, {&a0}, extent);
    a_data = a_tmp.get();
    a_bs = m * k;
    a_ms = mg.size ? k : 0;
    a_ks = kg.size ? 1 : 0;
  }
  if (!(merge_group(b0, batch, extent, b_bs) && merge_group(b0, kg, extent, b_ks) &&
        merge_group(b0, ng, extent, b_ns))) {
    const LabelList order = concat(batch, kg, ng);
    b_tmp = make_aligned<T>(static_cast<std::size_t>(nb * k * n));
    const BoundTerm<T> t = contiguous_term(b_tmp.get(), order, extent);
    generic_contract<T, 1>(t, {&b0}, extent);
    b_data = b_tmp.get();
    b_bs = k * n;
    b_ks = kg.size ? n : 0;
    b_ns = ng.size ? 1 : 0;
  }
  T* c_data = c0.data;
  const bool c_direct = merge_group(c0, batch, extent, c_bs) && merge_group(c0, mg, extent, c_ms) &&
                        merge_group(c0, ng, extent, c_ns);
  if (!c_direct) {
    c_tmp = make_aligned<T>(static_cast<std::size_t>(nb * m * n));
    c_data = c_tmp.get();
    c_bs = m * n;
    c_ms = mg.size ? n : 0;
    c_ns = ng.size ? 1 : 0;
  }
  using kernel::MatrixRef;
  if (m * n * k <= einsum_small_gemm_limit) {
    small_gemm_batched<T>(nb, m, n, k, a_data, a_bs, a_ms, a_ks, b_data, b_bs, b_ks, b_ns, c_data,
                          c_bs, c_ms, c_ns);
  } else {
    kernel::gemm_batched<T>(nb, m, n, k, T(1), MatrixRef<const T>{a_data, a_ms, a_ks}, a_bs,
                            MatrixRef<const T>{b_data, b_ks, b_ns}, b_bs, T(0),
                            MatrixRef<T>{c_data, c_ms, c_ns}, c_bs);
  }
  if (!c_direct) {
    const BoundTerm<const T> t =
        contiguous_term<const T>(c_tmp.get(), concat(batch, mg, ng), extent);
    generic_contract<T, 1>(c0, {&t}, extent);
  }
}

}  // namespace attnkit::detail
