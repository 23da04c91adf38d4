// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The copy-task experiment: a small train::Model per attention variant learns sequences whose
// second half copies the first (random tokens), with a fixed seed. The random half cannot be
// predicted by a causal model (chance: 1 / symbols); the copy half can. A variant that sees
// the future — the naive softmax across heads with an additive mask — predicts the random half
// too, which is how the leak shows in training. Shared by `attnkit train` and
// examples/10_train_copy_task.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/policy/mask.hpp"
#include "attnkit/policy/score_mod.hpp"
#include "attnkit/train/model.hpp"

namespace attnkit::train {

/// The score mod that reproduces the naive softmax across heads: scores plus an additive −1e9
/// causal mask, then softmax over the head dimension. In fp32 every head's masked score is
/// −1e9 (the dot product is absorbed), so each future key gets the weight 1/H in every head.
/// This mod gives every future key (j > i') the same score 0 in every head, which under
/// HeadSoftmax and NoMask yields exactly those weights, and no gradient to those scores. It is
/// the leak under test, not a mask to use.
struct NaiveAdditiveMaskUnderHeadSoftmax {
  static constexpr bool is_identity = false;
  template <class T>
  T apply(index_t, index_t, index_t i, index_t j, T s) const noexcept {
    return j > i ? T(0) : s;
  }
  template <class T>
  void apply_queries(index_t, index_t, index_t i0, index_t j, T* row, index_t n) const noexcept {
    for (index_t r = 0; r < n; ++r)
      if (j > i0 + r) row[r] = T(0);
  }
  template <class T>
  T slope(index_t, index_t, index_t i, index_t j, T) const noexcept {
    return j > i ? T(0) : T(1);
  }
  NaiveAdditiveMaskUnderHeadSoftmax bind(const policy::Geometry&) const noexcept { return *this; }
};

/// The experiment's settings. The model's vocabulary is `symbols`.
struct CopyTaskConfig {
  index_t symbols = 16;         ///< distinct tokens
  index_t half = 12;            ///< L: random tokens, then their copy (sequences of 2L)
  index_t batch = 16;           ///< sequences per step
  index_t steps = 3000;         ///< optimizer steps per variant
  index_t eval_every = 250;     ///< steps between evaluations (and after the last)
  index_t val_sequences = 256;  ///< validation sequences (a multiple of batch)
  double lr = 3e-3;             ///< AdamW's learning rate
  double weight_decay = 0.01;   ///< AdamW's decoupled weight decay
  double clip = 1.0;            ///< gradient-norm clipping
  std::uint64_t seed = 1;       ///< data and initialization
  ModelConfig model = [] {
    ModelConfig m;
    m.hidden = 64;
    m.layers = 4;
    m.heads = 4;
    m.kv_heads = 4;
    m.intermediate = 128;
    return m;
  }();

  /// Throws error naming the setting out of range.
  void check() const {
    auto need = [](bool ok, const std::string& what) {
      if (!ok) throw error("attnkit: copy task: " + what);
    };
    need(symbols >= 2, "symbols must be >= 2");
    need(half >= 2, "half must be >= 2");
    need(batch >= 1 && steps >= 0 && eval_every >= 1, "batch and eval_every must be >= 1");
    need(val_sequences >= batch && val_sequences % batch == 0,
         "val_sequences must be a positive multiple of batch (" + std::to_string(batch) + ")");
    need(lr > 0 && std::isfinite(lr), "lr must be finite and > 0");
    need(clip > 0, "clip must be > 0");
  }
};

/// One evaluation: the mean training loss since the last one, the validation loss, and the
/// argmax accuracy on the copy half and on the random half of the validation set.
struct CopyEval {
  std::string variant;
  index_t step = 0;
  double train_loss = 0, val_loss = 0, val_acc_copy = 0, val_acc_random = 0;

  /// {"variant", "step", "train_loss", "val_loss", "val_acc_copy", "val_acc_random"}.
  std::string json() const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"variant\": \"%s\", \"step\": %lld, \"train_loss\": %.5f, \"val_loss\": "
                  "%.5f, \"val_acc_copy\": %.4f, \"val_acc_random\": %.4f}",
                  variant.c_str(), static_cast<long long>(step), train_loss, val_loss, val_acc_copy,
                  val_acc_random);
    return buf;
  }
};

/// The sequences of the copy task: `count` sequences of 2L tokens from `rng` (ids), and their
/// next-token targets split in two: the random half's (positions 0..L-2) and the copy half's
/// (positions L-1..2L-2); the other positions and the last one are -1.
struct CopyBatch {
  std::vector<std::int32_t> ids, random_targets, copy_targets, all_targets;
};

