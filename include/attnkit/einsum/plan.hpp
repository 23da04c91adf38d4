// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// EinsumPlan<T>: an einsum spec bound to operand shapes, planned once (index extents, summed
// indices reduced first, pairwise order by a greedy cost model) and run many times.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "attnkit/core/aligned.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/einsum/detail/execute.hpp"
#include "attnkit/einsum/spec.hpp"
#include "attnkit/einsum/strided_view.hpp"

namespace attnkit {

/// A contraction planned once for given input shapes and run many times.
///
/// Planning resolves '...' and the extent of every index (a size-1 dimension broadcasts against
/// any extent), checks the shapes (attnkit::shape_error names the index, the operands and their
/// extents), sums away each index that only one input has before any contraction, and orders
/// the pairwise contractions of three or more operands greedily (as opt_einsum's greedy path:
/// the pair whose result grows memory least, i.e. size(result) - size(a) - size(b), then the
/// fewest FLOPs; pairs sharing an index first). run() binds the operands' strides and maps each
/// contraction onto kernel::gemm_batched (see detail::contract_pair). The compile-time form
/// einsum<"..."> runs the same plan code, so both forms give bit-identical results.
/// \tparam T float or double
template <class T>
class EinsumPlan {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of EinsumPlan must be float or double");

 public:
  /// Plans `spec` for inputs of the given shapes (one per operand of the spec).
  static EinsumPlan make(std::string_view spec, std::span<const std::span<const index_t>> shapes) {
    return from_spec(parse_einsum_spec(spec), spec, shapes);
  }
  static EinsumPlan make(std::string_view spec,
                         std::initializer_list<std::span<const index_t>> shapes) {
    return make(spec, std::span<const std::span<const index_t>>(shapes.begin(), shapes.size()));
  }
  /// `EinsumPlan<float>::make("ij,jk->ik", a.shape(), b.shape())`.
  template <class... Shapes>
  requires(std::is_convertible_v<const Shapes&, std::span<const index_t>>&&...) static EinsumPlan
      make(std::string_view spec, const Shapes&... shapes) {
    const std::array<std::span<const index_t>, sizeof...(Shapes)> list{
        std::span<const index_t>(shapes)...};
    return make(spec, std::span<const std::span<const index_t>>(list.data(), list.size()));
  }

  /// Plans an already parsed (well-formed) spec; `text` is only used in messages.
  static EinsumPlan from_spec(const EinsumSpec& spec, std::string_view text,
                              std::span<const std::span<const index_t>> shapes) {
    if (!spec.ok()) throw einsum_spec_error(einsum_spec_message(text, spec));
    EinsumPlan p;
    p.set_text(text);
    p.plan(spec, shapes);
    return p;
  }

  /// Number of input operands.
  std::size_t num_inputs() const noexcept { return n_in_; }
  /// Shape the output must have.
  std::span<const index_t> output_shape() const noexcept { return {out_shape_.data(), out_rank_}; }
  /// Useful FLOPs of one run (2 per multiply-add of every contraction, 1 per summed element).
  double flops() const noexcept { return flops_; }
  /// Number of pairwise contractions (operands - 1, or 0 for one operand).
  std::size_t num_contractions() const noexcept {
    std::size_t n = 0;
    for (std::size_t s = 0; s < n_steps_; ++s) n += steps_[s].kind == Step::contract;
    return n;
  }

