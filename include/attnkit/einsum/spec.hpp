// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Parsing of einsum specs ("ij,jk->ik", "ii", "...ij,...jk"): one constexpr parser serves the
// compile-time form (einsum<"...">) and the runtime form (einsum("...", ...), EinsumPlan).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "attnkit/core/error.hpp"

namespace attnkit {

/// Most operands one einsum spec may have (NumPy's limit).
inline constexpr std::size_t einsum_max_operands = 32;
/// Most subscripts of one operand, '...' counting as one.
inline constexpr std::size_t einsum_max_subscripts = 64;
/// How an ellipsis is stored in an EinsumTerm (one character for the three dots).
inline constexpr char einsum_ellipsis = '.';

/// What is wrong with a malformed einsum spec.
enum class EinsumSpecErrorKind : std::uint8_t {
  none,                           ///< the spec is well formed
  invalid_character,              ///< not a letter, ',', '->', '...' or a space
  incomplete_ellipsis,            ///< a '.' that does not start '...'
  second_ellipsis,                ///< two '...' in one operand
  arrow_without_greater,          ///< '-' not followed by '>'
  greater_without_arrow,          ///< '>' not preceded by '-'
  second_arrow,                   ///< a second '->'
  comma_in_output,                ///< ',' after '->'
  repeated_output_index,          ///< an index twice in the output
  output_index_not_in_inputs,     ///< an output index that no input has
  output_ellipsis_not_in_inputs,  ///< '...' in the output but in no input
  too_many_operands,              ///< more than einsum_max_operands
  too_many_subscripts,            ///< more than einsum_max_subscripts in one operand
};

/// The phrase that follows "'c' at position p" in a spec error message.
constexpr std::string_view describe(EinsumSpecErrorKind kind) {
  switch (kind) {
    case EinsumSpecErrorKind::none:
      return "is fine";
    case EinsumSpecErrorKind::invalid_character:
      return "is not an index letter (a-z, A-Z), ',', '->' or '...'";
    case EinsumSpecErrorKind::incomplete_ellipsis:
      return "starts an incomplete '...'";
    case EinsumSpecErrorKind::second_ellipsis:
      return "starts a second '...' in one operand";
    case EinsumSpecErrorKind::arrow_without_greater:
      return "is not followed by '>'";
    case EinsumSpecErrorKind::greater_without_arrow:
      return "is not preceded by '-'";
    case EinsumSpecErrorKind::second_arrow:
      return "starts a second '->'";
    case EinsumSpecErrorKind::comma_in_output:
      return "separates operands in the output";
    case EinsumSpecErrorKind::repeated_output_index:
      return "repeats an output index";
    case EinsumSpecErrorKind::output_index_not_in_inputs:
      return "is an output index that no input has";
    case EinsumSpecErrorKind::output_ellipsis_not_in_inputs:
      return "starts an output '...' but no input has '...'";
    case EinsumSpecErrorKind::too_many_operands:
      return "starts operand 33 (at most 32)";
    case EinsumSpecErrorKind::too_many_subscripts:
      return "is subscript 65 of one operand (at most 64)";
  }
  return "is wrong";
}

/// The subscripts of one operand (or of the output), in order; '...' is stored as one
/// einsum_ellipsis character.
struct EinsumTerm {
  std::array<char, einsum_max_subscripts> sub{};
  std::uint8_t size = 0;
  bool has_ellipsis = false;

  /// The subscripts as a string ('...' shown as one '.').
  constexpr std::string_view view() const { return std::string_view(sub.data(), size); }
  /// Number of index letters (the rank when there is no ellipsis).
  constexpr std::size_t letters() const { return size - (has_ellipsis ? 1u : 0u); }
};

/// A parsed einsum spec: input terms, the output term (made explicit when the spec leaves it
/// implicit) and, for a malformed spec, what is wrong and where.
struct EinsumSpec {
  std::array<EinsumTerm, einsum_max_operands> inputs{};
  std::size_t num_inputs = 0;
  EinsumTerm output{};
  /// Whether the spec has '->' (otherwise the output was inferred as NumPy does).
  bool explicit_output = false;
  EinsumSpecErrorKind error = EinsumSpecErrorKind::none;
  /// Position (0-based) and character of the error.
  std::size_t error_position = 0;
  char error_character = 0;

