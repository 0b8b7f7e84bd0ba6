"""torch integration: custom ops (opcheck), torch.compile(fullgraph=True), the SDPA drop-in and
its fallback table, CUDA-graph capture, streams, accuracy per P·V mode on the GPU.

CPU tests run wherever torch is installed; GPU tests skip with a visible reason without a CUDA
device (or with a CPU-only build of sageattn)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import sageattn

from conftest import (accuracy_bound, assert_close, cuda_or_skip, make_inputs, metrics, numerics_bound,
                      reference_attention, torch_or_skip)

MODES = ("fp16", "fp8", "fp8_fp16acc")


@pytest.fixture
def torch():
    return torch_or_skip()


@pytest.fixture
def cuda():
    return cuda_or_skip()


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test sees the one-time fallback warnings anew."""
    tm = getattr(sageattn, "_torch_api", None)
    if tm is not None:
        tm._warned.clear()
    yield


def tensors(torch, family, b, hq, hk, nq, nk, d, dtype, device, seed=0):
    return tuple(torch.from_numpy(x).to(device=device, dtype=dtype)
                 for x in make_inputs(family, b, hq, hk, nq, nk, d, seed=seed))


def to64(t):
    return t.detach().double().cpu().numpy()


def explain_breaks(torch, fn, *args):
    torch._dynamo.reset()
    e = torch._dynamo.explain(fn)(*args)
    return e.graph_count, e.graph_break_count, [str(r) for r in getattr(e, "break_reasons", [])]


# ---- CPU torch (the CPU backend) ----

def test_cpu_tensors_match_numpy(torch):
    q, k, v = tensors(torch, "k_channel_bias", 1, 4, 2, 100, 150, 64, torch.float16, "cpu")
    o, lse = sageattn.sageattn(q, k, v, is_causal=True, return_lse=True)
    assert o.dtype == torch.float16 and o.device.type == "cpu" and lse.shape == (1, 4, 100)
    on, lsen = sageattn.sageattn(q.numpy(), k.numpy(), v.numpy(), is_causal=True, return_lse=True)
    np.testing.assert_array_equal(o.numpy(), on)
    np.testing.assert_array_equal(lse.numpy(), lsen)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_custom_ops_pass_opcheck(torch, device):
    if device == "cuda":
        cuda_or_skip()
    q, k, v = tensors(torch, "gaussian", 1, 4, 2, 70, 90, 64, torch.bfloat16, device)
    for layout_name, causal, lse in (("HND", True, True), ("HND", False, False)):
        torch.library.opcheck(torch.ops.sageattn.attention.default,
                              (q, k, v, layout_name, causal, None, "auto", "per_warp", True, False, "auto", lse))
    t = lambda x: x.transpose(1, 2)  # NHD as strided views
    torch.library.opcheck(torch.ops.sageattn.attention.default,
                          (t(q), t(k), t(v), "NHD", False, 0.1, "fp16", "per_thread", True, True, "auto", True))
    p = q[0].transpose(0, 1).contiguous()  # [70, 4, 64]
    pk, pv = (x[0].transpose(0, 1).contiguous() for x in (k, v))
    cu_q = torch.tensor([0, 30, 70], dtype=torch.int32, device=device)
    cu_k = torch.tensor([0, 50, 90], dtype=torch.int32, device=device)
    torch.library.opcheck(torch.ops.sageattn.varlen.default,
                          (p, pk, pv, cu_q, cu_k, 40, 50, True, None, "auto", "per_warp", True, False, "auto", True))
    kk, vv = (x.repeat_interleave(2, dim=1) for x in (k, v))
    torch.library.opcheck(torch.ops.sageattn.sdpa.default, (q, kk, vv, False, None, False))


def test_compile_fullgraph_has_no_graph_break_cpu(torch):
    q, k, v = tensors(torch, "gaussian", 1, 4, 2, 64, 64, 32, torch.bfloat16, "cpu")

    def fn(q, k, v):
        o, lse = sageattn.sageattn(q, k, v, is_causal=True, return_lse=True, pv_mode="fp16")
        return o * 2, lse + 1

    graphs, breaks, reasons = explain_breaks(torch, fn, q, k, v)
    assert (graphs, breaks) == (1, 0), reasons
    torch._dynamo.reset()
    o, lse = torch.compile(fn, fullgraph=True, backend="aot_eager")(q, k, v)
    eo, else_ = fn(q, k, v)
    assert torch.equal(o, eo) and torch.equal(lse, else_)


