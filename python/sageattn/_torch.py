"""PyTorch integration: custom ops, the SDPA drop-in and its fallback rules.

Imported by sageattn/__init__.py only when torch is importable. The ops are
``torch.ops.sageattn.attention``, ``torch.ops.sageattn.varlen`` and ``torch.ops.sageattn.sdpa``,
declared with ``torch.library.custom_op`` and fake (meta) implementations, so ``torch.compile``
traces them without a graph break. Their real implementations allocate the output, the LSE and
the workspace with torch (the caching allocator, so CUDA-graph capture takes them from the
graph's pool), pass torch's current stream to the library and never synchronize with the host.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import _C, layout

# torch's own SDPA: the builtin behind torch.nn.functional.scaled_dot_product_attention, unaffected
# by patch_sdpa(). Every fallback calls it.
torch_sdpa = torch._C._nn.scaled_dot_product_attention

_is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling

_warned: set = set()


def _warn_once(key: str, message: str) -> None:
    """One warning per fallback reason per process; none while torch.compile traces (the compiled
    graph simply contains torch's SDPA)."""
    if _is_compiling() or key in _warned:
        return
    _warned.add(key)
    warnings.warn(f"sageattn.sdpa: falling back to torch's scaled_dot_product_attention: {message}",
                  stacklevel=3)


def _capsule(t: Tensor):
    """A DLPack capsule of ``t`` without any stream synchronization (unlike ``t.__dlpack__()``,
    which may record events on the default stream: not allowed while a CUDA graph is captured)."""
    return torch.utils.dlpack.to_dlpack(t.detach())


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0


class _DeviceGuard:
    """torch.cuda.device(d) for CUDA tensors, nothing for host tensors."""

    def __init__(self, device: torch.device):
        self.guard = torch.cuda.device(device) if device.type == "cuda" else None

    def __enter__(self):
        if self.guard is not None:
            self.guard.__enter__()

    def __exit__(self, *exc):
        if self.guard is not None:
            self.guard.__exit__(*exc)


def _lse_shape(q: Tensor, tensor_layout: str):
    if q.dim() != 4:
        return (0,)
    b, d1, d2 = q.shape[0], q.shape[1], q.shape[2]
    return (b, d2, d1) if tensor_layout == "NHD" else (b, d1, d2)


def _opts(causal, scale, pv_mode, granularity, smooth_k, smooth_v, backend):
    return dict(causal=causal, scale=scale, pv_mode=pv_mode, granularity=granularity,
                smooth_k=smooth_k, smooth_v=smooth_v, backend=backend)


def run_dense(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Optional[Tensor], tensor_layout: str,
              **opts) -> None:
    """Writes attention of (q, k, v) into out (and lse): workspace from torch, torch's stream."""
    with _DeviceGuard(q.device):
        nbytes = 0
        if q.device.type == "cuda":
            nbytes = _C.attention_workspace_size(_capsule(q), _capsule(k), _capsule(v),
                                                 layout=tensor_layout, **opts)
        ws = torch.empty(nbytes, dtype=torch.uint8, device=q.device) if nbytes else None
        _C.attention(_capsule(q), _capsule(k), _capsule(v), _capsule(out),
                     None if lse is None else _capsule(lse), layout=tensor_layout, **opts,
                     workspace=0 if ws is None else ws.data_ptr(), workspace_bytes=nbytes,
                     stream=_stream(q.device))


def run_varlen(q, k, v, cu_q, cu_k, max_q, max_k, out, lse, **opts) -> None:
    with _DeviceGuard(q.device):
        nbytes = 0
        if q.device.type == "cuda":
            nbytes = _C.attention_varlen_workspace_size(
                _capsule(q), _capsule(k), _capsule(v), _capsule(cu_q), _capsule(cu_k), max_q, max_k, **opts)
        ws = torch.empty(nbytes, dtype=torch.uint8, device=q.device) if nbytes else None
        _C.attention_varlen(_capsule(q), _capsule(k), _capsule(v), _capsule(cu_q), _capsule(cu_k),
                            max_q, max_k, _capsule(out), None if lse is None else _capsule(lse), **opts,
                            workspace=0 if ws is None else ws.data_ptr(), workspace_bytes=nbytes,
                            stream=_stream(q.device))


# ---- custom ops ----

@torch.library.custom_op("sageattn::attention", mutates_args=())
def attention_op(q: Tensor, k: Tensor, v: Tensor, tensor_layout: str, is_causal: bool,
                 sm_scale: Optional[float], pv_mode: str, granularity: str, smooth_k: bool,
                 smooth_v: bool, backend: str, return_lse: bool) -> Tuple[Tensor, Tensor]:
    """Dense attention; returns (out, lse), lse empty unless return_lse."""
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty(_lse_shape(q, tensor_layout) if return_lse else (0,), dtype=torch.float32,
                      device=q.device)
    run_dense(q, k, v, out, lse if return_lse else None, tensor_layout,
              **_opts(is_causal, sm_scale, pv_mode, granularity, smooth_k, smooth_v, backend))
    return out, lse


@attention_op.register_fake
def _attention_fake(q, k, v, tensor_layout, is_causal, sm_scale, pv_mode, granularity, smooth_k,
                    smooth_v, backend, return_lse):
    out = q.new_empty(q.shape)
    lse = q.new_empty(_lse_shape(q, tensor_layout) if return_lse else (0,), dtype=torch.float32)
    return out, lse


@torch.library.custom_op("sageattn::varlen", mutates_args=())
def varlen_op(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor, cu_seqlens_k: Tensor,
              max_seqlen_q: int, max_seqlen_k: int, is_causal: bool, sm_scale: Optional[float],
              pv_mode: str, granularity: str, smooth_k: bool, smooth_v: bool, backend: str,
              return_lse: bool) -> Tuple[Tensor, Tensor]:
    """Packed variable-length attention; returns (out, lse [Hq, total_q]), lse empty unless asked."""
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse_shape = (q.shape[1], q.shape[0]) if (return_lse and q.dim() == 3) else (0,)
    lse = torch.empty(lse_shape, dtype=torch.float32, device=q.device)
    run_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, out,
               lse if return_lse else None,
               **_opts(is_causal, sm_scale, pv_mode, granularity, smooth_k, smooth_v, backend))
    return out, lse


