#!/usr/bin/env bash
# The K/V quantizer's time on the device (bench/NOTES.md section 10): builds the CLI and the
# quantizer's GPU tests with the `device` preset, runs the tests, builds variant CLIs, then times
# `sageattn bench` on the N = 1K problems (B = 32, H = 32) for every (variant, environment)
# pair, interleaved over several rounds so that drift hits every pair alike. Prints one line per
# run: variant, environment, head dim, mode, quant_ms, quant%, kernel_ms, e2e_ms.
# Usage: scripts/quant_probe.sh
#   QP_VARIANTS="-DX=1|-DY=1"  extra CUDA flags, one build each (build/quant_probe<i>)
#   QP_ENVS="A=1 B=2|A=3"      environment settings tried with every build ('-': none)
#   QP_PROBLEMS="128:fp16 64:fp16"  head_dim:mode pairs; QP_ROUNDS=3 (0: no timing); QP_SEQLEN=1024
#   QP_NCU=1                   also profile the quantizer kernel with ncu per (environment, problem)
# Full logs under $OUT (or ./quant_probe_out).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/quant_probe_out}"; mkdir -p "$out"
b=build/device
cmake --preset device >"$out/configure.log" 2>&1 || { tail "$out/configure.log"; exit 1; }
cmake --build "$b" -j "$(nproc)" --target sageattn_cli test_gpu_quant >"$out/build.log" 2>&1 ||
  { tail -n 40 "$out/build.log"; exit 1; }
"$b/tests/test_gpu_quant" >"$out/test_gpu_quant.log" 2>&1
echo "test_gpu_quant rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/test_gpu_quant.log" | tr '\n' ' ')"
grep -E "^\[  FAILED" "$out/test_gpu_quant.log" | head -n 10
names=(main); bins=("$b/tools/sageattn")
IFS='|' read -r -a variants <<<"${QP_VARIANTS:-}"
for i in "${!variants[@]}"; do
  vb=build/quant_probe$i
  cmake -S . -B "$vb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    -DSAGEATTN_BUILD_TESTS=OFF "-DCMAKE_CUDA_FLAGS=${variants[$i]}" >>"$out/configure.log" 2>&1 &&
    cmake --build "$vb" -j "$(nproc)" --target sageattn_cli >"$out/build_variant$i.log" 2>&1 &&
    { names+=("v$i"); bins+=("$vb/tools/sageattn"); echo "v$i: ${variants[$i]}"; }
done
IFS='|' read -r -a envs <<<"${QP_ENVS:--}"
n="${QP_SEQLEN:-1024}"
echo "== variant env hd mode quant_ms quant% kernel_ms e2e_ms"
for round in $(seq "${QP_ROUNDS:-3}"); do
  for pm in ${QP_PROBLEMS:-128:fp16 64:fp16}; do
    hd="${pm%%:*}"; mode="${pm##*:}"
    for i in "${!bins[@]}"; do
      for e in "${envs[@]}"; do
        [ "$e" = - ] && e=""
        line=$(env $e "${bins[$i]}" bench --batch $((32768 / n)) --heads 32 --seqlen "$n" \
          --head-dim "$hd" --modes "$mode" --warmup 5 --iters 30 2>&1 | tee -a "$out/bench.log" |
          grep -E "^$mode ")
        # columns: mode cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kern_TFLOPS quant_ms quant%
        echo "r$round ${names[$i]} ${e:--} hd$hd $mode $(echo "$line" | awk '{print $10, $11, $8, $6}')"
      done
    done
  done
done | tee "$out/quant_probe.txt"
# QP_NCU=1: one ncu profile of the quantizer kernel per (environment, problem) with the main
# build: headline metrics printed, stall samples per SASS instruction saved (gzipped csv).
if [ "${QP_NCU:-0}" = 1 ]; then
  k=0
  for e in "${envs[@]}"; do
    [ "$e" = - ] && e=""
    for pm in ${QP_PROBLEMS:-128:fp16 64:fp16}; do
      hd="${pm%%:*}"; mode="${pm##*:}"; k=$((k + 1))
      echo "== ncu $k: ${e:--} hd$hd $mode"
      env $e ncu --clock-control none -k regex:kv_quant -c 1 --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
        --section MemoryWorkloadAnalysis --section SourceCounters -f -o "$out/ncu$k" \
        "$b/tools/sageattn" bench --batch $((32768 / n)) --heads 32 --seqlen "$n" --head-dim "$hd" \
        --modes "$mode" --warmup 0 --iters 1 >"$out/ncu$k.log" 2>&1
      ncu -i "$out/ncu$k.ncu-rep" --print-details all >"$out/ncu$k.txt" 2>&1
      grep -E "Duration|DRAM Throughput|L2 Cache Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|Block Limit (Reg|Shared)|Stall (Long|Short|Barrier|Wait|MIO|LG|Membar|Sleeping|Not Sel)|Warp Cycles Per Issued|Executed Instructions  |Cluster" "$out/ncu$k.txt" | head -n 30
      ncu -i "$out/ncu$k.ncu-rep" --page source --csv --print-source sass 2>/dev/null | gzip >"$out/ncu${k}_sass.csv.gz"
      rm -f "$out/ncu$k.ncu-rep"
    done
  done
fi