  /// out = the contraction of `ops`. Shapes must be those the plan was made for (shape_error
  /// otherwise); strides may be anything (views, transposes, broadcasts with stride 0).
  void run(StridedView<T> out, std::span<const StridedView<const T>> ops) const {
    check(out, ops);
    const std::size_t n_slots = n_slots_;
    std::array<detail::BoundTerm<const T>, 4> small;
    std::unique_ptr<detail::BoundTerm<const T>[]> big;
    detail::BoundTerm<const T>* slot = small.data();
    if (n_slots > small.size()) {
      big = std::make_unique<detail::BoundTerm<const T>[]>(n_slots);
      slot = big.get();
    }
    for (std::size_t i = 0; i < n_in_; ++i) {
      auto& b = slot[i];
      b.data = ops[i].data();
      b.labels = slot_labels_[i];
      for (std::size_t j = 0; j < b.labels.size; ++j) b.strides[j] = 0;
      for (std::size_t d = 0; d < ops[i].rank(); ++d) {
        const int pos = b.labels.find(dim_label_[i][d]);
        if (pos >= 0 && ops[i].extent(d) != 1)
          b.strides[static_cast<std::size_t>(pos)] += ops[i].stride(d);
      }
    }
    detail::BoundTerm<T> result;
    result.data = out.data();
    for (std::size_t d = 0; d < out_rank_; ++d) {
      result.labels.push(out_label_[d]);
      result.strides[d] = out.extent(d) == 1 ? 0 : out.stride(d);
    }
    std::vector<aligned_ptr<T>> temps;
    for (std::size_t s = 0; s < n_steps_; ++s) {
      const Step& st = steps_[s];
      detail::BoundTerm<T> dest = result;
      if (st.result != output_slot) {
        const auto& labels = slot_labels_[st.result];
        temps.push_back(
            make_aligned<T>(static_cast<std::size_t>(detail::term_size(labels, extent_.data()))));
        dest = detail::contiguous_term(temps.back().get(), labels, extent_.data());
        slot[st.result] =
            detail::contiguous_term<const T>(temps.back().get(), labels, extent_.data());
      }
      if (st.kind == Step::reduce)
        detail::generic_contract<T, 1>(dest, {&slot[st.a]}, extent_.data());
      else
        detail::contract_pair<T>(slot[st.a], slot[st.b], dest, extent_.data());
    }
  }
  void run(StridedView<T> out, std::initializer_list<StridedView<const T>> ops) const {
    run(out, std::span<const StridedView<const T>>(ops.begin(), ops.size()));
  }

 private:
  struct Step {
    enum Kind : std::uint8_t { reduce, contract };
    Kind kind = reduce;
    std::uint8_t a = 0, b = 0, result = 0;
  };
  static constexpr std::uint8_t output_slot = 255;
  static constexpr std::size_t max_slots = 2 * einsum_max_operands;
  static constexpr std::size_t text_capacity = 120;

  EinsumPlan() = default;

  void set_text(std::string_view text) {
    text_size_ = std::min(text.size(), text_capacity);
    std::copy_n(text.data(), text_size_, text_.data());
  }
  std::string where() const {
    std::string t(text_.data(), text_size_);
    return "attnkit: einsum '" + t + "': ";
  }

  [[noreturn]] void extent_mismatch(std::size_t label, std::size_t op1, index_t e1, std::size_t op2,
                                    index_t e2) const {
    throw shape_error(where() + "index " + detail::einsum_label_name(label) + " has extent " +
                      std::to_string(e1) + " in operand " + std::to_string(op1) + " (shape " +
                      shape_string(in_shape(op1)) + ") but " + std::to_string(e2) + " in operand " +
                      std::to_string(op2) + " (shape " + shape_string(in_shape(op2)) + ")");
  }
  std::span<const index_t> in_shape(std::size_t i) const {
    return {in_shape_[i].data(), in_rank_[i]};
  }

