"""Framework-neutral entry points: numpy arrays on the CPU backend, any DLPack array on the GPU.

The extension (sageattn._C) takes DLPack arrays and an explicit output; this module decides, per
framework, how outputs are allocated and how the call is ordered with the framework's work:

- numpy (and other host arrays): outputs from numpy; the CPU backend runs synchronously.
- CuPy: outputs from ``cupy.empty``; the call runs on CuPy's current stream (no host sync).
- JAX and other GPU frameworks: their arrays cannot be written in place and they expose no
  stream, so inputs are made ready (``block_until_ready``), outputs come from the library's own
  ``cudaMalloc`` buffer handed to the framework through DLPack, and the call runs on the default
  stream and is waited for before returning.
- torch tensors go to sageattn._torch (custom ops, torch's allocator and current stream).
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Tuple

from . import _C

# DLPack device types (dlpack.h DLDeviceType).
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13


def _framework(x: Any) -> str:
    root = type(x).__module__.split(".")[0]
    return "jax" if root in ("jax", "jaxlib") else root


def _dlpack_device(x: Any, name: str) -> Tuple[int, int]:
    try:
        device_type, device_id = x.__dlpack_device__()
    except AttributeError:
        raise TypeError(f"{name} is a {type(x).__module__}.{type(x).__name__}, not a DLPack array "
                        "(numpy, torch, JAX, CuPy, ...)") from None
    return int(device_type), int(device_id)


def _check_dlpack(**arrays: Any) -> None:
    """A TypeError naming the argument that is not a DLPack array (None: not given)."""
    for name, a in arrays.items():
        if a is not None:
            _dlpack_device(a, name)


def _is_gpu(device: Tuple[int, int]) -> bool:
    return device[0] in (_DL_CUDA, _DL_CUDA_MANAGED)


def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def _bf16_numpy_dtype():
    try:
        import ml_dtypes
        import numpy as np
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def _for_binding(arrays, names):
    """DLPack-ready versions of numpy arrays: bfloat16 (ml_dtypes) has no DLPack code, so such
    arrays are passed as uint16 views and the binding is told to read uint16 as bf16. Returns the
    arrays and that flag. A genuine uint16 array next to bf16 ones is rejected, not reinterpreted.
    """
    bf16 = [a is not None and _framework(a) == "numpy" and _dtype_name(a) == "bfloat16" for a in arrays]
    if not any(bf16):
        return list(arrays), False
    import numpy as np
    for a, name, is_bf16 in zip(arrays, names, bf16):
        if a is not None and not is_bf16 and _dtype_name(a) == "uint16":
            raise TypeError(f"{name} has dtype uint16, which sageattn does not take "
                            "(q, k, v and out: float16 or bfloat16)")
    return [a.view(np.uint16) if b else a for a, b in zip(arrays, bf16)], True


class _Plan:
    """How one call allocates its outputs and orders itself with the framework of ``like``."""

    def __init__(self, like: Any, stream: Optional[int]):
        self.framework = _framework(like)
        self.like = like
        self.device = _dlpack_device(like, "q")
        self.gpu = _is_gpu(self.device)
        self.sync = False
        self.stream = 0
        if not self.gpu:
            return
        if stream is not None:
            self.stream = int(stream)  # the caller orders the work itself
        elif self.framework == "cupy":
            import cupy
            with cupy.cuda.Device(self.device[1]):
                self.stream = cupy.cuda.get_current_stream().ptr
        else:
            self.sync = True  # default stream, waited for before returning

    def ready(self, *arrays: Any) -> None:
        """Makes inputs of frameworks with asynchronous dispatch (JAX) ready to be read."""
        if self.sync:
            for a in arrays:
                wait = getattr(a, "block_until_ready", None)
                if wait is not None:
                    wait()

    def empty(self, shape, dtype_name: str):
        """A writable output buffer: (what the binding writes, a function giving the result)."""
        shape = tuple(int(s) for s in shape)
        if not self.gpu:
            import numpy as np
            dtype = _bf16_numpy_dtype() if dtype_name == "bfloat16" else np.dtype(dtype_name)
            if dtype is None:
                raise TypeError("bfloat16 arrays on the host need the ml_dtypes package")
            buf = np.empty(shape, dtype=dtype)
            if self.framework == "numpy":
                return buf, lambda: buf
            return buf, lambda: _to_framework(self.framework, buf, on_device=False, like=self.like)
        if self.framework == "cupy":
            import cupy
            with cupy.cuda.Device(self.device[1]):
                buf = cupy.empty(shape, dtype=dtype_name)
            return buf, lambda: buf
        buf = _C.empty_device(list(shape), dtype_name, self.device[1])
        return buf, lambda: _to_framework(self.framework, buf, on_device=True)

    def finish(self) -> None:
        if self.sync:
            _C.stream_synchronize(self.stream)


def _to_framework(framework: str, buf, on_device: bool, like: Any = None):
    """The framework's array for a buffer the binding wrote (numpy on the host, or a device buffer),
    on the device of ``like`` (the input q) where the framework places arrays itself (JAX)."""
    if framework == "jax":
        import jax
        if on_device:
            return jax.numpy.from_dlpack(buf)
        # jnp.asarray would place a host result on JAX's default device (a GPU, where present).
        devices = getattr(like, "devices", None)
        return jax.device_put(buf, next(iter(devices()))) if devices is not None else jax.numpy.asarray(buf)
    module = sys.modules.get(framework)
    from_dlpack = getattr(module, "from_dlpack", None)
    return from_dlpack(buf) if from_dlpack is not None else buf


def _workspace(workspace) -> Tuple[int, int]:
    if workspace is None:
        return 0, 0
    try:
        ptr, nbytes = workspace
    except (TypeError, ValueError):
        raise TypeError("workspace must be a (pointer, bytes) pair of ints, got "
                        f"{type(workspace).__name__}") from None
    return int(ptr), int(nbytes)


def _lse_shape(q_shape, layout: str):
    b, d1, d2 = q_shape[0], q_shape[1], q_shape[2]
    return (b, d2, d1) if layout == "NHD" else (b, d1, d2)  # [B, Hq, Nq]


def _options(is_causal, sm_scale, pv_mode, granularity, smooth_k, smooth_v, backend):
    return dict(causal=bool(is_causal), scale=None if sm_scale is None else float(sm_scale),
                pv_mode=pv_mode, granularity=granularity, smooth_k=bool(smooth_k),
                smooth_v=bool(smooth_v), backend=backend)


def sageattn_dense(q, k, v, tensor_layout, is_causal, sm_scale, return_lse, pv_mode, granularity,
                   smooth_k, smooth_v, backend, out, lse, workspace, stream):
    """sageattn.sageattn for every framework but torch (see its docstring)."""
    plan = _Plan(q, stream)
    _check_dlpack(k=k, v=v, out=out, lse=lse)
    opts = _options(is_causal, sm_scale, pv_mode, granularity, smooth_k, smooth_v, backend)
    result_out = result_lse = None
    if out is None:
        out, result_out = plan.empty(q.shape, _dtype_name(q))
    if return_lse and lse is None and len(q.shape) == 4:
        lse, result_lse = plan.empty(_lse_shape(q.shape, tensor_layout), "float32")
    (q_, k_, v_, out_), u16 = _for_binding((q, k, v, out), ("q", "k", "v", "out"))
    ws_ptr, ws_bytes = _workspace(workspace)
    plan.ready(q, k, v)
    _C.attention(q_, k_, v_, out_, lse if return_lse else None, layout=tensor_layout, **opts,
                 workspace=ws_ptr, workspace_bytes=ws_bytes, stream=plan.stream, u16_as_bf16=u16)
    plan.finish()
    o = result_out() if result_out is not None else out
    if not return_lse:
        return o
    return o, (result_lse() if result_lse is not None else lse)


def _as_int32(cu, name):
    name_of = _dtype_name(cu)
    if name_of == "int32":
        return cu
    if name_of != "int64":
        raise TypeError(f"{name} has dtype {name_of}; cu_seqlens must be int32 (or int64, converted)")
    return cu.astype("int32")


def varlen_packed(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal, sm_scale,
                  return_lse, pv_mode, granularity, smooth_k, smooth_v, backend, out, lse, workspace,
                  stream):
    """sageattn.varlen for every framework but torch (see its docstring)."""
    plan = _Plan(q, stream)
    _check_dlpack(k=k, v=v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k, out=out, lse=lse)
    opts = _options(is_causal, sm_scale, pv_mode, granularity, smooth_k, smooth_v, backend)
    cu_q = _as_int32(cu_seqlens_q, "cu_seqlens_q")
    cu_k = _as_int32(cu_seqlens_k, "cu_seqlens_k")
    result_out = result_lse = None
    if out is None:
        out, result_out = plan.empty(q.shape, _dtype_name(q))
    if return_lse and lse is None and len(q.shape) == 3:
        lse, result_lse = plan.empty((q.shape[1], q.shape[0]), "float32")  # [Hq, total_q]
    (q_, k_, v_, out_), u16 = _for_binding((q, k, v, out), ("q", "k", "v", "out"))
    ws_ptr, ws_bytes = _workspace(workspace)
    plan.ready(q, k, v, cu_q, cu_k)
    _C.attention_varlen(q_, k_, v_, cu_q, cu_k, int(max_seqlen_q), int(max_seqlen_k), out_,
                        lse if return_lse else None, **opts, workspace=ws_ptr,
                        workspace_bytes=ws_bytes, stream=plan.stream, u16_as_bf16=u16)
    plan.finish()
    o = result_out() if result_out is not None else out
    if not return_lse:
        return o
    return o, (result_lse() if result_lse is not None else lse)