inline void make_copy_batch(SplitMix64& rng, const CopyTaskConfig& c, index_t count,
                            CopyBatch& out) {
  const index_t l = c.half, n = 2 * l;
  const std::size_t total = static_cast<std::size_t>(count * n);
  out.ids.resize(total);
  out.random_targets.assign(total, -1);
  out.copy_targets.assign(total, -1);
  out.all_targets.assign(total, -1);
  for (index_t s = 0; s < count; ++s) {
    std::int32_t* t = out.ids.data() + s * n;
    for (index_t i = 0; i < l; ++i)
      t[i] = static_cast<std::int32_t>(rng.next() % static_cast<std::uint64_t>(c.symbols));
    for (index_t i = 0; i < l; ++i) t[l + i] = t[i];
    for (index_t i = 0; i + 1 < n; ++i) {
      const std::size_t k = static_cast<std::size_t>(s * n + i);
      (i < l - 1 ? out.random_targets : out.copy_targets)[k] = t[i + 1];
      out.all_targets[k] = t[i + 1];
    }
  }
}

/// Trains one variant: a train::Model<Policy, float> on the copy task, reporting each evaluation
/// (also returned). The data and the initialization depend on the seed only, so every variant
/// sees the same batches.
template <class Policy>
std::vector<CopyEval> run_copy_task(const std::string& variant, const Policy& policy,
                                    const CopyTaskConfig& cfg,
                                    const std::function<void(const CopyEval&)>& report = {}) {
  cfg.check();
  ModelConfig mc = cfg.model;
  mc.vocab = cfg.symbols;
  Model<Policy, float> model(mc, policy, cfg.seed);
  AdamW opt;
  opt.lr = cfg.lr;
  opt.weight_decay = cfg.weight_decay;
  const index_t n = 2 * cfg.half;
  SplitMix64 train_rng{cfg.seed * 0x9E3779B97F4A7C15ull + 11};
  SplitMix64 val_rng{cfg.seed * 0x9E3779B97F4A7C15ull + 23};
  CopyBatch val, batch;
  make_copy_batch(val_rng, cfg, cfg.val_sequences, val);
  std::vector<CopyEval> evals;
  double train_sum = 0;
  index_t train_steps = 0;
  auto evaluate = [&](index_t step) {
    CrossEntropy rnd, cpy;
    const std::size_t per = static_cast<std::size_t>(cfg.batch * n);
    for (index_t b0 = 0; b0 < cfg.val_sequences; b0 += cfg.batch) {
      const std::size_t off = static_cast<std::size_t>(b0 * n);
      const TensorView<const float, 2> logits =
          model.forward(std::span<const std::int32_t>(val.ids.data() + off, per), cfg.batch, n);
      const CrossEntropy r = softmax_cross_entropy<float, std::int32_t>(
          logits, std::span<const std::int32_t>(val.random_targets.data() + off, per), {}, 0);
      const CrossEntropy c = softmax_cross_entropy<float, std::int32_t>(
          logits, std::span<const std::int32_t>(val.copy_targets.data() + off, per), {}, 0);
      rnd += r;
      cpy += c;
    }
    CopyEval e;
    e.variant = variant;
    e.step = step;
    e.train_loss = train_steps > 0 ? train_sum / double(train_steps) : 0.0;
    e.val_loss = (rnd.loss_sum + cpy.loss_sum) / double(rnd.count + cpy.count);
    e.val_acc_copy = double(cpy.correct) / double(cpy.count);
    e.val_acc_random = double(rnd.correct) / double(rnd.count);
    train_sum = 0;
    train_steps = 0;
    evals.push_back(e);
    if (report) report(e);
  };
  for (index_t step = 1; step <= cfg.steps; ++step) {
    make_copy_batch(train_rng, cfg, cfg.batch, batch);
    zero_grad(model.parameters());
    model.forward(std::span<const std::int32_t>(batch.ids), cfg.batch, n);
    const CrossEntropy ce = model.backward(std::span<const std::int32_t>(batch.all_targets));
    if (!std::isfinite(ce.mean()))
      throw error("attnkit: copy task: variant " + variant +
                  ": the training loss is not finite at step " + std::to_string(step));
    clip_grad_norm(model.parameters(), cfg.clip);
    opt.step(model.parameters());
    train_sum += ce.mean();
    ++train_steps;
    if (step % cfg.eval_every == 0 || step == cfg.steps) evaluate(step);
  }
  if (cfg.steps == 0) evaluate(0);
  return evals;
}

/// The variants `attnkit train` knows, in its default order: softmax, sigmoid, sigmoid-bias
/// (b = −ln n), head-softmax, linear (causal, structural masks), and naive-head-softmax (the
/// leak: NaiveAdditiveMaskUnderHeadSoftmax).
inline const std::vector<std::string>& copy_task_variants() {
  static const std::vector<std::string> v{"softmax",      "sigmoid", "sigmoid-bias",
                                          "head-softmax", "linear",  "naive-head-softmax"};
  return v;
}

/// Throws error naming the known variants when `name` is not one of copy_task_variants().
inline void check_copy_variant(const std::string& name) {
  const std::vector<std::string>& known = copy_task_variants();
  if (std::find(known.begin(), known.end(), name) != known.end()) return;
  std::string list;
  for (const std::string& v : known) list += (list.empty() ? "" : ", ") + v;
  throw error("attnkit: copy task: unknown variant '" + name + "' (known: " + list + ")");
}