  void plan(const EinsumSpec& spec, std::span<const std::span<const index_t>> shapes) {
    if (shapes.size() != spec.num_inputs)
      throw shape_error(where() + "the spec has " + std::to_string(spec.num_inputs) +
                        " operand(s), got " + std::to_string(shapes.size()));
    n_in_ = spec.num_inputs;
    // Ranks and the number of broadcast dimensions.
    std::size_t n_bcast = 0;
    for (std::size_t i = 0; i < n_in_; ++i) {
      const EinsumTerm& term = spec.inputs[i];
      const std::size_t rank = shapes[i].size();
      if (rank > einsum_max_rank)
        throw shape_error(where() + "operand " + std::to_string(i) + " has rank " +
                          std::to_string(rank) + " (at most " + std::to_string(einsum_max_rank) +
                          ")");
      in_rank_[i] = rank;
      std::copy(shapes[i].begin(), shapes[i].end(), in_shape_[i].begin());
      const std::size_t letters = term.letters();
      if (term.has_ellipsis ? rank < letters : rank != letters)
        throw shape_error(where() + "operand " + std::to_string(i) + " has shape " +
                          shape_string(shapes[i]) + " but its subscripts '" +
                          std::string(term.view()) + "' need rank " +
                          (term.has_ellipsis ? "at least " : "") + std::to_string(letters));
      if (term.has_ellipsis) n_bcast = std::max(n_bcast, rank - letters);
    }
    // The index of every dimension, and every index's extent (size 1 broadcasts).
    std::array<std::size_t, detail::einsum_label_capacity> owner{};
    extent_.fill(-1);
    for (std::size_t i = 0; i < n_in_; ++i) {
      const EinsumTerm& term = spec.inputs[i];
      const std::size_t own_bcast = term.has_ellipsis ? in_rank_[i] - term.letters() : 0;
      std::size_t d = 0;
      for (char c : term.view()) {
        if (c == einsum_ellipsis) {
          for (std::size_t j = 0; j < own_bcast; ++j)
            dim_label_[i][d++] =
                static_cast<std::uint8_t>(detail::einsum_letter_ids + n_bcast - own_bcast + j);
        } else {
          dim_label_[i][d++] = static_cast<std::uint8_t>(detail::einsum_letter_id(c));
        }
      }
      for (d = 0; d < in_rank_[i]; ++d) {
        const std::size_t l = dim_label_[i][d];
        const index_t x = in_shape_[i][d];
        if (x < 0)
          throw shape_error(where() + "operand " + std::to_string(i) + " has a negative extent " +
                            shape_string(in_shape(i)));
        if (extent_[l] < 0 || (extent_[l] == 1 && x != 1)) {
          extent_[l] = x;
          owner[l] = i;
        } else if (extent_[l] != x && x != 1) {
          extent_mismatch(l, owner[l], extent_[l], i, x);
        }
      }
    }
    // The output indices.
    std::array<bool, detail::einsum_label_capacity> in_out{};
    out_rank_ = 0;
    auto add_out = [&](std::size_t l) {
      if (out_rank_ == einsum_max_rank)
        throw shape_error(where() + "the output would have rank above " +
                          std::to_string(einsum_max_rank));
      out_label_[out_rank_] = static_cast<std::uint8_t>(l);
      out_shape_[out_rank_++] = extent_[l];
      in_out[l] = true;
    };
    for (char c : spec.output.view()) {
      if (c == einsum_ellipsis) {
        for (std::size_t j = 0; j < n_bcast; ++j) add_out(detail::einsum_letter_ids + j);
      } else {
        add_out(static_cast<std::size_t>(detail::einsum_letter_id(c)));
      }
    }
    // Input slots: distinct indices in order of appearance; an extent-1 index that is not an
    // output index is dropped (it selects element 0 and sums nothing).
    std::array<int, detail::einsum_label_capacity> count{};
    for (std::size_t i = 0; i < n_in_; ++i) {
      detail::LabelList& labels = slot_labels_[i];
      for (std::size_t d = 0; d < in_rank_[i]; ++d) {
        const std::size_t l = dim_label_[i][d];
        if ((extent_[l] == 1 && !in_out[l]) || labels.has(l)) continue;
        labels.push(l);
        ++count[l];
      }
    }
    n_slots_ = n_in_;
    n_steps_ = 0;
    flops_ = 0;
    if (n_in_ == 1) {
      add_step(Step::reduce, 0, 0, output_slot);
      return;
    }
    std::array<std::uint8_t, einsum_max_operands> live{};
    std::size_t n_live = n_in_;
    // Indices only one input has are summed away first.
    for (std::size_t i = 0; i < n_in_; ++i) {
      live[i] = static_cast<std::uint8_t>(i);
      const detail::LabelList& labels = slot_labels_[i];
      detail::LabelList kept;
      for (std::size_t j = 0; j < labels.size; ++j)
        if (count[labels[j]] > 1 || in_out[labels[j]]) kept.push(labels[j]);
      if (kept.size == labels.size) continue;
      slot_labels_[n_slots_] = kept;
      add_step(Step::reduce, i, 0, n_slots_);
      live[i] = static_cast<std::uint8_t>(n_slots_++);
    }
    // Pairwise contractions, greedy.
    while (n_live > 2) {
      std::size_t best_x = 0, best_y = 1;
      double best_cost = 0, best_flops = 0;
      bool best_shares = false, have = false;
      for (std::size_t x = 0; x < n_live; ++x)
        for (std::size_t y = x + 1; y < n_live; ++y) {
          const auto& lx = slot_labels_[live[x]];
          const auto& ly = slot_labels_[live[y]];
          bool shares = false;
          for (std::size_t j = 0; j < ly.size; ++j) shares = shares || lx.has(ly[j]);
          const detail::LabelList r = pair_result(live, n_live, x, y, in_out);
          const double cost = size_of(r) - size_of(lx) - size_of(ly);
          double fl = size_of(lx);
          for (std::size_t j = 0; j < ly.size; ++j)
            if (!lx.has(ly[j])) fl *= static_cast<double>(extent_[ly[j]]);
          const bool better = !have || (shares && !best_shares) ||
                              (shares == best_shares &&
                               (cost < best_cost || (cost == best_cost && fl < best_flops)));
          if (better) {
            have = true;
            best_x = x;
            best_y = y;
            best_cost = cost;
            best_flops = fl;
            best_shares = shares;
          }
        }
      slot_labels_[n_slots_] = pair_result(live, n_live, best_x, best_y, in_out);
      add_step(Step::contract, live[best_x], live[best_y], n_slots_);
      live[best_x] = static_cast<std::uint8_t>(n_slots_++);
      for (std::size_t z = best_y; z + 1 < n_live; ++z) live[z] = live[z + 1];
      --n_live;
    }
    add_step(Step::contract, live[0], live[1], output_slot);
  }

