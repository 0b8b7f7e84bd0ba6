#!/usr/bin/env bash
# The Python package on the device machine (no network: everything it needs is preinstalled):
# installs sageattn with `pip install --no-build-isolation` (CUDA library for sm_90a only, sm80
# head dims 64 and 128: a quick build, and head dim 256 then exercises the "not in this build"
# fallback of sageattn.sdpa), runs the whole pytest suite verbosely and the transformers example,
# and prints a short summary last. Logs go to $OUT (the device tool's output folder) or
# ./python_gpu_check_out, packed into pylogs.tgz.
#
# Usage: scripts/python_gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/python_gpu_check_out}"
logs="$out/pylogs"
mkdir -p "$logs"
venv=build/python-venv
summary=()
step() {  # step NAME TIMEOUT_S COMMAND...: runs COMMAND with a time limit, logs to $logs/NAME.log
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  if timeout "$limit" "$@" >"$logs/$name.log" 2>&1; then summary+=("PASS $name ($((SECONDS - t0)) s)")
  else summary+=("FAIL $name ($((SECONDS - t0)) s, rc $?): see pylogs/$name.log"); tail -n 40 "$logs/$name.log"; fi
}

{ nvidia-smi; nvcc --version; cmake --version; git rev-parse HEAD 2>/dev/null
  python3 -c "import sys; print('python', sys.version)"
  for m in torch jax cupy transformers nanobind scikit_build_core numpy pytest ml_dtypes; do
    python3 -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>&1 | tail -n 1
  done; } >"$logs/env.log" 2>&1

step install 300 scripts/python_setup.sh "$venv" -C build-dir=build/python-gpu \
  -C cmake.define.SAGEATTN_CUDA_ARCHS=90a-real -C "cmake.define.SAGEATTN_SM80_HEAD_DIMS=64;128" \
  -C build.verbose=true
step pytest 300 "$venv/bin/python" -m pytest tests/python -v -rfEs -p no:cacheprovider \
  --junitxml="$out/pytest.xml" --durations=15
step example 120 "$venv/bin/python" examples/transformers_swap.py

echo
echo "== python_gpu_check summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1), $(date -u +%F))"
grep -hE "^== python" "$logs/install.log"
grep -hE "^(SKIPPED|FAILED|ERROR) " "$logs/pytest.log" | head -n 40
grep -hE "^=+ .*(passed|failed|error).* =+$" "$logs/pytest.log" | tail -n 1
grep -hE "^(model|attention calls|last hidden|logits|skipped)" "$logs/example.log"
printf '%s\n' "${summary[@]}"
tar czf "$out/pylogs.tgz" -C "$out" pylogs && rm -rf "$logs"
