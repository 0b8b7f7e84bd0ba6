#!/usr/bin/env bash
# bench/NOTES.md section 39 (twenty-ninth session): the cluster K/V quantizer (kv_quant.h) on the
# device, in one call from the repository root, no carry (~300 s on an H100):
#   1. one Release build (build/sanitize, the sanitizers' build: default flags, sm_90a) of the GPU
#      test programs and the CLI;
#   2. test_gpu_quant in full mode (both kernels on every case), test_gpu_attention and
#      test_gpu_hardening (the automatic path: the cluster kernel wherever a head fits);
#   3. hd128 fp8 N = 1K / 4K / 16K, the cluster kernel (default) against the ticket kernel
#      (SAGEATTN_KV_QUANT_CLUSTER=0) interleaved, twice; hd64 4K and hd128 fp16 4K once each;
#   4. ncu of both quantizers at hd128 4K: duration, DRAM bytes read / written, DRAM throughput;
#   5. memcheck and racecheck of the four GPU test programs (sanitize_variant.sh, quick mode).
# CQ_LEAN=1 skips 4 and 5. Logs under $OUT; summary lines as it goes.
set -uo pipefail
out="${OUT:-/tmp/cluster_quant_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
b=build/sanitize
cmake -S . -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
  "-DCMAKE_CUDA_FLAGS=" "-DCMAKE_CXX_FLAGS=" >"$out/configure.log" 2>&1 &&
  cmake --build "$b" -j "$(nproc)" --target test_gpu_attention test_gpu_hardening test_gpu_numerics \
    test_gpu_quant sageattn_cli >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log"; exit 1; }
grep -E "spill stores" "$out/build.log" | grep -c kv_quant_cluster | sed 's/^/cluster kernels with spills: /'
echo "== build $SECONDS s"
for t in test_gpu_quant test_gpu_attention test_gpu_hardening; do
  timeout 240 "$b/tests/$t" >"$out/$t.log" 2>&1
  echo "$t rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED)' "$out/$t.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED" "$out/$t.log" | head -n 20
done
grep -E "cluster kernel: " "$out/test_gpu_quant.log" | sort | uniq -c | head -n 5
echo "== tests $SECONDS s"
echo "== path cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS quant_ms quant%"
bench() {  # bench CLUSTER HD N MODES
  SAGEATTN_KV_QUANT_CLUSTER=$1 timeout 60 "$b/tools/sageattn" bench --batch $((32768 / $3)) --heads 32 \
    --seqlen "$3" --head-dim "$2" --modes "$4" --warmup 3 --iters 10 2>&1 | tee -a "$out/bench.log" |
    grep -E "^(fp16|fp8) " | sed "s|^|$([ "$1" = 0 ] && echo tickets || echo cluster) hd$2 N=$3  |"
}
for rep in 1 2; do
  for n in 1024 4096 16384; do for c in 1 0; do bench "$c" 128 "$n" fp8; done; done
done
for c in 1 0; do bench "$c" 64 4096 fp8; bench "$c" 128 4096 fp16; done
echo "== bench $SECONDS s"
[ "${CQ_LEAN:-0}" = 1 ] && exit 0
for c in 1 0; do
  SAGEATTN_KV_QUANT_CLUSTER=$c timeout 120 ncu --clock-control none -k regex:kv_quant -c 2 \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,sm__warps_active.avg.pct_of_peak_sustained_active \
    "$b/tools/sageattn" bench --batch 8 --heads 32 --seqlen 4096 --head-dim 128 --modes fp8 --warmup 0 \
    --iters 1 >"$out/ncu_quant_$c.txt" 2>&1
  echo "ncu cluster=$c rc=$?"; grep -E "kv_quant|duration|bytes|throughput|warps_active" "$out/ncu_quant_$c.txt" | tail -n 7
done
echo "== ncu $SECONDS s"
OUT="$out/san" bash bench/wip/sanitize_variant.sh "" >"$out/sanitize.log" 2>&1
tail -n 8 "$out/sanitize.log"
echo "== $SECONDS s"