@varlen_op.register_fake
def _varlen_fake(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal, sm_scale,
                 pv_mode, granularity, smooth_k, smooth_v, backend, return_lse):
    lse_shape = (q.shape[1], q.shape[0]) if (return_lse and q.dim() == 3) else (0,)
    return q.new_empty(q.shape), q.new_empty(lse_shape, dtype=torch.float32)


@torch.library.custom_op("sageattn::sdpa", mutates_args=())
def sdpa_op(query: Tensor, key: Tensor, value: Tensor, is_causal: bool, scale: Optional[float],
            enable_gqa: bool) -> Tensor:
    """[B, H, N, D] attention with the library's defaults (pv_mode auto). Where this build or this
    device cannot run it (NotImplementedError: a head dim not compiled in, a GPU older than sm80,
    a CPU-only build), torch's SDPA computes it instead, with a one-time warning."""
    out = torch.empty(query.shape, dtype=query.dtype, device=query.device)
    try:
        run_dense(query, key, value, out, None, "HND",
                  **_opts(is_causal, scale, "auto", "per_warp", True, False, "auto"))
    except NotImplementedError as e:
        _warn_once(f"unsupported:{e}", f"not supported by this build or device ({e})")
        return torch_sdpa(query, key, value, is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)
    return out


@sdpa_op.register_fake
def _sdpa_fake(query, key, value, is_causal, scale, enable_gqa):
    return query.new_empty(query.shape)


# ---- Python entry points ----

def sageattn(q, k, v, tensor_layout, is_causal, sm_scale, return_lse, pv_mode, granularity, smooth_k,
             smooth_v, backend, out=None, lse=None):
    """sageattn.sageattn for torch tensors (see its docstring)."""
    opts = _opts(bool(is_causal), None if sm_scale is None else float(sm_scale), pv_mode, granularity,
                 bool(smooth_k), bool(smooth_v), backend)
    if out is not None or lse is not None:
        # Caller-provided outputs: a direct, eager call (not a graph op: it writes its arguments).
        if out is None:
            out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        if return_lse and lse is None:
            lse = torch.empty(_lse_shape(q, tensor_layout), dtype=torch.float32, device=q.device)
        run_dense(q, k, v, out, lse if return_lse else None, tensor_layout, **opts)
        return (out, lse) if return_lse else out
    o, l = torch.ops.sageattn.attention(q, k, v, tensor_layout, opts["causal"], opts["scale"], pv_mode,
                                        granularity, opts["smooth_k"], opts["smooth_v"], backend,
                                        bool(return_lse))
    return (o, l) if return_lse else o


def varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal, sm_scale,
           return_lse, pv_mode, granularity, smooth_k, smooth_v, backend):
    """sageattn.varlen for torch tensors (see its docstring)."""
    if cu_seqlens_q.dtype == torch.int64:
        cu_seqlens_q = cu_seqlens_q.to(torch.int32)
    if cu_seqlens_k.dtype == torch.int64:
        cu_seqlens_k = cu_seqlens_k.to(torch.int32)
    o, l = torch.ops.sageattn.varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q),
                                     int(max_seqlen_k), bool(is_causal),
                                     None if sm_scale is None else float(sm_scale), pv_mode,
                                     granularity, bool(smooth_k), bool(smooth_v), backend,
                                     bool(return_lse))
    return (o, l) if return_lse else o


_FAST_DTYPES = (torch.float16, torch.bfloat16)


