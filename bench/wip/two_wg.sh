#!/usr/bin/env bash
# bench/NOTES.md section 30: two consumer warpgroups of 240 registers (-DSAGEATTN_SM90_CONSUMERS=2,
# 128 rows per CTA) with the pipelined loop (-DSAGEATTN_SM90_PIPELINE=1: one fp8 P.V part beside
# the next block's softmax; =2: both parts), against main (three warpgroups of 160, synchronous).
# Device call from the repository root (no carry needed; ~300 s on an H100):
#   bash bench/wip/two_wg.sh
# Prints: spills per build; test_gpu_attention of c2p2, c2p1 and c2 (GPU against the CPU reference
# run with the same tiles) and test_gpu_hardening of c2p2; e2e (kernel) TFLOPS per build for
# hd128 16K / 4K / 1K, hd64 16K, causal 16K, fp8 and fp16. Full logs under $OUT.
set -uo pipefail
out="${OUT:-/tmp/two_wg_out}"; mkdir -p "$out"
export AB_OLD=0 AB_TESTS=1 AB_TIMEOUT=120 AB_BENCH_TIMEOUT=30 AB_MODES=fp8,fp16
export AB_VARIANTS="-DSAGEATTN_SM90_CONSUMERS=2 -DSAGEATTN_SM90_PIPELINE=2|-DSAGEATTN_SM90_CONSUMERS=2 -DSAGEATTN_SM90_PIPELINE=1|-DSAGEATTN_SM90_CONSUMERS=2|"
export AB_PROBS="128:16384:0 128:4096:0 128:1024:0 64:16384:0 128:16384:1"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,driver_version --format=csv,noheader
OUT="$out" bash scripts/ab_probe.sh
for i in 1 2; do  # ab_new1 = c2p1, ab_new2 = c2 (ab_probe ran ab_new0 = c2p2's tests)
  timeout 90 build/ab_new$i/tests/test_gpu_attention >"$out/t_new$i.log" 2>&1
  echo "new$i test_gpu_attention rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/t_new$i.log" | tr '\n' ' ' | cut -c1-200)"
  grep -E "^\[  FAILED" "$out/t_new$i.log" | head -n 10
done
echo "== $SECONDS s"
