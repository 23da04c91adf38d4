// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The machine's FMA peak and memory bandwidth alone (every other benchmark binary has them too).
#include "bench_main.hpp"

ATTNKIT_BENCHMARK_MAIN();
