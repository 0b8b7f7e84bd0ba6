"""numpy on the CPU backend: accuracy against float64 attention (bounds from docs/NUMERICS.md),
GQA, causal with Nq != Nk, layouts, LSE, varlen, strided views, validation errors, constants.
Runs everywhere (no GPU, no torch needed)."""

from __future__ import annotations

import importlib.metadata
import re

import numpy as np
import pytest

import sageattn
from sageattn import layout

from conftest import (LAYOUT_H, REPO, accuracy_bound, accuracy_table, assert_close, bf16, make_inputs,
                      metrics, numerics_bound, reference_attention)

MODES = ("fp16", "fp8", "fp8_fp16acc")


def rounded(x, dtype):
    return np.asarray(x).astype(dtype)


# ---- accuracy: the NUMERICS.md table, under its conditions (B=1, H=2, N=1024, non-causal) ----

@pytest.mark.parametrize("granularity", ["per_warp", "per_thread"])
@pytest.mark.parametrize("row", accuracy_table(), ids=lambda r: f"{r[0]}-{r[1]}-hd{r[2]}-{r[3]}")
def test_accuracy_table(row, granularity):
    family, dtype_name, hd, mode, min_cos, max_rel = row
    dtype = bf16() if dtype_name == "bfloat16" else np.dtype(np.float16)
    q, k, v = (rounded(x, dtype) for x in make_inputs(family, 1, 2, 2, 1024, 1024, hd, seed=hd))
    o = sageattn.sageattn(q, k, v, pv_mode=mode, granularity=granularity)
    assert o.dtype == dtype and o.shape == q.shape
    ref, _ = reference_attention(q, k, v)
    assert_close(o, ref, min_cos, max_rel, f"{family} {dtype_name} hd{hd} {mode} {granularity}")


def test_auto_mode_on_the_cpu_is_fp8():
    assert sageattn.resolve_pv_mode("auto") == "fp8"
    assert sageattn.resolve_pv_mode("auto", head_dim=256) == "fp8"  # the CPU backend: fp8 at every head dim
    q, k, v = (rounded(x, np.float16) for x in make_inputs("gaussian", 1, 2, 2, 130, 130, 64))
    np.testing.assert_array_equal(sageattn.sageattn(q, k, v), sageattn.sageattn(q, k, v, pv_mode="fp8"))


def test_pv_modes_differ_and_fp16_is_most_accurate():
    q, k, v = (rounded(x, bf16()) for x in make_inputs("gaussian", 1, 2, 2, 256, 256, 64, seed=3))
    ref, _ = reference_attention(q, k, v)
    err = {m: metrics(sageattn.sageattn(q, k, v, pv_mode=m), ref)[1] for m in MODES}
    assert err["fp16"] < err["fp8"] and err["fp16"] < err["fp8_fp16acc"], err


def test_k_smoothing_gain_on_k_channel_bias():
    # NUMERICS.md: "K smoothing gain, k_channel_bias hd128 fp16: rel-L1 off / on".
    (gain_bound,) = numerics_bound(r"^K smoothing gain")
    q, k, v = (rounded(x, bf16()) for x in make_inputs("k_channel_bias", 1, 2, 2, 1024, 1024, 128, seed=5))
    ref, _ = reference_attention(q, k, v)
    on = metrics(sageattn.sageattn(q, k, v, pv_mode="fp16", smooth_k=True), ref)[1]
    off = metrics(sageattn.sageattn(q, k, v, pv_mode="fp16", smooth_k=False), ref)[1]
    assert off / on >= gain_bound, f"rel-L1 off {off:.5f} / on {on:.5f} = {off / on:.2f}x"


