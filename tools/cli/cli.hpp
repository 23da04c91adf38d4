// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Shared plumbing of the attnkit program: option parsing, the error conventions of docs/CLI.md
// (exit 2 and one "attnkit: ..." line on bad input), --threads, --repeat timing, and output
// files that are never left half-written.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/policy/registry.hpp"

namespace attnkit::cli {

/// Bad command line (unknown option, missing value, bad number). Exit status 2.
struct usage_error : error {
  using error::error;
};

/// Asked for --help: the message is printed on stdout, exit status 0.
struct help_requested {
  std::string text;
};

/// Options of one subcommand: `--name value`, `--name=value`, boolean `--flag`, positionals.
class Args {
 public:
  /// \param command subcommand name, for messages
  /// \param help text printed for --help
  /// \param valued options that take a value (without "--")
  /// \param flags boolean options (without "--")
  Args(std::string command, std::string help, int argc, char** argv, std::set<std::string> valued,
       std::set<std::string> flags = {})
      : command_(std::move(command)) {
    valued.insert("threads");
    for (int i = 0; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") throw help_requested{help};
      if (a.rfind("--", 0) != 0 || a.size() == 2) {
        positional_.push_back(a);
        continue;
      }
      std::string name = a.substr(2);
      std::optional<std::string> value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      if (flags.count(name)) {
        if (value) throw usage_error(command_ + ": option --" + name + " takes no value");
        values_[name] = "1";
      } else if (valued.count(name)) {
        if (!value) {
          if (i + 1 >= argc) throw usage_error(command_ + ": option --" + name + " needs a value");
          value = argv[++i];
        }
        values_[name] = *value;
      } else {
        throw usage_error(command_ + ": unknown option --" + name + " (see attnkit " + command_ +
                          " --help)");
      }
    }
    if (has("threads")) set_threads(static_cast<int>(get_int("threads", 1, 1, 4096)));
  }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::vector<std::string>& positional() const { return positional_; }
  const std::string& command() const { return command_; }

  std::optional<std::string> get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  std::string get(const std::string& name, const std::string& fallback) const {
    return get(name).value_or(fallback);
  }
  std::string require(const std::string& name) const {
    auto v = get(name);
    if (!v) throw usage_error(command_ + ": missing required option --" + name);
    return *v;
  }

  /// An integer option in [lo, hi], or `fallback` when absent.
  long long get_int(const std::string& name, long long fallback, long long lo, long long hi) const {
    auto v = get(name);
    if (!v) return fallback;
    long long x = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
    if (ec != std::errc() || p != v->data() + v->size() || x < lo || x > hi)
      throw usage_error(command_ + ": --" + name + " must be an integer in [" + std::to_string(lo) +
                        ", " + std::to_string(hi) + "], got '" + *v + "'");
    return x;
  }

  /// A finite floating-point option, or `fallback` when absent.
  double get_double(const std::string& name, double fallback) const {
    auto v = get(name);
    if (!v) return fallback;
    return parse_double(*v, "--" + name);
  }

  double parse_double(const std::string& s, const std::string& what) const {
    double x = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(x))
      throw usage_error(command_ + ": " + what + " must be a finite number, got '" + s + "'");
    return x;
  }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

/// Runs `fn` once as warm-up and then `repeat` times, and prints the JSON line of docs/CLI.md.
/// `flops` are the useful FLOPs of one run.
inline void time_repeats(long long repeat, double flops, const std::function<void()>& fn) {
  fn();
  std::vector<double> ms;
  for (long long r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median =
      ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  std::printf("{\"ms_median\": %.6g, \"ms_min\": %.6g, \"gflops\": %.6g, \"threads\": %d}\n",
              median, ms.front(), median > 0 ? flops / (median * 1e6) : 0.0, max_threads());
}

/// Writes an output file through a temporary sibling and a rename, so a failure never leaves a
/// partial file behind. `write` receives the temporary path.
inline void write_atomically(const std::string& path,
                             const std::function<void(const std::string&)>& write) {
  const std::string tmp = path + ".attnkit-tmp";
  try {
    write(tmp);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

/// A subcommand: its name, one-line summary and entry point (argv after the name).
struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

/// The activation named by option `option` (value `text`) of subcommand `command`, with the
/// optional bias b: the registry's parse (policy/registry.hpp) with its errors as usage errors
/// that name the option.
inline policy::ActivationSpec parse_activation_option(const std::string& command,
                                                      const std::string& option,
                                                      const std::string& text,
                                                      std::optional<double> bias = {}) {
  try {
    return policy::parse_activation(text, bias);
  } catch (const error& e) {
    std::string what = e.what();
    if (what.rfind("attnkit: ", 0) == 0) what = what.substr(9);
    throw usage_error(command + ": --" + option + " " + text + (bias ? " with --bias" : "") + ": " +
                      what);
  }
}

}  // namespace attnkit::cli