  constexpr bool ok() const { return error == EinsumSpecErrorKind::none; }
};

namespace detail {

constexpr bool is_index_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

constexpr EinsumSpec spec_failure(EinsumSpec s, EinsumSpecErrorKind kind, std::size_t pos, char c) {
  s.error = kind;
  s.error_position = pos;
  s.error_character = c;
  return s;
}

}  // namespace detail

/// Parses an einsum spec with NumPy's meaning; never throws, so it runs at compile time too.
/// Spaces are ignored. Without '->' the output is '...' (when an input has one) followed by the
/// letters that appear exactly once over all inputs, in ASCII order (upper case first), as
/// numpy.einsum does. Check `ok()`, or use parse_einsum_spec to get an exception.
constexpr EinsumSpec parse_einsum_spec_nothrow(std::string_view text) {
  using K = EinsumSpecErrorKind;
  EinsumSpec s{};
  s.num_inputs = 1;
  bool in_output = false;
  bool any_input_ellipsis = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    EinsumTerm& term = in_output ? s.output : s.inputs[s.num_inputs - 1];
    if (c == ' ' || c == '\t') continue;
    if (detail::is_index_letter(c) || c == '.') {
      const bool dots = c == '.';
      if (dots) {
        if (i + 2 >= text.size() || text[i + 1] != '.' || text[i + 2] != '.')
          return detail::spec_failure(s, K::incomplete_ellipsis, i, c);
        if (term.has_ellipsis) return detail::spec_failure(s, K::second_ellipsis, i, c);
        if (in_output && !any_input_ellipsis)
          return detail::spec_failure(s, K::output_ellipsis_not_in_inputs, i, c);
      } else if (in_output) {
        if (term.view().find(c) != std::string_view::npos)
          return detail::spec_failure(s, K::repeated_output_index, i, c);
        bool found = false;
        for (std::size_t k = 0; k < s.num_inputs; ++k)
          found = found || s.inputs[k].view().find(c) != std::string_view::npos;
        if (!found) return detail::spec_failure(s, K::output_index_not_in_inputs, i, c);
      }
      if (term.size == einsum_max_subscripts)
        return detail::spec_failure(s, K::too_many_subscripts, i, c);
      term.sub[term.size++] = dots ? einsum_ellipsis : c;
      if (dots) {
        term.has_ellipsis = true;
        any_input_ellipsis = any_input_ellipsis || !in_output;
        i += 2;
      }
    } else if (c == ',') {
      if (in_output) return detail::spec_failure(s, K::comma_in_output, i, c);
      if (s.num_inputs == einsum_max_operands)
        return detail::spec_failure(s, K::too_many_operands, i, c);
      ++s.num_inputs;
    } else if (c == '-') {
      if (i + 1 >= text.size() || text[i + 1] != '>')
        return detail::spec_failure(s, K::arrow_without_greater, i, c);
      if (in_output) return detail::spec_failure(s, K::second_arrow, i, c);
      in_output = true;
      s.explicit_output = true;
      ++i;
    } else if (c == '>') {
      return detail::spec_failure(s, K::greater_without_arrow, i, c);
    } else {
      return detail::spec_failure(s, K::invalid_character, i, c);
    }
  }
  if (!s.explicit_output) {
    // NumPy's implicit output: '...' first, then the letters seen once, in ASCII order.
    std::array<int, 128> count{};
    for (std::size_t k = 0; k < s.num_inputs; ++k)
      for (char c : s.inputs[k].view())
        if (c != einsum_ellipsis) ++count[static_cast<unsigned char>(c)];
    if (any_input_ellipsis) {
      s.output.sub[s.output.size++] = einsum_ellipsis;
      s.output.has_ellipsis = true;
    }
    for (int c = 0; c < 128; ++c)
      if (count[static_cast<std::size_t>(c)] == 1)
        s.output.sub[s.output.size++] = static_cast<char>(c);
  }
  return s;
}

/// Thrown for a malformed einsum spec; the message names the spec, the character and its
/// position.
class einsum_spec_error : public error {
 public:
  explicit einsum_spec_error(const std::string& what_arg) : error(what_arg) {}
};

/// Message of a failed parse: "attnkit: einsum spec 'ij,jk-ik': '-' at position 5 is not
/// followed by '>'".
inline std::string einsum_spec_message(std::string_view text, const EinsumSpec& s) {
  std::string c = s.error_character == 0 ? std::string("end") : std::string(1, s.error_character);
  return "attnkit: einsum spec '" + std::string(text) + "': '" + c + "' at position " +
         std::to_string(s.error_position) + " " + std::string(describe(s.error));
}

/// Parses an einsum spec at run time; throws einsum_spec_error when it is malformed.
inline EinsumSpec parse_einsum_spec(std::string_view text) {
  EinsumSpec s = parse_einsum_spec_nothrow(text);
  if (!s.ok()) throw einsum_spec_error(einsum_spec_message(text, s));
  return s;
}

}  // namespace attnkit
