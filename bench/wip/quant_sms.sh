#!/usr/bin/env bash
# bench/NOTES.md section 40 (Next 1 of the thirtieth session): the ticket K/V quantizer's rate on
# part of the GPU, before the overlap design is built. One Release build of the CLI (build/qs,
# sm_90a), then hd128 fp8 at N = 1K and 4K (and hd64 4K) with the ticket kernel
# (SAGEATTN_KV_QUANT_CLUSTER=0) sized for k SMs (SAGEATTN_KV_QUANT_SMS=k), one CTA per SM
# (SAGEATTN_KV_QUANT_CTAS_PER_SM=1) and the default CTAs per SM (which spread over more SMs), k in
# QS_SMS (default "16 32 64 132"). From the repository root, no carry (~150 s on an H100). Reads:
# quant_ms of the split timing = T_q(k); bytes per SM-second = (K + V read + codes written) /
# (T_q x SMs used); the overlap's e2e penalty ~ T_q x k / SMs of the GPU (NOTES section 40).
set -uo pipefail
out="${OUT:-/tmp/quant_sms_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
b=build/qs
{ cmake -S . -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    -DSAGEATTN_BUILD_TESTS=OFF -DSAGEATTN_BUILD_PYTHON=OFF -DSAGEATTN_BUILD_FUZZ=OFF \
    "-DSAGEATTN_SM80_HEAD_DIMS=64;128" &&
  cmake --build "$b" -j "$(nproc)" --target sageattn_cli; } >"$out/build.log" 2>&1 ||
  { tail -n 30 "$out/build.log"; exit 1; }
echo "== build $SECONDS s"
echo "== per_sm sms hd N | mode cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS quant_ms quant%"
run() {  # run CTAS_PER_SM SMS HD N
  env SAGEATTN_KV_QUANT_CLUSTER=0 SAGEATTN_KV_QUANT_CTAS_PER_SM="$1" SAGEATTN_KV_QUANT_SMS="$2" \
    timeout 60 "$b/tools/sageattn" bench --batch $((32768 / $4)) --heads 32 --seqlen "$4" \
    --head-dim "$3" --modes fp8 --warmup 3 --iters 10 2>&1 | tee -a "$out/bench.log" |
    grep -E "^fp8 " | sed "s|^|$1 $2 hd$3 N=$4 \| |"
}
for n in 1024 4096; do
  for k in ${QS_SMS:-16 32 64 132}; do run 1 "$k" 128 "$n"; run "${QS_PER_SM:-4}" "$k" 128 "$n"; done
done
for k in ${QS_SMS:-16 32 64 132}; do run 1 "$k" 64 4096; done
echo "== $SECONDS s"
