// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Helpers of the golden-model tests: the folders written by tests/golden/make_golden.py, and a
// check that a Decoder reproduces PyTorch's logits and greedy continuation.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/io/json.hpp"
#include "attnkit/io/npy.hpp"
#include "attnkit/model/variants.hpp"

namespace golden {

using attnkit::index_t;

inline std::string folder(const std::string& variant) {
  return std::string(ATTNKIT_GOLDEN_DIR) + "/" + variant;
}

inline attnkit::json::Value read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return attnkit::json::parse(text, path);
}

inline std::vector<std::int64_t> ids_of(const attnkit::json::Value& a) {
  std::vector<std::int64_t> v;
  for (std::size_t i = 0; i < a.size(); ++i) v.push_back(a.at(i).as_int());
  return v;
}

inline std::size_t argmax(const float* p, index_t n) {
  std::size_t best = 0;
  for (index_t i = 1; i < n; ++i)
    if (p[i] > p[best]) best = static_cast<std::size_t>(i);
  return best;
}

/// Loads the folder as Model, compares the prefill logits with logits.npy (max abs error
/// <= 1e-4), the greedy continuations of greedy.json: recomputing the prefix ("greedy") and
/// through the KV cache ("greedy_cached"; differs for sigmoid-bias, whose b = -ln n follows each
/// call's key count), and the logits of every cached step with cached_logits.npy (<= 1e-4).
template <class Model>
void check_variant(const std::string& variant) {
  const std::string dir = folder(variant);
  const Model m = Model::load(dir);
  const auto ids = attnkit::io::read_npy_as<std::int64_t, 1>(dir + "/input_ids.npy");
  const auto want = attnkit::io::read_npy_as<double, 2>(dir + "/logits.npy");
  const std::vector<std::int64_t> prompt(ids.begin(), ids.end());
  const attnkit::Tensor<float, 2> got = m.forward(prompt);
  REQUIRE(got.shape() == want.shape());
  double err = 0, mag = 0;
  for (index_t i = 0; i < got.extent(0); ++i)
    for (index_t j = 0; j < got.extent(1); ++j) {
      err = std::max(err, std::abs(double(got(i, j)) - want(i, j)));
      mag = std::max(mag, std::abs(want(i, j)));
    }
  INFO(variant << ": max abs error " << err << ", max |logit| " << mag);
  CHECK(err <= 1e-4);
  CHECK(mag > 1.0);

  const auto g = read_json(dir + "/greedy.json");
  const std::vector<std::int64_t> expected = ids_of(g.at("greedy"));
  CHECK(ids_of(g.at("prompt_ids")) == prompt);
  // Recompute the whole prefix at every step.
  std::vector<std::int64_t> seq = prompt, cont;
  for (std::size_t s = 0; s < expected.size(); ++s) {
    const attnkit::Tensor<float, 2> l = m.forward(seq);
    const auto next = static_cast<std::int64_t>(argmax(&l(l.extent(0) - 1, 0), l.extent(1)));
    cont.push_back(next);
    seq.push_back(next);
  }
  CHECK(cont == expected);
  // The KV cache: prefill, then one token per step.
  const auto want_cached = attnkit::io::read_npy_as<double, 2>(dir + "/cached_logits.npy");
  REQUIRE(want_cached.extent(0) == static_cast<index_t>(expected.size()));
  REQUIRE(want_cached.extent(1) == got.extent(1));
  attnkit::model::DecoderState<float> state;
  std::vector<std::int64_t> cached;
  attnkit::Tensor<float, 2> l = m.forward(prompt, state);
  double cached_err = 0;
  for (std::size_t s = 0; s < expected.size(); ++s) {
    for (index_t j = 0; j < l.extent(1); ++j)
      cached_err = std::max(cached_err, std::abs(double(l(l.extent(0) - 1, j)) -
                                                 want_cached(static_cast<index_t>(s), j)));
    const auto next = static_cast<std::int64_t>(argmax(&l(l.extent(0) - 1, 0), l.extent(1)));
    cached.push_back(next);
    const std::vector<std::int64_t> one{next};
    l = m.forward(one, state);
  }
  CHECK(cached == ids_of(g.at("greedy_cached")));
  INFO(variant << ": cached steps, max abs error " << cached_err);
  CHECK(cached_err <= 1e-4);
  CHECK(state.position == static_cast<index_t>(prompt.size() + expected.size()));
}

}  // namespace golden
