// src/attention/common/tile_io.cuh: the parts of an attention kernel that touch the user's
// tensors, shared by the sm80 and sm90 kernels: sequence bounds, the Q prologue (bf16/f16 rows ->
// int8 codes with the group scales of include/sageattn/layout.h, and q . kmean for the LSE), and
// the epilogue's stores of O rows and LSE values. Q and O are read and written with plain loads and
// stores, so every layout, stride and varlen packing the API accepts reaches the same code.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

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

// Element offset in p.q of row `row` (sequence-local) of query head h in sequence b.
__device__ __forceinline__ int64_t q_row_offset(const KernelParams& p, const SeqBounds& sb, int64_t b, int64_t h,
                                                int64_t row) {
  return (p.cu_seqlens_q ? 0 : b * p.q_stride_b) + h * p.q_stride_h + (sb.q_begin + row) * p.q_stride_n;
}

// The fast output path's pair of O values (O = acc / l * v_scale + v_mean), rounded to the output
// dtype with out-of-range magnitudes saturated (cvt.rn.satfinite); 0 for a row with nothing
// visible.
template <bool kBf16>
__device__ __forceinline__ uint32_t out_pair(float a0, float a1, float inv_l, bool visible, float2 sc, float2 mn) {
  const float o0 = a0 * inv_l * sc.x + mn.x;
  const float o1 = a1 * inv_l * sc.y + mn.y;
  const uint32_t packed = kBf16 ? ptx::cvt_bf16x2_satfinite(o0, o1) : ptx::cvt_f16x2_satfinite(o0, o1);
  return visible ? packed : 0u;
}

__device__ __forceinline__ uint32_t pack_e4m3x4(float a, float b, float c, float d) {
  return uint32_t(ptx::cvt_e4m3x2(a, b)) | (uint32_t(ptx::cvt_e4m3x2(c, d)) << 16);
}

