// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit train: the copy-task experiment (attnkit/train/copy_task.hpp), one small decoder per
// attention variant, one JSON line per evaluation, a loss-curve picture.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "attnkit/train/copy_task.hpp"

#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

int cmd_train(int argc, char** argv) {
  Args args(
      "train",
      "usage: attnkit train [--variants V,W,...] [--steps N] [--eval-every N] [--batch B]\n"
      "                     [--half L] [--symbols S] [--hidden H] [--layers N] [--heads H]\n"
      "                     [--lr X] [--seed N] [--plot F.svg] [--threads T]\n\n"
      "Trains a small LLaMA-style decoder per attention variant on the copy task: sequences of\n"
      "2L tokens whose first half is random (S symbols) and whose second half copies it. Every\n"
      "variant sees the same data and initial weights (--seed). Prints one JSON line per\n"
      "evaluation: {\"variant\", \"step\", \"train_loss\", \"val_loss\", \"val_acc_copy\",\n"
      "\"val_acc_random\"}. A causal model cannot predict the random half (chance 1/S); the\n"
      "naive-head-softmax variant (softmax across heads after an additive -1e9 mask) sees the\n"
      "future and does. --plot writes the validation-loss curves as SVG.\n"
      "Variants (default: all): softmax, sigmoid, sigmoid-bias, head-softmax, linear,\n"
      "naive-head-softmax. Defaults: --steps 3000 --eval-every 250 --batch 16 --half 12\n"
      "--symbols 16 --hidden 64 --layers 4 --heads 4 --lr 0.003 --seed 1.\n",
      argc, argv,
      {"variants", "steps", "eval-every", "batch", "half", "symbols", "hidden", "layers", "heads",
       "lr", "seed", "plot", "threads"},
      {});
  if (!args.positional().empty())
    throw usage_error("train: unexpected argument '" + args.positional().front() + "'");
  train::CopyTaskConfig cfg;
  cfg.steps = args.get_int("steps", cfg.steps, 0, 1000000);
  cfg.eval_every = args.get_int("eval-every", cfg.eval_every, 1, 1000000);
  cfg.batch = args.get_int("batch", cfg.batch, 1, 4096);
  cfg.val_sequences = cfg.batch * ((256 + cfg.batch - 1) / cfg.batch);
  cfg.half = args.get_int("half", cfg.half, 2, 4096);
  cfg.symbols = args.get_int("symbols", cfg.symbols, 2, 100000);
  cfg.model.hidden = args.get_int("hidden", cfg.model.hidden, 2, 8192);
  cfg.model.intermediate = 2 * cfg.model.hidden;
  cfg.model.layers = args.get_int("layers", cfg.model.layers, 1, 64);
  cfg.model.heads = args.get_int("heads", cfg.model.heads, 1, 256);
  cfg.model.kv_heads = cfg.model.heads;
  cfg.lr = args.get_double("lr", cfg.lr);
  cfg.seed = static_cast<std::uint64_t>(args.get_int("seed", 1, 0, (1ll << 62)));
  std::vector<std::string> variants = train::copy_task_variants();
  if (args.has("variants")) {
    variants.clear();
    std::stringstream list(args.require("variants"));
    for (std::string v; std::getline(list, v, ',');) variants.push_back(v);
    if (variants.empty()) throw usage_error("train: --variants is empty");
    for (const std::string& v : variants) train::check_copy_variant(v);  // before any training
  }
  cfg.check();
  cfg.model.vocab = cfg.symbols;
  cfg.model.check();
  std::vector<std::vector<train::CopyEval>> runs;
  for (const std::string& v : variants)
    runs.push_back(train::run_copy_variant(v, cfg, [](const train::CopyEval& e) {
      std::printf("%s\n", e.json().c_str());
      std::fflush(stdout);
    }));
  if (args.has("plot"))
    train::write_loss_svg(args.require("plot"), runs, std::log(double(cfg.symbols)));
  return 0;
}

}  // namespace attnkit::cli
