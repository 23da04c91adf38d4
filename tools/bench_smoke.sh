#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
# Runs every benchmark binary of a build tree briefly (a smoke test: they start, run and write
# JSON), not a measurement. Usage: tools/bench_smoke.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: bench_smoke.sh BUILD_DIR}
out=$build/bench_smoke
mkdir -p "$out"
shopt -s nullglob
for b in "$build"/bin/bench_*; do
  name=$(basename "$b")
  # A few of the smallest shapes per binary, and the peak benchmarks: the sweeps take minutes,
  # and the test command builds the benchmarks at -Og.
  case $name in
    bench_attention) filter='PeakFma/threads:1|BM_Attention_(softmax|sigmoid|user_sigmoid|head_softmax)_causal/H:8/Hkv:8/N:512/D:64/threads:1|BM_AttentionUnfusedGemm_softmax_causal/H:8/Hkv:8/N:512/D:64/threads:1|BM_AttentionDecode_softmax/.*Nk:4096/D:128/threads:1|BM_Attention(Forward)?Backward(UnfusedGemm)?_softmax_causal/H:8/Hkv:8/N:512/D:128/threads:1' ;;
    bench_gemm) filter='PeakFma/threads:1|_(Square|QKt|PV)/M:(256|512)/.*/threads:1/' ;;
    bench_einsum) filter='PeakFma/threads:1|Small|BM_AttnScores_(Einsum|Eigen)/H:8/N:512/D:64/T:1/' ;;
    bench_model) filter='PeakFma/threads:1|Prefill_Softmax' ;;
    bench_memory) filter='PeakFma/threads:1|SinkDecode/threads:1/xW:1' ;;  # 2 steps (ATTNKIT_BENCH_SMOKE)
    *) filter='.' ;;
  esac
  echo "-- $name"
  ATTNKIT_BENCH_SMOKE=1 "$b" --benchmark_min_time=0.001 --benchmark_filter="${ATTNKIT_BENCH_SMOKE_FILTER:-$filter}" \
       --benchmark_out="$out/$name.json" --benchmark_out_format=json >/dev/null
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); n=len(d['benchmarks']); \
print(f'   {n} benchmark results'); sys.exit(0 if n else 1)" "$out/$name.json"
done
