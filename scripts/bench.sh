#!/usr/bin/env bash
# Builds sageattn from this checkout and runs `sageattn bench` on its default problem: the
# README's main command. On a machine with a CUDA GPU and GPU kernels it benchmarks the GPU,
# otherwise the CPU backend; either way it prints accuracy against exact float64 attention and
# speed for each P·V mode. Extra arguments go to `sageattn bench` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc 2>/dev/null || echo 2)"
mkdir -p build
log=build/bench-build.log
echo "== building sageattn (release preset; log: $log)"
if ! { cmake --preset release && cmake --build --preset release -j "$jobs" --target sageattn_cli; } >"$log" 2>&1; then
  cat "$log"
  echo "== build failed (log above)" >&2
  exit 1
fi
exec ./build/release/tools/sageattn bench "$@"
