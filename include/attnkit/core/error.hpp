// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Error types of attnkit and the helpers that build their messages.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace attnkit {

/// The base of every exception attnkit throws. Messages start with "attnkit:".
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what_arg) : std::runtime_error(with_prefix(what_arg)) {}

 private:
  static std::string with_prefix(const std::string& s) {
    return s.rfind("attnkit:", 0) == 0 ? s : "attnkit: " + s;
  }
};

/// Thrown when the shapes of the arguments of a public entry point do not fit together.
/// The message names the argument and both shapes.
class shape_error : public error {
 public:
  explicit shape_error(const std::string& what_arg) : error(what_arg) {}
};

/// "[2, 3, 4]" for a list of extents.
inline std::string shape_string(std::span<const std::ptrdiff_t> extents) {
  std::string s = "[";
  for (std::size_t i = 0; i < extents.size(); ++i) {
    if (i != 0) s += ", ";
    s += std::to_string(extents[i]);
  }
  s += "]";
  return s;
}

template <std::size_t R>
inline std::string shape_string(const std::array<std::ptrdiff_t, R>& extents) {
  return shape_string(std::span<const std::ptrdiff_t>(extents.data(), R));
}

/// Throws shape_error: "attnkit: <where>: <argument> has shape <got>, expected <expected>".
/// \param where the entry point (e.g. "attention")
/// \param argument the argument whose shape is wrong (e.g. "k")
template <class GotShape, class ExpectedShape>
[[noreturn]] inline void throw_shape_mismatch(std::string_view where, std::string_view argument,
                                              const GotShape& got, const ExpectedShape& expected) {
  throw shape_error("attnkit: " + std::string(where) + ": " + std::string(argument) +
                    " has shape " + shape_string(got) + ", expected " + shape_string(expected));
}

}  // namespace attnkit

/// Debug-only internal check. Tests may define ATTNKIT_ASSERT_THROWS to turn it into a throw.
/// ATTNKIT_ASSERT_NOEXCEPT marks functions whose only possible throw is ATTNKIT_ASSERT.
#if defined(ATTNKIT_ASSERT_THROWS)
#define ATTNKIT_ASSERT_NOEXCEPT
#define ATTNKIT_ASSERT(cond)                                                           \
  do {                                                                                 \
    if (!(cond)) throw ::attnkit::error("attnkit: internal assertion failed: " #cond); \
  } while (0)
#elif !defined(NDEBUG)
#include <cassert>
#define ATTNKIT_ASSERT_NOEXCEPT noexcept
#define ATTNKIT_ASSERT(cond) assert(cond)
#else
#define ATTNKIT_ASSERT_NOEXCEPT noexcept
#define ATTNKIT_ASSERT(cond) ((void)0)
#endif
