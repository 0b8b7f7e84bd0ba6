"""Tile sizes, quantization group layouts and numeric constants, read from the C++ library.

Everything here comes from ``include/sageattn/layout.h`` through the extension module; nothing
is repeated in Python. ``TILES["sm80"].q_groups["per_warp"]`` is the group layout of Q for the
mma.sync kernels (and the CPU reference, which emulates them); see docs/NUMERICS.md §2.
"""

from __future__ import annotations

from typing import Dict, NamedTuple

from . import _C

__all__ = [
    "GroupSpec", "TileConfig", "TILES", "SM80_TILES", "SM90_TILES",
    "MIN_HEAD_DIM", "MAX_HEAD_DIM", "HEAD_DIM_MULTIPLE", "HOST_DEVICE", "MAX_DIMS",
    "LOG2E", "LN2", "INT8_MAX", "FP8_E4M3_MAX", "LOG2_FP8_E4M3_MAX", "FP16_MAX", "MIN_AMAX",
    "MEAN_CHUNK_TOKENS", "MEAN_GROUP_CHUNKS", "FP16_V_KEEP_MIN_EXP", "FP16_V_KEEP_MAX_EXP",
    "FP16_V_TARGET_EXP", "FP8_MMA_K", "GRANULARITIES",
    "head_dim_supported",
]

# Head dims: any multiple of HEAD_DIM_MULTIPLE in [MIN_HEAD_DIM, MAX_HEAD_DIM].
MIN_HEAD_DIM: int = _C.MIN_HEAD_DIM
MAX_HEAD_DIM: int = _C.MAX_HEAD_DIM
HEAD_DIM_MULTIPLE: int = _C.HEAD_DIM_MULTIPLE
HOST_DEVICE: int = _C.HOST_DEVICE  # the device id of host (CPU) memory
MAX_DIMS: int = _C.MAX_DIMS

# Numeric constants of the contract.
LOG2E: float = _C.LOG2E
LN2: float = _C.LN2
INT8_MAX: float = _C.INT8_MAX
FP8_E4M3_MAX: float = _C.FP8_E4M3_MAX
LOG2_FP8_E4M3_MAX: float = _C.LOG2_FP8_E4M3_MAX
FP16_MAX: float = _C.FP16_MAX
MIN_AMAX: float = _C.MIN_AMAX
MEAN_CHUNK_TOKENS: int = _C.MEAN_CHUNK_TOKENS
MEAN_GROUP_CHUNKS: int = _C.MEAN_GROUP_CHUNKS  # chunks per group of the mean's order (NUMERICS §2)
# fp16 P.V mode: V channels with amax in [2^FP16_V_KEEP_MIN_EXP, 2^FP16_V_KEEP_MAX_EXP) keep
# scale 1; others are scaled by 2^e to an amax in [2^(FP16_V_TARGET_EXP - 1), 2^FP16_V_TARGET_EXP).
FP16_V_KEEP_MIN_EXP: int = _C.FP16_V_KEEP_MIN_EXP
FP16_V_KEEP_MAX_EXP: int = _C.FP16_V_KEEP_MAX_EXP
FP16_V_TARGET_EXP: int = _C.FP16_V_TARGET_EXP
FP8_MMA_K: int = _C.FP8_MMA_K


class GroupSpec(NamedTuple):
    """Tokens that share one int8 dequantization factor (layout.h ``GroupSpec``).

    Tokens are cut into blocks of ``block``; inside a block token ``t`` belongs to sub-group
    ``(t // stride) % count``.
    """

    block: int
    stride: int
    count: int

    def num_groups(self, tokens: int) -> int:
        """Number of groups over ``tokens`` tokens (computed by the C++ GroupSpec)."""
        return _C.num_groups(self.block, self.stride, self.count, tokens)

    def group_of(self, token: int) -> int:
        """Group index of ``token`` (computed by the C++ GroupSpec)."""
        return _C.group_of(self.block, self.stride, self.count, token)


class TileConfig(NamedTuple):
    """Tile sizes of one kernel family (layout.h ``TileConfig``)."""

    block_q: int
    block_k: int  # keys per softmax step
    warp_q: int
    k_block: int  # tokens per K quantization block
    q_groups: Dict[str, GroupSpec]  # by granularity name: per_block, per_warp, per_thread
    k_groups: Dict[str, GroupSpec]
    fp16acc_v_range: float  # V range of the fp8_fp16acc mode


def _tile_config(d: dict) -> TileConfig:
    return TileConfig(
        block_q=d["block_q"], block_k=d["block_k"], warp_q=d["warp_q"], k_block=d["k_block"],
        q_groups={g: GroupSpec(**s) for g, s in d["q_groups"].items()},
        k_groups={g: GroupSpec(**s) for g, s in d["k_groups"].items()},
        fp16acc_v_range=d["fp16acc_v_range"])


TILES: Dict[str, TileConfig] = {name: _tile_config(d) for name, d in _C.TILES.items()}
SM80_TILES: TileConfig = TILES["sm80"]
SM90_TILES: TileConfig = TILES["sm90"]
GRANULARITIES = tuple(SM80_TILES.q_groups)


def head_dim_supported(head_dim: int) -> bool:
    """Whether the library takes this head dim: a multiple of HEAD_DIM_MULTIPLE in [MIN_HEAD_DIM, MAX_HEAD_DIM]."""
    return (MIN_HEAD_DIM <= head_dim <= MAX_HEAD_DIM) and head_dim % HEAD_DIM_MULTIPLE == 0
