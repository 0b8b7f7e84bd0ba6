#!/usr/bin/env bash
# Installs the Python package `sageattn` from this checkout into a virtual environment, for the
# test commands (scripts/test.sh, scripts/python_gpu_check.sh).
#
# Usage: scripts/python_setup.sh VENV_DIR [pip config settings...]
#   e.g. scripts/python_setup.sh build/python-venv -C cmake.define.SAGEATTN_ENABLE_CUDA=OFF
#
# The environment sees the system's site-packages (--system-site-packages), so what is already
# installed (torch, nanobind, ...) is used as it is. Of the packages the build and the tests need
# (nanobind, scikit-build-core, numpy, pytest, ml-dtypes) only the missing ones are installed with
# pip; on a machine without network where all are present nothing is downloaded. The package itself
# is built with --no-build-isolation (from the installed nanobind and scikit-build-core).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:?usage: scripts/python_setup.sh VENV_DIR [pip -C settings...]}"
shift
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "== python: creating $venv ($("$python" --version 2>&1), system site-packages visible)"
  if ! "$python" -m venv --system-site-packages "$venv"; then
    # No ensurepip (e.g. Debian without python3-venv): a pip-less environment, driven by the
    # system's pip through --python.
    rm -rf "$venv"
    "$python" -m venv --system-site-packages --without-pip "$venv"
  fi
fi
# When $python is itself a virtual environment (the GPU machine's python3 is one, holding torch),
# --system-site-packages shows the base interpreter's packages, not its own: a .pth file adds
# $python's site-packages to the new environment, so it sees exactly what $python sees.
site_pth="$("$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')/_sageattn_parent_site.pth"
"$python" -c 'import site; print("\n".join(site.getsitepackages()))' >"$site_pth" 2>/dev/null || rm -f "$site_pth"
if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  pip=("$venv/bin/python" -m pip)
else
  pip=("$python" -m pip --python "$venv/bin/python")
fi

missing=()
for pair in nanobind:nanobind scikit_build_core:scikit-build-core numpy:numpy pytest:pytest \
            ml_dtypes:ml-dtypes; do
  "$venv/bin/python" -c "import ${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== python: installing the missing ${missing[*]} with pip"
  "${pip[@]}" install --disable-pip-version-check -q "${missing[@]}"
fi

echo "== python: pip install --no-build-isolation . $*"
"${pip[@]}" install --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall "$@" .
"$venv/bin/python" -c "import sageattn; print('== python: sageattn', sageattn.__version__, \
'CUDA backend' if sageattn.CUDA_BUILD else 'CPU backend only', '| torch:', sageattn.TORCH_ERROR or 'yes')"
