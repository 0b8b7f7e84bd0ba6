// src/cpu/backend.h: the CPU backend, reached through the public API with host tensors.
//
// It runs the quantized reference (src/cpu/reference.h) with the sm80 kernel family's tiles
// (kSm80Tiles) on every sequence of validated params, rounds to the output dtype and writes
// out/lse. All computation happens in private buffers before the first write to `out`.
#pragma once

#include "api/params.h"

namespace sageattn::cpu {

void run_attention(const detail::AttentionParams& params);

}  // namespace sageattn::cpu
