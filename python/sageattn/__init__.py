"""sageattn: 8-bit attention for inference (SageAttention-style), from Python.

- :func:`sageattn` — the original SageAttention package's ``sageattn`` signature, plus our options;
- :func:`varlen` — packed variable-length attention;
- :func:`sdpa` — a drop-in for ``torch.nn.functional.scaled_dot_product_attention``
  (:func:`patch_sdpa`, :func:`unpatch_sdpa`, :func:`sdpa_patched` swap it in);
- :mod:`sageattn.layout` — tile sizes and constants of the C++ library.

numpy arrays run on the CPU backend (the reference implementation); GPU arrays of any DLPack
framework (torch, JAX, CuPy) run on the CUDA backend. torch is optional: when it is importable,
the torch custom ops ``torch.ops.sageattn.{attention,varlen,sdpa}`` are registered at import.
docs/PYTHON.md has the details.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional

from . import _C, _core, layout

__version__: str = _C.__version__
CUDA_BUILD: bool = _C.CUDA_BUILD  # whether this build has the CUDA backend

__all__ = ["sageattn", "varlen", "sdpa", "patch_sdpa", "unpatch_sdpa", "sdpa_patched", "sdpa_fallback_reason",
           "gpu_available", "resolve_pv_mode", "layout", "CUDA_BUILD", "TORCH_ERROR", "__version__"]

# torch integration, when torch is importable. A broken torch install leaves numpy/DLPack use
# working; TORCH_ERROR says why the torch part is missing.
_torch_api = None  # sageattn._torch once imported (not named _torch: `from . import` would see it)
TORCH_ERROR: Optional[str] = None
try:
    import torch as _torch_module  # noqa: F401
except ImportError as e:
    TORCH_ERROR = f"torch is not importable: {e}"
else:
    try:
        from . import _torch as _torch_api
    except Exception as e:  # e.g. a torch too old for torch.library.custom_op
        import warnings
        TORCH_ERROR = f"sageattn's torch integration failed to load: {e!r}"
        warnings.warn(TORCH_ERROR)


def _is_torch(x: Any) -> bool:
    return _torch_api is not None and isinstance(x, _torch_api.Tensor)


def _granularity(granularity: str, qk_quant_gran: Optional[str]) -> str:
    return granularity if qk_quant_gran is None else qk_quant_gran


def sageattn(q, k, v, tensor_layout: str = "HND", is_causal: bool = False,
             sm_scale: Optional[float] = None, return_lse: bool = False, *,
             pv_mode: str = "auto", smooth_k: bool = True, smooth_v: bool = False,
             granularity: str = "per_warp", backend: str = "auto",
             qk_quant_gran: Optional[str] = None, out=None, lse=None, workspace=None,
             stream: Optional[int] = None):
    """Attention ``softmax(q kᵀ · sm_scale) v`` with int8 Q·Kᵀ and fp8/fp16 P·V.

    Same signature and semantics as ``sageattention.sageattn`` (the original package), plus
    keyword-only options.

    Args:
        q: ``[B, Hq, Nq, D]`` ("HND") or ``[B, Nq, Hq, D]`` ("NHD"), float16 or bfloat16.
        k, v: ``[B, Hkv, Nk, D]`` / ``[B, Nk, Hkv, D]``, dtype of q; ``Hq % Hkv == 0`` (GQA/MQA).
            Any strides with unit stride on D; D a multiple of 8 in [8, 256].
        tensor_layout: "HND" or "NHD".
        is_causal: causal mask, bottom-right aligned when Nq != Nk (query i sees keys
            ``j <= i + Nk - Nq``); a row that sees no key gives 0 and LSE -inf.
        sm_scale: softmax scale; default ``1 / sqrt(D)``.
        return_lse: also return the natural-log log-sum-exp of the scaled logits,
            float32 ``[B, Hq, Nq]``.
        pv_mode: "auto" (fp8 on sm89, sm90, sm100+ and on the CPU; fp16 on sm80/sm86, and on
            sm90 for head dims above 128 or backend "sm80"), "fp16", "fp8" or "fp8_fp16acc".
        smooth_k: subtract K's per-channel mean before quantizing (recommended).
        smooth_v: subtract V's per-channel mean before quantizing.
        granularity: int8 group size: "per_block", "per_warp" or "per_thread".
        backend: "auto", "cpu", "sm80" or "sm90".
        qk_quant_gran: the original package's name for ``granularity`` (wins when given).
        out, lse: caller-provided outputs to write (shape/dtype as above); for torch this is an
            eager call, not a graph op.
        workspace: not torch: a ``(pointer, bytes)`` pair of device scratch memory of at least
            the library's ``attention_workspace_size``; default: the library allocates.
        stream: not torch: the cudaStream_t (an int) to run on; default: CuPy's current stream
            for CuPy arrays, else the default stream, waited for before returning.

    Returns:
        ``o`` (shape and dtype of q), or ``(o, lse)`` when ``return_lse``.

    Raises:
        ValueError: an invalid argument (shapes, strides, options); the message names the value.
        TypeError: an unsupported dtype.
        NotImplementedError: valid, but not by this build or device (e.g. fp8 P·V below sm89).
    """
    gran = _granularity(granularity, qk_quant_gran)
    if _is_torch(q):
        if workspace is not None or stream is not None:
            raise ValueError("workspace= and stream= are for non-torch arrays: torch tensors use "
                             "torch's caching allocator and current stream")
        return _torch_api.sageattn(q, k, v, tensor_layout, is_causal, sm_scale, return_lse, pv_mode, gran,
                               smooth_k, smooth_v, backend, out=out, lse=lse)
    return _core.sageattn_dense(q, k, v, tensor_layout, is_causal, sm_scale, return_lse, pv_mode, gran,
                                smooth_k, smooth_v, backend, out, lse, workspace, stream)


def varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q: int, max_seqlen_k: int,
           is_causal: bool = False, sm_scale: Optional[float] = None, return_lse: bool = False, *,
           pv_mode: str = "auto", smooth_k: bool = True, smooth_v: bool = False,
           granularity: str = "per_warp", backend: str = "auto", qk_quant_gran: Optional[str] = None,
           out=None, lse=None, workspace=None, stream: Optional[int] = None):
    """Variable-length attention on packed sequences.

    Sequence i owns query rows ``[cu_seqlens_q[i], cu_seqlens_q[i+1])`` and key rows
    ``[cu_seqlens_k[i], cu_seqlens_k[i+1])``; each is attended alone, exactly as dense attention
    on that sequence (means, quantization groups and masks restart per sequence).

    Args:
        q: ``[total_q, Hq, D]``; k, v: ``[total_k, Hkv, D]``; float16 or bfloat16.
        cu_seqlens_q, cu_seqlens_k: int32 (int64 is converted) ``[batch + 1]``, on q's device.
        max_seqlen_q, max_seqlen_k: at least every sequence's length (ints: no device read).
        Other arguments as in :func:`sageattn`; ``lse`` is float32 ``[Hq, total_q]``.

    Returns:
        ``o`` ``[total_q, Hq, D]``, or ``(o, lse)`` when ``return_lse``.
    """
    gran = _granularity(granularity, qk_quant_gran)
    if _is_torch(q):
        if out is not None or lse is not None or workspace is not None or stream is not None:
            raise ValueError("out=, lse=, workspace= and stream= are for non-torch arrays")
        return _torch_api.varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal,
                             sm_scale, return_lse, pv_mode, gran, smooth_k, smooth_v, backend)
    return _core.varlen_packed(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal,
                               sm_scale, return_lse, pv_mode, gran, smooth_k, smooth_v, backend, out, lse,
                               workspace, stream)


def _need_torch(what: str):
    if _torch_api is None:
        raise ImportError(f"sageattn.{what} needs torch ({TORCH_ERROR})")
    return _torch_api


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Drop-in for ``torch.nn.functional.scaled_dot_product_attention`` (same signature).

    ``[B, H, N, D]`` (or ``[H, N, D]``) CUDA tensors in float16/bfloat16 run sageattn with its
    defaults (pv_mode "auto", K smoothing, per-warp groups). Anything sageattn cannot compute as
    torch would (a mask, dropout, fp32, CPU tensors, an unsupported head dim, Hq != Hkv without
    enable_gqa, causal with Nq != Nk, inputs that require grad, ...) is computed by torch's own
    SDPA, with a one-time warning naming the reason; docs/PYTHON.md has the table.
    """
    return _need_torch("sdpa").sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def sdpa_fallback_reason(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                         enable_gqa=False) -> Optional[str]:
    """Why :func:`sdpa` would hand these arguments to torch's SDPA, or None when sageattn computes
    them (barring a head dim or GPU this build has no kernels for, found out at run time)."""
    reason = _need_torch("sdpa_fallback_reason").sdpa_fallback_reason(
        query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    return None if reason is None else reason[1]


def patch_sdpa() -> None:
    """Sets ``torch.nn.functional.scaled_dot_product_attention = sageattn.sdpa``."""
    _need_torch("patch_sdpa").patch_sdpa()


def unpatch_sdpa() -> None:
    """Undoes the last :func:`patch_sdpa`."""
    _need_torch("unpatch_sdpa").unpatch_sdpa()


@contextlib.contextmanager
def sdpa_patched():
    """``with sageattn.sdpa_patched(): model(x)`` runs the block with :func:`sdpa` swapped in."""
    patch_sdpa()
    try:
        yield
    finally:
        unpatch_sdpa()


def gpu_available() -> bool:
    """True when this build has a GPU backend and a usable CUDA device is present."""
    return _C.gpu_available()


def resolve_pv_mode(pv_mode: str = "auto", device: int = layout.HOST_DEVICE, head_dim: int = 0) -> str:
    """The P·V mode ``pv_mode`` resolves to on CUDA device ``device`` (-1: the CPU backend) for
    calls of head dim ``head_dim`` (0: not given; on compute capability 9.0 "auto" is fp8 where
    the sm90 kernels run the call, head dims up to 128, and fp16 above)."""
    return _C.resolve_pv_mode(pv_mode, device, head_dim)
