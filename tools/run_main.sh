#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# The main job: installs what is missing, builds the examples and runs the flagship example.
# Arguments are passed to the example.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
cmake -S . -B build/main -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNKIT_BUILD_TESTS=OFF \
  -DATTNKIT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/main -j "$(nproc)" >/dev/null
exec build/main/bin/01_llama_variants "$@"
