// src/attention/common/params.h: the device parameters of the attention kernels (sm80 and sm90),
// filled once from the API's AttentionParams and the quantizer's outputs (make_kernel_params).
#pragma once

#include <cstdint>

#include "sageattn/layout.h"
#include "sageattn/types.h"

namespace sageattn::attn {

struct KernelParams {
  // ---- user tensors (element strides, unit stride on d) ----
  const void* q = nullptr;  // [b, h_q, n_q, d]   (varlen: b stride unused, tokens from cu_seqlens_q)
  void* out = nullptr;      // [b, h_q, n_q, d]
  float* lse = nullptr;     // [b, h_q, n_q], may be null
  int64_t q_stride_b = 0, q_stride_h = 0, q_stride_n = 0;
  int64_t o_stride_b = 0, o_stride_h = 0, o_stride_n = 0;
  int64_t lse_stride_b = 0, lse_stride_h = 0, lse_stride_n = 0;
  const int32_t* cu_seqlens_q = nullptr;  // [batch + 1] or null
  const int32_t* cu_seqlens_k = nullptr;  // [batch + 1] or null

  // ---- quantized K/V (workspace, padded: np = seqlen_k_padded, dp = kernel head dim) ----
  const int8_t* k_codes = nullptr;   // [b, h_kv, np, dp]
  const float* k_scales = nullptr;   // [b, h_kv, k_groups.num_groups(np)]
  const float* k_mean = nullptr;     // [b, h_kv, dp]
  const void* v_codes = nullptr;     // fp8 [b, h_kv, dp, np] (permuted) | fp16 [b, h_kv, np, dp]
  const float* v_scales = nullptr;   // [b, h_kv, dp]
  const float* v_mean = nullptr;     // [b, h_kv, dp]

  // ---- problem ----
  int64_t batch = 0, heads_q = 0, heads_kv = 0;
  int64_t seqlen_q = 0, seqlen_k = 0;  // dense: lengths; varlen: max lengths
  int64_t seqlen_k_padded = 0;
  int head_dim = 0;                    // d (<= kernel head dim)
  bool bf16 = true;                    // dtype of q and out (else f16)
  bool q_aligned = true;               // q rows 16-byte aligned: vector loads
  bool o_aligned = true;               // out rows 4-byte aligned (pairs of elements)
  MaskMode mask = MaskMode::kNone;
  Granularity granularity = Granularity::kPerWarp;
  bool smooth_k = true;
  bool o_aligned16 = true;  // out rows 16-byte aligned (8 elements: vector stores); here, in the
                            // padding before `scale`, so that no other field moves
  float scale = 0.0f;       // softmax scale (LSE correction)
  float scale_log2 = 0.0f;  // float(double(scale) * log2(e)): folded into Q's dequant factor
};

}  // namespace sageattn::attn
