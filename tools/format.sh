#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# The house format (.clang-format, clang-format 14) over every C++ source of the repository but
# the generated single header. Usage: tools/format.sh        formats the files in place
#                                     tools/format.sh --check lists the files that differ, fails
set -euo pipefail
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$cf" ] || { echo "attnkit: tools/format.sh needs clang-format-14 (Debian: clang-format-14)" >&2; exit 2; }
mapfile -t files < <(find include src tests tools examples benchmarks -type f \
  \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' \) 2>/dev/null | sort)
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    "$cf" --style=file "$f" | cmp -s - "$f" || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    echo "attnkit: ${#bad[@]} file(s) differ from the house format (run tools/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format: ${#files[@]} files match .clang-format"
else
  "$cf" --style=file -i "${files[@]}"
fi
