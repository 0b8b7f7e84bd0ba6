#!/usr/bin/env bash
# The GPU test programs of one build variant under compute-sanitizer memcheck and racecheck, as
# scripts/gpu_check.sh runs them for the default build: what a winning variant of bench/wip/*.sh
# needs before it lands. Device call from the repository root (~150 s on an H100):
#   bash bench/wip/sanitize_variant.sh "-DSOME_EXPERIMENT=1"
# The flags go to the CUDA and C++ compilers alike (some set the reference's tiles). Builds in
# build/sanitize (reconfigured each run, so no flags linger); logs under $OUT; a summary last.
set -uo pipefail
flags="${1:-}"
out="${OUT:-/tmp/sanitize_out}"; mkdir -p "$out"
bdir=build/sanitize
summary=()
cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSAGEATTN_CUDA_ARCHS=90a-real \
  "-DCMAKE_CUDA_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags" >"$out/configure.log" 2>&1 &&
  cmake --build "$bdir" -j "$(nproc)" --target test_gpu_attention test_gpu_hardening \
    test_gpu_numerics test_gpu_quant >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log"; exit 1; }
echo "== build $SECONDS s (flags: ${flags:-none})"
for exe in "$bdir"/tests/test_gpu_*; do
  [ -x "$exe" ] || continue  # as gpu_check.sh: skips the gtest discovery files of the same prefix
  n=$(basename "$exe")
  env SAGEATTN_TEST_QUICK=1 compute-sanitizer --tool memcheck --error-exitcode 1 "$exe" >"$out/memcheck_$n.log" 2>&1
  summary+=("memcheck $n rc=$? $(grep -E 'ERROR SUMMARY' "$out/memcheck_$n.log" | tail -n 1)")
  env SAGEATTN_TEST_QUICK=1 compute-sanitizer --tool racecheck "$exe" >"$out/racecheck_$n.log" 2>&1
  rc=$?
  verdict=$(python3 scripts/racecheck_report.py "$out/racecheck_$n.log" 2>&1 | tail -n 1)
  summary+=("racecheck $n rc=$rc report: $verdict")
  echo "== $n done at $SECONDS s"
done
printf '%s\n' "${summary[@]}"