def test_requires_grad_inputs_run_forward(torch):
    q, k, v = tensors(torch, "gaussian", 1, 2, 2, 40, 40, 32, torch.float16, "cpu")
    qg = q.clone().requires_grad_(True)
    assert torch.equal(sageattn.sageattn(qg, k, v).detach(), sageattn.sageattn(q, k, v))


def test_int64_cu_seqlens_are_converted(torch):
    q, k, v = (x[0].transpose(0, 1).contiguous() for x in tensors(torch, "gaussian", 1, 2, 2, 50, 50, 32,
                                                                      torch.float16, "cpu"))
    cu = torch.tensor([0, 20, 50])
    assert torch.equal(sageattn.varlen(q, k, v, cu, cu, 30, 30), sageattn.varlen(q, k, v, cu.int(), cu.int(), 30, 30))


# ---- sdpa: the fallback table (docs/PYTHON.md) ----

def fallback_cases(torch, device):
    """(name, expected reason key, args, kwargs) for every rule of the table."""
    f16, bf = torch.float16, torch.bfloat16
    mk = lambda hq=4, hk=4, nq=64, nk=64, d=64, dtype=f16, b=2, rank=4: tuple(
        x if rank == 4 else x[0] for x in tensors(torch, "gaussian", b, hq, hk, nq, nk, d, dtype, device))
    q, k, v = mk()
    mask = torch.ones(64, 64, dtype=torch.bool, device=device).tril()
    grad_q = q.clone().requires_grad_(True)
    return [
        ("attn_mask", "attn_mask", (q, k, v), dict(attn_mask=mask)),
        ("dropout", "dropout", (q, k, v), dict(dropout_p=0.5)),
        ("float32", "dtype:torch.float32", mk(dtype=torch.float32), {}),
        ("mixed_dtypes", "dtype:torch.float16", (q, k.to(bf), v), {}),
        ("requires_grad", "grad", (grad_q, k, v), {}),
        ("rank5", "rank", tuple(x[None] for x in (q, k, v)), {}),
        ("head_dim_20", "head_dim:20", mk(d=20), {}),
        ("head_dim_264", "head_dim:264", mk(d=264, nq=16, nk=16), {}),
        ("head_dims_differ", "head_dims", (q, k, mk(d=32)[2]), {}),
        ("batch_broadcast", "batch", (q, k[:1], v[:1]), {}),
        ("gqa_without_flag", "gqa", mk(hq=4, hk=1), {}),
        ("causal_nq_ne_nk", "causal_alignment", mk(nq=32, nk=64), dict(is_causal=True)),
        ("empty_keys", "empty", mk(nk=0), {}),
    ]


def test_fallback_reasons(torch):
    tm = sageattn._torch_api
    for name, key, args, kwargs in fallback_cases(torch, "cpu"):
        full = dict(attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False)
        full.update(kwargs)
        reason = tm.sdpa_fallback_reason(*args, **full)
        assert reason is not None and reason[0] == key, (name, reason)
    q, k, v = tensors(torch, "gaussian", 2, 4, 4, 64, 64, 64, torch.float16, "cpu")
    full = dict(attn_mask=None, dropout_p=0.0, is_causal=True, scale=None, enable_gqa=False)
    assert tm.sdpa_fallback_reason(q, k, v, **full)[0] == "device"  # CPU tensors: torch's SDPA
    assert tm.sdpa_fallback_reason(q, k[:, :2], v[:, :2], **dict(full, enable_gqa=True))[0] == "device"


def _check_fallback(torch, name, key, args, kwargs):
    """sageattn.sdpa gives exactly torch's result (or torch's exception), with one warning that
    names the reason on the first call and none on the second."""
    full = dict(attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False)
    full.update(kwargs)
    reason = sageattn._torch_api.sdpa_fallback_reason(*args, **full)
    assert reason is not None and reason[0] == key, (name, reason)
    torch.manual_seed(0)  # dropout draws the same mask in both calls
    try:
        ref, ref_exc = sageattn._torch_api.torch_sdpa(*args, **kwargs), None
    except Exception as e:  # torch rejects it: so must we, with torch's exception
        ref, ref_exc = None, type(e)
    for attempt in range(2):
        torch.manual_seed(0)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            if ref_exc is not None:
                with pytest.raises(ref_exc):
                    sageattn.sdpa(*args, **kwargs)
            else:
                out = sageattn.sdpa(*args, **kwargs)
                torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True, msg=name)
        ours = [str(x.message) for x in w if "sageattn.sdpa: falling back" in str(x.message)]
        if attempt == 0:
            assert len(ours) == 1 and reason[1] in ours[0], (name, ours)
        else:
            assert not ours, (name, ours)


