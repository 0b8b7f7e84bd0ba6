"""examples/transformers_swap.py runs, swaps sageattn into every attention call of the model and
stays within the accuracy measured for that model."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO, cuda_or_skip, have

EXAMPLE = REPO / "examples" / "transformers_swap.py"

# Bound: about twice the error measured for the example's default model (4 layers, hidden 512,
# head dim 128, 2 KV heads, 2 x 512 tokens, bf16) with sageattn's CPU backend, which runs the GPU
# kernels' algorithm (pv_mode fp8): logits vs torch SDPA cos 0.99919, rel-L1 0.0401 (2026-11-22).
MIN_COS, MAX_REL_L1 = 1 - 2 * (1 - 0.99919), 2 * 0.0401


def test_example_skips_cleanly_without_a_gpu():
    if have("torch") and have("transformers"):
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is present: test_example_runs_on_the_gpu covers the example")
    r = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("skipped: "), r.stdout


def test_example_runs_on_the_gpu():
    cuda_or_skip()
    if not have("transformers"):
        pytest.skip("transformers is not installed")
    r = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=600)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    calls = re.search(r"attention calls: (\d+) on sageattn, (\d+) on torch's SDPA", r.stdout)
    assert calls and int(calls.group(1)) == 4 and int(calls.group(2)) == 0, r.stdout  # 4 layers
    m = re.search(r"logits vs torch SDPA: cos ([0-9.]+), rel-L1 ([0-9.]+)", r.stdout)
    assert m, r.stdout
    cos, rel = float(m.group(1)), float(m.group(2))
    assert cos >= MIN_COS and rel <= MAX_REL_L1, f"logits cos {cos}, rel-L1 {rel}"
