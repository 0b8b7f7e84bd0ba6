#!/usr/bin/env bash
# bench/NOTES.md section 34: the fp8 V codes staged in shared memory and stored as whole 64-byte
# runs (-DSAGEATTN_KV_QUANT_V_STAGE=1) against main. Device call from the repository root (no
# carry; ~200 s on an H100): bash bench/wip/v_stage.sh
# Prints test_gpu_quant of the variant; e2e / kernel / quant of main (m) and the variant (v),
# hd128 fp8 1K, 4K, 16K and hd64 fp8 4K, two interleaved rounds; ncu of kv_quant_kernel at 1K and
# 4K (time, L2 write sectors, L2 fabric sectors, fabric busy, DRAM read); then, while the call has
# time (V_SAN=0 skips it), test_gpu_quant of the variant under memcheck and racecheck (quick mode).
# V_LEAN=1 (~120 s): 1K and 4K only, ncu at 1K only.
set -uo pipefail
out="${OUT:-/tmp/v_stage_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
cfg() {  # cfg DIR FLAGS TARGETS...
  local dir=$1 flags=$2; shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    "-DSAGEATTN_SM80_HEAD_DIMS=64;128" "-DCMAKE_CUDA_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags" \
    >"$out/cfg_$(basename "$dir").log" 2>&1 &&
    cmake --build "$dir" -j 16 --target "$@" >"$out/build_$(basename "$dir").log" 2>&1 ||
    tail -n 20 "$out/build_$(basename "$dir").log"
}
cfg build/vs_m "" sageattn_cli & cfg build/vs_v "-DSAGEATTN_KV_QUANT_V_STAGE=1" sageattn_cli test_gpu_quant &
wait
echo "== build $SECONDS s"
timeout 120 build/vs_v/tests/test_gpu_quant >"$out/t_quant.log" 2>&1
echo "v test_gpu_quant rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/t_quant.log" | tr '\n' ' ')"
grep -E "^\[  FAILED" "$out/t_quant.log" | head -n 10
echo "== build problem mode cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS quant_ms quant%"
bench() {  # bench BUILD HD N B
  echo "$1 hd$2 N=$3 $(timeout 40 build/$1/tools/sageattn bench --batch "$4" --heads 32 \
    --seqlen "$3" --head-dim "$2" --modes fp8 --warmup 3 --iters 20 2>&1 | grep -E '^fp8 ')"
}
probs="128:1024:32 128:4096:8 128:16384:2 64:4096:8"; ncus="1024_32 4096_8"
[ "${V_LEAN:-0}" = 1 ] && probs="128:1024:32 128:4096:8" && ncus="1024_32"
for pr in $probs; do
  IFS=: read -r hd n b <<<"$pr"
  for v in vs_m vs_v vs_m vs_v; do bench $v "$hd" "$n" "$b"; done
done
echo "== $SECONDS s"
for nb in $ncus; do
  for v in vs_m vs_v; do
    timeout 60 ncu --clock-control none -k regex:kv_quant_kernel -c 1 --metrics \
gpu__time_duration.sum,lts__t_sectors_srcunit_tex_op_write.sum,lts__t_sectors_srcunit_ltcfabric.sum,lts__ltcfabric2ltc_cycles_active.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum \
      build/$v/tools/sageattn bench --batch "${nb#*_}" --heads 32 --seqlen "${nb%_*}" --head-dim 128 \
      --modes fp8 --warmup 0 --iters 1 >"$out/ncu_${v}_$nb.txt" 2>&1
    echo "ncu $v N=${nb%_*}: $(grep -E '^ +(gpu__|dram__|lts__)' "$out/ncu_${v}_$nb.txt" | awk '{print $1, $3, $2}' | tr '\n' ' ')"
  done
done
echo "== $SECONDS s"
if [ "${V_SAN:-1}" = 1 ]; then
  exe=build/vs_v/tests/test_gpu_quant
  timeout 150 env SAGEATTN_TEST_QUICK=1 compute-sanitizer --tool memcheck --error-exitcode 1 "$exe" \
    >"$out/memcheck_quant.log" 2>&1
  echo "memcheck test_gpu_quant rc=$? $(grep -E 'ERROR SUMMARY' "$out/memcheck_quant.log" | tail -n 1)"
  timeout 200 env SAGEATTN_TEST_QUICK=1 compute-sanitizer --tool racecheck "$exe" \
    >"$out/racecheck_quant.log" 2>&1
  echo "racecheck test_gpu_quant rc=$? $(python3 scripts/racecheck_report.py "$out/racecheck_quant.log" 2>&1 | tail -n 1)"
  echo "== $SECONDS s"
fi