// The Q prologue: quantizes rows [row0, row0 + kRows) of query head h (rows past the sequence
// are zeros) with kThreads threads, tid in [0, kThreads). q_amax[g] receives the amax of local
// group g (group_of(local row), which must equal qg.group_of: a table lookup where the kernel
// has room for one, since a division by the runtime group size costs ~10 instructions, twice per
// vector), q_km[r] the row's q . kmean when the LSE needs it (K smoothed). q_inv is scratch for
// the inverse scales: kInvPerRow, one per row (q_inv[kRows]; no group lookup per vector), else one
// per group (q_inv[n_groups]; n_groups: the tile's group count, above every group_of value).
// sync() is a barrier over exactly the kThreads threads; store(r, c0, codes) writes the 8 int8
// codes of local row r, channels c0..c0+7 (packed little-endian in a uint2). A negative softmax
// scale is carried by the codes (-c is exact in [-127, 127]) so that the dequantization factor
// stays >= 0 and row maxes can be taken on the integer logits. The caller syncs after it.
template <int kD, int kRows, int kThreads, bool kInvPerRow, typename GroupOf, typename Sync, typename Store>
__device__ __forceinline__ void quantize_q_tile(const KernelParams& p, const SeqBounds& sb, int64_t b,
                                                int64_t h, int64_t bhk, int64_t row0,
                                                int tid, float* q_amax, float* q_km, float* q_inv,
                                                int n_groups, GroupOf&& group_of,
                                                Sync&& sync, Store&& store) {
#pragma unroll
  for (int i0 = 0; i0 < kRows; i0 += kThreads) {
    const int i = i0 + tid;
    if (kRows % kThreads != 0 && i >= kRows) break;
    q_amax[i] = 0.0f, q_km[i] = 0.0f;
  }
  sync();
  constexpr int kVecsPerRow = kD / 8;
  constexpr int kRowStep = kThreads / kVecsPerRow;  // rows between a thread's consecutive vectors
  static_assert(kThreads % kVecsPerRow == 0 && kRows % kRowStep == 0 && 32 % kVecsPerRow == 0,
                "every lane runs every iteration, always on the same 8 channels; a row's vectors "
                "sit in consecutive lanes");
  // A thread's vectors: channels c0 .. c0 + 7 of local rows r0 + it * kRowStep. The channels are
  // the same for every vector (so are their K means); head_dim is a multiple of 8, so a vector
  // lies wholly inside or wholly past it.
  const int c0 = (tid % kVecsPerRow) * 8, r0 = tid / kVecsPerRow;
  const bool col_in = c0 < p.head_dim;
  const int64_t q_row_stride = kRowStep * p.q_stride_n;
  const uint16_t* q_first = static_cast<const uint16_t*>(p.q) + q_row_offset(p, sb, b, h, row0 + r0) + c0;
  const int rows_left = int(sb.q_len - row0) - r0;  // vector it holds a row of the sequence iff it * kRowStep < rows_left
  const bool want_qkm = p.lse != nullptr && p.smooth_k;
  float kmv[8] = {};
  if (want_qkm && col_in) {  // [b, h_kv, dp] floats, 256-byte aligned; c0 % 8 == 0
    const float4* km = reinterpret_cast<const float4*>(p.k_mean + bhk * kD + c0);
    const float4 lo = km[0], hi = km[1];
    kmv[0] = lo.x, kmv[1] = lo.y, kmv[2] = lo.z, kmv[3] = lo.w;
    kmv[4] = hi.x, kmv[5] = hi.y, kmv[6] = hi.z, kmv[7] = hi.w;
  }
  // A thread's loads are issued kBatch at a time, so that the prologue waits for one memory round
  // trip per batch instead of one per vector; when every vector fits one batch (sm90: 192 rows, 384
  // threads, kD <= 128) the raw bits stay in registers for the second pass, which reads nothing.
  constexpr int kIters = kRows / kRowStep;
  constexpr int kBatch = kIters < 8 ? kIters : 8;
  constexpr bool kKeep = kBatch == kIters;
  static_assert(kIters % kBatch == 0, "batches tile a thread's vectors");
  // Raw bits of vector it: zeros (+0.0) for a row past the sequence or channels past head_dim.
  auto load_batch = [&](int it0, uint4 (&raw)[kBatch]) {
    if (p.q_aligned) {  // uniform: one 16-byte load per vector
#pragma unroll
      for (int k = 0; k < kBatch; ++k) {
        const int it = it0 + k;
        raw[k] = col_in && it * kRowStep < rows_left ? *reinterpret_cast<const uint4*>(q_first + it * q_row_stride)
                                                      : make_uint4(0u, 0u, 0u, 0u);
      }
    } else {
#pragma unroll
      for (int k = 0; k < kBatch; ++k) {
        const int it = it0 + k;
        uint32_t w[4] = {0u, 0u, 0u, 0u};
        if (col_in && it * kRowStep < rows_left) {
          const uint16_t* q = q_first + it * q_row_stride;
#pragma unroll
          for (int j = 0; j < 4; ++j) w[j] = uint32_t(q[2 * j]) | (uint32_t(q[2 * j + 1]) << 16);
        }
        raw[k] = make_uint4(w[0], w[1], w[2], w[3]);
      }
    }
  };
  uint4 raw[kBatch];
  // body(it0) on every batch of this thread's vectors (raw[k] holds local row r0 + (it0 + k) *
  // kRowStep); `reuse`: the bits are still in raw (one batch, second pass), nothing is loaded.
  auto for_each_batch = [&](bool reuse, auto&& body) {
#pragma unroll 1
    for (int it0 = 0; it0 < kIters; it0 += kBatch) {
      if (!reuse) load_batch(it0, raw);
      body(it0);
    }
  };
  static_assert(kBatch % 2 == 0, "the amax pass reduces two vectors per shuffle");
  const bool row_lead = c0 == 0;  // the lane holding a row's first vector
  const bool negative_scale = p.scale_log2 < 0.0f;
  // The dtype is a template argument (bf16 tag): the whole prologue is compiled once per dtype.
  auto run = [&](auto bf16) {
    constexpr bool kBf16 = decltype(bf16)::value;
    // The amax pass works on the raw 16-bit patterns, two to a 32-bit word: with the sign bit
    // cleared, bf16 and f16 magnitudes order like their bits, and every NaN lies above +inf
    // (kInf2), so a NaN counts as +inf as num::amax_abs has it (docs/NUMERICS.md, "Special
    // values"). The maxima widen exactly to the floats the element-wise pass would have found.
    constexpr uint32_t kAbs2 = 0x7FFF7FFFu;
    constexpr uint32_t kInf2 = kBf16 ? 0x7F807F80u : 0x7C007C00u;
    auto widen1 = [](uint32_t bits) {  // a 16-bit pattern in the low half -> float
      return kBf16 ? __uint_as_float(bits << 16) : __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
    };
    auto amax2 = [](const uint4& w) {  // |x| maxima of elements (0, 2, 4, 6) | (1, 3, 5, 7)
      return __vmaxu2(__vmaxu2(w.x & kAbs2, w.y & kAbs2), __vmaxu2(w.z & kAbs2, w.w & kAbs2));
    };
    for_each_batch(false, [&](int it0) {
#pragma unroll
      for (int k = 0; k < kBatch; k += 2) {
        // Vectors k and k + 1 share one word from here on: [row of k | row of k + 1].
        const uint32_t m0 = amax2(raw[k]), m1 = amax2(raw[k + 1]);
        uint32_t m = __vmaxu2(__byte_perm(m0, m1, 0x5410), __byte_perm(m0, m1, 0x7632));
        // A row's vectors sit in kVecsPerRow consecutive lanes: reduce them with shuffles, then
        // one lane per row touches shared memory.
#pragma unroll
        for (int o = kVecsPerRow / 2; o > 0; o /= 2) m = __vmaxu2(m, __shfl_xor_sync(0xffffffffu, m, o));
        m = __vminu2(m, kInf2);
        if (row_lead) {
          dev::atomic_max_nonneg(&q_amax[group_of(r0 + (it0 + k) * kRowStep)], widen1(m & 0xFFFFu));
          dev::atomic_max_nonneg(&q_amax[group_of(r0 + (it0 + k + 1) * kRowStep)], widen1(m >> 16));
        }
      }
      if (want_qkm) {  // uniform
#pragma unroll
        for (int k = 0; k < kBatch; ++k) {
          float x[8];
          dev::widen8(raw[k], kBf16, x);
          float dot = 0.0f;
#pragma unroll
          for (int j = 0; j < 8; ++j) dot = fmaf(x[j], kmv[j], dot);  // zeros past head_dim
          // a fixed order: deterministic LSE
#pragma unroll
          for (int o = kVecsPerRow / 2; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
          if (row_lead) q_km[r0 + (it0 + k) * kRowStep] = dot;
        }
      }
    });
    sync();
    // One division per group (or row), not per vector: the inverse scale, negated for a negative
    // softmax scale.
    auto inv_of = [&](float amax) {
      const float inv = __fdiv_rn(kInt8Max, fmaxf(amax, kMinAmax));
      return negative_scale ? -inv : inv;
    };
    if constexpr (kInvPerRow) {
#pragma unroll
      for (int i0 = 0; i0 < kRows; i0 += kThreads) {
        const int i = i0 + tid;
        if (kRows % kThreads != 0 && i >= kRows) break;
        q_inv[i] = inv_of(q_amax[group_of(i)]);
      }
    } else {
      if (tid < n_groups) q_inv[tid] = inv_of(q_amax[tid]);
    }
    sync();
    for_each_batch(kKeep, [&](int it0) {
#pragma unroll
      for (int k = 0; k < kBatch; ++k) {
        const int r = r0 + (it0 + k) * kRowStep;
        // The codes are num::int8_quantize's (dev::int8_code) without its clamp and NaN test:
        // inv == 0 exactly when the group's amax is +inf (a NaN or inf element in it), and then
        // every code is 0. Otherwise every element is finite with |x| <= amax, so |x * inv| <=
        // 127 (1 + 2^-24)^2 < 127.5 and the rounded code lies in [-127, 127] already. A negative
        // softmax scale negates inv: RN(x * -inv) = -RN(x * inv), and rni is symmetric.
        // rni without a conversion (num::kRniMagic): the bits of y + kRniMagic are 0x4B400000 +
        // rni(y), and their low byte is the code in two's complement. One FADD on the FMA pipe
        // in place of an F2I, a conversion at 16 per clock per SM (~0.8 us of a 1K tile's
        // prologue at hd128: 24576 codes).
        const float inv = q_inv[kInvPerRow ? r : group_of(r)];
        const bool all_zero = inv == 0.0f;
        float x[8];
        dev::widen8(raw[k], kBf16, x);
        uint32_t c[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) c[j] = __float_as_uint(__fadd_rn(__fmul_rn(x[j], inv), num::kRniMagic));
        auto pack4 = [](uint32_t a, uint32_t b, uint32_t d, uint32_t e) {  // low bytes, a lowest
          return __byte_perm(__byte_perm(a, b, 0x0040), __byte_perm(d, e, 0x0040), 0x5410);
        };
        const uint32_t lo = pack4(c[0], c[1], c[2], c[3]), hi = pack4(c[4], c[5], c[6], c[7]);
        store(r, c0, all_zero ? make_uint2(0u, 0u) : make_uint2(lo, hi));
      }
    });
  };
  if (p.bf16) run(std::true_type{});  // uniform
  else run(std::false_type{});
}

// Stores a thread's two output rows, halves hr = 0, 1 of its m16n8 accumulator fragments acc[n]
// (rows g and g + 8 of an m16 tile; columns 8n + 2t, 8n + 2t + 1): O = acc / l * v_scale + v_mean,
// rounded to the output dtype with magnitudes beyond its range (+-inf included) saturated and NaN
// kept (num::saturate); zeros when l == 0 (nothing visible). A NaN l (a NaN logit) is not "nothing
// visible": the row comes out NaN. o_row[hr]: element offset of the row in p.out; rows with
// !in_seq[hr] (past the sequence) are not stored. l[hr]: the row's full sum. vs, vmn: this KV head's
// V scales and means ([dp] floats, 8-byte aligned). Their loads run up to 8 n-tiles ahead of the
// stores, for both rows at once: a load that follows a store to p.out in program order cannot be
// moved above it (they may alias), and one round trip per n-tile cost ~8 us per CTA at hd128
// (bench/NOTES.md section 19).
template <int kNTiles>
__device__ __forceinline__ void store_out_rows(const KernelParams& p, const int64_t (&o_row)[2],
                                               const bool (&in_seq)[2], const float (&acc)[kNTiles][4],
                                               const float (&l)[2], int t, const float* vs, const float* vmn) {
  constexpr int kChunk = kNTiles < 8 ? kNTiles : 8;
  static_assert(kNTiles % kChunk == 0, "chunks tile the n-tiles");
  bool visible[2];
  float inv_l[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) visible[hr] = l[hr] != 0.0f, inv_l[hr] = visible[hr] ? 1.0f / l[hr] : 0.0f;
  // The common case (4-byte aligned output, every column a head_dim column) runs a body with no
  // per-element tests: the dtype and alignment branches are taken once, outside it, and the
  // saturating conversion is one cvt.rn.satfinite per pair (num::saturate's result, rounded).
  // Anything else runs the general body.
  auto body = [&](auto fast, auto bf16) {
    constexpr bool kFast = decltype(fast)::value, kBf16 = decltype(bf16)::value;
    const float o_max = p.bf16 ? num::kBf16Max : kFp16Max;
#pragma unroll
    for (int n0 = 0; n0 < kNTiles; n0 += kChunk) {
      float2 sc[kChunk], mn[kChunk];  // columns c, c + 1 < dp: in bounds even past head_dim
#pragma unroll
      for (int k = 0; k < kChunk; ++k) {
        const int c = (n0 + k) * 8 + 2 * t;
        sc[k] = *reinterpret_cast<const float2*>(vs + c);
        mn[k] = *reinterpret_cast<const float2*>(vmn + c);
      }
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        if (!in_seq[hr]) continue;
        uint16_t* row = static_cast<uint16_t*>(p.out) + o_row[hr] + 2 * t;
#pragma unroll
        for (int k = 0; k < kChunk; ++k) {
          const int n = n0 + k;
          if constexpr (kFast) {
            *reinterpret_cast<uint32_t*>(row + n * 8) =
                out_pair<kBf16>(acc[n][2 * hr], acc[n][2 * hr + 1], inv_l[hr], visible[hr], sc[k], mn[k]);
          } else {
            const int c = n * 8 + 2 * t;
            if (c >= p.head_dim) continue;  // head_dim is a multiple of 8: c + 1 < head_dim otherwise
            float o0 = 0.0f, o1 = 0.0f;
            if (visible[hr]) {
              o0 = num::saturate(acc[n][2 * hr] * inv_l[hr] * sc[k].x + mn[k].x, o_max);
              o1 = num::saturate(acc[n][2 * hr + 1] * inv_l[hr] * sc[k].y + mn[k].y, o_max);
            }
            uint16_t* dst = row + n * 8;
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
      }
    }
  };
  if (p.o_aligned && p.head_dim == kNTiles * 8) {
    if (p.bf16) body(std::true_type{}, std::true_type{});
    else body(std::true_type{}, std::false_type{});
  } else {
    body(std::false_type{}, std::false_type{});
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
