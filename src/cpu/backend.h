// src/cpu/backend.h: the CPU backend, reached through the public API with host tensors.
//
// It runs the quantized reference (src/cpu/reference.h) with one kernel family's tiles (the
// public API: the sm80 family's, kSm80Tiles) on every sequence of validated params, rounds to the
// output dtype and writes out/lse. All computation happens in private buffers before the first
// write to `out`. The GPU tests pass kSm90Tiles to check the sm90 kernels tightly.
#pragma once

#include "api/params.h"
#include "sageattn/layout.h"

namespace sageattn::cpu {

void run_attention(const detail::AttentionParams& params, const TileConfig& tiles = kSm80Tiles);

}  // namespace sageattn::cpu
