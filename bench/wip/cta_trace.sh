#!/usr/bin/env bash
# bench/NOTES.md section 36: where the sm90 kernel's fixed ~9 us per CTA goes. Device call from the
# repository root (no carry; ~450 s on an H100 with the check, ~90 s with CT_CHECK=0):
#   bash bench/wip/cta_trace.sh
# 1. scripts/gpu_check.sh without its Python part (GPU_CHECK_PYTHON=0; CT_CHECK=0 skips it): the
#    whole GPU suite and its sanitizer runs on main, summary printed; logs in $OUT/check.
# 2. Meanwhile, a build with -DSAGEATTN_SM90_CTA_TRACE=1 (kernel.cuh: the per-CTA phases, timed
#    with the global timer and printed after each launch), then one launch per problem (warmup 1,
#    iters 1; the probe synchronizes, so its bench columns are not timings): hd128 fp8 1K, 4K,
#    16K, hd128 fp16 4K, hd64 fp8 4K, hd128 fp8 causal 4K. Prints the last trace line of each.
set -uo pipefail
out="${OUT:-/tmp/cta_trace_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
{ cmake -S . -B build/ctr -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    -DSAGEATTN_BUILD_TESTS=OFF -DSAGEATTN_BUILD_PYTHON=OFF -DSAGEATTN_BUILD_FUZZ=OFF \
    "-DCMAKE_CUDA_FLAGS=-DSAGEATTN_SM90_CTA_TRACE=1" &&
  cmake --build build/ctr -j "$([ "${CT_CHECK:-1}" = 1 ] && echo 6 || echo 16)" --target sageattn_cli; } >"$out/build_ctr.log" 2>&1 &
builder=$!
if [ "${CT_CHECK:-1}" = 1 ]; then
  GPU_CHECK_PYTHON=0 OUT="$out/check" bash scripts/gpu_check.sh >"$out/gpu_check.log" 2>&1
  echo "gpu_check rc=$?"; tail -n 22 "$out/gpu_check.log"
fi
wait "$builder" || { echo "trace build failed"; tail -n 20 "$out/build_ctr.log"; exit 1; }
echo "== $SECONDS s: trace (per CTA: setup, Q prologue, first K wait after it; per warpgroup: loop, epilogue; gap between CTAs)"
for pr in 128:1024:32:fp8:0 128:4096:8:fp8:0 128:16384:2:fp8:0 128:4096:8:fp16:0 64:4096:8:fp8:0 \
          128:4096:8:fp8:1; do
  IFS=: read -r hd n b mode causal <<<"$pr"
  c=""; [ "$causal" = 1 ] && c="--causal"
  timeout 60 build/ctr/tools/sageattn bench --batch "$b" --heads 32 --seqlen "$n" --head-dim "$hd" \
    --modes "$mode" $c --warmup 1 --iters 1 >"$out/trace_${hd}_${n}_${mode}_$causal.log" 2>&1
  echo "hd$hd N=$n $mode causal=$causal: $(grep 'sm90 cta trace' "$out/trace_${hd}_${n}_${mode}_$causal.log" | tail -n 1)"
done
echo "== $SECONDS s"
