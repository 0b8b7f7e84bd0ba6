#!/usr/bin/env bash
# The Python package on the device machine (no network: everything it needs is preinstalled):
# installs sageattn with `pip install --no-build-isolation` (CUDA library for sm_90a only, sm80
# head dims 64 and 128: a quick build, and head dim 256 then exercises the "not in this build"
# fallback of sageattn.sdpa), records how the module links libstdc++ (pylogs/module.log), runs the
# varlen error test alone after 'import torch' (it once crashed there), the JAX tests alone with full
# tracebacks, the whole pytest suite verbosely and the transformers example, and prints a short
# summary last (with the first failures' tracebacks) and exits with status 1 if a step failed. Logs
# go to $OUT (the device tool's output folder) or ./python_gpu_check_out, packed into pylogs.tgz.
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
  for m in torch jax jaxlib cupy transformers nanobind scikit_build_core numpy pytest ml_dtypes; do
    python3 -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>&1 | tail -n 1
  done
  # What decides how the extension links libstdc++ (python/CMakeLists.txt: one libstdc++ per process).
  echo "== toolchain"; g++ --version | head -n 1; cat /etc/os-release 2>/dev/null | grep -E '^PRETTY_NAME'
  echo "g++ libstdc++.so: $(g++ -print-file-name=libstdc++.so) -> $(readlink -f "$(g++ -print-file-name=libstdc++.so)")"
  echo "g++ libstdc++.a:  $(g++ -print-file-name=libstdc++.a)"
  ldconfig -p | grep -E 'libstdc\+\+'
  echo "== build-related environment"
  env | grep -E '^(LDFLAGS|CFLAGS|CXXFLAGS|CPPFLAGS|CUDAFLAGS|CUDAHOSTCXX|CC|CXX|CUDACXX|AUDITWHEEL_[A-Z_]*|CMAKE_[A-Z_]*|SKBUILD_[A-Z_]*|PIP_[A-Z_]*|NVCC_[A-Z_]*|LD_PRELOAD|LD_LIBRARY_PATH)=' || echo "(none)"
  python3 -m pip config list 2>&1
  echo "== libstdc++ mapped after 'import torch':"
  python3 -c "import torch; print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libstdc++' in l}))" 2>&1 | tail -n 1
  } >"$logs/env.log" 2>&1

step install 300 scripts/python_setup.sh "$venv" -C build-dir=build/python-gpu \
  -C cmake.define.SAGEATTN_CUDA_ARCHS=90a-real -C "cmake.define.SAGEATTN_SM80_HEAD_DIMS=64;128" \
  -C build.verbose=true -v
# The built module: how it links libstdc++ (a copy of its own crashed: ostream code in _C.so, a
# segfault in test_varlen_rejects_bad_cu_seqlens_and_leaves_out_untouched after 'import torch').
module_info() {
  local so; so=$(ls "$venv"/lib/python3*/site-packages/sageattn/_C*.so) || return 1
  echo "== $so"; ls -l "$so"
  echo "== link command:"; grep -A4 '^build python/_C' build/python-gpu/build.ninja | grep -E 'LINK_(FLAGS|LIBRARIES)'
  echo "== readelf -d NEEDED:"; readelf -d "$so" | grep NEEDED
  echo "== ldd:"; ldd "$so"
  echo "== dynamic symbols defined: $(nm -D --defined-only "$so" | wc -l)," \
       "std::basic_ostream: $(nm -C -D --defined-only "$so" | grep -c 'std::basic_ostream')," \
       "std::locale: $(nm -C -D --defined-only "$so" | grep -c 'std::locale')" \
       "(0 and 0 expected: no libstdc++ code of its own)"
  echo "== strings mentioning codecvt (0 expected): $(strings "$so" | grep -c codecvt)"
  "$venv/bin/python" -c "import torch, sageattn, numpy; print('maps:', sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libstdc++' in l}))"
}
module_info >"$logs/module.log" 2>&1  # a shell function: not through step's timeout
# The crash alone, with torch loaded first as in the failing run (faulthandler prints the stack).
step varlen_errors_torch 120 "$venv/bin/python" -X faulthandler -c "import torch, numpy, sys, pytest; \
sys.exit(pytest.main(['-p', 'no:cacheprovider', '-p', 'faulthandler', '-v', '--tb=long', \
'tests/python/test_numpy.py::test_varlen_rejects_bad_cu_seqlens_and_leaves_out_untouched']))"
# JAX on its own, full tracebacks (they once failed: a one-shot DLPack capsule as the output buffer).
step pytest_jax 300 "$venv/bin/python" -X faulthandler -m pytest tests/python/test_dlpack.py -k jax -v -rfEs \
  -p no:cacheprovider --tb=long
step pytest 300 "$venv/bin/python" -X faulthandler -m pytest tests/python -v -rfEs -p no:cacheprovider \
  -p faulthandler --tb=short --junitxml="$out/pytest.xml" --durations=15
step example 120 "$venv/bin/python" examples/transformers_swap.py

echo
echo "== python_gpu_check summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1), $(date -u +%F))"
grep -hE "^== python" "$logs/install.log"
grep -hE "^(SKIPPED|FAILED|ERROR) " "$logs/pytest.log" | head -n 40
grep -hE "^=+ .*(passed|failed|error).* =+$" "$logs/pytest.log" | tail -n 1
grep -hE "^== (readelf|ldd|dynamic symbols|strings|link)|^maps:|NEEDED|LINK_" "$logs/module.log"
grep -hE "^maps:|^== libstdc|^g\+\+ |^\[" "$logs/env.log" | head -n 8
# The first failures' tracebacks (pytest's FAILURES section; a crash: faulthandler's stack).
for f in varlen_errors_torch pytest_jax pytest; do
  if grep -qE "^=+ FAILURES =+$|Fatal Python error" "$logs/$f.log"; then
    echo "== first failures of $f:"
    { grep -m 1 -A 40 "Fatal Python error" "$logs/$f.log"
      sed -n '/^=\+ FAILURES =\+$/,/^=\+ short test summary/p' "$logs/$f.log"; } | head -n 120
  fi
done
grep -hE "^(model|attention calls|last hidden|logits|skipped)" "$logs/example.log"
printf '%s\n' "${summary[@]}"
tar czf "$out/pylogs.tgz" -C "$out" pylogs && rm -rf "$logs"
# Exit status 1 when a step failed, so that a caller (or CI on a GPU machine) can gate on it.
for s in "${summary[@]}"; do [[ "$s" == FAIL* ]] && exit 1; done
exit 0
