// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Training with attnkit: the copy-task experiment of `attnkit train`, driving the same code
// (attnkit/train/copy_task.hpp). A small LLaMA-style decoder per attention variant learns
// sequences whose second half copies the first (random tokens). Every honest variant learns the
// copy half and stays at chance (1/16) on the random half; the naive softmax across heads with
// an additive -1e9 mask sees the future and "predicts" the random half, the abnormally high
// accuracy of a leaking model. Then the trained softmax model's parameters and optimizer state
// go to a safetensors file and come back.
//
// usage: 10_train_copy_task [--steps N] [--out DIR]
//   --steps (default 3000) per variant; --out (default build/main/train) receives
//   copy_task_loss.svg and softmax_state.safetensors.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "attnkit/attnkit.hpp"

using namespace attnkit;

int main(int argc, char** argv) try {
  train::CopyTaskConfig cfg;
  std::string out = ATTNKIT_EXAMPLE_OUT_DIR;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      cfg.steps = std::atol(argv[++i]);
    } else if (a == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else {
      std::fprintf(stderr, "usage: 10_train_copy_task [--steps N] [--out DIR]\n");
      return 2;
    }
  }
  std::filesystem::create_directories(out);
  std::printf("copy task: %lld symbols, sequences of 2 x %lld, %lld steps of %lld sequences\n",
              static_cast<long long>(cfg.symbols), static_cast<long long>(cfg.half),
              static_cast<long long>(cfg.steps), static_cast<long long>(cfg.batch));
  std::vector<std::vector<train::CopyEval>> runs;
  for (const std::string& v : train::copy_task_variants())
    runs.push_back(train::run_copy_variant(v, cfg, [](const train::CopyEval& e) {
      std::printf("%s\n", e.json().c_str());
      std::fflush(stdout);
    }));
  const std::string svg = out + "/copy_task_loss.svg";
  train::write_loss_svg(svg, runs, std::log(double(cfg.symbols)));
  std::printf("\n%-20s %10s %14s %16s\n", "variant", "val_loss", "val_acc_copy", "val_acc_random");
  for (const auto& r : runs)
    std::printf("%-20s %10.4f %14.4f %16.4f%s\n", r.back().variant.c_str(), r.back().val_loss,
                r.back().val_acc_copy, r.back().val_acc_random,
                r.back().val_acc_random > 0.5 ? "   <- sees the future" : "");
  std::printf("chance on the random half: %.4f; loss curves: %s\n", 1.0 / double(cfg.symbols),
              svg.c_str());

  // The building blocks by hand: a few steps of the softmax model, its state saved and loaded.
  const auto policy = policy::AttentionPolicy(policy::Softmax{}, policy::Causal{});
  train::ModelConfig mc = cfg.model;
  mc.vocab = cfg.symbols;
  train::Model<decltype(policy), float> model(mc, policy, cfg.seed), copy(mc, policy, 99);
  train::AdamW opt, opt2;
  opt.lr = cfg.lr;
  train::SplitMix64 rng{7};
  train::CopyBatch batch;
  for (int step = 0; step < 20; ++step) {
    train::make_copy_batch(rng, cfg, cfg.batch, batch);
    train::zero_grad(model.parameters());
    model.forward(std::span<const std::int32_t>(batch.ids), cfg.batch, 2 * cfg.half);
    model.backward(std::span<const std::int32_t>(batch.all_targets));
    train::clip_grad_norm(model.parameters(), cfg.clip);
    opt.step(model.parameters());
  }
  const std::string state = out + "/softmax_state.safetensors";
  train::save_safetensors(state, model.parameters(), &opt);
  train::load_safetensors(state, copy.parameters(), &opt2);
  bool same = opt2.step_count == opt.step_count;
  for (std::size_t i = 0; i < model.params.size(); ++i)
    same = same && model.params[i].value == copy.params[i].value &&
           model.params[i].m == copy.params[i].m && model.params[i].v == copy.params[i].v;
  std::printf("%lld parameters after %lld steps saved to %s and loaded back: %s\n",
              static_cast<long long>(model.parameter_count()),
              static_cast<long long>(opt.step_count), state.c_str(),
              same ? "identical" : "DIFFERENT");
  return same ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
