// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Double-precision reference einsum: parses the spec on its own (independent of the library's
// parser) and runs one nested loop over every value of every index.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnkit::ref {

/// A row-major array of doubles.
struct RefArray {
  std::vector<std::ptrdiff_t> shape;
  std::vector<double> data;
};

/// The reference result and, per element, the sum of |products| (for error bounds).
struct RefResult {
  RefArray value;
  std::vector<double> abs_sum;
};

/// numpy.einsum(spec, ops...) in double: out[o] = Σ over all index values of Π ops. A size-1
/// dimension broadcasts (reads element 0) against any extent of its index. Throws
/// std::invalid_argument for what it cannot make sense of.
inline RefResult einsum_ref(std::string spec, const std::vector<RefArray>& ops) {
  spec.erase(std::remove(spec.begin(), spec.end(), ' '), spec.end());
  std::string out_term;
  bool explicit_out = false;
  if (auto arrow = spec.find("->"); arrow != std::string::npos) {
    out_term = spec.substr(arrow + 2);
    spec = spec.substr(0, arrow);
    explicit_out = true;
  }
  std::vector<std::string> terms(1);
  for (char c : spec) {
    if (c == ',')
      terms.emplace_back();
    else
      terms.back() += c;
  }
  if (terms.size() != ops.size()) throw std::invalid_argument("einsum_ref: operand count");
  // Broadcast dimensions get the names 1, 2, ... (right-aligned across operands).
  std::size_t n_bcast = 0;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    auto e = terms[i].find("...");
    if (e != std::string::npos)
      n_bcast = std::max(n_bcast, ops[i].shape.size() - (terms[i].size() - 3));
  }
  auto expand = [&](const std::string& t, std::size_t rank) {
    auto e = t.find("...");
    if (e == std::string::npos) return t;
    const std::size_t own = rank - (t.size() - 3);
    std::string mid;
    for (std::size_t j = 0; j < own; ++j) mid += static_cast<char>(1 + n_bcast - own + j);
    return t.substr(0, e) + mid + t.substr(e + 3);
  };
  bool any_bcast = false;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    any_bcast = any_bcast || terms[i].find("...") != std::string::npos;
    terms[i] = expand(terms[i], ops[i].shape.size());
    if (terms[i].size() != ops[i].shape.size()) throw std::invalid_argument("einsum_ref: rank");
  }
  if (explicit_out) {
    out_term =
        expand(out_term, out_term.find("...") == std::string::npos ? out_term.size()
                                                                   : out_term.size() - 3 + n_bcast);
  } else {
    std::map<char, int> count;
    for (auto& t : terms)
      for (char c : t)
        if (c > 16) ++count[c];
    for (std::size_t j = 0; any_bcast && j < n_bcast; ++j) out_term += static_cast<char>(1 + j);
    for (auto& [c, n] : count)
      if (n == 1) out_term += c;
  }
  // Every index and its extent.
  std::map<char, std::ptrdiff_t> extent;
  for (std::size_t i = 0; i < terms.size(); ++i)
    for (std::size_t d = 0; d < terms[i].size(); ++d) {
      auto& e = extent[terms[i][d]];
      const auto x = ops[i].shape[d];
      if (e == 0 || e == 1) e = std::max<std::ptrdiff_t>(e == 0 ? x : e, x);
      if (x != 1 && x != e) throw std::invalid_argument("einsum_ref: extents");
    }
  std::vector<char> labels;
  for (auto& [c, e] : extent) labels.push_back(c);
  RefResult r;
  for (char c : out_term) r.value.shape.push_back(extent.at(c));
  std::size_t out_size = 1;
  for (auto e : r.value.shape) out_size *= static_cast<std::size_t>(e);
  r.value.data.assign(out_size, 0.0);
  r.abs_sum.assign(out_size, 0.0);
  for (auto& [c, e] : extent)
    if (e == 0) return r;
  // The nested loop over all index values, as an odometer.
  std::vector<std::ptrdiff_t> value(128, 0), ext(128, 0);
  for (char c : labels) ext[static_cast<unsigned char>(c)] = extent[c];
  auto flat = [&](const std::string& t, const std::vector<std::ptrdiff_t>& shape) {
    std::size_t off = 0;
    for (std::size_t d = 0; d < t.size(); ++d)
      off = off * static_cast<std::size_t>(shape[d]) +
            static_cast<std::size_t>(shape[d] == 1 ? 0 : value[static_cast<unsigned char>(t[d])]);
    return off;
  };
  for (;;) {
    double prod = 1.0;
    for (std::size_t i = 0; i < terms.size(); ++i)
      prod *= ops[i].data[flat(terms[i], ops[i].shape)];
    const std::size_t o = flat(out_term, r.value.shape);
    r.value.data[o] += prod;
    r.abs_sum[o] += std::fabs(prod);
    std::size_t k = labels.size();
    while (k > 0) {
      --k;
      const auto c = static_cast<unsigned char>(labels[k]);
      if (++value[c] < ext[c]) break;
      value[c] = 0;
      if (k == 0) return r;
    }
    if (labels.empty()) return r;
  }
}

}  // namespace attnkit::ref
