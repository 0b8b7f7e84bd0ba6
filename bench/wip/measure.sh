#!/usr/bin/env bash
# The device measurement of bench/wip (NOTES section 26), ready for one device call from main:
#   git checkout -b wip/max-skip && git am bench/wip/max-skip/*.patch        (the variants)
#   git worktree add /tmp/qf main && (cd /tmp/qf && git am "$OLDPWD"/bench/wip/qfold/*.patch)
#   mkdir -p .probe/qfold && git -C /tmp/qf archive HEAD | tar -x -C .probe/qfold
#   device: bash bench/wip/measure.sh, carry [".probe"] (~300 s: builds, tests, A/B, lead slack; then ~300 s of sanitizers)
# new0 = stale (MAX_SKIP=2), new1 = kept (MAX_SKIP=1), new2 = plain; qf = the two-level fold.
cd "$(dirname "$0")/../.."
( cmake -S .probe/qfold -B build/qf -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real "-DSAGEATTN_SM80_HEAD_DIMS=64;128" >$OUT/cfg_qf.log 2>&1 &&
  cmake --build build/qf -j 16 --target sageattn_cli test_gpu_quant >$OUT/build_qf.log 2>&1 || tail -20 $OUT/build_qf.log ) &
AB_OLD=0 AB_TESTS=1 AB_TIMEOUT=100 AB_VARIANTS="-DSAGEATTN_SM90_MAX_SKIP=2|-DSAGEATTN_SM90_MAX_SKIP=1|" \
  AB_PROBS="128:16384:0 128:4096:0 64:16384:0 128:16384:1" AB_MODES=fp8 \
  bash scripts/ab_probe.sh 2>&1 | tee $OUT/ab.txt
wait
grep -E "late_max.*sm90" $OUT/test_gpu_attention.log | cut -c1-140
timeout 90 build/ab_new1/tests/test_gpu_attention > $OUT/t_new1.log 2>&1; echo "new1 test_gpu_attention rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/t_new1.log | tr '\n' ' ')"
timeout 100 build/qf/tests/test_gpu_quant > $OUT/t_qf_quant.log 2>&1; echo "qfold test_gpu_quant rc=$? $(grep -E '^\[  (PASSED|FAILED)' $OUT/t_qf_quant.log | tr '\n' ' ')"; grep -E "^\[  FAILED" $OUT/t_qf_quant.log | head
# lead slack at 4K, '' = the default (kv_quant.cu choose_lead): main (new2) against the fold (qf)
for s in '' 500 1500 99999; do for b in ab_new2 qf; do
  echo "slack ${s:-default} $b $(SAGEATTN_KV_QUANT_LEAD_SLACK=$s timeout 30 build/$b/tools/sageattn bench --batch 8 --heads 32 --seqlen 4096 --head-dim 128 --modes fp8 --warmup 3 --iters 20 2>&1 | grep '^fp8 ')"
done; done | tee $OUT/slack.txt
# sanitizers (quick mode): both variants' attention tests, racecheck of the stale one, the fold's quantizer
export SAGEATTN_TEST_QUICK=1
for t in "memcheck ab_new0/tests/test_gpu_attention" "memcheck ab_new1/tests/test_gpu_attention" \
         "racecheck ab_new0/tests/test_gpu_attention" "memcheck qf/tests/test_gpu_quant"; do
  read -r tool bin <<<"$t"; log=$OUT/${tool}_$(dirname "$(dirname "$bin")").log
  timeout 120 compute-sanitizer --tool "$tool" "build/$bin" >"$log" 2>&1
  echo "$tool $bin rc=$? $(grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED)' "$log" | tail -2 | tr '\n' ' ')"
done
python3 scripts/racecheck_report.py $OUT/racecheck_ab_new0.log | tail -6
