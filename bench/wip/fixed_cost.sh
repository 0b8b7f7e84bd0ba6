#!/usr/bin/env bash
# bench/NOTES.md Next 0-1 (twenty-seventh session): two experiments on the sm90 kernel's fixed
# cost per tile against this tree's plain build, and the plain build's GPU test programs under
# compute-sanitizer (memcheck, racecheck: sanitize_variant.sh):
#   -DSAGEATTN_SM90_O_STAGE=1    O stored through shared memory with 16-byte stores (Next 1(a));
#   -DSAGEATTN_SM90_Q_PREFETCH=1 the next CTA's Q rows prefetched into L2 by a producer warp (1(d)).
# Device call from the repository root, no carry (~280 s on an H100). All builds start at once;
# the sanitizers run first (their summary printed as soon as they end), then the A/B (no
# sanitizer running): hd128 fp8 1K and 4K twice, interleaved (scripts/ab_probe.sh, AB_OLD=0, or FC_OLD=1 for .probe/old as ab_old0 (carry [".probe"]);
# bins: ab_new0 = O_STAGE, ab_new1 = Q_PREFETCH, ab_new2 = plain). OS_FULL=1 adds fp16, 16K,
# hd64 4K and the tests of the first variant (O_STAGE): test_gpu_attention and
# test_gpu_hardening (~380 s). OS_TRACE=1 adds the per-CTA probe (-DSAGEATTN_SM90_CTA_TRACE=1) of
# the three builds at hd128 fp8 1K and 4K, one launch each: the prologue and epilogue phases
# (~+80 s; the plain and O_STAGE probe builds spill in fp8, 80 and 48 bytes (ptxas, locally),
# the Q_PREFETCH one does not: read only those phases). The Q_PREFETCH variant's own tests and
# sanitizers are for a later call, if it wins.
set -uo pipefail
out="${OUT:-/tmp/fixed_cost_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
# sanitize_variant.sh's build (its own cmake run then finds nothing to do)
{ cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    "-DCMAKE_CUDA_FLAGS=" "-DCMAKE_CXX_FLAGS=" && cmake --build build/sanitize -j 10 --target test_gpu_attention \
    test_gpu_hardening test_gpu_numerics test_gpu_quant; } >"$out/sanitize_prebuild.log" 2>&1 &
pre=$!
trace_build() {  # trace_build DIR FLAGS
  { cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
      -DSAGEATTN_BUILD_TESTS=OFF -DSAGEATTN_BUILD_PYTHON=OFF -DSAGEATTN_BUILD_FUZZ=OFF \
      "-DSAGEATTN_SM80_HEAD_DIMS=64;128" "-DCMAKE_CUDA_FLAGS=-DSAGEATTN_SM90_CTA_TRACE=1 $2" &&
    cmake --build "$1" -j 4 --target sageattn_cli; } >"$out/build_$(basename "$1").log" 2>&1
}
trc=()
if [ "${OS_TRACE:-0}" = 1 ]; then
  trace_build build/ctr_plain "" & trc+=($!)
  trace_build build/ctr_ostage "-DSAGEATTN_SM90_O_STAGE=1" & trc+=($!)
  trace_build build/ctr_qpf "-DSAGEATTN_SM90_Q_PREFETCH=1" & trc+=($!)
fi
variants="-DSAGEATTN_SM90_O_STAGE=1|-DSAGEATTN_SM90_Q_PREFETCH=1|"
modes=fp8 probs="128:1024:0 128:4096:0 128:1024:0 128:4096:0" tests=0
[ "${OS_FULL:-0}" = 1 ] && modes=fp8,fp16 probs="$probs 128:16384:0 64:4096:0" tests=1
# ab_probe.sh with no problem (AB_PROBS=" "): the builds (and OS_FULL's tests) in the background
( AB_OLD=${FC_OLD:-0} AB_TESTS=$tests AB_MODES=$modes AB_TIMEOUT=150 AB_BENCH_TIMEOUT=60 AB_PROBS=" " \
    AB_VARIANTS="$variants" OUT="$out/ab_build" bash scripts/ab_probe.sh >"$out/ab_build.log" 2>&1 ) &
abb=$!
wait "$pre"
OUT="$out/san" bash bench/wip/sanitize_variant.sh "" >"$out/sanitize.log" 2>&1
echo "== $SECONDS s: sanitizers (plain build)"; tail -n 8 "$out/sanitize.log"
wait "$abb"; grep -E "rc=|FAILED|builds" "$out/ab_build.log"
AB_OLD=${FC_OLD:-0} AB_TESTS=0 AB_MODES=$modes AB_TIMEOUT=150 AB_BENCH_TIMEOUT=60 AB_PROBS="$probs" \
  AB_VARIANTS="$variants" OUT="$out/ab" bash scripts/ab_probe.sh 2>&1 | grep -E "^ab_|^== cos"
if [ "${OS_TRACE:-0}" = 1 ]; then
  wait "${trc[@]}"
  echo "== $SECONDS s: probe (per CTA: setup, prologue; per warpgroup: loop, epilogue; gap)"
  for pr in 1024:32 4096:8; do
    IFS=: read -r n b <<<"$pr"
    for v in plain ostage qpf; do
      timeout 60 build/ctr_$v/tools/sageattn bench --batch "$b" --heads 32 --seqlen "$n" --head-dim 128 \
        --modes fp8 --warmup 1 --iters 1 >"$out/trace_${v}_$n.log" 2>&1
      echo "$v N=$n: $(grep 'sm90 cta trace' "$out/trace_${v}_$n.log" | tail -n 1 | cut -d'|' -f2-)"
    done
  done
fi
echo "== $SECONDS s"
