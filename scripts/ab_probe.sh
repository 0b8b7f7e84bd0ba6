#!/usr/bin/env bash
# A/B probe for kernel changes on the device: builds baseline source trees (AB_OLD_SRC, one or more
# folders separated by spaces, default .probe/old, built as build/ab_old0, ab_old1, ...; make one
# here with `mkdir -p .probe/old && git archive <rev> | tar -x -C .probe/old`,
# add .probe/ to .git/info/exclude and pass carry [".probe"] to the device tool) and the working
# tree (variants via AB_VARIANTS "-Dx|-Dy", '' = plain), then times a few problems with each
# (AB_PROBS "hd:N:causal ..."). AB_OLD=0 skips the baseline; AB_TESTS=1 also runs
# test_gpu_attention and test_gpu_hardening of the first variant; AB_BACKENDS "auto sm80 sm90"
# times each problem on each backend; AB_NCU "hd:N:mode:backend ..." profiles the attention kernel
# of the first variant with ncu (--set full, pipe utilizations, ncu_*.txt). The trees build
# concurrently. Every test and bench command runs under `timeout ${AB_TIMEOUT:-150}` (a kernel that
# hangs costs that much device time, not the whole call; rc 124 in the log); AB_BENCH_TIMEOUT, if
# set, bounds each bench command instead (one bench takes seconds, a test program a minute).
# Logs under $OUT.
set -uo pipefail
out="${OUT:-/tmp/ab_out}"; mkdir -p "$out"
probs="${AB_PROBS:-128:16384:0 128:4096:0 128:1024:0 128:16384:1 64:16384:0}"
build() {  # build SRC DIR FLAGS TARGETS...
  local src="$1" dir="$2" flags="$3"; shift 3
  # The variant's macros (-D...) go to the C++ compiler too: some set the CPU reference's tiles.
  local cxxflags; cxxflags=$(grep -oE -- '-D[^ ]+' <<<"$flags" | tr '\n' ' ')
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
    "-DSAGEATTN_SM80_HEAD_DIMS=${AB_SM80_DIMS:-64;128}" "-DCMAKE_CUDA_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$cxxflags" \
    >"$out/cfg_$(basename "$dir").log" 2>&1 &&
  cmake --build "$dir" -j 16 --target "$@" >"$out/build_$(basename "$dir").log" 2>&1 || { tail -n 30 "$out/build_$(basename "$dir").log"; return 1; }
  grep -E "spill stores" "$out/build_$(basename "$dir").log" | sort | uniq -c | head -n 4
}
bins=()
# (the appended '|' keeps a trailing empty variant, which `read` would drop: "-Dx|" = -Dx and plain)
IFS='|' read -r -a variants <<<"${AB_VARIANTS:-}|"
[ ${#variants[@]} = 0 ] && variants=("")
tg=(sageattn_cli); [ "${AB_TESTS:-0}" = 1 ] && tg+=(test_gpu_attention test_gpu_hardening)
t0=$(date +%s)
read -r -a olds <<<"${AB_OLD_SRC:-.probe/old}"
[ "${AB_OLD:-1}" = 1 ] || olds=()
for i in "${!olds[@]}"; do build "${olds[$i]}" "build/ab_old$i" "" sageattn_cli >"$out/build_ab_old$i.msg" 2>&1 & done
for i in "${!variants[@]}"; do
  build . "build/ab_new$i" "${variants[$i]}" "${tg[@]}" >"$out/build_ab_new$i.msg" 2>&1 &
done
wait
echo "== builds: $(($(date +%s) - t0)) s"
for i in "${!olds[@]}"; do
  echo "== old$i: ${olds[$i]}"; cat "$out/build_ab_old$i.msg"
  [ -x "build/ab_old$i/tools/sageattn" ] && bins+=("build/ab_old$i/tools/sageattn")
done
for i in "${!variants[@]}"; do
  echo "== new$i: ${variants[$i]}"; cat "$out/build_ab_new$i.msg"
  [ -x "build/ab_new$i/tools/sageattn" ] && bins+=("build/ab_new$i/tools/sageattn")
done
if [ "${AB_TESTS:-0}" = 1 ]; then
  for t in test_gpu_attention test_gpu_hardening; do
    timeout "${AB_TIMEOUT:-150}" build/ab_new0/tests/$t >"$out/$t.log" 2>&1; echo "$t rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/$t.log" | tr '\n' ' ')"
    grep -E "^\[  FAILED" "$out/$t.log" | head -n 20
  done
fi
echo "== cos rel_l1 rmse max_abs e2e_ms e2e_TFLOPS kernel_ms kernel_TFLOPS"
for p in $probs; do
  IFS=: read -r hd n c <<<"$p"; flag=""; [ "$c" = 1 ] && flag=--causal
  for bin in "${bins[@]}"; do
    for be in ${AB_BACKENDS:-auto}; do
      timeout "${AB_BENCH_TIMEOUT:-${AB_TIMEOUT:-150}}" "$bin" bench --batch $((32768 / n)) --heads 32 --seqlen "$n" --head-dim "$hd" $flag --modes "${AB_MODES:-fp16,fp8}" \
        --backend "$be" --warmup 3 --iters 10 2>&1 | tee -a "$out/bench.log" | grep -E "^(fp16|fp8) " |
        sed "s|^|$(basename "$(dirname "$(dirname "$bin")")") $be hd$hd N=$n c=$c  |"
    done
  done
done
# ncu of the first variant's attention kernel: pipe utilizations and issue, per problem.
for p in ${AB_NCU:-}; do
  IFS=: read -r hd n mode be <<<"$p"
  f="$out/ncu_hd${hd}_${n}_${mode}_${be}.txt"
  ncu --clock-control none --set full --import-source no -k regex:attention_kernel -c 1 --print-details all \
    build/ab_new0/tools/sageattn bench --batch $((32768 / n)) --heads 32 --seqlen "$n" --head-dim "$hd" \
    --modes "$mode" --backend "$be" --warmup 0 --iters 1 >"$f" 2>&1
  echo "== ncu hd$hd N=$n $mode $be (rc $?)"
  grep -E "attention_kernel|Duration|SM Frequency|Registers Per|Issue Slots Busy|Executed Ipc A|No Eligible|Warp Cycles Per Issued|Stall|^ +[A-Z][A-Za-z0-9 ()/]* +% +[0-9]" "$f" | head -n 70
done