def sdpa_fallback_reason(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """Why sageattn.sdpa cannot compute this call as torch would, as (key, message); None when it
    can. The arguments' meaning is checked first, then where the tensors live. docs/PYTHON.md has
    these rules as a table."""
    if attn_mask is not None:
        return "attn_mask", "attn_mask is not None (sageattn has no arbitrary masks; is_causal is fine)"
    if dropout_p > 0.0:
        return "dropout", f"dropout_p={dropout_p} (sageattn is inference-only: no dropout)"
    if not (isinstance(query, Tensor) and isinstance(key, Tensor) and isinstance(value, Tensor)):
        return "types", "query, key and value must all be torch tensors"
    if query.is_nested or key.is_nested or value.is_nested:
        return "nested", "nested tensors"
    if query.dtype not in _FAST_DTYPES or key.dtype != query.dtype or value.dtype != query.dtype:
        return f"dtype:{query.dtype}", (f"dtypes {query.dtype}, {key.dtype}, {value.dtype} (sageattn takes "
                                        "float16 or bfloat16, the same for all three)")
    if torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad):
        return "grad", "inputs require grad (sageattn has no backward pass)"
    if query.dim() not in (3, 4) or key.dim() != query.dim() or value.dim() != query.dim():
        return "rank", (f"ranks {query.dim()}, {key.dim()}, {value.dim()} (sageattn.sdpa takes "
                        "[B, H, N, D] or [H, N, D] tensors)")
    d = query.shape[-1]
    if key.shape[-1] != d or value.shape[-1] != d:
        return "head_dims", f"head dims q={d} k={key.shape[-1]} v={value.shape[-1]} differ"
    if not layout.head_dim_supported(d):
        return f"head_dim:{d}", (f"head dim {d} (sageattn takes multiples of {layout.HEAD_DIM_MULTIPLE} "
                                 f"in [{layout.MIN_HEAD_DIM}, {layout.MAX_HEAD_DIM}])")
    if query.dim() == 4 and not (key.shape[0] == query.shape[0] and value.shape[0] == query.shape[0]):
        return "batch", f"batch sizes q={query.shape[0]} k={key.shape[0]} v={value.shape[0]} differ (broadcast)"
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hk != hv:
        return "heads_kv", f"k has {hk} heads, v has {hv}"
    if hq != hk and not enable_gqa:
        return "gqa", f"{hq} query heads and {hk} key/value heads without enable_gqa=True (broadcast)"
    if hk == 0 or hq % hk != 0:
        return "gqa_ratio", f"{hq} query heads is not a multiple of {hk} key/value heads"
    nq, nk = query.shape[-2], key.shape[-2]
    if value.shape[-2] != nk:
        return "seqlen", f"k has {nk} tokens, v has {value.shape[-2]}"
    if nq == 0 or nk == 0:
        return "empty", f"an empty sequence (Nq={nq}, Nk={nk}): torch defines its own result"
    if is_causal and nq != nk:
        return "causal_alignment", (f"is_causal with Nq={nq} != Nk={nk}: torch aligns the causal mask "
                                    "top-left, sageattn bottom-right (KV-cache style)")
    if scale is not None and not math.isfinite(scale):
        return "scale", f"scale={scale} is not finite"
    if query.device.type != "cuda":
        return "device", f"tensors on device type '{query.device.type}' (sageattn.sdpa runs CUDA tensors)"
    if key.device != query.device or value.device != query.device:
        return "devices", f"tensors on different devices ({query.device}, {key.device}, {value.device})"
    if not _C.CUDA_BUILD:
        return "build", "this sageattn build has no CUDA backend (built with SAGEATTN_ENABLE_CUDA=OFF)"
    return None


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """Drop-in for torch.nn.functional.scaled_dot_product_attention (see sageattn.sdpa)."""
    reason = sdpa_fallback_reason(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    if reason is not None:
        _warn_once(*reason)
        return torch_sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                          is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)
    s = None if scale is None else float(scale)
    if query.dim() == 3:
        return torch.ops.sageattn.sdpa(query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0),
                                       bool(is_causal), s, bool(enable_gqa)).squeeze(0)
    return torch.ops.sageattn.sdpa(query, key, value, bool(is_causal), s, bool(enable_gqa))


# ---- patching torch.nn.functional ----

_saved = []  # the functions patch_sdpa() replaced, innermost last


def patch_sdpa() -> None:
    """torch.nn.functional.scaled_dot_product_attention = sageattn.sdpa (undo: unpatch_sdpa)."""
    _saved.append(torch.nn.functional.scaled_dot_product_attention)
    torch.nn.functional.scaled_dot_product_attention = sdpa


def unpatch_sdpa() -> None:
    """Restores what the matching patch_sdpa() replaced (nothing to do when not patched)."""
    if _saved:
        torch.nn.functional.scaled_dot_product_attention = _saved.pop()
