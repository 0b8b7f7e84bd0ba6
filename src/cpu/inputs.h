// src/cpu/inputs.h: the three input families of DESIGN.md §3, deterministic from a seed.
//
//   gaussian       q, k, v ~ N(0, 1)
//   k_channel_bias as gaussian, plus k += 6 * N(0,1) per (batch, head, channel), shared by tokens
//   outliers       k_channel_bias, plus 4 channels of q and k (per head) scaled x10 and
//                  v += 3 * N(0,1) per (batch, head, channel)
// Tensors are logical [B, H, N, D] float arrays (row-major); callers convert and lay them out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sageattn::cpu {

enum class InputFamily { kGaussian, kKChannelBias, kOutliers };

const char* to_string(InputFamily f) noexcept;
// Parses "gaussian" / "k_channel_bias" / "outliers"; throws sageattn::Error naming the value.
InputFamily parse_input_family(const std::string& name);

struct QkvData {
  std::vector<float> q, k, v;  // [B, Hq, Nq, D], [B, Hkv, Nk, D], [B, Hkv, Nk, D]
};

QkvData make_inputs(InputFamily family, int64_t batch, int64_t heads_q, int64_t heads_kv,
                    int64_t seqlen_q, int64_t seqlen_k, int64_t head_dim, uint64_t seed);

}  // namespace sageattn::cpu
