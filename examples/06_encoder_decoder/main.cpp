// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A toy encoder–decoder with Bahdanau and Luong attention and fixed (hand-set) weights: copy and
// reverse a batch of padded token sequences. The "encoder" state of source token j is
//   h_j = [onehot(token_j) | onehot(j) | onehot(len - 1 - j) | 1]
// (token, position from the start, position from the end, a constant bias unit); the decoder
// state at step i is onehot(i). The attention weights decide which source token step i reads
// (the token block of the context); each score function is set up so the task follows from its
// weights alone:
//   Luong general   (W s)·h    W sends onehot(i) to the "from the start" block (copy) or to the
//                               "from the end" block (reverse)
//   Luong dot        s·h       the decoder state itself lives in the "from the end" block
//   Luong concat     v·tanh(W [s; h])   W matches onehot(i) with "from the end", minus a bias
//   Bahdanau         v·tanh(W_q s + b_q + W_k h)   the same match with the biases of its Linears
// Prints each model's output and the alignment (P) of one sequence as a heat map.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "attnkit/modules/additive_attention.hpp"
#include "attnkit/modules/luong_attention.hpp"

namespace {

using attnkit::index_t;
using attnkit::Tensor;

constexpr index_t vocab = 26;  // 'a'..'z'
constexpr index_t max_len = 8;
constexpr index_t dk = vocab + 2 * max_len + 1;
constexpr index_t start_block = vocab, end_block = vocab + max_len, bias_unit = dk - 1;
constexpr double sharp = 6.0;  // score gap between the aligned key and the others

struct Batch {
  std::vector<std::string> words;
  std::vector<index_t> lengths;
  Tensor<float, 3> memory;  // [B, max_len, Dk], padding rows zero
  Tensor<float, 3> steps;   // [B, max_len, max_len]: decoder state onehot(i)
};

Batch make_batch(const std::vector<std::string>& words) {
  Batch bt{words,
           {},
           Tensor<float, 3>({index_t(words.size()), max_len, dk}, 0.0f),
           Tensor<float, 3>({index_t(words.size()), max_len, max_len}, 0.0f)};
  for (index_t b = 0; b < index_t(words.size()); ++b) {
    const std::string& w = words[std::size_t(b)];
    const index_t len = index_t(w.size());
    bt.lengths.push_back(len);
    for (index_t j = 0; j < len; ++j) {
      bt.memory(b, j, w[std::size_t(j)] - 'a') = 1.0f;
      bt.memory(b, j, start_block + j) = 1.0f;
      bt.memory(b, j, end_block + (len - 1 - j)) = 1.0f;
      bt.memory(b, j, bias_unit) = 1.0f;
    }
    for (index_t i = 0; i < max_len; ++i) bt.steps(b, i, i) = 1.0f;
  }
  return bt;
}

/// The decoded word: at each step the token with the largest context weight.
std::string decode(const Tensor<float, 3>& ctx, index_t b, index_t len) {
  std::string out;
  for (index_t i = 0; i < len; ++i) {
    index_t best = 0;
    for (index_t t = 1; t < vocab; ++t)
      if (ctx(b, i, t) > ctx(b, i, best)) best = t;
    out += char('a' + best);
  }
  return out;
}

void print_alignment(const Tensor<float, 3>& p, const Batch& bt, index_t b) {
  static const char* shade = " .:-=+*#%@";
  const std::string& w = bt.words[std::size_t(b)];
  std::printf("      source: ");
  for (char c : w) std::printf("%c", c);
  std::printf("%s\n", std::string(std::size_t(max_len) - w.size(), '_').c_str());
  for (index_t i = 0; i < bt.lengths[std::size_t(b)]; ++i) {
    std::printf("      step %ld: ", long(i));
    for (index_t j = 0; j < max_len; ++j)
      std::printf("%c", shade[std::min<int>(9, int(p(b, i, j) * 9.999f))]);
    index_t best = 0;
    for (index_t j = 1; j < max_len; ++j)
      if (p(b, i, j) > p(b, i, best)) best = j;
    std::printf("   -> key %ld (P = %.3f)\n", long(best), double(p(b, i, best)));
  }
}

template <class Attend>
void run(const char* name, const char* task, const Batch& bt, Attend&& attend) {
  const index_t nb = index_t(bt.words.size());
  Tensor<float, 3> ctx({nb, max_len, dk}), p({nb, max_len, max_len});
  attend(ctx, p);
  std::printf("%-26s %-8s", name, task);
  for (index_t b = 0; b < nb; ++b)
    std::printf(" %-9s", decode(ctx, b, bt.lengths[std::size_t(b)]).c_str());
  std::printf("\n");
  print_alignment(p, bt, 1);
}

}  // namespace

