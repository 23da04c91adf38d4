#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# Installs the Debian packages attnkit's build needs, only those missing; silent when all are
# present. Usage: tools/install_deps.sh [extra packages...]
set -euo pipefail
packages=(cmake ninja-build g++ clang-14 clang-format-14 libomp-dev libeigen3-dev libxsimd-dev xtl-dev catch2
          libbenchmark-dev libopenblas-dev libstb-dev python3 libopenmpi-dev openmpi-bin
          libpcre2-dev libutf8proc-dev pkg-config nodejs "$@")
# npm (the tokenizer oracle's packages): Debian's, unless a node that brings its own is there.
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "attnkit: installing missing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
