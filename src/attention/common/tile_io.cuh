// src/attention/common/tile_io.cuh: the parts of an attention kernel that touch the user's
// tensors, shared by the sm80 and sm90 kernels: sequence bounds, the Q prologue (bf16/f16 rows ->
// int8 codes with the group scales of include/sageattn/layout.h, and q . kmean for the LSE), and
// the epilogue's stores of O rows and LSE values. Q and O are read and written with plain loads and
// stores, so every layout, stride and varlen packing the API accepts reaches the same code.
#pragma once

#include <cstdint>
#include <limits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attention/common/params.h"
#include "common/device_numerics.cuh"
#include "common/ptx/mma.cuh"
#include "sageattn/layout.h"

namespace sageattn::attn {

struct SeqBounds {
  int64_t q_begin, q_len, k_len;
};

__device__ __forceinline__ SeqBounds seq_bounds(const KernelParams& p, int64_t b) {
  if (p.cu_seqlens_q)
    return {p.cu_seqlens_q[b], int64_t(p.cu_seqlens_q[b + 1]) - p.cu_seqlens_q[b],
            int64_t(p.cu_seqlens_k[b + 1]) - p.cu_seqlens_k[b]};
  return {0, p.seqlen_q, p.seqlen_k};
}

// The raw bits of 8 consecutive Q elements of one row starting at element offset `off`; zero bits
// (+0.0) for a row past the sequence (!valid) and past head_dim.
__device__ __forceinline__ uint4 load_q8_raw(const KernelParams& p, int64_t off, int c0, bool valid) {
  if (!valid || c0 >= p.head_dim) return make_uint4(0u, 0u, 0u, 0u);
  const uint16_t* q = static_cast<const uint16_t*>(p.q) + off;
  if (p.q_aligned) return *reinterpret_cast<const uint4*>(q);
  uint32_t w[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) w[j] = uint32_t(q[2 * j]) | (uint32_t(q[2 * j + 1]) << 16);
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// load_q8_raw's bits widened to float (exact for both dtypes).
__device__ __forceinline__ void widen_q8(const KernelParams& p, const uint4& raw, float (&x)[8]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t lo = w[i] & 0xFFFFu, hi = w[i] >> 16;
    if (p.bf16) {
      x[2 * i] = __uint_as_float(lo << 16);
      x[2 * i + 1] = __uint_as_float(hi << 16);
    } else {
      x[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(lo)));
      x[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(hi)));
    }
  }
}

__device__ __forceinline__ uint32_t pack_e4m3x4(float a, float b, float c, float d) {
  return uint32_t(ptx::cvt_e4m3x2(a, b)) | (uint32_t(ptx::cvt_e4m3x2(c, d)) << 16);
}

// The Q prologue: quantizes rows [row0, row0 + kRows) of query head h (rows past the sequence
// are zeros) with kThreads threads, tid in [0, kThreads). q_amax[g] receives the amax of local
// group g (qg.group_of(local row)), q_km[r] the row's q . kmean when the LSE needs it (K smoothed).
// sync() is a barrier over exactly the kThreads threads; store(r, c0, codes) writes the 8 int8
// codes of local row r, channels c0..c0+7 (packed little-endian in a uint2). A negative softmax
// scale is carried by the codes (-c is exact in [-127, 127]) so that the dequantization factor
// stays >= 0 and row maxes can be taken on the integer logits. The caller syncs after it.
template <int kD, int kRows, int kThreads, typename Sync, typename Store>
__device__ __forceinline__ void quantize_q_tile(const KernelParams& p, const SeqBounds& sb, int64_t b,
                                                int64_t h, int64_t bhk, int64_t row0, const GroupSpec& qg,
                                                int tid, float* q_amax, float* q_km, Sync&& sync,
                                                Store&& store) {
  for (int i = tid; i < kRows; i += kThreads) q_amax[i] = 0.0f, q_km[i] = 0.0f;
  sync();
  constexpr int kVecsPerRow = kD / 8;
  constexpr int kQVecs = kRows * kVecsPerRow;
  const int64_t q_base = (p.cu_seqlens_q ? 0 : b * p.q_stride_b) + h * p.q_stride_h;
  const float* km = p.k_mean + bhk * kD;
  const bool want_qkm = p.lse != nullptr && p.smooth_k;
  static_assert(kQVecs % kThreads == 0 && 32 % kVecsPerRow == 0,
                "every lane runs every iteration; a row's vectors sit in consecutive lanes");
  // A thread's vectors are i = tid + it * kThreads. Their loads are issued kBatch at a time, so
  // that the prologue waits for one memory round trip per batch instead of one per vector; when
  // every vector fits one batch (sm90: 192 rows, 384 threads, kD <= 128) the raw bits stay in
  // registers for the second pass, which then reads nothing.
  constexpr int kIters = kQVecs / kThreads;
  constexpr int kBatch = kIters < 8 ? kIters : 8;
  constexpr bool kKeep = kBatch == kIters;
  static_assert(kIters % kBatch == 0, "batches tile a thread's vectors");
  auto load_batch = [&](int it0, uint4 (&raw)[kBatch]) {
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      const int i = tid + (it0 + k) * kThreads;
      const int r = i / kVecsPerRow, c0 = (i % kVecsPerRow) * 8;
      const int64_t row = row0 + r;
      raw[k] = load_q8_raw(p, q_base + (sb.q_begin + row) * p.q_stride_n + c0, c0, row < sb.q_len);
    }
  };
  uint4 raw[kBatch];
  // body(i, r, c0, x) on every vector of this thread (local row r, channels c0..c0+7), batch by
  // batch; `reuse`: the bits are still in raw (one batch, second pass), nothing is loaded.
  auto for_each_vector = [&](bool reuse, auto&& body) {
#pragma unroll 1
    for (int it0 = 0; it0 < kIters; it0 += kBatch) {
      if (!reuse) load_batch(it0, raw);
#pragma unroll
      for (int k = 0; k < kBatch; ++k) {
        const int i = tid + (it0 + k) * kThreads;
        float x[8];
        widen_q8(p, raw[k], x);
        body(i, i / kVecsPerRow, (i % kVecsPerRow) * 8, x);
      }
    }
  };
  for_each_vector(false, [&](int i, int r, int c0, const float (&x)[8]) {
    float a = 0.0f, dot = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      a = fmaxf(a, num::amax_abs(x[j]));  // NaN counts as +inf (docs/NUMERICS.md, "Special values")
      if (want_qkm && c0 + j < p.head_dim) dot = fmaf(x[j], km[c0 + j], dot);
    }
    // A row's vectors sit in kVecsPerRow consecutive lanes: reduce them with shuffles (a fixed
    // order: deterministic LSE), then one lane per row touches shared memory.
#pragma unroll
    for (int o = kVecsPerRow / 2; o > 0; o /= 2) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    if (i % kVecsPerRow == 0) dev::atomic_max_nonneg(&q_amax[qg.group_of(r)], a);
    if (want_qkm) {
#pragma unroll
      for (int o = kVecsPerRow / 2; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if (i % kVecsPerRow == 0) q_km[r] = dot;
    }
  });
  sync();
  const bool negative_scale = p.scale_log2 < 0.0f;
  for_each_vector(kKeep, [&](int, int r, int c0, const float (&x)[8]) {
    const float inv = __fdiv_rn(kInt8Max, fmaxf(q_amax[qg.group_of(r)], kMinAmax));
    uint32_t w[2] = {0u, 0u};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int code = dev::int8_code(x[j], inv);
      w[j / 4] |= uint32_t(static_cast<uint8_t>(negative_scale ? -code : code)) << (8 * (j % 4));
    }
    store(r, c0, make_uint2(w[0], w[1]));
  });
}

