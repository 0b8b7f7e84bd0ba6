// src/api/params.h: the one plain parameter struct of an attention call (STYLE.md 2).
//
// Filled once by the API layer after validation (src/api/validate.cpp); every backend reads it
// and nothing else. Tensors are described as logical [b, h, n, d] with int64 element strides,
// whatever the user's layout: NHD just swaps the h and n strides. Varlen calls have
// cu_seqlens_* set: sequence b's tokens start at token cu_seqlens[b] and stride_b is unused.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sageattn/layout.h"
#include "sageattn/types.h"

namespace sageattn::detail {

struct AttentionParams {
  // ---- tensors (element strides; d has unit stride) ----
  const void* q = nullptr;  // [b, h_q, n_q, d]
  const void* k = nullptr;  // [b, h_kv, n_k, d]
  const void* v = nullptr;  // [b, h_kv, n_k, d]
  void* out = nullptr;      // [b, h_q, n_q, d], dtype of q
  float* lse = nullptr;     // [b, h_q, n_q] (varlen: [h_q, total_q]), may be null
  int64_t q_stride_b = 0, q_stride_h = 0, q_stride_n = 0;
  int64_t k_stride_b = 0, k_stride_h = 0, k_stride_n = 0;
  int64_t v_stride_b = 0, v_stride_h = 0, v_stride_n = 0;
  int64_t o_stride_b = 0, o_stride_h = 0, o_stride_n = 0;
  int64_t lse_stride_b = 0, lse_stride_h = 0, lse_stride_n = 0;

  // ---- varlen (both null for dense calls) ----
  const int32_t* cu_seqlens_q = nullptr;  // [batch + 1]
  const int32_t* cu_seqlens_k = nullptr;  // [batch + 1]

  // ---- problem ----
  DType dtype = DType::kF16;  // of q, k, v and out
  int64_t batch = 0;
  int64_t heads_q = 0, heads_kv = 0;
  int64_t seqlen_q = 0, seqlen_k = 0;  // dense: the lengths; varlen: the max lengths
  int64_t head_dim = 0;
  int device = kHostDevice;

  // ---- numerics (all resolved: no defaults left) ----
  MaskMode mask = MaskMode::kNone;
  float scale = 0.0f;
  PvMode pv_mode = PvMode::kFp8;  // never kAuto here
  Granularity granularity = Granularity::kPerWarp;
  Smoothing smooth_k = Smoothing::kOn;
  Smoothing smooth_v = Smoothing::kOff;
  Backend backend = Backend::kCpu;  // never kAuto here

  bool is_varlen() const { return cu_seqlens_q != nullptr; }
};

}  // namespace sageattn::detail