def test_smooth_v_and_scale_are_passed_through():
    q, k, v = (rounded(x, np.float16) for x in make_inputs("outliers", 1, 2, 2, 200, 200, 64, seed=6))
    min_cos, max_rel = accuracy_bound("outliers", 64, "fp8")
    for scale in (0.05, 0.3):
        ref, ref_lse = reference_attention(q, k, v, scale=scale)
        o, lse = sageattn.sageattn(q, k, v, sm_scale=scale, smooth_v=True, return_lse=True)
        assert_close(o, ref, min_cos, max_rel, f"scale {scale}")
        assert np.max(np.abs(lse - ref_lse)) < 0.05 * max(1.0, np.max(np.abs(ref_lse)))
    assert not np.array_equal(sageattn.sageattn(q, k, v, smooth_v=True), sageattn.sageattn(q, k, v))


# ---- GQA, causal, layouts, LSE, lengths ----

@pytest.mark.parametrize("hq,hk", [(8, 2), (4, 1), (6, 6)])
def test_gqa_equals_repeated_kv(hq, hk):
    q, k, v = (rounded(x, bf16()) for x in make_inputs("k_channel_bias", 2, hq, hk, 129, 77, 64, seed=hq))
    o = sageattn.sageattn(q, k, v)
    rep = hq // hk
    o_rep = sageattn.sageattn(q, np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1))
    np.testing.assert_array_equal(o, o_rep)  # KV head h // rep: the same quantized K/V, bit for bit
    ref, _ = reference_attention(q, k, v)
    assert_close(o, ref, *accuracy_bound("k_channel_bias", 64, "fp8"), what=f"GQA {hq}/{hk}")


@pytest.mark.parametrize("nq,nk", [(100, 300), (300, 100), (1, 129), (127, 127)])
def test_causal_bottom_right(nq, nk):
    q, k, v = (rounded(x, bf16()) for x in make_inputs("gaussian", 1, 2, 2, nq, nk, 64, seed=nq + nk))
    o, lse = sageattn.sageattn(q, k, v, is_causal=True, return_lse=True)
    ref, ref_lse = reference_attention(q, k, v, causal=True)
    min_cos, max_rel = numerics_bound(r"^causal Nq != Nk")
    visible = np.isfinite(ref_lse)  # rows that see at least one key
    assert_close(o[visible], ref[visible], min_cos, max_rel, f"causal {nq}x{nk}")
    # Rows that see no key (Nq > Nk): output 0 and LSE -inf, never NaN.
    assert np.all(o[~visible] == 0)
    assert np.all(np.isneginf(lse[~visible])) and np.array_equal(np.isneginf(lse), ~visible)
    # The mask is applied: a top-left aligned mask or none at all would be far off.
    top_left, _ = reference_attention(q, k, v, causal=True) if nq == nk else reference_attention(
        q[:, :, :, :], np.ascontiguousarray(k[:, :, : min(nq, nk)]), np.ascontiguousarray(v[:, :, : min(nq, nk)]),
        causal=True)
    unmasked, _ = reference_attention(q, k, v)
    if nq > 1 and nq <= nk:
        assert metrics(o, unmasked)[1] > 4 * max_rel
    if nq < nk:
        assert metrics(o, top_left)[1] > 4 * max_rel


def test_nhd_layout_equals_hnd():
    q, k, v = (rounded(x, np.float16) for x in make_inputs("gaussian", 2, 4, 2, 150, 90, 32, seed=7))
    o_hnd, lse_hnd = sageattn.sageattn(q, k, v, is_causal=True, return_lse=True)
    t = lambda x: np.ascontiguousarray(x.transpose(0, 2, 1, 3))
    o_nhd, lse_nhd = sageattn.sageattn(t(q), t(k), t(v), tensor_layout="NHD", is_causal=True, return_lse=True)
    assert o_nhd.shape == (2, 150, 4, 32) and lse_nhd.shape == (2, 4, 150)
    np.testing.assert_array_equal(o_nhd, t(o_hnd))
    np.testing.assert_array_equal(lse_nhd, lse_hnd)