def test_sdpa_fallbacks_match_torch_and_warn_once_cpu(torch):
    for name, key, args, kwargs in fallback_cases(torch, "cpu"):
        _check_fallback(torch, name, key, args, kwargs)


def test_sdpa_falls_back_on_cpu_tensors_and_warns_once(torch):
    q, k, v = tensors(torch, "gaussian", 2, 4, 4, 64, 64, 64, torch.float16, "cpu")
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    with pytest.warns(UserWarning, match=r"falling back .*tensors on device type 'cpu'"):
        out = sageattn.sdpa(q, k, v, is_causal=True)
    assert torch.equal(out, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert torch.equal(sageattn.sdpa(q, k, v, is_causal=True), ref)
    # The fallback compiles without a graph break too.
    graphs, breaks, reasons = explain_breaks(torch, lambda a, b, c: sageattn.sdpa(a, b, c, is_causal=True), q, k, v)
    assert breaks == 0, reasons


def test_patch_unpatch_and_context_manager(torch):
    F = torch.nn.functional
    original = F.scaled_dot_product_attention
    sageattn.patch_sdpa()
    try:
        assert F.scaled_dot_product_attention is sageattn._torch_api.sdpa
    finally:
        sageattn.unpatch_sdpa()
    assert F.scaled_dot_product_attention is original
    with sageattn.sdpa_patched():
        assert F.scaled_dot_product_attention is sageattn._torch_api.sdpa
        q, k, v = tensors(torch, "gaussian", 1, 2, 2, 16, 16, 16, torch.float16, "cpu")
        with pytest.warns(UserWarning):
            F.scaled_dot_product_attention(q, k, v)  # CPU tensors: torch's SDPA, through ours
    assert F.scaled_dot_product_attention is original


# ---- GPU ----

@pytest.mark.parametrize("mode", MODES)
def test_gpu_accuracy_per_pv_mode(cuda, mode):
    torch = cuda
    if mode != "fp16" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 P·V needs sm89+")
    for family, hd in (("gaussian", 128), ("k_channel_bias", 64), ("outliers", 128)):
        q, k, v = tensors(torch, family, 1, 2, 2, 1024, 1024, hd, torch.bfloat16, "cuda", seed=hd)
        o = sageattn.sageattn(q, k, v, pv_mode=mode)
        assert o.dtype == torch.bfloat16 and o.is_cuda and o.shape == q.shape
        ref64 = torch.nn.functional.scaled_dot_product_attention(q.double(), k.double(), v.double())
        assert_close(to64(o), to64(ref64), *accuracy_bound(family, hd, mode), what=f"{family} hd{hd} {mode}")
        # Against the CPU backend (the reference the kernels are held to), NUMERICS.md's GPU table:
        # it emulates the sm80 kernels' tiles, so that backend is named (automatic dispatch runs
        # the sm90 kernels on Hopper; tests/gpu/test_gpu_attention.cu holds them to the reference
        # run with their own tiles).
        o80 = sageattn.sageattn(q, k, v, pv_mode=mode, backend="sm80")
        cpu = sageattn.sageattn(q.cpu(), k.cpu(), v.cpu(), pv_mode=mode)
        assert_close(to64(o80), to64(cpu), *numerics_bound(rf"^{mode}$"), what=f"GPU vs CPU {family} {mode}")


def test_gpu_lse_gqa_causal_nhd_match_the_cpu_backend(cuda):
    torch = cuda
    q, k, v = tensors(torch, "k_channel_bias", 2, 8, 2, 300, 700, 64, torch.float16, "cuda", seed=1)
    t = lambda x: x.transpose(1, 2)  # NHD strided views of the same data
    # backend sm80: the tiles the CPU backend emulates (see test_gpu_accuracy_per_pv_mode); the
    # device's "auto" mode named, since on sm90 the sm80 kernels would take fp16 for "auto".
    mode = sageattn.resolve_pv_mode("auto", torch.cuda.current_device())
    o, lse = sageattn.sageattn(t(q), t(k), t(v), tensor_layout="NHD", is_causal=True, return_lse=True,
                               backend="sm80", pv_mode=mode)
    assert o.shape == t(q).shape and lse.shape == (2, 8, 300)
    oc, lsec = sageattn.sageattn(q.cpu(), k.cpu(), v.cpu(), is_causal=True, return_lse=True, pv_mode=mode)
    assert_close(to64(t(o)), to64(oc), *numerics_bound(rf"^{mode}$"), what="GPU vs CPU")
    assert torch.all((lse.cpu() - lsec).abs() <= 2e-4 * lsec.abs().clamp(min=1))


def test_gpu_varlen_equals_dense_per_sequence(cuda):
    torch = cuda
    lens_q, lens_k = [1, 129, 64, 300], [17, 100, 64, 333]
    seqs = [tensors(torch, "gaussian", 1, 4, 2, a, b, 128, torch.bfloat16, "cuda", seed=i)
            for i, (a, b) in enumerate(zip(lens_q, lens_k))]
    pack = lambda i: torch.cat([s[i][0].transpose(0, 1) for s in seqs]).contiguous()
    q, k, v = pack(0), pack(1), pack(2)
    cu_q = torch.tensor(np.concatenate([[0], np.cumsum(lens_q)]), dtype=torch.int32, device="cuda")
    cu_k = torch.tensor(np.concatenate([[0], np.cumsum(lens_k)]), dtype=torch.int32, device="cuda")
    o, lse = sageattn.varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), is_causal=True, return_lse=True)
    for i, s in enumerate(seqs):
        od, lsed = sageattn.sageattn(*s, is_causal=True, return_lse=True)
        assert torch.equal(o[cu_q[i]:cu_q[i + 1]].transpose(0, 1)[None], od), i
        assert torch.equal(lse[:, cu_q[i]:cu_q[i + 1]], lsed[0]), i


