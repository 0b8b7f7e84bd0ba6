#!/usr/bin/env bash
# bench/NOTES.md section 39 (twenty-ninth session): the cluster K/V quantizer (kv_quant.h) on the
# device, in one call from the repository root, no carry (~300 s on an H100 in full):
#   1. one Release build (build/sanitize, the sanitizers' build: default flags, sm_90a) of the GPU
#      test programs and the CLI; CQ_TRACE=1 also builds the CLI with
#      -DSAGEATTN_KV_QUANT_CLUSTER_TRACE=1 (build/cq_trace) alongside;
#   2. test_gpu_quant in full mode (both kernels on every case), test_gpu_attention and
#      test_gpu_hardening (the automatic path: the cluster kernel wherever a head fits);
#   3. hd128 fp8 N = 1K / 4K / 16K, the cluster kernel (SAGEATTN_KV_QUANT_CLUSTER=1: wherever it
#      fits) against the ticket kernel (=0) interleaved, twice; hd64 4K, hd128 fp16 1K (the ticket
#      kernel's early_v, where the automatic choice keeps it) and 4K, hd256 fp8 1K once each
#      (CQ_LEAN=1: hd128 fp8 1K / 4K, hd64 4K and hd128 fp16 1K once); with CQ_TRACE=1 the
#      per-CTA phases of the cluster kernel at hd128 1K / 4K and hd64 4K;
#   4. ncu of both quantizers at hd128 4K: duration, DRAM bytes read / written, DRAM throughput
#      (not with CQ_LEAN=1);
#   5. memcheck and racecheck (quick mode) of the four GPU test programs (sanitize_variant.sh), or
#      of test_gpu_quant alone with CQ_LEAN=1.
# CQ_LEAN=2: as CQ_LEAN=1 but builds and runs test_gpu_quant alone (no attention / hardening
# tests): the smallest call that can land a quantizer-only change (~200 s).
# CQ_SMS="16 32 64": after step 3, the ticket kernel sized for k SMs with one CTA per SM
# (SAGEATTN_KV_QUANT_SMS=k SAGEATTN_KV_QUANT_CTAS_PER_SM=1), hd128 fp8 1K / 4K: quant_sms.sh's
# figure from the same build, so that one call serves both (NOTES section 40).
# CQ_ALT_SRC=FILE (a file in the tree, e.g. an ignored .probe/ file named in the call's carry) also
# builds the CLI from a copy of the tree whose src/quant/kv_quant.cu is FILE (build in /tmp/cq_alt)
# and times it (cluster kernel) beside the tree's own in step 3: an A/B of two kernel versions.
# Logs under $OUT; summary lines as it goes.
set -uo pipefail
out="${OUT:-/tmp/cluster_quant_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
lean="${CQ_LEAN:-0}"
b=build/sanitize
if [ "${CQ_TRACE:-0}" = 1 ]; then
  { cmake -S . -B build/cq_trace -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
      -DSAGEATTN_BUILD_TESTS=OFF -DSAGEATTN_BUILD_PYTHON=OFF -DSAGEATTN_BUILD_FUZZ=OFF \
      "-DSAGEATTN_SM80_HEAD_DIMS=64;128" "-DCMAKE_CUDA_FLAGS=-DSAGEATTN_KV_QUANT_CLUSTER_TRACE=1" &&
    cmake --build build/cq_trace -j 6 --target sageattn_cli; } >"$out/build_trace.log" 2>&1 &
  trace_pid=$!
fi
if [ -n "${CQ_ALT_SRC:-}" ]; then
  alt=/tmp/cq_alt; rm -rf "$alt"; mkdir -p "$alt"
  tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$alt"
  cp "$CQ_ALT_SRC" "$alt/src/quant/kv_quant.cu"
  { cmake -S "$alt" -B "$alt/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
      -DSAGEATTN_BUILD_TESTS=OFF -DSAGEATTN_BUILD_PYTHON=OFF -DSAGEATTN_BUILD_FUZZ=OFF \
      "-DSAGEATTN_SM80_HEAD_DIMS=64;128" "-DCMAKE_CUDA_FLAGS=" &&
    cmake --build "$alt/build" -j 6 --target sageattn_cli; } >"$out/build_alt.log" 2>&1 &
  alt_pid=$!
fi
cmake -S . -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
  "-DCMAKE_CUDA_FLAGS=" "-DCMAKE_CXX_FLAGS=" $([ "$lean" = 2 ] && echo "-DSAGEATTN_SM80_HEAD_DIMS=64;128") \
  >"$out/configure.log" 2>&1 &&
  cmake --build "$b" -j "$(nproc)" --target $([ "$lean" = 2 ] && echo test_gpu_quant ||
    echo test_gpu_attention test_gpu_hardening test_gpu_numerics test_gpu_quant) sageattn_cli >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log"; exit 1; }