def test_lse_matches_float64():
    (bound,) = numerics_bound(r"^quantized LSE vs exact")
    q, k, v = (rounded(x, bf16()) for x in make_inputs("k_channel_bias", 1, 2, 2, 1024, 1024, 128, seed=8))
    o, lse = sageattn.sageattn(q, k, v, return_lse=True)
    assert lse.dtype == np.float32 and lse.shape == (1, 2, 1024)
    _, ref_lse = reference_attention(q, k, v)
    err = float(np.max(np.abs(lse.astype(np.float64) - ref_lse)))
    assert err <= bound, f"LSE max error {err:.2e} nats (bound {bound})"


@pytest.mark.parametrize("nq,nk", [(0, 5), (5, 0), (1, 1), (17, 1000)])
def test_lengths(nq, nk):
    q, k, v = (rounded(x, bf16()) for x in make_inputs("gaussian", 1, 2, 2, nq, nk, 64, seed=9))
    o, lse = sageattn.sageattn(q, k, v, return_lse=True)
    assert o.shape == (1, 2, nq, 64) and lse.shape == (1, 2, nq)
    if nk == 0:
        assert np.all(o == 0) and np.all(np.isneginf(lse))
    elif nq:
        ref, _ = reference_attention(q, k, v)
        assert_close(o, ref, *numerics_bound(r"^lengths"), what=f"{nq}x{nk}")


# ---- strided views and caller-provided outputs ----

def test_strided_views_equal_contiguous_copies():
    rng = np.random.default_rng(10)
    big = rng.standard_normal((2, 6, 300, 80)).astype(np.float16)  # [B, H, N, D + 16]
    q = big[:, ::2, ::2, 8:72]          # every other head and token, a channel window: D = 64
    k = big[:, 1::2, 1::3, 16:80]
    v = big[:, 1::2, 2::3, 0:64]
    assert not q.flags.c_contiguous and q.strides[-1] == 2
    o = sageattn.sageattn(q, k, v, is_causal=True)
    c = np.ascontiguousarray
    np.testing.assert_array_equal(o, sageattn.sageattn(c(q), c(k), c(v), is_causal=True))
    # Into a strided output (an NHD buffer seen as HND) and a strided LSE.
    out_buf = np.zeros((2, 150, 3, 64), np.float16)
    lse_buf = np.zeros((2, 150, 3), np.float32)
    out_view, lse_view = out_buf.transpose(0, 2, 1, 3), lse_buf.transpose(0, 2, 1)
    r = sageattn.sageattn(q, k, v, is_causal=True, return_lse=True, out=out_view, lse=lse_view)
    assert r[0] is out_view and r[1] is lse_view
    np.testing.assert_array_equal(out_view, o)
    _, lse = sageattn.sageattn(c(q), c(k), c(v), is_causal=True, return_lse=True)
    np.testing.assert_array_equal(lse_view, lse)


def test_bf16_and_f16_round_trip_types():
    for dtype in (np.dtype(np.float16), bf16()):
        q, k, v = (rounded(x, dtype) for x in make_inputs("gaussian", 1, 1, 1, 40, 40, 16))
        o = sageattn.sageattn(q, k, v)
        assert o.dtype == dtype


def test_qk_quant_gran_is_the_original_name_of_granularity():
    q, k, v = (rounded(x, bf16()) for x in make_inputs("outliers", 1, 2, 2, 300, 300, 64, seed=11))
    per_thread = sageattn.sageattn(q, k, v, granularity="per_thread")
    np.testing.assert_array_equal(sageattn.sageattn(q, k, v, qk_quant_gran="per_thread"), per_thread)
    assert not np.array_equal(per_thread, sageattn.sageattn(q, k, v, granularity="per_block"))


# ---- varlen ----

