// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// einsum: the compile-time form einsum<"bhqd,bhkd->bhqk">(out, a, b) and the runtime form
// einsum("...", out, {a, b}), both with numpy.einsum's meaning and the same execution code.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/einsum/fixed_string.hpp"
#include "attnkit/einsum/plan.hpp"
#include "attnkit/einsum/spec.hpp"
#include "attnkit/einsum/strided_view.hpp"

namespace attnkit {

/// The parsed spec of the compile-time form (parsed once per spec, at compile time).
/// \tparam Spec the spec as a string literal
template <fixed_string Spec>
inline constexpr EinsumSpec einsum_spec_v = parse_einsum_spec_nothrow(Spec.view());

/// Instantiated by einsum<Spec> to report a malformed spec: the template arguments name the
/// spec, what is wrong, the position and the character.
template <fixed_string Spec, EinsumSpecErrorKind Kind, std::size_t Position, char Character>
struct einsum_spec_is_malformed {
  static_assert(Kind == EinsumSpecErrorKind::none,
                "attnkit: einsum spec is malformed: the spec, the error kind, its position and "
                "character are the template arguments of attnkit::einsum_spec_is_malformed");
  static constexpr bool ok = true;
};

/// Instantiated by einsum<Spec> when the number of operands differs from the spec's.
template <std::size_t Given, std::size_t InSpec>
struct einsum_operand_count_is_wrong {
  static_assert(Given == InSpec,
                "attnkit: einsum got another number of operands than the spec has (template "
                "arguments: <given, in the spec>)");
  static constexpr bool ok = true;
};

/// Instantiated by einsum<Spec> when an operand's rank does not fit its subscripts.
template <std::size_t Operand, std::size_t Rank, std::size_t Letters, bool HasEllipsis>
struct einsum_operand_rank_is_wrong {
  static_assert(HasEllipsis ? Rank >= Letters : Rank == Letters,
                "attnkit: einsum operand rank does not match its subscripts in the spec "
                "(template arguments: <operand, rank, index letters, has '...'>)");
  static constexpr bool ok = true;
};

/// Instantiated by einsum<Spec> when the output's rank does not fit the output subscripts.
template <std::size_t Rank, std::size_t Letters, bool HasEllipsis>
struct einsum_output_rank_is_wrong {
  static_assert(HasEllipsis ? Rank >= Letters : Rank == Letters,
                "attnkit: einsum output rank does not match the output subscripts of the spec "
                "(template arguments: <rank, index letters, has '...'>)");
  static constexpr bool ok = true;
};

namespace detail {

/// What an einsum argument is: its element type and its rank when the type carries it.
template <class X>
struct einsum_arg {
  static constexpr bool valid = std::is_arithmetic_v<X>;
  using value_type = X;
  static constexpr long rank = 0;
};
template <class U, std::size_t R>
struct einsum_arg<Tensor<U, R>> {
  static constexpr bool valid = true;
  using value_type = U;
  static constexpr long rank = static_cast<long>(R);
};
template <class U, std::size_t R>
struct einsum_arg<TensorView<U, R>> {
  static constexpr bool valid = true;
  using value_type = std::remove_const_t<U>;
  static constexpr long rank = static_cast<long>(R);
};
template <class U>
struct einsum_arg<StridedView<U>> {
  static constexpr bool valid = true;
  using value_type = std::remove_const_t<U>;
  static constexpr long rank = -1;  // known at run time only
};

template <class X>
using einsum_arg_t = einsum_arg<std::remove_cvref_t<X>>;
template <class X>
using einsum_value_t = typename einsum_arg_t<X>::value_type;

/// An einsum argument as a StridedView (a scalar as a rank-0 view).
template <class T, class X>
StridedView<T> as_strided(X& x) {
  if constexpr (std::is_arithmetic_v<std::remove_cv_t<X>>)
    return StridedView<T>::scalar(&x);
  else
    return StridedView<T>(x);
}

struct einsum_rank_unknown {
  static constexpr bool ok = true;
};

/// The rank check of operand I (none when its type does not carry the rank).
template <const EinsumSpec& Spec, std::size_t I, class Arg>
using einsum_rank_check = std::conditional_t<
    (Arg::rank < 0), einsum_rank_unknown,
    einsum_operand_rank_is_wrong<I, static_cast<std::size_t>(Arg::rank < 0 ? 0 : Arg::rank),
                                 Spec.inputs[I].letters(), Spec.inputs[I].has_ellipsis>>;

template <const EinsumSpec& Spec, class... Ins, std::size_t... I>
constexpr bool einsum_ranks_ok(std::index_sequence<I...>) {
  return (einsum_rank_check<Spec, I, einsum_arg_t<Ins>>::ok && ...);
}

}  // namespace detail

/// out = einsum(Spec, ins...) with numpy.einsum's meaning (see docs/CLI.md `attnkit einsum`), the
/// spec checked at compile time: a malformed spec, a wrong operand count, or a rank that does
/// not fit the subscripts (for operands whose type carries the rank) is a compile error whose
/// message starts with "attnkit:". Shapes are checked at run time (attnkit::shape_error).
///
/// Arguments: Tensor, TensorView, StridedView, or a scalar (T& as the output, T as an input,
/// e.g. for "i,i->"). Every operand has the element type of `out` (float or double).
/// \tparam Spec the spec, e.g. "bhqd,bhkd->bhqk"
/// \tparam Out type of the output argument
/// \tparam Ins types of the input arguments
template <fixed_string Spec, class Out, class... Ins>
void einsum(Out&& out, const Ins&... ins) {
  constexpr const EinsumSpec& spec = einsum_spec_v<Spec>;
  static_assert(
      einsum_spec_is_malformed<Spec, spec.error, spec.error_position, spec.error_character>::ok);
  if constexpr (spec.ok()) {
    static_assert(einsum_operand_count_is_wrong<sizeof...(Ins), spec.num_inputs>::ok);
    if constexpr (sizeof...(Ins) == spec.num_inputs) {
      static_assert(detail::einsum_arg_t<Out>::valid && (detail::einsum_arg_t<Ins>::valid && ...),
                    "attnkit: einsum operands must be Tensor, TensorView, StridedView or "
                    "arithmetic scalars");
      using T = detail::einsum_value_t<Out>;
      static_assert((std::is_same_v<T, detail::einsum_value_t<Ins>> && ...),
                    "attnkit: every einsum operand must have the element type of out");
      static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                    "attnkit: einsum computes on float or double");
      static_assert(
          detail::einsum_ranks_ok<einsum_spec_v<Spec>, Ins...>(std::index_sequence_for<Ins...>{}));
      constexpr long out_rank = detail::einsum_arg_t<Out>::rank;
      if constexpr (out_rank >= 0)
        static_assert(
            einsum_output_rank_is_wrong<static_cast<std::size_t>(out_rank), spec.output.letters(),
                                        spec.output.has_ellipsis>::ok);
      const std::array<StridedView<const T>, sizeof...(Ins)> ops{
          detail::as_strided<const T>(ins)...};
      std::array<std::span<const index_t>, sizeof...(Ins)> shapes{};
      for (std::size_t i = 0; i < ops.size(); ++i) shapes[i] = ops[i].shape();
      const auto plan = EinsumPlan<T>::from_spec(spec, Spec.view(), shapes);
      plan.run(detail::as_strided<T>(out), ops);
    }
  }
}

