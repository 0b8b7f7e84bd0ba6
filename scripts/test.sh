#!/usr/bin/env bash
# Builds sageattn from this checkout and runs every test: the README's test command, and what
# CI runs (.ci/run). Usage: ./scripts/test.sh [preset]   (default: release; see CMakePresets.json)
#
# 1. CMake build + ctest. Tests labelled `gpu` need a CUDA device; without one they are reported
#    as skipped, never as passed.
# 2. The Python package: installed into build/python-venv (scripts/python_setup.sh: pip installs
#    only what is missing, the package with --no-build-isolation), then pytest tests/python.
#    Without a GPU (or with the cpu preset) the extension is built CPU-only, to keep CI quick;
#    with a GPU, the CUDA library for that GPU's arch only.
# 3. A bounded fuzz run (fuzz/run.sh, SAGEATTN_FUZZ_SECONDS, default 60 s, plus about 30 s to build
#    build/fuzz): libFuzzer under ASan + UBSan over the host API on the CPU backend. Skipped, with
#    a message, where no clang with libFuzzer is installed. (ctest already replayed the corpus.)
# Ends with three summary lines, "ctest: N passed, N failed, N skipped",
# "pytest: N passed, N failed, N skipped" and "fuzz: N runs, N crashes"; the exit status is
# non-zero if any step failed.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"

gpu_cc=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "== GPU: $(nvidia-smi -L | head -n 1)"
  gpu_cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')"
else
  echo "== GPU: none detected: tests labelled 'gpu' will be SKIPPED (they need a CUDA device)"
fi
command -v nvcc >/dev/null 2>&1 || echo "== nvcc not found: building the CPU-only library (no CUDA targets)"

jobs="$(nproc 2>/dev/null || echo 2)"
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$jobs"
log="build/$preset/ctest.log"
set +e
ctest --preset "$preset" -j "$jobs" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
total=$(sed -n 's/.*tests failed out of \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
failed=$(sed -n 's/.* \([0-9][0-9]*\) tests failed out of.*/\1/p' "$log" | tail -n 1)
skipped=$(grep -c '(Skipped)' "$log" || true)
ctest_line="ctest: no summary (see $log)"
if [ -n "$total" ] && [ -n "$failed" ]; then
  ctest_line="ctest: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi

# ---- the Python package and pytest ----
if [ -n "$gpu_cc" ] && command -v nvcc >/dev/null 2>&1 && [ "$preset" != cpu ]; then
  arch="${gpu_cc}-real"
  [ "$gpu_cc" = 90 ] && arch="90a-real"  # the Hopper target of the presets
  py_defines=(-C "cmake.define.SAGEATTN_CUDA_ARCHS=$arch" -C build-dir=build/python-gpu)
  echo "== python: building the extension with the CUDA library for this GPU ($arch)"
else
  py_defines=(-C cmake.define.SAGEATTN_ENABLE_CUDA=OFF -C build-dir=build/python-cpu)
  echo "== python: building the extension CPU-only (no GPU, no nvcc, or the cpu preset)"
fi
pylog="build/pytest.log"
pytest_line="pytest: not run (installing the package failed: see build/python-install.log)"
set +e
scripts/python_setup.sh build/python-venv "${py_defines[@]}" >build/python-install.log 2>&1
py_rc=$?
if [ "$py_rc" -ne 0 ]; then
  tail -n 40 build/python-install.log
else
  grep '^== python' build/python-install.log
  build/python-venv/bin/python -m pytest tests/python -q -rs -p no:cacheprovider 2>&1 | tee "$pylog"
  py_rc=${PIPESTATUS[0]}
  last=$(grep -E '[0-9]+ (passed|failed|skipped|errors?)' "$pylog" | tail -n 1)
  count() { echo "$last" | grep -oE "[0-9]+ $1" | grep -oE '[0-9]+' || echo 0; }
  pytest_line="pytest: $(count passed) passed, $(( $(count failed) + $(count 'errors?') )) failed, $(count skipped) skipped"
  [ "$py_rc" -eq 5 ] && pytest_line="pytest: no test collected"
fi
set -e

# ---- a bounded fuzz run ----
fuzzlog="build/fuzz-run.log"
set +e
fuzz/run.sh "${SAGEATTN_FUZZ_SECONDS:-60}" 2>&1 | tee "$fuzzlog"
fuzz_rc=${PIPESTATUS[0]}
set -e
fuzz_line="$(grep '^fuzz: ' "$fuzzlog" | tail -n 1)"
[ -n "$fuzz_line" ] || fuzz_line="fuzz: no summary (see $fuzzlog)"

echo "$ctest_line"
echo "$pytest_line"
echo "$fuzz_line"
[ "$rc" -eq 0 ] && [ "$py_rc" -eq 0 ] && [ "$fuzz_rc" -eq 0 ]