def test_varlen_equals_dense_per_sequence():
    lens_q, lens_k = [1, 129, 0, 64, 200], [17, 100, 5, 64, 333]
    hq, hk, d = 4, 2, 64
    seqs = [make_inputs("k_channel_bias", 1, hq, hk, nq, nk, d, seed=20 + i)
            for i, (nq, nk) in enumerate(zip(lens_q, lens_k))]
    pack = lambda xs: np.concatenate([x[0].transpose(1, 0, 2) for x in xs], axis=0).astype(bf16())
    q, k, v = pack([s[0] for s in seqs]), pack([s[1] for s in seqs]), pack([s[2] for s in seqs])
    cu_q = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int64)  # int64 is converted
    for causal in (False, True):
        o, lse = sageattn.varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), is_causal=causal,
                                 return_lse=True)
        assert o.shape == q.shape and lse.shape == (hq, q.shape[0])
        for i in range(len(lens_q)):
            sq, sk = slice(cu_q[i], cu_q[i + 1]), slice(cu_k[i], cu_k[i + 1])
            to_hnd = lambda x: np.ascontiguousarray(x.transpose(1, 0, 2)[None])
            od, lsed = sageattn.sageattn(to_hnd(q[sq]), to_hnd(k[sk]), to_hnd(v[sk]), is_causal=causal,
                                         return_lse=True)
            np.testing.assert_array_equal(to_hnd(o[sq]), od)  # bit for bit (NUMERICS.md §1)
            np.testing.assert_array_equal(lse[:, sq], lsed[0])


def test_varlen_rejects_bad_cu_seqlens_and_leaves_out_untouched():
    q = np.ones((10, 2, 16), np.float16)
    out = np.full_like(q, 7)
    cu = np.array([0, 4, 3, 10], np.int32)
    with pytest.raises(ValueError, match=r"cu_seqlens_q\[2\]=3 is smaller than cu_seqlens_q\[1\]=4"):
        sageattn.varlen(q, q, q, cu, np.array([0, 4, 6, 10], np.int32), 10, 10, out=out)
    with pytest.raises(ValueError, match=r"sequence 1 has length 6 .*max_seqlen_k=5"):
        sageattn.varlen(q, q, q, np.array([0, 4, 4, 10], np.int32), np.array([0, 4, 10, 10], np.int32), 10, 5,
                        out=out)
    with pytest.raises(TypeError, match="cu_seqlens_q has dtype float32"):
        sageattn.varlen(q, q, q, cu.astype(np.float32), cu, 10, 10, out=out)
    assert np.all(out == 7)


# ---- validation: ValueError / TypeError naming the value; outputs untouched ----

def _qkv(d=64, hq=4, hk=2, n=33, dtype=np.float16):
    q, k, v = make_inputs("gaussian", 1, hq, hk, n, n, d)
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


