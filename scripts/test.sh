#!/usr/bin/env bash
# Builds sageattn from this checkout and runs every test: the README's test command, and what
# CI runs (.ci/run). Usage: ./scripts/test.sh [preset]   (default: release; see CMakePresets.json)
#
# Tests labelled `gpu` need a CUDA device; without one they are reported as skipped, never as
# passed. Ends with one summary line: "ctest: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "== GPU: $(nvidia-smi -L | head -n 1)"
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
if [ -n "$total" ] && [ -n "$failed" ]; then
  echo "ctest: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit "$rc"