  double size_of(const detail::LabelList& l) const {
    double s = 1;
    for (std::size_t j = 0; j < l.size; ++j) s *= static_cast<double>(extent_[l[j]]);
    return s;
  }

  // Indices of the contraction of live[x] and live[y] still needed by the output or another
  // live operand, laid out as [batch (x order), free of x, free of y].
  detail::LabelList pair_result(
      const std::array<std::uint8_t, einsum_max_operands>& live, std::size_t n_live, std::size_t x,
      std::size_t y, const std::array<bool, detail::einsum_label_capacity>& in_out) const {
    const auto& lx = slot_labels_[live[x]];
    const auto& ly = slot_labels_[live[y]];
    auto needed = [&](std::size_t l) {
      if (in_out[l]) return true;
      for (std::size_t z = 0; z < n_live; ++z)
        if (z != x && z != y && slot_labels_[live[z]].has(l)) return true;
      return false;
    };
    detail::LabelList r;
    for (std::size_t j = 0; j < lx.size; ++j)
      if (ly.has(lx[j]) && needed(lx[j])) r.push(lx[j]);
    for (std::size_t j = 0; j < lx.size; ++j)
      if (!ly.has(lx[j]) && needed(lx[j])) r.push(lx[j]);
    for (std::size_t j = 0; j < ly.size; ++j)
      if (!lx.has(ly[j]) && needed(ly[j])) r.push(ly[j]);
    return r;
  }

  void add_step(typename Step::Kind kind, std::size_t a, std::size_t b, std::size_t result) {
    Step& s = steps_[n_steps_++];
    s.kind = kind;
    s.a = static_cast<std::uint8_t>(a);
    s.b = static_cast<std::uint8_t>(b);
    s.result = static_cast<std::uint8_t>(result);
    const auto& la = slot_labels_[a];
    if (kind == Step::reduce) {
      flops_ += size_of(la);
    } else {
      const auto& lb = slot_labels_[b];
      double f = 2 * size_of(la);
      for (std::size_t j = 0; j < lb.size; ++j)
        if (!la.has(lb[j])) f *= static_cast<double>(extent_[lb[j]]);
      flops_ += f;
    }
  }

  void check(const StridedView<T>& out, std::span<const StridedView<const T>> ops) const {
    if (ops.size() != n_in_)
      throw shape_error(where() + "the spec has " + std::to_string(n_in_) + " operand(s), got " +
                        std::to_string(ops.size()));
    for (std::size_t i = 0; i < n_in_; ++i)
      if (!std::equal(ops[i].shape().begin(), ops[i].shape().end(), in_shape(i).begin(),
                      in_shape(i).end()))
        throw shape_error(where() + "operand " + std::to_string(i) + " has shape " +
                          shape_string(ops[i].shape()) + ", the plan was made for " +
                          shape_string(in_shape(i)));
    if (!std::equal(out.shape().begin(), out.shape().end(), output_shape().begin(),
                    output_shape().end()))
      throw shape_error(where() + "output has shape " + shape_string(out.shape()) + ", expected " +
                        shape_string(output_shape()));
  }

  std::array<char, text_capacity> text_{};
  std::size_t text_size_ = 0;
  std::size_t n_in_ = 0;
  std::array<std::size_t, einsum_max_operands> in_rank_{};
  std::array<std::array<index_t, einsum_max_rank>, einsum_max_operands> in_shape_{};
  std::array<std::array<std::uint8_t, einsum_max_rank>, einsum_max_operands> dim_label_{};
  std::size_t out_rank_ = 0;
  std::array<index_t, einsum_max_rank> out_shape_{};
  std::array<std::uint8_t, einsum_max_rank> out_label_{};
  std::array<index_t, detail::einsum_label_capacity> extent_{};
  std::array<detail::LabelList, max_slots> slot_labels_{};
  std::array<Step, max_slots> steps_{};
  std::size_t n_slots_ = 0;
  std::size_t n_steps_ = 0;
  double flops_ = 0;
};

}  // namespace attnkit
