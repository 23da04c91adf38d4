// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit info: version, SIMD architecture, threads.
#include <cstdio>
#include <string>

#include "attnkit/core/parallel.hpp"
#include "attnkit/core/version.hpp"
#include "attnkit/simd/arch.hpp"

#include "cli.hpp"
#include "commands.hpp"

namespace attnkit::cli {

int cmd_info(int argc, char** argv) {
  Args args("info",
            "usage: attnkit info [--threads T]\n\n"
            "Prints one JSON line: the attnkit version, the SIMD architecture the kernels\n"
            "dispatch to on this CPU (simd_arch), the best one the CPU supports (cpu_arch), the\n"
            "kernel architectures compiled into this binary and those the CPU runs, the thread\n"
            "count and whether OpenMP is on. When the binary leaves a faster architecture of\n"
            "the CPU unused, one hint line on stderr says how to compile it in.\n",
            argc, argv, {});
  if (!args.positional().empty())
    throw usage_error("info: unexpected argument '" + args.positional().front() + "'");
  std::string compiled, cpu;
  for (const simd::ArchStatus& a : simd::arch_status()) {
    if (a.compiled) compiled += std::string(compiled.empty() ? "" : ", ") + "\"" + a.name + "\"";
    if (a.cpu) cpu += std::string(cpu.empty() ? "" : ", ") + "\"" + a.name + "\"";
  }
  std::printf(
      "{\"version\": \"%s\", \"simd_arch\": \"%s\", \"cpu_arch\": \"%s\", "
      "\"compiled_archs\": [%s], \"cpu_archs\": [%s], \"threads\": %d, "
      "\"openmp\": %s}\n",
      version_string, simd::dispatch_arch_name(), simd::cpu_best_arch_name(), compiled.c_str(),
      cpu.c_str(), max_threads(),
#if defined(_OPENMP)
      "true"
#else
      "false"
#endif
  );
  const std::string hint = simd::arch_hint();
  if (!hint.empty()) std::fprintf(stderr, "%s\n", hint.c_str());
  return 0;
}

}  // namespace attnkit::cli