@pytest.mark.parametrize("case,exc,pattern", [
    ("head_dim_mismatch", ValueError, r"head_dim mismatch: q=64 k=32"),
    ("head_dim_not_multiple", ValueError, r"head_dim must be a multiple of 8 .* got 20"),
    ("heads_not_multiple", ValueError, r"heads_q=4 is not a multiple of heads_kv=3"),
    ("bad_layout", ValueError, r"tensor_layout must be one of HND, NHD; got 'BHND'"),
    ("bad_pv_mode", ValueError, r"pv_mode must be one of auto, fp16, fp8, fp8_fp16acc; got 'int4'"),
    ("bad_granularity", ValueError, r"granularity must be one of per_block, per_warp, per_thread; got 'per_row'"),
    ("nonunit_stride", ValueError, r"k must have unit stride on its last dim, got 2"),
    ("rank", ValueError, r"q must have 4 dims, got ndim=3"),
    ("scale_inf", ValueError, r"options.scale must be finite, got inf"),
    ("f32", TypeError, r"q dtype must be f16 or bf16, got f32"),
    ("mixed", TypeError, r"k dtype bf16 does not match q dtype f16"),
    ("f64", TypeError, r"v has dtype float64"),
    ("uint16_next_to_bf16", TypeError, r"k has dtype uint16"),
    ("lse_shape", ValueError, r"lse shape \[1, 4, 32\] must be \[batch, heads_q, seqlen_q\] = \[1, 4, 33\]"),
    ("lse_dtype", TypeError, r"lse dtype must be f32, got f16"),
    ("not_an_array", TypeError, r"k is a builtins.list, not a DLPack array"),
    ("backend_gpu", ValueError, r"backend sm80 needs GPU tensors"),
    ("workspace", TypeError, r"workspace must be a \(pointer, bytes\) pair"),
])
def test_invalid_arguments_raise_and_leave_outputs_untouched(case, exc, pattern):
    q, k, v = _qkv()
    kw = {}
    lse = np.full((1, 4, 33), 5.0, np.float32)
    if case == "head_dim_mismatch":
        k = np.ascontiguousarray(k[..., :32])
    elif case == "head_dim_not_multiple":
        q, k, v = (np.ascontiguousarray(x[..., :20]) for x in (q, k, v))
    elif case == "heads_not_multiple":
        k = np.concatenate([k, k[:, :1]], axis=1)
        v = np.concatenate([v, v[:, :1]], axis=1)
    elif case == "bad_layout":
        kw["tensor_layout"] = "BHND"
    elif case == "bad_pv_mode":
        kw["pv_mode"] = "int4"
    elif case == "bad_granularity":
        kw["granularity"] = "per_row"
    elif case == "nonunit_stride":
        k = np.repeat(k, 2, axis=-1)[..., ::2]
    elif case == "rank":
        q = np.ascontiguousarray(q[0])
    elif case == "scale_inf":
        kw["sm_scale"] = float("inf")
    elif case == "f32":
        q, k, v = (x.astype(np.float32) for x in (q, k, v))
    elif case == "mixed":
        k = k.astype(bf16())
    elif case == "f64":
        v = v.astype(np.float64)
    elif case == "uint16_next_to_bf16":
        q, v = q.astype(bf16()), v.astype(bf16())
        k = k.view(np.uint16)
    elif case == "lse_shape":
        lse = np.full((1, 4, 32), 5.0, np.float32)
    elif case == "lse_dtype":
        lse = np.full((1, 4, 33), 5.0, np.float16)
    elif case == "not_an_array":
        k = k.tolist()
    elif case == "backend_gpu":
        kw["backend"] = "sm80"
    elif case == "workspace":
        kw["workspace"] = 12345
    out = np.full(q.shape, 3.0, dtype=q.dtype if q.dtype != np.float32 else np.float32)
    if case == "f32":
        out = out.astype(np.float32)
    out_before, lse_before = out.copy(), lse.copy()
    with pytest.raises(exc, match=pattern):
        sageattn.sageattn(q, k, v, return_lse=True, out=out, lse=lse, **kw)
    np.testing.assert_array_equal(out, out_before)
    np.testing.assert_array_equal(lse, lse_before)


def test_readonly_inputs_are_accepted():
    q, k, v = _qkv()
    for x in (q, k, v):
        x.setflags(write=False)
    o = sageattn.sageattn(q, k, v)
    assert o.shape == q.shape


# ---- exported constants equal include/sageattn/layout.h ----

def _header_constants():
    text = LAYOUT_H.read_text()
    consts = {}
    for name, value in re.findall(r"inline constexpr (?:int|float|double) (k\w+) = ([0-9.e+-]+)f?;", text):
        consts[name] = float(value.rstrip("f"))
    for name in ("kSm80Tiles", "kSm90Tiles"):
        tiles = re.search(r"inline constexpr TileConfig " + name + r"\{(\d+), (\d+), (\d+), (\d+)\};", text)
        assert tiles, f"{name} not found in layout.h"
        consts[name] = tuple(int(x) for x in tiles.groups())
    return consts