/// Runs the named variant (copy_task_variants()); throws error naming the known ones otherwise.
inline std::vector<CopyEval> run_copy_variant(
    const std::string& name, const CopyTaskConfig& cfg,
    const std::function<void(const CopyEval&)>& report = {}) {
  namespace p = policy;
  if (name == "softmax")
    return run_copy_task(name, p::AttentionPolicy(p::Softmax{}, p::Causal{}), cfg, report);
  if (name == "sigmoid")
    return run_copy_task(name, p::AttentionPolicy(p::Sigmoid{}, p::Causal{}), cfg, report);
  if (name == "sigmoid-bias")
    return run_copy_task(name, p::AttentionPolicy(p::SigmoidBias{}, p::Causal{}), cfg, report);
  if (name == "head-softmax")
    return run_copy_task(name, p::AttentionPolicy(p::HeadSoftmax{}, p::Causal{}), cfg, report);
  if (name == "linear")
    return run_copy_task(name, p::AttentionPolicy(p::Linear{}, p::Causal{}), cfg, report);
  if (name == "naive-head-softmax")
    return run_copy_task(
        name,
        p::AttentionPolicy(p::HeadSoftmax{}, p::NoMask{}, NaiveAdditiveMaskUnderHeadSoftmax{}), cfg,
        report);
  check_copy_variant(name);
  throw error("attnkit: copy task: variant '" + name + "' has no policy");  // a list out of step
}

/// Writes the validation-loss curves (one per variant: step against val_loss) as an SVG
/// picture, with axes, a chance line (ln symbols for the random half) and a legend. Throws
/// error when the file cannot be written.
inline void write_loss_svg(const std::string& path, const std::vector<std::vector<CopyEval>>& runs,
                           double chance_loss) {
  const double w = 720, h = 440, left = 64, right = 190, top = 24, bottom = 48;
  double max_step = 1, max_loss = chance_loss;
  for (const auto& r : runs)
    for (const CopyEval& e : r) {
      max_step = std::max(max_step, double(e.step));
      if (std::isfinite(e.val_loss)) max_loss = std::max(max_loss, e.val_loss);
    }
  max_loss *= 1.05;
  const double pw = w - left - right, ph = h - top - bottom;
  auto px = [&](double s) { return left + pw * s / max_step; };
  auto py = [&](double l) { return top + ph * (1 - std::clamp(l, 0.0, max_loss) / max_loss); };
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                 "#8c564b", "#d62728", "#e377c2", "#17becf"};
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" "
                "height=\"100%%\" fill=\"white\"/>\n",
                w, h);
  s += buf;
  std::snprintf(buf, sizeof buf,
                "<path d=\"M%g %g V%g H%g\" stroke=\"black\" fill=\"none\"/>\n"
                "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n"
                "<text x=\"14\" y=\"%g\" transform=\"rotate(-90 14 %g)\" "
                "text-anchor=\"middle\">validation loss</text>\n",
                left, top, top + ph, left + pw, left + pw / 2, h - 10, top + ph / 2, top + ph / 2);
  s += buf;
  for (int k = 0; k <= 4; ++k) {
    const double l = max_loss * k / 4, st = max_step * k / 4;
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.2f</text>\n"
                  "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%.0f</text>\n",
                  left - 6, py(l) + 4, l, px(st), top + ph + 16, st);
    s += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<path d=\"M%g %g H%g\" stroke=\"gray\" stroke-dasharray=\"4 4\"/>\n"
                "<text x=\"%g\" y=\"%g\" fill=\"gray\">chance (random half)</text>\n",
                left, py(chance_loss), left + pw, left + 4, py(chance_loss) - 4);
  s += buf;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    if (runs[r].empty()) continue;
    const char* col = colors[r % 8];
    std::string d;
    for (const CopyEval& e : runs[r]) {
      std::snprintf(buf, sizeof buf, "%s%.1f %.1f", d.empty() ? "M" : " L", px(double(e.step)),
                    py(e.val_loss));
      d += buf;
    }
    s += "<path d=\"" + d + "\" stroke=\"" + col + "\" stroke-width=\"2\" fill=\"none\"/>\n";
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%g\" y=\"%g\" width=\"14\" height=\"3\" fill=\"%s\"/>"
                  "<text x=\"%g\" y=\"%g\">%s</text>\n",
                  left + pw + 14, top + 10 + 18.0 * double(r), col, left + pw + 34,
                  top + 15 + 18.0 * double(r), runs[r].front().variant.c_str());
    s += buf;
  }
  s += "</svg>\n";
  std::ofstream f(path, std::ios::binary);
  f << s;
  f.close();
  if (!f) throw error("attnkit: cannot write the loss curve to " + path);
}

}  // namespace attnkit::train
