#!/usr/bin/env bash
# A short performance probe for the device (bench/NOTES.md iterations): builds the program, the
# instruction-ceiling tool and the GPU attention tests with the `device` preset, runs the GPU
# tests, prints the instruction ceilings, times a few standard problems, writes the SASS opcode
# histogram of one kernel, and profiles one attention launch with ncu (--clock-control none).
# Usage: scripts/perf_probe.sh [ncu_hd=128] [ncu_mode=fp16] [ncu_seqlen=8192]
#   PROBE_TESTS=0 skips the GPU tests; PROBE_DEFS="-DX=1 ..." adds CUDA flags to the main build
#   (tests, timings and ncu then see that variant); PROBE_EXTRA_DEFS="-DX=1 ...|-DY=1" builds
#   more variants (build/probe_extra<i>) and times them too. PROBE_NCU=0 skips the attention
#   profile; PROBE_QUANT=1 profiles the K/V quantizer at N = 1K (DRAM bytes, L2 hit rate).
# Full logs under $OUT (or ./perf_probe_out); a short summary is printed.
set -uo pipefail
cd "$(dirname "$0")/.."
ncu_hd="${1:-128}"; ncu_mode="${2:-fp16}"; ncu_n="${3:-8192}"
out="${OUT:-$PWD/perf_probe_out}"; mkdir -p "$out"
b=build/device
cmake --preset device "-DCMAKE_CUDA_FLAGS=${PROBE_DEFS:-}" >"$out/configure.log" 2>&1 || { tail "$out/configure.log"; exit 1; }
targets=(sageattn_cli sageattn_mma_peak)
[ "${PROBE_TESTS:-1}" = 1 ] && targets+=(test_gpu_attention test_gpu_quant)
cmake --build "$b" -j "$(nproc)" --target "${targets[@]}" >"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; exit 1; }
grep -E "spill" "$out/build.log" | sed 's/ptxas warning : //' | head -n 20
if [ "${PROBE_TESTS:-1}" = 1 ]; then
  echo "== GPU tests"
  for t in test_gpu_attention test_gpu_quant; do
    "$b/tests/$t" >"$out/$t.log" 2>&1; echo "$t rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/$t.log" | tr '\n' ' ')"
    grep -E "^\[  FAILED" "$out/$t.log" | head -n 10
  done
fi
bins=("$b/tools/sageattn")
# PROBE_EXTRA_DEFS: one variant's CUDA flags, or several separated by '|' (build/probe_extra<i>).
IFS='|' read -r -a variants <<<"${PROBE_EXTRA_DEFS:-}"
for i in "${!variants[@]}"; do
  vb=build/probe_extra$i
  echo "== variant $i: ${variants[$i]}"
  cmake -S . -B "$vb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    -DSAGEATTN_BUILD_TESTS=OFF "-DCMAKE_CUDA_FLAGS=${variants[$i]}" >>"$out/configure.log" 2>&1 &&
    cmake --build "$vb" -j "$(nproc)" --target sageattn_cli >"$out/build_extra$i.log" 2>&1 &&
    bins+=("$vb/tools/sageattn")
  grep -E "spill" "$out/build_extra$i.log" | sed 's/ptxas warning : //' | head -n 10
done
echo "== instruction ceilings"
"$b/tools/sageattn_mma_peak" | tee "$out/mma_peak.txt"
echo "== timings: cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS"
for bin in "${bins[@]}"; do
  for hd in 64 128; do
    for n in 1024 16384; do
      "$bin" bench --batch $((32768 / n)) --heads 32 --seqlen "$n" --head-dim "$hd" --modes fp16,fp8 \
        --warmup 3 --iters 10 2>&1 | tee -a "$out/bench.log" | grep -E "^(fp16|fp8) " | sed "s|^|$(basename "$(dirname "$(dirname "$bin")")") hd$hd N=$n  |"
    done
  done