def test_gpu_invalid_arguments_raise_and_leave_out_untouched(cuda):
    torch = cuda
    q, k, v = tensors(torch, "gaussian", 1, 4, 2, 33, 33, 64, torch.float16, "cuda")
    out = torch.full_like(q, 3.0)
    with pytest.raises(ValueError, match=r"head_dim mismatch: q=64 k=32"):
        sageattn.sageattn(q, k[..., :32].contiguous(), v, out=out)
    with pytest.raises(TypeError, match=r"k dtype bf16 does not match q dtype f16"):
        sageattn.sageattn(q, k.bfloat16(), v, out=out)
    with pytest.raises(ValueError, match=r"k is on device -1 but q is on device"):
        sageattn.sageattn(q, k.cpu(), v, out=out)
    torch.cuda.synchronize()
    assert torch.all(out == 3.0)


def test_gpu_fp8_below_sm89_is_not_implemented(cuda):
    torch = cuda
    if torch.cuda.get_device_capability() >= (8, 9):
        pytest.skip("this GPU has fp8 tensor cores")
    q, k, v = tensors(torch, "gaussian", 1, 2, 2, 64, 64, 64, torch.float16, "cuda")
    with pytest.raises(NotImplementedError, match=r"pv_mode fp8 needs fp8 tensor cores"):
        sageattn.sageattn(q, k, v, pv_mode="fp8")