/// out = einsum(spec, ops...) for a spec known only at run time: a malformed spec throws
/// attnkit::einsum_spec_error (naming the character and its position), a wrong operand count or
/// mismatched shapes throw attnkit::shape_error. Same results, bit for bit, as einsum<Spec>.
/// \tparam Out Tensor, TensorView, StridedView or scalar (float or double elements)
template <class Out>
void einsum(std::string_view spec, Out&& out,
            std::span<const StridedView<const detail::einsum_value_t<Out>>> ops) {
  using T = detail::einsum_value_t<Out>;
  std::array<std::span<const index_t>, einsum_max_operands> shapes{};
  if (ops.size() > einsum_max_operands)
    throw shape_error("attnkit: einsum '" + std::string(spec) + "': more than " +
                      std::to_string(einsum_max_operands) + " operands");
  for (std::size_t i = 0; i < ops.size(); ++i) shapes[i] = ops[i].shape();
  const auto plan = EinsumPlan<T>::make(
      spec, std::span<const std::span<const index_t>>(shapes.data(), ops.size()));
  plan.run(detail::as_strided<T>(out), ops);
}
template <class Out>
void einsum(std::string_view spec, Out&& out,
            std::initializer_list<StridedView<const detail::einsum_value_t<Out>>> ops) {
  einsum(spec, std::forward<Out>(out),
         std::span<const StridedView<const detail::einsum_value_t<Out>>>(ops.begin(), ops.size()));
}

}  // namespace attnkit