done
# SASS opcode histogram of the profiled kernel (the main loop dominates the static count too).
mode_id=$(case "$ncu_mode" in fp16) echo 1;; fp8) echo 2;; *) echo 3;; esac)
fn="_ZN8sageattn4sm8016attention_kernelILi${ncu_hd}ELNS_6PvModeE${mode_id}EEEvNS0_12KernelParamsE"
cuobjdump -sass -fun "$fn" "$b/libsageattn.a" >"$out/sass.txt" 2>&1
awk '/^ +\/\*[0-9a-f]+\*\// {op=$2; if (op ~ /^@/) op=$3; sub(/\..*/, "", op); sub(/;$/, "", op); n[op]++} END {for (o in n) print n[o], o}' \
  "$out/sass.txt" | sort -rn >"$out/sass_hist.txt"
echo "== SASS opcode histogram (static), $fn"; head -n 25 "$out/sass_hist.txt" | tr '\n' ' '; echo
if [ "${PROBE_QUANT:-0}" = 1 ]; then
  for hd in 128 64; do
    for mode in fp16 fp8; do
      echo "== ncu: K/V quantizer, hd $hd, N = 1K, B = 32, H = 32, $mode"
      ncu --clock-control none -k regex:kv_quant -c 1 --section SpeedOfLight --section Occupancy \
        --metrics dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,lts__t_sectors_srcunit_tex_op_read_lookup_hit.sum,lts__t_sectors_srcunit_tex_op_read.sum,gpu__time_duration.sum,smsp__warp_issue_stalled_sleeping_per_warp_active.pct \
        "$b/tools/sageattn" bench --batch 32 --heads 32 --seqlen 1024 --head-dim "$hd" --modes "$mode" \
        --warmup 0 --iters 1 >"$out/ncu_quant_hd${hd}_$mode.txt" 2>&1
      grep -E "dram__bytes|lts__t_sector|gpu__time_duration|sleeping|Achieved Occupancy|Memory Throughput|DRAM Throughput|Registers Per|Block Limit" "$out/ncu_quant_hd${hd}_$mode.txt" | head -n 14
    done
  done
fi
[ "${PROBE_NCU:-1}" = 1 ] || exit 0
echo "== ncu: hd $ncu_hd, N = $ncu_n, mode $ncu_mode"
ncu --clock-control none -k regex:attention_kernel -c 1 \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
  --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
  --metrics smsp__inst_executed_op_local_ld.sum,smsp__inst_executed_op_local_st.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,smsp__inst_executed.sum \
  --print-details all \
  "$b/tools/sageattn" bench --batch $((32768 / ncu_n)) --heads 32 --seqlen "$ncu_n" --head-dim "$ncu_hd" --modes "$ncu_mode" \
  --warmup 0 --iters 1 >"$out/ncu.txt" 2>&1
grep -E "Duration|SM Frequency|Registers Per|Achieved Occupancy|Issue Slots Busy|Executed Ipc A|Tensor \((FP|INT)\)|Pipe Shared Cycles|Stall (Short|Wait|Long|MIO|Math|Barrier|Not Sel|Dispatch)|local_ld|local_st|inst_executed.sum|Warp Cycles Per Issued|mem_shared.sum" "$out/ncu.txt" | head -n 40
# PROBE_SOURCE=1: where the warps of the profiled kernel stall, per SASS instruction (ncu's source
# page: sampled stall reasons next to each instruction), gzipped to $out/source_sass.csv.gz.
if [ "${PROBE_SOURCE:-0}" = 1 ]; then
  echo "== ncu source counters: hd $ncu_hd, N = $ncu_n, mode $ncu_mode"
  ncu --clock-control none -k regex:attention_kernel -c 1 --section SourceCounters --section WarpStateStats \
    -f -o "$out/source" "$b/tools/sageattn" bench --batch $((32768 / ncu_n)) --heads 32 --seqlen "$ncu_n" \
    --head-dim "$ncu_hd" --modes "$ncu_mode" --warmup 0 --iters 1 >"$out/ncu_source.log" 2>&1
  ncu -i "$out/source.ncu-rep" --page source --csv --print-source sass 2>&1 | gzip >"$out/source_sass.csv.gz"
  rm -f "$out/source.ncu-rep"
  echo "source page: $(zcat "$out/source_sass.csv.gz" | wc -l) lines"; zcat "$out/source_sass.csv.gz" | head -n 2 | cut -c 1-600
fi
