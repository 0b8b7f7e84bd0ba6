#!/usr/bin/env bash
# bench/NOTES.md Next 1(a) (twenty-seventh session): O stored through shared memory with 16-byte
# stores (-DSAGEATTN_SM90_O_STAGE=1) against this tree's plain build, and the plain build's GPU
# test programs under compute-sanitizer (memcheck, racecheck: sanitize_variant.sh). Device call
# from the repository root, no carry (~300 s on an H100): builds all three at once; then
# test_gpu_attention and test_gpu_hardening of the O_STAGE build (timed while no sanitizer
# runs), hd128 fp8/fp16 1K, 4K, 16K and
# hd64 4K for both builds (scripts/ab_probe.sh, AB_OLD=0), then the sanitizers; summaries last.
set -uo pipefail
out="${OUT:-/tmp/o_stage_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
# sanitize_variant.sh's build, started now so that its runs (after the timings) find it done
{ cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    "-DCMAKE_CUDA_FLAGS=" "-DCMAKE_CXX_FLAGS=" && cmake --build build/sanitize -j 8 --target test_gpu_attention \
    test_gpu_hardening test_gpu_numerics test_gpu_quant; } >"$out/sanitize_prebuild.log" 2>&1 &
pre=$!
AB_OLD=0 AB_TESTS=1 AB_MODES=fp8,fp16 AB_TIMEOUT=150 AB_BENCH_TIMEOUT=60 \
  AB_VARIANTS="-DSAGEATTN_SM90_O_STAGE=1|" AB_PROBS="128:1024:0 128:4096:0 128:1024:0 128:4096:0 128:16384:0 64:4096:0" \
  OUT="$out/ab" bash scripts/ab_probe.sh 2>&1 | grep -v "^ *1 ptxas warning"
wait "$pre"
OUT="$out/san" bash bench/wip/sanitize_variant.sh "" >"$out/sanitize.log" 2>&1
echo "== $SECONDS s: sanitizers (plain build)"; tail -n 10 "$out/sanitize.log"