def test_constants_equal_the_header():
    h = _header_constants()
    pairs = {
        "kLog2e": layout.LOG2E, "kLn2": layout.LN2, "kInt8Max": layout.INT8_MAX,
        "kFp8E4M3Max": layout.FP8_E4M3_MAX, "kLog2Fp8E4M3Max": layout.LOG2_FP8_E4M3_MAX,
        "kFp16Max": layout.FP16_MAX, "kMinAmax": layout.MIN_AMAX,
        "kMeanChunkTokens": layout.MEAN_CHUNK_TOKENS, "kMeanGroupChunks": layout.MEAN_GROUP_CHUNKS,
        "kFp16VTargetExp": layout.FP16_V_TARGET_EXP,
        "kFp16VKeepMinExp": layout.FP16_V_KEEP_MIN_EXP, "kFp16VKeepMaxExp": layout.FP16_V_KEEP_MAX_EXP,
        "kFp8MmaK": layout.FP8_MMA_K, "kMinHeadDim": layout.MIN_HEAD_DIM,
        "kMaxHeadDim": layout.MAX_HEAD_DIM, "kHeadDimMultiple": layout.HEAD_DIM_MULTIPLE,
    }
    for name, value in pairs.items():
        assert name in h, f"{name} not found in layout.h"
        assert value == pytest.approx(h[name], rel=1e-7), name
    for t, name in ((layout.SM80_TILES, "kSm80Tiles"), (layout.SM90_TILES, "kSm90Tiles")):
        assert (t.block_q, t.block_k, t.warp_q, t.k_block) == h[name]
    assert layout.HOST_DEVICE == -1 and layout.MAX_DIMS == 4  # types.h


@pytest.mark.parametrize("family", ["sm80", "sm90"])
def test_group_specs_follow_the_documented_layouts(family):
    t = layout.TILES[family]
    # layout.h: per-block Q {block_q,1,1}, K {k_block,1,1}; per-warp Q {warp_q,1,1}, K {k_block,1,1};
    # per-thread Q {warp_q,1,8}, K {k_block,2,4}. One K quantizer serves both families.
    assert t.q_groups["per_block"] == (t.block_q, 1, 1) and t.k_groups["per_block"] == (t.k_block, 1, 1)
    assert t.q_groups["per_warp"] == (t.warp_q, 1, 1) and t.k_groups["per_warp"] == (t.k_block, 1, 1)
    assert t.q_groups["per_thread"] == (t.warp_q, 1, 8) and t.k_groups["per_thread"] == (t.k_block, 2, 4)
    assert t.k_block == layout.SM80_TILES.k_block and t.block_k % t.k_block == 0
    assert t.fp16acc_v_range * t.block_k * layout.FP8_E4M3_MAX <= layout.FP16_MAX
    for spec in list(t.q_groups.values()) + list(t.k_groups.values()):
        for tok in (0, 1, 7, 8, 31, 32, 63, 64, 127, 128, 1000):
            expected = tok // spec.block * spec.count + (tok % spec.block) // spec.stride % spec.count
            assert spec.group_of(tok) == expected
        assert spec.num_groups(1000) == -(-1000 // spec.block) * spec.count
    assert layout.head_dim_supported(layout.MAX_HEAD_DIM)
    assert not layout.head_dim_supported(layout.MAX_HEAD_DIM + layout.HEAD_DIM_MULTIPLE)
    assert not layout.head_dim_supported(layout.MIN_HEAD_DIM + 1)


def test_version_is_the_cmake_project_version():
    m = re.search(r"project\(sageattn VERSION ([0-9.]+)", (REPO / "CMakeLists.txt").read_text())
    assert sageattn.__version__ == m.group(1)
    assert importlib.metadata.version("sageattn") == m.group(1)


def test_import_does_not_need_torch():
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None\n"  # makes `import torch` fail
            "import numpy as np, sageattn\n"
            "assert sageattn.TORCH_ERROR and 'torch' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
            "q = np.ones((1, 1, 4, 8), np.float16)\n"
            "print(sageattn.sageattn(q, q, q).shape)\n"
            "try:\n    sageattn.sdpa(q, q, q)\nexcept ImportError as e:\n    print('ImportError', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "(1, 1, 4, 8)" in r.stdout and "ImportError sageattn.sdpa needs torch" in r.stdout