// Stores half hr (rows g or g + 8 of an m16 tile) of one output row from a thread's m16n8
// accumulator fragments acc[n] (columns 8n + 2t, 8n + 2t + 1): O = acc / l * v_scale + v_mean,
// rounded to the output dtype with magnitudes beyond its range (+-inf included) saturated and NaN
// kept (num::saturate); zeros when l == 0 (nothing visible). A NaN l (a NaN logit) is not
// "nothing visible": the row comes out NaN. o_row: element offset of the row in p.out. vs, vmn:
// this KV head's V scales and means.
template <int kNTiles>
__device__ __forceinline__ void store_out_row(const KernelParams& p, int64_t o_row,
                                              const float (&acc)[kNTiles][4], int hr, float l, int t,
                                              const float* vs, const float* vmn) {
  const bool visible = l != 0.0f;
  const float inv_l = visible ? 1.0f / l : 0.0f;
  const float o_max = p.bf16 ? num::kBf16Max : kFp16Max;
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) {
    const int c = n * 8 + 2 * t;
    if (c >= p.head_dim) continue;
    float o0 = 0.0f, o1 = 0.0f;
    if (visible) {
      o0 = num::saturate(acc[n][2 * hr] * inv_l * vs[c] + vmn[c], o_max);
      o1 = num::saturate(acc[n][2 * hr + 1] * inv_l * vs[c + 1] + vmn[c + 1], o_max);
    }
    uint16_t* dst = static_cast<uint16_t*>(p.out) + o_row + c;
    uint16_t u0, u1;
    if (p.bf16) {
      u0 = __bfloat16_as_ushort(__float2bfloat16_rn(o0));
      u1 = __bfloat16_as_ushort(__float2bfloat16_rn(o1));
    } else {
      u0 = __half_as_ushort(__float2half_rn(o0));
      u1 = __half_as_ushort(__float2half_rn(o1));
    }
    if (p.o_aligned) *reinterpret_cast<uint32_t*>(dst) = uint32_t(u0) | (uint32_t(u1) << 16);
    else dst[0] = u0, dst[1] = u1;
  }
}

// The LSE of one row (natural log, of the original logits): m (base-2 running max, lowered by
// p_offset in the fp8 modes) and l (the full row sum); -inf when nothing was visible (l == 0),
// NaN when l is NaN.
__device__ __forceinline__ void store_lse(const KernelParams& p, const SeqBounds& sb, int64_t b, int64_t h,
                                          int64_t row, float m, float l, float p_offset, float q_km) {
  float lse = -std::numeric_limits<float>::infinity();
  if (l != 0.0f) {
    const float lse2 = m + __log2f(l) - p_offset;
    lse = lse2 * static_cast<float>(kLn2) + (p.smooth_k ? p.scale * q_km : 0.0f);
  }
  const int64_t lse_off = (p.cu_seqlens_q ? 0 : b * p.lse_stride_b) + h * p.lse_stride_h +
                          (sb.q_begin + row) * p.lse_stride_n;
  p.lse[lse_off] = lse;
}

}  // namespace sageattn::attn
