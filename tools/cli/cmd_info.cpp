// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit info: version, SIMD architecture, threads.
#include <cstdio>

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
            "dispatch to on this CPU, and the thread count.\n",
            argc, argv, {});
  if (!args.positional().empty())
    throw usage_error("info: unexpected argument '" + args.positional().front() + "'");
  std::printf("{\"version\": \"%s\", \"simd_arch\": \"%s\", \"threads\": %d, \"openmp\": %s}\n",
              version_string, simd::dispatch_arch_name(), max_threads(),
#if defined(_OPENMP)
              "true"
#else
              "false"
#endif
  );
  return 0;
}

}  // namespace attnkit::cli
