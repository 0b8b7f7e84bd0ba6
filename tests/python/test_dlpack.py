"""Other DLPack frameworks: JAX and CuPy arrays (GPU: the CUDA backend; JAX host arrays: the CPU
backend). Each test skips with its reason when the framework or a GPU is missing."""

from __future__ import annotations

import numpy as np
import pytest

import sageattn

from conftest import assert_close, bf16, have, make_inputs, numerics_bound


def _jax(platform):
    if not have("jax"):
        pytest.skip("jax is not installed")
    import jax
    try:
        devices = jax.devices(platform)
    except RuntimeError as e:
        pytest.skip(f"jax has no {platform} device ({e})")
    if platform == "gpu" and not (sageattn.CUDA_BUILD and sageattn.gpu_available()):
        pytest.skip("this sageattn build or machine has no usable GPU backend")
    return jax, devices[0]


def _cupy():
    if not have("cupy"):
        pytest.skip("cupy is not installed")
    import cupy
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver
        pytest.skip(f"cupy sees no CUDA device ({e})")
    if n == 0:
        pytest.skip("cupy sees no CUDA device")
    if not (sageattn.CUDA_BUILD and sageattn.gpu_available()):
        pytest.skip("this sageattn build or machine has no usable GPU backend")
    return cupy


def _inputs(dtype, nq=300, nk=500):
    return tuple(x.astype(dtype) for x in make_inputs("k_channel_bias", 2, 4, 2, nq, nk, 64, seed=4))


def _gpu_bound():
    return numerics_bound(r"^fp16$")  # GPU vs CPU backend, pv_mode fp16 (any GPU)


# The CPU backend emulates the sm80 kernels' tiles (kSm80Tiles), so the GPU calls that are held to
# it tightly name that backend; automatic dispatch runs the sm90 kernels on Hopper (other tiles:
# tests/gpu/test_gpu_attention.cu checks them against the reference run with their own tiles).
GPU_BACKEND = "sm80"


@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_jax_arrays(platform):
    jax, device = _jax(platform)
    q, k, v = _inputs(bf16())
    jq, jk, jv = (jax.device_put(x, device) for x in (q, k, v))
    o, lse = sageattn.sageattn(jq, jk, jv, is_causal=True, return_lse=True, pv_mode="fp16",
                               backend=GPU_BACKEND if platform == "gpu" else "auto")
    assert isinstance(o, jax.Array) and o.dtype == jq.dtype and o.shape == q.shape
    assert lse.shape == (2, 4, 300) and str(lse.dtype) == "float32"
    assert list(o.devices())[0] == device
    ref, ref_lse = sageattn.sageattn(q, k, v, is_causal=True, return_lse=True, pv_mode="fp16")
    if platform == "cpu":  # the same CPU backend: bit for bit
        np.testing.assert_array_equal(np.asarray(o), ref)
        np.testing.assert_array_equal(np.asarray(lse), ref_lse)
    else:
        assert_close(np.asarray(o).astype(np.float64), ref.astype(np.float64), *_gpu_bound(), what="jax gpu")
        assert np.max(np.abs(np.asarray(lse) - ref_lse)) <= 2e-4 * max(1.0, np.max(np.abs(ref_lse)))
    # JAX keeps computing with the result.
    assert np.isfinite(float(jax.numpy.sum(o.astype("float32"))))


def test_jax_varlen():
    jax, device = _jax("gpu")
    lens = [3, 200, 64]
    cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    q = make_inputs("gaussian", 1, 4, 4, int(cu[-1]), 1, 128, seed=5)[0][0].transpose(1, 0, 2).astype(np.float16)
    o = sageattn.varlen(*(jax.device_put(x, device) for x in (q, q, q, cu, cu)), max(lens), max(lens),
                        is_causal=True, pv_mode="fp16", backend=GPU_BACKEND)
    ref = sageattn.varlen(q, q, q, cu, cu, max(lens), max(lens), is_causal=True, pv_mode="fp16")
    assert_close(np.asarray(o).astype(np.float64), ref.astype(np.float64), *_gpu_bound(), what="jax varlen")


def test_cupy_arrays_on_the_current_stream():
    cupy = _cupy()
    q, k, v = _inputs(np.float16)
    cq, ck, cv = (cupy.asarray(x) for x in (q, k, v))
    o = sageattn.sageattn(cq, ck, cv, is_causal=True, pv_mode="fp16", backend=GPU_BACKEND)
    assert isinstance(o, cupy.ndarray) and o.dtype == np.float16 and o.shape == q.shape
    ref = sageattn.sageattn(q, k, v, is_causal=True, pv_mode="fp16")
    assert_close(cupy.asnumpy(o).astype(np.float64), ref.astype(np.float64), *_gpu_bound(), what="cupy")
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        o2 = sageattn.sageattn(cq, ck, cv, is_causal=True, pv_mode="fp16", backend=GPU_BACKEND)
        total = o2.astype(np.float32).sum()  # queued behind the attention on the same stream
    stream.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(o2), cupy.asnumpy(o))
    assert float(total) == float(o.astype(np.float32).sum())
    # A caller-provided output and LSE, and an explicit stream.
    out = cupy.full(q.shape, 7, dtype=np.float16)
    lse = cupy.zeros((2, 4, 300), dtype=np.float32)
    r = sageattn.sageattn(cq, ck, cv, is_causal=True, pv_mode="fp16", backend=GPU_BACKEND,
                          return_lse=True, out=out, lse=lse,
                          stream=cupy.cuda.get_current_stream().ptr)
    cupy.cuda.get_current_stream().synchronize()
    assert r[0] is out and r[1] is lse
    np.testing.assert_array_equal(cupy.asnumpy(out), cupy.asnumpy(o))
