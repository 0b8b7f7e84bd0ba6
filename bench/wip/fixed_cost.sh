#!/usr/bin/env bash
# bench/NOTES.md section 38 (twenty-eighth session): experiments on the sm90 kernel's fixed cost
# per tile against this tree's plain build, after that build's GPU test programs under
# compute-sanitizer (memcheck, racecheck: sanitize_variant.sh). Default variant:
#   -DSAGEATTN_SM90_Q_PREFETCH=1  the next CTA's Q rows prefetched into L2 by a producer warp.
# (-DSAGEATTN_SM90_O_STAGE=1, the other experiment of section 38, landed for hd128 fp8 in 1fa8751.)
# Device call from the repository root, no carry (~250 s on an H100). All builds start at once;
# the sanitizers run first (their summary printed as soon as they end), then the A/B with no
# sanitizer running: hd128 fp8 1K and 4K twice, interleaved (scripts/ab_probe.sh; bins ab_new0
# = the variant, ab_new1 = plain). FC_OLD=1 adds .probe/old as ab_old0 (carry [".probe"]).
# OS_FULL=1 adds fp16, 16K, hd64 4K and the first variant's tests (test_gpu_attention,
# test_gpu_hardening). OS_TRACE=1 adds the per-CTA probe (-DSAGEATTN_SM90_CTA_TRACE=1) of the
# plain and Q_PREFETCH builds at hd128 fp8 1K and 4K, one launch each (~+60 s; the plain probe
# build spills in fp8: read only its prologue and epilogue phases). FC_VARIANTS ("-Dx|-Dy|" with
# '' = plain), FC_PROBS, FC_MODES and FC_TESTS (1: the first variant's) override those;
# FC_SAN_FLAGS gives the sanitizers' build its flags (default none); FC_PEERS="<bench/peers.py
# arguments>" times the peers (torch SDPA backends) at the end.
set -uo pipefail
out="${OUT:-/tmp/fixed_cost_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
# sanitize_variant.sh's build (its own cmake run then finds nothing to do)
{ cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    "-DCMAKE_CUDA_FLAGS=${FC_SAN_FLAGS:-}" "-DCMAKE_CXX_FLAGS=${FC_SAN_FLAGS:-}" && cmake --build build/sanitize -j 10 --target test_gpu_attention \
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
  trace_build build/ctr_qpf "-DSAGEATTN_SM90_Q_PREFETCH=1" & trc+=($!)
fi
variants="${FC_VARIANTS:--DSAGEATTN_SM90_Q_PREFETCH=1|}"
modes=fp8 probs="128:1024:0 128:4096:0 128:1024:0 128:4096:0" tests=0
[ "${OS_FULL:-0}" = 1 ] && modes=fp8,fp16 probs="$probs 128:16384:0 64:4096:0" tests=1
probs="${FC_PROBS:-$probs}" modes="${FC_MODES:-$modes}" tests="${FC_TESTS:-$tests}"
# ab_probe.sh with no problem (AB_PROBS=" "): the builds (and OS_FULL's tests) in the background
( AB_OLD=${FC_OLD:-0} AB_TESTS=$tests AB_MODES=$modes AB_TIMEOUT=150 AB_BENCH_TIMEOUT=60 AB_PROBS=" " \
    AB_VARIANTS="$variants" OUT="$out/ab_build" bash scripts/ab_probe.sh >"$out/ab_build.log" 2>&1 ) &
abb=$!
wait "$pre"
OUT="$out/san" bash bench/wip/sanitize_variant.sh "${FC_SAN_FLAGS:-}" >"$out/sanitize.log" 2>&1
echo "== $SECONDS s: sanitizers (flags: ${FC_SAN_FLAGS:-none})"; tail -n 8 "$out/sanitize.log"
wait "$abb"; grep -E "rc=|FAILED|builds" "$out/ab_build.log"
AB_OLD=${FC_OLD:-0} AB_TESTS=0 AB_MODES=$modes AB_TIMEOUT=150 AB_BENCH_TIMEOUT=60 AB_PROBS="$probs" \
  AB_VARIANTS="$variants" OUT="$out/ab" bash scripts/ab_probe.sh 2>&1 | grep -E "^ab_|^== cos"
if [ "${OS_TRACE:-0}" = 1 ]; then
  wait "${trc[@]}"
  echo "== $SECONDS s: probe (per CTA: setup, prologue; per warpgroup: loop, epilogue; gap)"
  for pr in 1024:32 4096:8; do
    IFS=: read -r n b <<<"$pr"
    for v in plain qpf; do
      timeout 60 build/ctr_$v/tools/sageattn bench --batch "$b" --heads 32 --seqlen "$n" --head-dim 128 \
        --modes fp8 --warmup 1 --iters 1 >"$out/trace_${v}_$n.log" 2>&1
      echo "$v N=$n: $(grep 'sm90 cta trace' "$out/trace_${v}_$n.log" | tail -n 1 | cut -d'|' -f2-)"
    done
  done
fi
if [ -n "${FC_PEERS:-}" ]; then  # e.g. "--hd 128 --seqlens 1024 4096 16384 --causal 0": the peers, same shapes
  # shellcheck disable=SC2086
  timeout 200 python3 bench/peers.py --csv "$out/peers.csv" $FC_PEERS >"$out/peers.log" 2>&1
  echo "== $SECONDS s: peers rc=$?"; tail -n 20 "$out/peers.log"
fi
echo "== $SECONDS s"