grep -E "spill stores" "$out/build.log" | grep -c kv_quant_cluster | sed 's/^/cluster kernels with spills: /'
echo "== build $SECONDS s"
for t in test_gpu_quant $([ "$lean" = 2 ] || echo test_gpu_attention test_gpu_hardening); do
  timeout 240 "$b/tests/$t" >"$out/$t.log" 2>&1
  echo "$t rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/$t.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED" "$out/$t.log" | head -n 20
done
grep -E "cluster kernel: " "$out/test_gpu_quant.log" | sed 's/.*cluster kernel: //' | sort | uniq -c | head -n 5
echo "== tests $SECONDS s"
echo "== path cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS quant_ms quant%"
bin=$b/tools/sageattn; tag=""
if [ -n "${CQ_ALT_SRC:-}" ]; then
  wait "$alt_pid" || tail -n 20 "$out/build_alt.log"
  echo "== alt build $SECONDS s"
fi
bench() {  # bench CLUSTER HD N MODES (with $bin, lines tagged $tag)
  SAGEATTN_KV_QUANT_CLUSTER=$1 timeout 60 "$bin" bench --batch $((32768 / $3)) --heads 32 \
    --seqlen "$3" --head-dim "$2" --modes "$4" --warmup 3 --iters 10 2>&1 | tee -a "$out/bench.log" |
    grep -E "^(fp16|fp8) " | sed "s|^|$([ "$1" = 0 ] && echo tickets || echo cluster)$tag hd$2 N=$3  |"
}
alt_bench() {  # the same with the CQ_ALT_SRC build, cluster kernel
  [ -n "${CQ_ALT_SRC:-}" ] || return 0
  bin=/tmp/cq_alt/build/tools/sageattn tag="-alt" bench 1 "$@"; bin=$b/tools/sageattn tag=""
}
if [ "$lean" != 0 ]; then
  for rep in 1 2; do
    for n in 1024 4096; do for c in 1 0; do bench "$c" 128 "$n" fp8; done; alt_bench 128 "$n" fp8; done
  done
  for c in 1 0; do bench "$c" 64 4096 fp8; bench "$c" 128 1024 fp16; done
  alt_bench 64 4096 fp8
else
  for rep in 1 2; do
    for n in 1024 4096 16384; do
      for c in 1 0; do bench "$c" 128 "$n" fp8; done
      [ "$n" = 16384 ] || alt_bench 128 "$n" fp8
    done
  done
  for c in 1 0; do
    bench "$c" 64 4096 fp8; bench "$c" 128 1024 fp16; bench "$c" 128 4096 fp16; bench "$c" 256 1024 fp8
  done
  alt_bench 64 4096 fp8; alt_bench 256 1024 fp8
fi
for k in ${CQ_SMS:-}; do
  for n in 1024 4096; do
    SAGEATTN_KV_QUANT_SMS=$k SAGEATTN_KV_QUANT_CTAS_PER_SM=1 bench 0 128 "$n" fp8 | sed "s|^tickets|tickets-sms$k|"
  done
done
echo "== bench $SECONDS s"
if [ "${CQ_TRACE:-0}" = 1 ]; then
  wait "$trace_pid" || tail -n 20 "$out/build_trace.log"
  for pr in 128:1024 128:4096 64:4096; do
    IFS=: read -r hd n <<<"$pr"
    timeout 60 build/cq_trace/tools/sageattn bench --batch $((32768 / n)) --heads 32 --seqlen "$n" \
      --head-dim "$hd" --modes fp8 --warmup 1 --iters 2 >"$out/trace_${hd}_$n.log" 2>&1
    grep "cluster trace" "$out/trace_${hd}_$n.log" | tail -n 2  # (per tensor on wip/cluster-fold)
  done
fi
if [ "$lean" = 0 ]; then
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
else
  e=$b/tests/test_gpu_quant
  env SAGEATTN_TEST_QUICK=1 compute-sanitizer --tool memcheck --error-exitcode 1 "$e" >"$out/memcheck_quant.log" 2>&1
  echo "memcheck test_gpu_quant rc=$? $(grep -E 'ERROR SUMMARY' "$out/memcheck_quant.log" | tail -n 1)"
  env SAGEATTN_TEST_QUICK=1 compute-sanitizer --tool racecheck "$e" >"$out/racecheck_quant.log" 2>&1
  echo "racecheck test_gpu_quant rc=$? report: $(python3 scripts/racecheck_report.py "$out/racecheck_quant.log" 2>&1 | tail -n 1)"
fi
echo "== $SECONDS s"
