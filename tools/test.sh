#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# The test command: installs what is missing, checks the single header, then two builds:
#   build/test   g++-12 -Werror with AddressSanitizer + UndefinedBehaviorSanitizer (-O1): the
#                whole suite (unit tests, headers, the attnkit program, examples);
#   build/clang  clang++-14 -Werror, Release (-O3): everything again including the benchmarks,
#                the suite again (optimized code, compile-fail tests, consumer projects), and a
#                smoke run of every benchmark.
# Our own targets instantiate kernels for the best compiled-in architecture only
# (ATTNKIT_DISPATCH_COMPILED_BEST); test_attention_archs and the simd/kernel tests run the AVX2
# and SSE2 paths too.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc)
step() { printf '\n==== %s\n' "$*"; }

step "single header is in sync"
python3 tools/amalgamate.py --check

step "g++-12 (-Werror) with AddressSanitizer + UndefinedBehaviorSanitizer: build and tests"
cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_CXX_COMPILER=g++ -DATTNKIT_WERROR=ON \
  -DATTNKIT_SANITIZE=ON -DATTNKIT_BUILD_BENCHMARKS=OFF -DATTNKIT_CONSUMER_TESTS=OFF >/dev/null
cmake --build build/test -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/test --output-on-failure -j "$jobs" -E '^compile_fail\.'

step "clang++-14 (-Werror) Release: build, tests, compile-fail tests, consumer projects"
cmake -S . -B build/clang -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 \
  -DATTNKIT_WERROR=ON >/dev/null
cmake --build build/clang -j "$jobs"
ctest --test-dir build/clang --output-on-failure -j "$jobs"

step "benchmark smoke run"
tools/bench_smoke.sh build/clang

step "all passed"
