#!/usr/bin/env bash
# A bounded libFuzzer run over the public host API (fuzz/fuzz_attention.cpp): what CI runs
# (scripts/test.sh) and what you run by hand. Usage: fuzz/run.sh [seconds]   (default 60)
#
# 1. Builds the `fuzz` preset into build/fuzz: clang, CPU only, the library and the target
#    compiled with ASan + UBSan (CMakePresets.json). SAGEATTN_FUZZ_CXX names another clang++.
# 2. Runs every input of the committed corpus fuzz/corpus, then fuzzes until `seconds` have passed
#    in all. fuzz/corpus is only read: new inputs go to build/fuzz/corpus-new, a crashing input
#    to build/fuzz/artifacts/.
# Ends with one line, "fuzz: N runs, 0 crashes (...)", or "fuzz: N runs, 1 crash (...)" naming the
# input that crashed; the exit status is non-zero when the build failed or the target crashed
# (a sanitizer report, a violated property, a timeout or running out of memory). Without a clang
# whose -fsanitize=fuzzer links, it prints "fuzz: clang with libFuzzer not found, skipped" and
# exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
cxx="${SAGEATTN_FUZZ_CXX:-clang++}"
dir=build/fuzz

probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
  'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' >"$probe/p.cpp"
if ! command -v "$cxx" >/dev/null 2>&1 ||
   ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1; then
  echo "fuzz: clang with libFuzzer not found, skipped"
  exit 0
fi

mkdir -p "$dir"
if ! { cmake --preset fuzz -DCMAKE_CXX_COMPILER="$cxx" &&
       cmake --build --preset fuzz -j "$(nproc 2>/dev/null || echo 2)"; } >"$dir/build.log" 2>&1; then
  tail -n 30 "$dir/build.log"
  echo "fuzz: the fuzz build failed (see $dir/build.log)"
  exit 1
fi

rm -rf "$dir/corpus-new" "$dir/artifacts"
mkdir -p "$dir/corpus-new" "$dir/artifacts"
log="$dir/fuzz.log"
echo "== fuzz: $seconds s of libFuzzer on fuzz_attention from fuzz/corpus ($(ls fuzz/corpus | wc -l) inputs); log: $log"
set +e
# -timeout: one input runs in milliseconds, so 10 s is a hang. -max_len: the decoder reads fewer
# bytes than that. -rss_limit_mb: the default, stated.
"$dir/fuzz/fuzz_attention" -max_total_time="$seconds" -timeout=10 -max_len=192 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
  "$dir/corpus-new" fuzz/corpus >"$log" 2>&1
rc=$?
set -e
runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)"
details="${seconds} s, ${cov:-?} edges covered, $(ls "$dir/corpus-new" | wc -l) new inputs"
if [ "$rc" -eq 0 ]; then
  echo "fuzz: ${runs:-0} runs, 0 crashes ($details)"
  exit 0
fi
grep -E 'ERROR|runtime error|property violated|SUMMARY|Test unit written' "$log" | head -n 20 || tail -n 40 "$log"
artifact="$(ls "$dir"/artifacts/* 2>/dev/null | head -n 1 || true)"
echo "fuzz: ${runs:-0} runs, 1 crash (${artifact:-no artifact, see $log}; exit status $rc; replay: $dir/fuzz/fuzz_attention ${artifact:-FILE})"
exit 1
