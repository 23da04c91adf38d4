// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// fixed_string<N>: a string literal usable as a template argument (einsum<"ij,jk->ik">).
#pragma once

#include <cstddef>
#include <string_view>

namespace attnkit {

/// A string literal as a structural value, so it can be a non-type template argument.
/// `N` counts the terminating NUL, as in `const char (&)[N]`.
/// \tparam N size of the character array, NUL included
template <std::size_t N>
struct fixed_string {
  /// The characters, NUL-terminated (public: structural types need public members).
  char chars[N]{};

  /// Copies a string literal.
  constexpr fixed_string(const char (&s)[N]) {  // NOLINT: implicit by design
    for (std::size_t i = 0; i < N; ++i) chars[i] = s[i];
  }

  /// The string without its NUL.
  constexpr std::string_view view() const { return std::string_view(chars, N - 1); }
  /// Number of characters without the NUL.
  static constexpr std::size_t size() { return N - 1; }
};

template <std::size_t N>
fixed_string(const char (&)[N]) -> fixed_string<N>;

}  // namespace attnkit
