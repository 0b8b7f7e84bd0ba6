// src/cpu/reference.h: the CPU reference, in two tiers (STYLE.md 9).
//
//  1. exact_attention: float64 softmax(Q K^T * scale) V without any quantization: ground truth.
//  2. quantized_attention: the algorithm exactly as the GPU kernels run it (DESIGN.md §1,
//     docs/NUMERICS.md): K mean in a fixed fp32 order, int8 groups from include/sageattn/layout.h,
//     round-half-even, fp8 e4m3 codes, P scaled to [0, 448], online softmax per K block in exp2,
//     two-level accumulation. The quantization steps are bit-exact definitions (the GPU
//     quantizers must reproduce them bit for bit); the attention itself differs from a kernel
//     only by fp32 summation order and the hardware exp2 approximation.
//
// Both work on one sequence at a time through SeqView (a strided [H, N, D] slice of a user
// tensor), so dense, NHD, strided and varlen inputs all reach the same code.
#pragma once

#include <cstdint>
#include <vector>

#include "sageattn/layout.h"
#include "sageattn/types.h"

namespace sageattn::cpu {

// One sequence of a Q, K, V or O tensor: logical [heads, tokens, dim], unit stride on dim.
struct SeqView {
  void* data = nullptr;  // element [h, n, d] at data + h * stride_h + n * stride_n + d
  DType dtype = DType::kF16;
  int64_t heads = 0, tokens = 0, dim = 0;
  int64_t stride_h = 0, stride_n = 0;  // in elements
};

// One sequence of an LSE tensor: logical [heads, tokens] of f32; data may be null.
struct LseView {
  float* data = nullptr;
  int64_t stride_h = 0, stride_n = 0;
};

struct ExactConfig {
  MaskMode mask = MaskMode::kNone;
  double scale = 0.0;  // already resolved (never "default")
};

struct QuantConfig {
  TileConfig tiles = kSm80Tiles;
  PvMode pv_mode = PvMode::kFp8;  // resolved: never kAuto
  Granularity granularity = Granularity::kPerWarp;
  Smoothing smooth_k = Smoothing::kOn;
  Smoothing smooth_v = Smoothing::kOff;
  MaskMode mask = MaskMode::kNone;
  float scale = 0.0f;  // already resolved
};

// Reads element (h, n, d) of a f16/bf16/f32 view as float (exact).
float load_float(const SeqView& view, int64_t h, int64_t n, int64_t d);
// Copies head h of a view into a dense row-major float [tokens, dim] array.
void gather_head(const SeqView& view, int64_t h, float* dst);

// ---- tier 1: exact ----
// out: [Hq, Nq, D] float64, contiguous. lse: [Hq, Nq] float64 (natural log), may be null.
void exact_attention(const SeqView& q, const SeqView& k, const SeqView& v, const ExactConfig& cfg,
                     double* out, double* lse);

// ---- quantization steps (bit-exact definitions) ----
// Per-channel mean over tokens of x [tokens, dim] (row-major), in the fixed two-level order of
// layout.h (docs/NUMERICS.md §2): each kMeanChunkTokens chunk summed in token order, each group
// of kMeanGroupChunks chunks summed in chunk order, the group sums added in group order (every
// sum from 0.0f), divided by tokens. tokens == 0 gives zeros.
void channel_mean(const float* x, int64_t tokens, int64_t dim, float* mean);

// Symmetric int8 quantization of x [tokens, dim] by the groups of `groups`:
//   amax_g = max(max |x| over the group, kMinAmax); codes = rne(x * (127 / amax_g)) in [-127, 127]
//   scales[g] = (amax_g / 127) * factor     (factor = 1 for K, scale * log2(e) for Q)
// codes: [tokens, dim]; scales: [groups.num_groups(tokens)].
void quantize_int8(const float* x, int64_t tokens, int64_t dim, const GroupSpec& groups,
                   float factor, int8_t* codes, float* scales);

// V for P·V, per channel c over all tokens (x already smoothed if smoothing is on):
//   kFp8:        scale_c = amax_c / 448,  value = fp8(x * (448 / amax_c))
//   kFp8Fp16Acc: scale_c = amax_c / r,    value = fp8(x * (r / amax_c)), r = fp16acc_v_range()
//   kFp16:       scale_c = 2^e with amax_c * 2^-e in [2^13, 2^14) (1 for an all-zero channel),
//                value = fp16(x * 2^-e)
// amax_c is clamped below by kMinAmax in the fp8 modes. `values` receives the decoded 8/16-bit
// values as float [tokens, dim]; `codes` (optional, fp8 modes only) the e4m3 codes.
void quantize_v(const float* x, int64_t tokens, int64_t dim, PvMode mode, const TileConfig& tiles,
                float* values, float* scales, uint8_t* codes = nullptr);

// ---- tier 2: quantized ----
// out: [Hq, Nq, D] float (before rounding to the output dtype), contiguous. lse: [Hq, Nq] float
// (natural log), may be null.
void quantized_attention(const SeqView& q, const SeqView& k, const SeqView& v,
                         const QuantConfig& cfg, float* out, float* lse);

}  // namespace sageattn::cpu
