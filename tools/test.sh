#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# The test command: installs what is missing, checks the single header and the house format
# (tools/format.sh --check), then
#   build/test   g++-12 -Werror, every target. The tests and the attnkit program are built with
#                AddressSanitizer + UndefinedBehaviorSanitizer at -Og (-O1 compiled the
#                instrumented kernels 2-3 times slower for tests that ran 1.3 times faster);
#                examples and benchmarks uninstrumented. The whole suite runs: unit tests, the
#                attnkit program's tests, the compile-fail tests and the consumer projects
#                (add_subdirectory, install + find_package, single header); then every benchmark
#                runs briefly (tools/bench_smoke.sh).
#   build/cross  g++-12 with the same flags (-Og, -Werror) but no sanitizers for the instruction
#                set the host does not run: -march=x86-64-v3 (AVX2) on a host with AVX-512,
#                x86-64-v4 (AVX-512) on one without; every test translation unit and the attnkit
#                program compiled with code generation, no link (tools/syntax_check.py --codegen),
#                so a warning that one kind of machine reports fails on both. Without the
#                sanitizers' instrumentation this step takes a third of the time, and it also
#                sees -Wmaybe-uninitialized, which the sanitized build turns off.
#                ATTNKIT_CROSS_MARCH overrides the choice.
#   build/clang  clang++-14 -Werror compile-only pass (tools/syntax_check.py: -fsyntax-only over
#                every translation unit, including each public header on its own and the
#                compile-fail twins, which must fail naming attnkit).
# Our own targets instantiate kernels for the best compiled-in architecture only
# (ATTNKIT_DISPATCH_COMPILED_BEST); test_attention_archs and the simd/kernel tests run the AVX2
# and SSE2 paths too.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
jobs=$(nproc)
step() { printf '\n==== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "single header is in sync"
python3 tools/amalgamate.py --check

step "house format (.clang-format, clang-format 14)"
tools/format.sh --check

# The native build's instruction set, and the other one for the cross-ISA step.
# (The macros are read whole before grep: with pipefail, `grep -q` closing the pipe early made
# g++ fail on SIGPIPE now and then, and the host was taken for one without AVX-512.)
native_macros=$(g++ -march=native -dM -E -x c++ /dev/null)
if grep -q '__AVX512F__' <<<"$native_macros"; then
  native_isa="AVX-512 (-march=native)"; cross_march="-march=x86-64-v3"; cross_isa="AVX2"
else
  native_isa="AVX2 or older (-march=native)"; cross_march="-march=x86-64-v4"; cross_isa="AVX-512"
fi
cross_march="${ATTNKIT_CROSS_MARCH:-$cross_march}"
[ -n "${ATTNKIT_CROSS_MARCH:-}" ] && cross_isa="$ATTNKIT_CROSS_MARCH"

step "g++-12 (-Werror), tests and attnkit program with AddressSanitizer + UndefinedBehaviorSanitizer"
gxx_flags=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-Og -g1"
           -DCMAKE_CXX_COMPILER=g++ -DATTNKIT_WERROR=ON -DATTNKIT_SANITIZE=ON
           -DATTNKIT_CHECK_HEADERS=OFF)
echo "instruction set: $native_isa"
cmake -S . -B build/test "${gxx_flags[@]}" >/dev/null
cmake --build build/test -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/test --output-on-failure -j "$jobs"

step "benchmark smoke run"
tools/bench_smoke.sh build/test

step "g++-12 (-Werror) compile-only pass for $cross_isa ($cross_march): tests and attnkit program"
cmake -S . -B build/cross "${gxx_flags[@]}" -DATTNKIT_SANITIZE=OFF -DATTNKIT_ARCH_FLAGS="$cross_march" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
python3 tools/syntax_check.py build/cross -j "$jobs" --codegen --only '/(tests|tools/cli)/' \
  --exclude '/(compile_fail|consumer)/|/selfcontained/|/tests/main\.cpp$'

step "clang++-14 (-Werror) compile-only pass over every translation unit"
cmake -S . -B build/clang -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 \
  -DATTNKIT_WERROR=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
python3 tools/syntax_check.py build/clang -j "$jobs"

step "all passed"
