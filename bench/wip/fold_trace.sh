#!/usr/bin/env bash
# bench/NOTES.md sections 32-33: how long is the quantizer's stats -> fold -> publish chain, where
# does its time go, and how long do quantize items wait for it? Builds the CLI with
# -DSAGEATTN_KV_QUANT_TRACE=1 (global-timer stamps, summed per launch and printed by the launcher,
# which synchronizes: the bench's times are not meaningful in this build) and runs hd128 fp8 at
# 1K (B = 32), 4K (B = 8) and 16K (B = 2), then 1K at slack 250 and 1000 and 4K at slack
# 50 / 200 / 600 for contrast.
# Then the default build (no probe) times 4K at the same slacks (e2e and kernel TFLOPS).
# Device call from the repository root (~180 s on an H100, no carry):
#   bash bench/wip/fold_trace.sh
# Prints per problem the last launch's trace line: stats items and their entry -> arrival time,
# heads and their chain (last group arrival -> published, of it the group fold), quantize items,
# how many found their head unpublished, the mean wait per item and per CTA, and the chain's five
# steps (bench/NOTES.md section 33: the chain measured 14-24 us, not the 2-3 us predicted).
set -uo pipefail
out="${OUT:-/tmp/fold_trace_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
cmake -S . -B build/trace -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
  "-DSAGEATTN_SM90_HEAD_DIMS=128" -DSAGEATTN_BUILD_TESTS=OFF "-DCMAKE_CUDA_FLAGS=-DSAGEATTN_KV_QUANT_TRACE=1" \
  "-DCMAKE_CXX_FLAGS=-DSAGEATTN_KV_QUANT_TRACE=1" >"$out/cfg.log" 2>&1 &&
  cmake --build build/trace --target sageattn_cli -j "$(nproc)" >"$out/build.log" 2>&1 ||
  { tail -n 30 "$out/build.log"; exit 1; }
echo "== build $SECONDS s"
run() {  # run LABEL N B [env...]
  local label=$1 n=$2 b=$3; shift 3
  env "$@" timeout 60 build/trace/tools/sageattn bench --batch "$b" --heads 32 --seqlen "$n" --head-dim 128 \
    --modes fp8 --warmup 1 --iters 2 >"$out/$label.log" 2>&1
  echo "$label rc=$? $(grep -E '^fp8 ' "$out/$label.log" | awk '{print "cos", $2}') $(grep 'kv_quant trace' "$out/$label.log" | tail -n 1)"
}
run n1k 1024 32
run n4k 4096 8
run n16k 16384 2
run n1k_slack250 1024 32 SAGEATTN_KV_QUANT_LEAD_SLACK=250
run n1k_slack1000 1024 32 SAGEATTN_KV_QUANT_LEAD_SLACK=1000
# 4K with leads short enough for the second read to hit L2 (lead = 64 + slack items of 48 KB):
# how long do quantize items wait then?
for sl in 50 200 600; do run n4k_slack$sl 4096 8 SAGEATTN_KV_QUANT_LEAD_SLACK=$sl; done
echo "== trace done $SECONDS s"
cmake -S . -B build/rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
  "-DSAGEATTN_SM90_HEAD_DIMS=128" -DSAGEATTN_BUILD_TESTS=OFF >"$out/cfg_rel.log" 2>&1 &&
  cmake --build build/rel --target sageattn_cli -j "$(nproc)" >"$out/build_rel.log" 2>&1 ||
  { tail -n 30 "$out/build_rel.log"; exit 1; }
for sl in default 200 600 1500; do
  e=(); [ "$sl" != default ] && e=(SAGEATTN_KV_QUANT_LEAD_SLACK=$sl)
  env "${e[@]}" timeout 60 build/rel/tools/sageattn bench --batch 8 --heads 32 --seqlen 4096 --head-dim 128 \
    --modes fp8 >"$out/rel_4k_$sl.log" 2>&1
  echo "rel 4k slack $sl rc=$?: $(grep -E '^fp8 ' "$out/rel_4k_$sl.log")"
done
echo "== $SECONDS s"
