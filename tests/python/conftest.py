"""Shared helpers of the pytest suite: float64 reference attention, error metrics, the input
families of DESIGN.md §3, the accuracy bounds of docs/NUMERICS.md (parsed from the document, the
one table of bounds), and skip conditions with visible reasons.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

# JAX would otherwise take 75% of the GPU memory at its first use, leaving little to torch and to
# the example's subprocess.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

REPO = Path(__file__).resolve().parents[2]
NUMERICS_MD = REPO / "docs" / "NUMERICS.md"
LAYOUT_H = REPO / "include" / "sageattn" / "layout.h"


# ---- float64 reference (logical HND [B, H, N, D]) ----

def reference_attention(q, k, v, causal=False, scale=None):
    """Exact attention in float64 on HND arrays; GQA by head index h // (Hq / Hkv); causal masks
    bottom-right aligned; rows that see no key give 0 and LSE -inf. Returns (o, lse)."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    b, hq, nq, d = q.shape
    hk, nk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    group = hq // hk
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    if causal:
        i = np.arange(nq)[:, None]
        j = np.arange(nk)[None, :]
        s = np.where(j <= i + nk - nq, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True) if nk else np.full((b, hq, nq, 1), -np.inf)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m_safe)
    l = np.sum(p, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        o = np.where(l > 0, np.einsum("bhij,bhjd->bhid", p, v) / np.where(l > 0, l, 1.0), 0.0)
        lse = np.where(l[..., 0] > 0, np.log(np.where(l[..., 0] > 0, l[..., 0], 1.0)) + m_safe[..., 0], -np.inf)
    return o, lse


def metrics(out, ref):
    """(cosine similarity, relative L1) of an output against a reference, in float64."""
    o = np.asarray(out, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    assert np.all(np.isfinite(o)), "output has NaN or Inf"
    no, nr = np.linalg.norm(o), np.linalg.norm(r)
    if no == 0 and nr == 0:
        return 1.0, 0.0
    cos = float(np.dot(o, r) / (no * nr))
    rel_l1 = float(np.sum(np.abs(o - r)) / np.sum(np.abs(r)))
    return cos, rel_l1


def assert_close(out, ref, min_cos, max_rel_l1, what=""):
    cos, rel = metrics(out, ref)
    assert cos >= min_cos and rel <= max_rel_l1, (
        f"{what}: cos {cos:.7f} (bound >= {min_cos}), rel-L1 {rel:.5f} (bound <= {max_rel_l1})")


# ---- input families (DESIGN.md §3; same definitions as src/cpu/inputs.cpp, numpy's RNG) ----

OUTLIER_CHANNELS, OUTLIER_SCALE, K_BIAS_STD, V_BIAS_STD = 4, 10.0, 6.0, 3.0


def make_inputs(family, b, hq, hk, nq, nk, d, seed=0):
    """float32 HND q, k, v of one family."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, hq, nq, d), dtype=np.float32)
    k = rng.standard_normal((b, hk, nk, d), dtype=np.float32)
    v = rng.standard_normal((b, hk, nk, d), dtype=np.float32)
    if family == "gaussian":
        return q, k, v
    k += K_BIAS_STD * rng.standard_normal((b, hk, 1, d), dtype=np.float32)
    if family == "k_channel_bias":
        return q, k, v
    assert family == "outliers", family
    channels = [c * d // OUTLIER_CHANNELS + 1 for c in range(OUTLIER_CHANNELS)]
    q[..., channels] *= OUTLIER_SCALE
    k[..., channels] *= OUTLIER_SCALE
    v += V_BIAS_STD * rng.standard_normal((b, hk, 1, d), dtype=np.float32)
    return q, k, v


def bf16():
    import ml_dtypes
    return np.dtype(ml_dtypes.bfloat16)


# ---- docs/NUMERICS.md: the table of bounds ----

def accuracy_table():
    """Rows of the §4 accuracy table: (family, dtype, hd, mode, min_cos, max_rel_l1)."""
    rows = []
    pat = re.compile(r"^\|\s*(gaussian|k_channel_bias|outliers)( \(f16 in/out\))?\s*\|\s*(\d+)\s*\|\s*"
                     r"(fp16|fp8|fp8_fp16acc)\s*\|[^|]*\|[^|]*\|\s*([0-9.]+),\s*([0-9.]+)\s*\|\s*$")
    for line in NUMERICS_MD.read_text().splitlines():
        m = pat.match(line)
        if m:
            rows.append((m.group(1), "float16" if m.group(2) else "bfloat16", int(m.group(3)), m.group(4),
                         float(m.group(5)), float(m.group(6))))
    assert len(rows) >= 18, f"docs/NUMERICS.md accuracy table not found ({len(rows)} rows parsed)"
    return rows


def numerics_bound(label_regex):
    """The 'bound' column of a row of NUMERICS.md's other tables, as a list of floats."""
    for line in NUMERICS_MD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.search(label_regex, cells[0]):
            return [float(x) for x in re.findall(r"[0-9][0-9.e-]*", cells[-1])]
    raise AssertionError(f"no row matching {label_regex!r} in docs/NUMERICS.md")


def accuracy_bound(family, hd, mode, dtype="bfloat16"):
    for f, dt, h, m, c, r in accuracy_table():
        if (f, dt, h, m) == (family, dtype, hd, mode):
            return c, r
    raise AssertionError(f"no NUMERICS.md bound for {family} {dtype} hd{hd} {mode}")


# ---- skip conditions ----

def have(module):
    return importlib.util.find_spec(module) is not None


def torch_or_skip():
    if not have("torch"):
        pytest.skip("torch is not installed")
    import sageattn
    if sageattn.TORCH_ERROR:
        pytest.skip(sageattn.TORCH_ERROR)
    import torch
    return torch


def cuda_or_skip():
    torch = torch_or_skip()
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (torch.cuda.is_available() is False)")
    import sageattn
    if not sageattn.CUDA_BUILD:
        pytest.skip("this sageattn build has no CUDA backend (SAGEATTN_ENABLE_CUDA=OFF)")
    if not sageattn.gpu_available():
        pytest.skip("sageattn has no kernels for this GPU")
    return torch
