// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The registry of named activations: the names the attnkit program (`attend --activation`,
// `generate --variant`, `inspect --variant`) and a model folder's `attnkit_activation` key use,
// each mapped onto its policy type. The names, parameter kinds and help lines live in the policy
// types themselves (static `name`, `param`, `help`); this file lists the types. Adding a named
// activation is its policy plus one entry in `builtin_activations` (docs/extending.md).
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "attnkit/core/error.hpp"
#include "attnkit/policy/activation.hpp"

namespace attnkit::policy {

/// A list of activation policy types.
template <class... A>
struct activation_list {};

/// Every named activation, in the order help texts list them.
using builtin_activations = activation_list<Softmax, Sigmoid, SigmoidBias, NormalizedSigmoid,
                                            HeadSoftmax, Linear, ReLU, Softcap>;

/// A named activation with its value: `name` alone, `name` with a bias b (from `--bias`), or
/// `softcap=C`.
struct ActivationSpec {
  std::string name = "softmax";
  std::optional<double> value;  ///< b of a bias-taking activation, C of softcap
};

namespace detail {

/// Calls f(std::type_identity<A>{}) for each registered activation A, in order.
template <class F, class... A>
void for_each_activation(activation_list<A...>, F&& f) {
  (f(std::type_identity<A>{}), ...);
}

/// How help texts and messages spell A: its name, with "=C" when it takes a required value.
template <class A>
std::string spelled() {
  return std::string(A::name) + (A::param == ActivationParam::cap ? "=C" : "");
}

/// The names of the activations that take a bias: "sigmoid-bias and normalized-sigmoid".
inline std::string bias_activation_names() {
  std::string out;
  for_each_activation(builtin_activations{}, [&](auto tag) {
    using A = typename decltype(tag)::type;
    if (A::param == ActivationParam::bias) out += (out.empty() ? "" : " and ") + spelled<A>();
  });
  return out;
}

}  // namespace detail

/// The registry's names as help texts and messages list them: "softmax, sigmoid, ...,
/// softcap=C".
inline std::string activation_names() {
  std::string out;
  detail::for_each_activation(builtin_activations{}, [&](auto tag) {
    out += (out.empty() ? "" : ", ") + detail::spelled<typename decltype(tag)::type>();
  });
  return out;
}

/// One line per named activation ("  name        help"), for help texts.
inline std::string activation_help(std::string_view indent = "  ") {
  std::string out;
  detail::for_each_activation(builtin_activations{}, [&](auto tag) {
    using A = typename decltype(tag)::type;
    const std::string n = detail::spelled<A>();
    out += std::string(indent) + n + std::string(n.size() < 20 ? 20 - n.size() : 1, ' ') +
           std::string(A::help) + "\n";
  });
  return out;
}

/// Parses an activation name ("softmax", "softcap=2.5", ...) and an optional bias b (`--bias`).
/// Throws attnkit::error naming what is wrong: an unknown name (listing the known ones), a
/// softcap without its C or with C <= 0 or not a number, a value after a name that takes none,
/// a bias for an activation that takes none.
inline ActivationSpec parse_activation(std::string_view text, std::optional<double> bias = {}) {
  const std::size_t eq = text.find('=');
  const std::string name(text.substr(0, eq));
  const bool has_value = eq != std::string_view::npos;
  const std::string value_text = has_value ? std::string(text.substr(eq + 1)) : std::string();
  ActivationSpec spec;
  spec.name = name;
  bool found = false;
  detail::for_each_activation(builtin_activations{}, [&](auto tag) {
    using A = typename decltype(tag)::type;
    if (found || A::name != name) return;
    found = true;
    if (A::param == ActivationParam::cap) {
      if (!has_value)
        throw error("attnkit: activation " + name + " needs its value, as in " + name + "=30");
      std::size_t used = 0;
      double c = 0;
      try {
        c = std::stod(value_text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value_text.size())
        throw error("attnkit: activation " + name + "=C: C must be a number, got '" + value_text +
                    "'");
      if (!(c > 0) || !std::isfinite(c))
        throw error("attnkit: activation " + name + "=C needs C > 0, got '" + value_text + "'");
      spec.value = c;
    } else if (has_value) {
      throw error("attnkit: activation " + name + " takes no value, got '" + std::string(text) +
                  "'");
    }
    if (bias) {
      if (A::param != ActivationParam::bias)
        throw error("attnkit: a bias applies only to the activations that take one (" +
                    detail::bias_activation_names() + "), not " + name);
      if (!std::isfinite(*bias)) throw error("attnkit: the bias b must be a finite number");
      spec.value = bias;
    }
  });
  if (!found)
    throw error("attnkit: unknown activation '" + std::string(text) + "' (" + activation_names() +
                ")");
  return spec;
}

/// The normalization of the registered activation `name` (policy::Normalization); throws
/// attnkit::error for an unknown name.
inline Normalization normalization_of(std::string_view name) {
  std::optional<Normalization> found;
  detail::for_each_activation(builtin_activations{}, [&](auto tag) {
    using A = typename decltype(tag)::type;
    if (!found && A::name == name) found = A::normalization;
  });
  if (!found)
    throw error("attnkit: unknown activation '" + std::string(name) + "' (" + activation_names() +
                ")");
  return *found;
}

/// The names of the registered activations normalized by exponentiation over the keys (those
/// that take sink logits): "softmax, normalized-sigmoid, softcap=C".
inline std::string exp_normalized_activation_names() {
  std::string out;
  detail::for_each_activation(builtin_activations{}, [&](auto tag) {
    using A = typename decltype(tag)::type;
    if (A::normalization == Normalization::over_keys_exp)
      out += (out.empty() ? "" : ", ") + detail::spelled<A>();
  });
  return out;
}

namespace detail {

/// The policy object of a spec whose name is A's.
template <class A>
A make_activation(const ActivationSpec& spec) {
  if constexpr (A::param == ActivationParam::none) {
    return A{};
  } else if constexpr (A::param == ActivationParam::bias) {
    return spec.value ? A(*spec.value) : A{};
  } else {
    if (!spec.value) throw error("attnkit: activation " + spec.name + " needs its value");
    return A(*spec.value);
  }
}

template <class Fn, class A, class... Rest>
decltype(auto) visit_activation_in(const ActivationSpec& spec, Fn& fn,
                                   activation_list<A, Rest...>) {
  if (A::name == spec.name) return fn(make_activation<A>(spec));
  if constexpr (sizeof...(Rest) > 0) {
    return visit_activation_in(spec, fn, activation_list<Rest...>{});
  } else {
    throw error("attnkit: unknown activation '" + spec.name + "' (" + activation_names() + ")");
  }
}

}  // namespace detail

/// Calls fn(activation) with the policy object of a parsed spec and returns its result: the one
/// place that maps a name onto a type. fn is instantiated for every registered activation and
/// returns the same type for all.
template <class Fn>
decltype(auto) visit_activation(const ActivationSpec& spec, Fn&& fn) {
  return detail::visit_activation_in(spec, fn, builtin_activations{});
}

}  // namespace attnkit::policy
