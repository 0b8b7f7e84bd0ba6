#!/usr/bin/env bash
# The performance report's device run (docs/PERFORMANCE.md): builds the Python package (CUDA,
# sm_90a) and the `sageattn` program, installs the original sageattention package from .whl/ when
# a wheel is there (the device has no network), and runs
#   python -m sageattn.bench --sweep --cli build/device/tools/sageattn --out $OUT/sweep
# Extra arguments go to the sweep (e.g. --quick). Results under $OUT/sweep (or ./sweep_out/sweep),
# the build and install logs packed into $OUT/logs.tgz: the device tool returns at most 8 files.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/sweep_out}"; logs="$out/logs"; mkdir -p "$logs"
trap 'tar -czf "$out/logs.tgz" -C "$out" logs && rm -rf "$logs"' EXIT
scripts/python_setup.sh build/python-venv -C build-dir=build/python-gpu \
  -C cmake.define.SAGEATTN_CUDA_ARCHS=90a-real >"$logs/python_setup.log" 2>&1 ||
  { tail -n 30 "$logs/python_setup.log"; exit 1; }
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/sageattn_peers .whl/*.whl >"$logs/peers_install.log" 2>&1 &&
    export PYTHONPATH=/tmp/sageattn_peers
fi
{ cmake --preset device && cmake --build build/device --target sageattn_cli -j "$(nproc)"; } >"$logs/cli_build.log" 2>&1 ||
  { tail -n 30 "$logs/cli_build.log"; exit 1; }
build/python-venv/bin/python -m sageattn.bench --sweep --cli build/device/tools/sageattn --out "$out/sweep" "$@"
