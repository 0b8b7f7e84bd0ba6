// src/attention/common/launch_common.cpp: see launch_common.h.
#include "attention/common/launch_common.h"

#include <cstdint>
#include <initializer_list>

#include "common/cuda_check.h"

namespace sageattn::attn {
namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

bool aligned(const void* ptr, int64_t bytes, std::initializer_list<int64_t> strides,
             int64_t elem_multiple) {
  if (reinterpret_cast<uintptr_t>(ptr) % bytes != 0) return false;
  for (int64_t s : strides)
    if (s % elem_multiple != 0) return false;
  return true;
}

}  // namespace

quant::KvQuantParams make_quant_params(const detail::AttentionParams& p, const TileConfig& tiles,
                                       int kernel_hd) {
  quant::KvQuantParams q;
  q.k = p.k, q.v = p.v;
  q.k_stride_b = p.k_stride_b, q.k_stride_h = p.k_stride_h, q.k_stride_n = p.k_stride_n;
  q.v_stride_b = p.v_stride_b, q.v_stride_h = p.v_stride_h, q.v_stride_n = p.v_stride_n;
  q.cu_seqlens_k = p.cu_seqlens_k;
  q.dtype = p.dtype;
  q.batch = p.batch, q.heads_kv = p.heads_kv;
  q.seqlen_k = p.seqlen_k;
  q.head_dim = p.head_dim;
  q.head_dim_padded = kernel_hd;
  q.seqlen_k_padded = round_up(p.seqlen_k, tiles.k_block);
  q.tiles = tiles;
  q.granularity = p.granularity;
  q.smooth_k = p.smooth_k, q.smooth_v = p.smooth_v;
  q.pv_mode = p.pv_mode;
  return q;
}

KernelParams make_kernel_params(const detail::AttentionParams& p, const quant::KvQuantParams& qp) {
  KernelParams kp;
  kp.q = p.q, kp.out = p.out, kp.lse = p.lse;
  kp.q_stride_b = p.q_stride_b, kp.q_stride_h = p.q_stride_h, kp.q_stride_n = p.q_stride_n;
  kp.o_stride_b = p.o_stride_b, kp.o_stride_h = p.o_stride_h, kp.o_stride_n = p.o_stride_n;
  kp.lse_stride_b = p.lse_stride_b, kp.lse_stride_h = p.lse_stride_h;
  kp.lse_stride_n = p.lse_stride_n;
  kp.cu_seqlens_q = p.cu_seqlens_q, kp.cu_seqlens_k = p.cu_seqlens_k;
  kp.k_codes = qp.k_codes, kp.k_scales = qp.k_scales, kp.k_mean = qp.k_mean;
  kp.v_codes = qp.v_codes, kp.v_scales = qp.v_scales, kp.v_mean = qp.v_mean;
  kp.batch = p.batch, kp.heads_q = p.heads_q, kp.heads_kv = p.heads_kv;
  kp.seqlen_q = p.seqlen_q, kp.seqlen_k = p.seqlen_k;
  kp.seqlen_k_padded = qp.seqlen_k_padded;
  kp.head_dim = static_cast<int>(p.head_dim);
  kp.bf16 = p.dtype == DType::kBF16;
  kp.q_aligned = aligned(p.q, 16, {p.q_stride_b, p.q_stride_h, p.q_stride_n}, 8);
  kp.o_aligned = aligned(p.out, 4, {p.o_stride_b, p.o_stride_h, p.o_stride_n}, 2);
  kp.o_aligned16 = aligned(p.out, 16, {p.o_stride_b, p.o_stride_h, p.o_stride_n}, 8);
  kp.mask = p.mask;
  kp.granularity = p.granularity;
  kp.smooth_k = p.smooth_k == Smoothing::kOn;
  kp.scale = p.scale;
  kp.scale_log2 = static_cast<float>(static_cast<double>(p.scale) * kLog2e);
  return kp;
}

KernelParams slice_batches(const KernelParams& kp, int64_t b0, int64_t nb, int kernel_hd,
                           const TileConfig& tiles, int v_elem_bytes) {
  KernelParams s = kp;
  s.batch = nb;
  if (kp.cu_seqlens_q) {
    s.cu_seqlens_q = kp.cu_seqlens_q + b0;
    s.cu_seqlens_k = kp.cu_seqlens_k + b0;
  } else {
    s.q = static_cast<const uint16_t*>(kp.q) + b0 * kp.q_stride_b;
    s.out = static_cast<uint16_t*>(kp.out) + b0 * kp.o_stride_b;
    if (kp.lse) s.lse = kp.lse + b0 * kp.lse_stride_b;
  }
  const int64_t heads = b0 * kp.heads_kv, np = kp.seqlen_k_padded;
  s.k_codes = kp.k_codes + heads * np * kernel_hd;
  s.k_scales = kp.k_scales + heads * tiles.k_groups(kp.granularity).num_groups(np);
  s.k_mean = kp.k_mean + heads * kernel_hd;
  s.v_codes = static_cast<const uint8_t*>(kp.v_codes) + heads * np * kernel_hd * v_elem_bytes;
  s.v_scales = kp.v_scales + heads * kernel_hd;
  s.v_mean = kp.v_mean + heads * kernel_hd;
  return s;
}

DeviceGuard::DeviceGuard(int device) {
  SAGEATTN_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) SAGEATTN_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() { cudaSetDevice(previous_); }

int compute_capability(int device) {
  int major = 0, minor = 0;
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

}  // namespace sageattn::attn
