// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The attnkit program: dispatches to a subcommand and applies the error conventions of docs/CLI.md.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "attnkit/core/version.hpp"

#include "cli.hpp"
#include "commands.hpp"

namespace {

constexpr attnkit::cli::Command commands[] = {
    {"info", "version, SIMD architecture and thread count", attnkit::cli::cmd_info},
    {"attend", "fused attention over .npy files (any activation, mask, gate)",
     attnkit::cli::cmd_attend},
    {"einsum", "numpy.einsum over .npy files", attnkit::cli::cmd_einsum},
    {"generate", "continue a prompt with a LLaMA-style model folder", attnkit::cli::cmd_generate},
    {"inspect", "attention statistics, heatmaps, leak check", attnkit::cli::cmd_inspect},
    {"tokenize", "text to token ids and back with a tokenizer.json", attnkit::cli::cmd_tokenize},
    {"train", "the copy-task experiment: train a decoder per variant", attnkit::cli::cmd_train},
};

void print_help() {
  std::printf(
      "usage: attnkit <command> [options]   (attnkit <command> --help for its options)\n\n"
      "attnkit %s: composable fused attention for CPUs.\n\ncommands:\n",
      attnkit::version_string);
  for (const auto& c : commands) std::printf("  %-10s %s\n", c.name, c.summary);
  std::printf("\nExit status 0 on success, 2 on bad input (one 'attnkit: ...' line on stderr).\n");
}

int fail(const std::string& message) {
  const std::string m = message.rfind("attnkit:", 0) == 0 ? message : "attnkit: " + message;
  std::fprintf(stderr, "%s\n", m.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_help();
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_help();
    return 0;
  }
  if (name == "--version") {
    std::printf("attnkit %s\n", attnkit::version_string);
    return 0;
  }
  for (const auto& c : commands) {
    if (name != c.name) continue;
    try {
      return c.run(argc - 2, argv + 2);
    } catch (const attnkit::cli::help_requested& h) {
      std::fputs(h.text.c_str(), stdout);
      return 0;
    } catch (const std::bad_alloc&) {
      return fail(name + ": out of memory (are the shapes or files what you meant?)");
    } catch (const std::exception& e) {
      return fail(e.what());
    }
  }
  return fail("unknown command '" + name + "' (see attnkit --help)");
}