int main() try {
  const Batch bt = make_batch({"attnkit", "seq", "decoder", "luong"});
  const index_t nb = index_t(bt.words.size());
  std::printf("batch:                             ");
  for (const auto& w : bt.words) std::printf(" %-9s", w.c_str());
  std::printf("\n(source lengths 7, 3, 7, 5, padded to %ld; the heat maps show sequence 1)\n\n",
              long(max_len));

  // Luong general: W [Dk, Dq] maps the decoder state onehot(i) to onehot(i) in one position
  // block of the memory, scaled by `sharp`.
  for (const bool reverse : {false, true}) {
    Tensor<float, 2> w({dk, max_len}, 0.0f);
    for (index_t i = 0; i < max_len; ++i)
      w((reverse ? end_block : start_block) + i, i) = float(sharp);
    attnkit::modules::LuongAttention<> att;
    att.score = attnkit::modules::LuongScore::general;
    att.weight = w.cview();
    run("Luong general", reverse ? "reverse" : "copy", bt, [&](auto& ctx, auto& p) {
      att.forward(bt.steps.cview(), bt.memory.cview(), ctx.view(), bt.lengths, p.view());
    });
  }

  // Luong dot: the decoder state already is a memory-sized vector, sharp · onehot(end_block + i).
  {
    Tensor<float, 3> q({nb, max_len, dk}, 0.0f);
    for (index_t b = 0; b < nb; ++b)
      for (index_t i = 0; i < max_len; ++i) q(b, i, end_block + i) = float(sharp);
    attnkit::modules::LuongAttention<> att;  // LuongScore::dot
    run("Luong dot", "reverse", bt, [&](auto& ctx, auto& p) {
      att.forward(q.cview(), bt.memory.cview(), ctx.view(), bt.lengths, p.view());
    });
  }

  // Luong concat and Bahdanau: one tanh unit per position a, c·(s[a] + h_end[a]) - 1.5c, which
  // is 0.5c when step a meets the key at a from the end and -0.5c or less otherwise; v = 2
  // per unit. (The constant comes from the bias unit of h for concat, from b_q for Bahdanau.)
  const float c = 4.0f;
  {
    Tensor<float, 2> w({max_len, max_len + dk}, 0.0f);  // [A, Dq + Dk]
    Tensor<float, 1> v({max_len}, 2.0f);
    for (index_t a = 0; a < max_len; ++a) {
      w(a, a) = c;                            // the decoder state
      w(a, max_len + end_block + a) = c;      // the key's position from the end
      w(a, max_len + bias_unit) = -1.5f * c;  // the bias unit
    }
    attnkit::modules::LuongAttention<> att;
    att.score = attnkit::modules::LuongScore::concat;
    att.weight = w.cview();
    att.v = v.cview();
    run("Luong concat", "reverse", bt, [&](auto& ctx, auto& p) {
      att.forward(bt.steps.cview(), bt.memory.cview(), ctx.view(), bt.lengths, p.view());
    });
  }
  {
    Tensor<float, 2> wq({max_len, max_len}, 0.0f), wk({max_len, dk}, 0.0f);
    Tensor<float, 1> bq({max_len}, -1.5f * c), v({max_len}, 2.0f);
    for (index_t a = 0; a < max_len; ++a) {
      wq(a, a) = c;
      wk(a, start_block + a) = c;  // Bahdanau here copies: "from the start"
    }
    attnkit::modules::AdditiveAttention<> att;
    att.query_proj = {wq.cview(), bq.cview()};
    att.memory_proj = {wk.cview(), {}};
    att.v = v.cview();
    // The memory projection once per source batch, reused for every decoding step.
    const Tensor<float, 3> keys = att.project_memory(bt.memory.cview());
    Tensor<float, 3> ctx({nb, max_len, dk}), p({nb, max_len, max_len});
    for (index_t i = 0; i < max_len; ++i) {  // step by step, as a decoder runs
      Tensor<float, 3> ci({nb, 1, dk}), pi({nb, 1, max_len});
      att.forward(bt.steps.cview().slice(i, i + 1, 1), bt.memory.cview(), keys, ci.view(),
                  bt.lengths, pi.view());
      for (index_t b = 0; b < nb; ++b) {
        for (index_t t = 0; t < dk; ++t) ctx(b, i, t) = ci(b, 0, t);
        for (index_t j = 0; j < max_len; ++j) p(b, i, j) = pi(b, 0, j);
      }
    }
    run("Bahdanau (step by step)", "copy", bt, [&](auto& cx, auto& px) {
      cx = ctx;
      px = p;
    });
  }
  std::printf(
      "\nPadding keys (the '_' columns) get P = 0; every row sums to 1 over the "
      "visible keys.\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
