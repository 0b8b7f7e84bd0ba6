#!/usr/bin/env bash
# bench/NOTES.md section 29, Next 0: the K/V quantizer's stats-pass loads with L2 evict_last (e1,
# -DSAGEATTN_KV_QUANT_STATS_EVICT_LAST=1) and 5 CTAs per SM at hd128 (e5,
# -DSAGEATTN_KV_QUANT_CTAS_128=5) against main (e0), hd128 fp8.
# Device call from the repository root (no carry needed): bash bench/wip/evict_last.sh
# Prints: test_gpu_quant of e1 and e5; e2e / kernel / quant per build at 4K (B=8), 1K (B=32),
# 16K (B=2), each build twice, interleaved; e1 at 4K with slack 700 and 3000; ncu of kv_quant_kernel per
# build (time, DRAM bytes read, L2 hit rate) at 4K and 16K; ncu warp stalls of e0's
# kv_quant_kernel at 1K. ~180 s on an H100.
set -uo pipefail
out="${OUT:-/tmp/evict_last_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.sm,driver_version --format=csv,noheader
cfg() {  # cfg DIR CUDA_FLAGS
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    "-DSAGEATTN_SM80_HEAD_DIMS=64;128" "-DCMAKE_CUDA_FLAGS=$2" >"$out/cfg_$(basename "$1").log" 2>&1 &&
    cmake --build "$1" -j 16 --target sageattn_cli test_gpu_quant >"$out/build_$(basename "$1").log" 2>&1 ||
    tail -n 20 "$out/build_$(basename "$1").log"
}
cfg build/e0 "" & cfg build/e1 "-DSAGEATTN_KV_QUANT_STATS_EVICT_LAST=1" &
cfg build/e5 "-DSAGEATTN_KV_QUANT_CTAS_128=5" & wait
echo "== build $SECONDS s"
for v in e1 e5; do
  timeout 60 build/$v/tests/test_gpu_quant >"$out/t_$v.log" 2>&1
  echo "$v test_gpu_quant rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/t_$v.log" | tr '\n' ' ')"
done
echo "== build problem mode cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS quant_ms quant%"
for nb in 4096:8 1024:32 16384:2; do
  n=${nb%:*} b=${nb#*:}
  for v in e0 e1 e5 e0 e1 e5; do
    echo "$v N=$n $(timeout 40 build/$v/tools/sageattn bench --batch "$b" --heads 32 --seqlen "$n" \
      --head-dim 128 --modes fp8 --warmup 3 --iters 20 2>&1 | grep '^fp8 ')"
  done
done
# With evict-last the best lead may move: e1 at 4K with a shorter and a longer slack.
for sl in 700 3000; do
  echo "e1 N=4096 slack $sl $(SAGEATTN_KV_QUANT_LEAD_SLACK=$sl timeout 40 build/e1/tools/sageattn bench \
    --batch 8 --heads 32 --seqlen 4096 --head-dim 128 --modes fp8 --warmup 3 --iters 20 2>&1 | grep '^fp8 ')"
done
ncu_q() {  # ncu_q BUILD N B ARGS...
  local v=$1 n=$2 b=$3; shift 3
  timeout 60 ncu --clock-control none -k regex:kv_quant_kernel -c 1 "$@" build/$v/tools/sageattn bench \
    --batch "$b" --heads 32 --seqlen "$n" --head-dim 128 --modes fp8 --warmup 0 --iters 1
}
for nb in 4096:8 16384:2; do
  for v in e0 e1; do
    ncu_q $v ${nb%:*} ${nb#*:} --metrics gpu__time_duration.sum,dram__bytes_read.sum,lts__t_sector_hit_rate.pct \
      >"$out/ncu_${v}_${nb%:*}.txt" 2>&1
    echo "ncu $v N=${nb%:*}: $(grep -E '^ +(gpu__|dram__|lts__)' "$out/ncu_${v}_${nb%:*}.txt" | awk '{print $1, $3, $2}' | tr '\n' ' ')"
  done
done
ncu_q e0 1024 32 --section WarpStateStats --section SchedulerStats >"$out/ncu_stalls_1k.txt" 2>&1
grep -E "Stall|No Eligible|Issue Slots|Warp Cycles" "$out/ncu_stalls_1k.txt" | head -n 24
echo "== $SECONDS s"
