#!/usr/bin/env bash
# bench/NOTES.md section 37: the Q prologue with fewer instructions (amax on the raw 16-bit
# patterns, two per word; one division per row into a table; codes without the clamp and NaN
# test; the q_grp table without integer divisions; STS for the codes). Device call from the
# repository root, carry [".probe"], after
#   rm -rf .probe/old && mkdir -p .probe/old && git archive <main before the change> | tar -x -C .probe/old
# (~250 s on an H100). Prints: scripts/ab_probe.sh with the old tree and this one,
# test_gpu_attention and test_gpu_hardening of this tree, fp8 and fp16 at hd128 1K / 4K / 16K,
# hd64 4K and causal 4K, the 1K and 4K rows twice (interleaved rounds); then the per-CTA probe
# (-DSAGEATTN_SM90_CTA_TRACE=1) of both trees at hd128 1K and 4K (one launch each, warmup 1: its
# bench columns are not timings). QP_LEAN=1 (~170 s): fp8 only, no second round, no hd64/causal.
# QP_SM80=1: then hd64 / hd128 / hd256 at 4K on the sm80 backend (its kernels built for 64, 128
# and 256), since the prologue is theirs too. QP_TRACE=0: no probe. QP_VARIANTS: more builds of this
# tree for the A/B (ab_probe.sh's AB_VARIANTS; the tests run on the first), e.g.
# "|-DSAGEATTN_SM90_VSC_STAGE=1" (section 37's second call: plain, then the V scales staged in
# shared memory; that staging is now the code, the macro gone);
# QP_TRACE_FLAGS: extra flags for this tree's probe build.
set -uo pipefail
out="${OUT:-/tmp/qp_out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,driver_version --format=csv,noheader
trace_build() {  # trace_build SRC DIR [FLAGS]
  { cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
      -DSAGEATTN_BUILD_TESTS=OFF -DSAGEATTN_BUILD_PYTHON=OFF -DSAGEATTN_BUILD_FUZZ=OFF \
      "-DSAGEATTN_SM80_HEAD_DIMS=64;128" "-DCMAKE_CUDA_FLAGS=-DSAGEATTN_SM90_CTA_TRACE=1 ${3:-}" &&
    cmake --build "$2" -j 6 --target sageattn_cli; } >"$out/build_$(basename "$2").log" 2>&1
}
if [ "${QP_TRACE:-1}" = 1 ]; then
  trace_build . build/ctr_new "${QP_TRACE_FLAGS:-}" &
  trace_build .probe/old build/ctr_old &
fi
dims="64;128"; [ "${QP_SM80:-0}" = 1 ] && dims="64;128;256"
modes=fp8,fp16 probs="128:1024:0 128:4096:0 128:16384:0 128:1024:0 128:4096:0 64:4096:0 128:4096:1"
[ "${QP_LEAN:-0}" = 1 ] && modes=fp8 probs="128:1024:0 128:4096:0 128:16384:0"
AB_OLD=1 AB_TESTS=1 AB_MODES=$modes AB_SM80_DIMS="$dims" AB_TIMEOUT=150 AB_BENCH_TIMEOUT=60 \
  AB_VARIANTS="${QP_VARIANTS:-}" AB_PROBS="$probs" OUT="$out/ab" bash scripts/ab_probe.sh
if [ "${QP_SM80:-0}" = 1 ]; then  # the same builds (ninja has nothing left to do), sm80 backend
  echo "== $SECONDS s: sm80 backend"
  AB_OLD=1 AB_MODES=$modes AB_SM80_DIMS="$dims" AB_TIMEOUT=150 AB_BENCH_TIMEOUT=60 AB_BACKENDS=sm80 \
    AB_VARIANTS="${QP_VARIANTS:-}" AB_PROBS="128:4096:0 64:4096:0 256:4096:0" OUT="$out/ab80" bash scripts/ab_probe.sh |
    grep -E "sm80 hd|FAILED|error"
fi
wait
[ "${QP_TRACE:-1}" = 1 ] || exit 0
echo "== $SECONDS s: probe (per CTA: setup; per tile: prologue; per warpgroup and tile: loop, epilogue; gap)"
for pr in 128:1024:32:fp8 128:4096:8:fp8 128:4096:8:fp16; do
  IFS=: read -r hd n b mode <<<"$pr"
  for v in old new; do
    timeout 60 build/ctr_$v/tools/sageattn bench --batch "$b" --heads 32 --seqlen "$n" --head-dim "$hd" \
      --modes "$mode" --warmup 1 --iters 1 >"$out/trace_${v}_${hd}_${n}_$mode.log" 2>&1
    echo "$v hd$hd N=$n $mode: $(grep 'sm90 cta trace' "$out/trace_${v}_${hd}_${n}_$mode.log" | tail -n 1 | cut -d'|' -f2-)"
  done
done
echo "== $SECONDS s"