def test_gpu_sdpa_fast_path(cuda):
    torch = cuda
    for dtype in (torch.float16, torch.bfloat16):
        q, k, v = tensors(torch, "gaussian", 2, 8, 2, 512, 512, 128, dtype, "cuda", seed=2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the fast path never warns
            o = sageattn.sdpa(q, k, v, is_causal=True, enable_gqa=True)
            o3 = sageattn.sdpa(q[0], k[0], v[0], scale=0.05, enable_gqa=True)  # [H, N, D]
        # The same kernel as sageattn.sageattn with the defaults, bit for bit.
        assert torch.equal(o, sageattn.sageattn(q, k, v, is_causal=True))
        assert torch.equal(o3, sageattn.sageattn(q[:1], k[:1], v[:1], sm_scale=0.05)[0])
        ref = torch.nn.functional.scaled_dot_product_attention(q.double(), k.double().repeat_interleave(4, 1),
                                                               v.double().repeat_interleave(4, 1), is_causal=True)
        mode = sageattn.resolve_pv_mode("auto", torch.cuda.current_device())
        assert_close(to64(o), to64(ref), *accuracy_bound("gaussian", 128, mode), what=f"sdpa {dtype}")


def test_gpu_sdpa_fallbacks_match_torch_and_warn_once(cuda):
    torch = cuda
    for name, key, args, kwargs in fallback_cases(torch, "cuda"):
        _check_fallback(torch, name, key, args, kwargs)


def test_gpu_sdpa_unsupported_head_dim_build_falls_back(cuda):
    """A head dim this build has no kernels for (SAGEATTN_SM80_HEAD_DIMS) is computed by torch."""
    torch = cuda
    q, k, v = tensors(torch, "gaussian", 1, 2, 2, 64, 64, 256, torch.float16, "cuda")
    try:
        sageattn.sageattn(q, k, v)
    except NotImplementedError:
        with pytest.warns(UserWarning, match="not supported by this build or device"):
            out = sageattn.sdpa(q, k, v)
        assert torch.equal(out, sageattn._torch_api.torch_sdpa(q, k, v))
    else:
        pytest.skip("this build has the head-dim-256 kernels")


def test_gpu_compile_fullgraph_no_graph_break(cuda):
    torch = cuda
    q, k, v = tensors(torch, "gaussian", 2, 8, 2, 256, 256, 64, torch.bfloat16, "cuda")

    def fn(q, k, v):
        a = torch.nn.functional.silu(q)
        o = sageattn.sdpa(a, k, v, is_causal=True, enable_gqa=True)
        o2, lse = sageattn.sageattn(o, k, v, return_lse=True, pv_mode="fp16", granularity="per_thread")
        return o2 + 1, lse

    graphs, breaks, reasons = explain_breaks(torch, fn, q, k, v)
    assert (graphs, breaks) == (1, 0), reasons
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)
    o, lse = compiled(q, k, v)
    eo, else_ = fn(q, k, v)
    assert_close(to64(o), to64(eo), 0.99999, 1e-3, "compiled vs eager")  # silu may fuse differently
    assert torch.equal(compiled(q, k, v)[1], compiled(q, k, v)[1])


def test_gpu_cuda_graph_capture_and_replay(cuda):
    torch = cuda
    q, k, v = tensors(torch, "k_channel_bias", 2, 8, 4, 300, 300, 128, torch.float16, "cuda", seed=3)
    cu = torch.tensor([0, 100, 300], dtype=torch.int32, device="cuda")
    pq, pk, pv = (x[0].transpose(0, 1).contiguous() for x in (q, k, v))

    def step():
        o1 = sageattn.sdpa(q, k, v, is_causal=True, enable_gqa=True)
        o2, lse = sageattn.sageattn(q, k, v, tensor_layout="HND", return_lse=True, pv_mode="fp16")
        o3 = sageattn.varlen(pq, pk, pv, cu, cu, 200, 200, is_causal=True)
        return o1, o2, lse, o3

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up outside the capture, as torch recommends
        step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = step()
    # New values in the captured inputs; the replay must compute attention on them.
    for x, seed in ((q, 11), (k, 12), (v, 13)):
        x.copy_(torch.randn(x.shape, generator=torch.Generator("cuda").manual_seed(seed), device="cuda"))
    pq.copy_(q[0].transpose(0, 1)), pk.copy_(k[0].transpose(0, 1)), pv.copy_(v[0].transpose(0, 1))
    graph.replay()
    torch.cuda.synchronize()
    eager = step()
    for a, b in zip(static, eager):
        assert torch.equal(a, b)
    assert not torch.equal(static[0], torch.zeros_like(static[0]))


def test_gpu_runs_on_the_current_stream(cuda):
    torch = cuda
    q, k, v = tensors(torch, "gaussian", 4, 16, 16, 2048, 2048, 128, torch.bfloat16, "cuda")
    expected = sageattn.sageattn(q, k, v)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        o = sageattn.sageattn(q, k, v)
        r = o.float().sum()  # queued behind the attention on the same stream
    s.synchronize()
    assert torch.equal(o, expected) and r.item() == expected.float().sum().item()
