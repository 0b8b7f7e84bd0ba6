#!/usr/bin/env bash
# bench/NOTES.md section 33, Next (twenty-fifth session) 1 and 2a in one device call: the fold
# chain's five steps on main, and quantize items that fold their head's group records themselves
# (-DSAGEATTN_KV_QUANT_SELF_FOLD=1, heads of <= 8 groups: N <= 4K at hd128) against main.
# Device call from the repository root (no carry; ~300 s on an H100, SF_LEAN=1 ~200 s):
#   bash bench/wip/self_fold.sh
# Prints, in order: test_gpu_quant of the variant; e2e / kernel / quant of main (m) and the
# variant (s), hd128 fp8 at 1K, 2K, 4K, 16K (16K does not self-fold: a control) and hd64 fp8 at
# 4K, two interleaved rounds; 4K at lead slack 300 and 600 for both; ncu of kv_quant_kernel at
# 4K (time, DRAM read, L2 hit rate); then the trace builds of both (SAGEATTN_KV_QUANT_TRACE=1):
# the chain, its steps and the quantize items' waits at 1K, 4K, 16K. SF_LEAN=1 skips hd64, the
# slacks and 2K.
set -uo pipefail
out="${OUT:-/tmp/self_fold_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
dims=("-DSAGEATTN_SM80_HEAD_DIMS=64;128")
cfg() {  # cfg DIR FLAGS TARGETS... (head dims: $dims)
  local dir=$1 flags=$2; shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    "${dims[@]}" "-DCMAKE_CUDA_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags" \
    >"$out/cfg_$(basename "$dir").log" 2>&1 &&
    cmake --build "$dir" -j 16 --target "$@" >"$out/build_$(basename "$dir").log" 2>&1 ||
    tail -n 20 "$out/build_$(basename "$dir").log"
}
cfg build/sf_m "" sageattn_cli & cfg build/sf_s "-DSAGEATTN_KV_QUANT_SELF_FOLD=1" sageattn_cli test_gpu_quant &
wait
echo "== build $SECONDS s"
timeout 120 build/sf_s/tests/test_gpu_quant >"$out/t_quant.log" 2>&1
echo "s test_gpu_quant rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/t_quant.log" | tr '\n' ' ')"
grep -E "^\[  FAILED" "$out/t_quant.log" | head -n 10
echo "== build problem mode cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS quant_ms quant%"
bench() {  # bench BUILD HD N B [env...]
  local v=$1 hd=$2 n=$3 b=$4; shift 4
  echo "$v hd$hd N=$n $* $(env "$@" timeout 40 build/$v/tools/sageattn bench --batch "$b" --heads 32 \
    --seqlen "$n" --head-dim "$hd" --modes fp8 --warmup 3 --iters 20 2>&1 | grep -E '^fp8 ')"
}
probs="128:1024:32 128:2048:16 128:4096:8 128:16384:2 64:4096:8"
[ "${SF_LEAN:-0}" = 1 ] && probs="128:1024:32 128:4096:8 128:16384:2"
for pr in $probs; do
  IFS=: read -r hd n b <<<"$pr"
  for v in sf_m sf_s sf_m sf_s; do bench $v "$hd" "$n" "$b"; done
done
if [ "${SF_LEAN:-0}" != 1 ]; then
  for sl in 300 600; do for v in sf_m sf_s; do bench $v 128 4096 8 SAGEATTN_KV_QUANT_LEAD_SLACK=$sl; done; done
fi
echo "== $SECONDS s"
for v in sf_m sf_s; do
  timeout 60 ncu --clock-control none -k regex:kv_quant_kernel -c 1 \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,lts__t_sector_hit_rate.pct \
    build/$v/tools/sageattn bench --batch 8 --heads 32 --seqlen 4096 --head-dim 128 --modes fp8 \
    --warmup 0 --iters 1 >"$out/ncu_$v.txt" 2>&1
  echo "ncu $v N=4096: $(grep -E '^ +(gpu__|dram__|lts__)' "$out/ncu_$v.txt" | awk '{print $1, $3, $2}' | tr '\n' ' ')"
done
echo "== $SECONDS s"
tr="-DSAGEATTN_KV_QUANT_TRACE=1"
dims=(-DSAGEATTN_SM80_HEAD_DIMS=128 -DSAGEATTN_SM90_HEAD_DIMS=128 -DSAGEATTN_BUILD_TESTS=OFF)
cfg build/sf_tm "$tr" sageattn_cli & cfg build/sf_ts "$tr -DSAGEATTN_KV_QUANT_SELF_FOLD=1" sageattn_cli &
wait
for v in sf_tm sf_ts; do
  for nb in 1024:32 4096:8 16384:2; do
    timeout 60 build/$v/tools/sageattn bench --batch "${nb#*:}" --heads 32 --seqlen "${nb%:*}" \
      --head-dim 128 --modes fp8 --warmup 1 --iters 2 >"$out/${v}_${nb%:*}.log" 2>&1
    echo "$v N=${nb%:*}: $(grep 'kv_quant trace' "$out/${v}_${nb%:*}.log" | tail -n 1)"
  done
done
echo "== $SECONDS s"
