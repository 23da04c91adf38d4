#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# The test command: installs what is missing, checks the single header, builds and runs the
# suite (g++-12, -Werror), runs it again under ASan+UBSan, compiles everything with clang++-14,
# and runs a smoke subset of the benchmarks. Build trees go under build/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc)
step() { printf '\n==== %s\n' "$*"; }

step "single header is in sync"
python3 tools/amalgamate.py --check

step "g++ build (-Wall -Wextra -Wpedantic -Werror) and tests"
cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ \
  -DATTNKIT_WERROR=ON >/dev/null
cmake --build build/test -j "$jobs"
ctest --test-dir build/test --output-on-failure -j "$jobs"

step "AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=g++ \
  -DATTNKIT_SANITIZE=ON -DATTNKIT_BUILD_BENCHMARKS=OFF -DATTNKIT_CONSUMER_TESTS=OFF >/dev/null
cmake --build build/asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/asan --output-on-failure -j "$jobs" -E '^compile_fail\.'

step "clang++-14 compile-only pass (-Werror)"
cmake -S . -B build/clang -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 \
  -DATTNKIT_WERROR=ON -DATTNKIT_CONSUMER_TESTS=OFF >/dev/null
cmake --build build/clang -j "$jobs"

step "benchmark smoke run"
tools/bench_smoke.sh build/test

step "all passed"
