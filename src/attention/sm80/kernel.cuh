// src/attention/sm80/kernel.cuh: the mma.sync attention kernel (sm80, sm86, sm89, sm90).
//
// One CTA = 128 query rows of one (sequence, query head); 8 warps x 16 rows (config.h).
//   prologue : Q rows are read twice from global memory: once for the int8 group amax (and
//              q . kmean for the LSE), once to quantize into shared memory; each warp then
//              keeps its Q as mma A fragments in registers for the whole loop.
//   main loop: for each 64-key block, S = Q8 K8^T (mma m16n8k32 s8, int32), dequantized by
//              sq * sk into base-2 logits; causal / tail masks; online softmax (exp2); P.V with
//              P from registers: fp16 (m16n8k16, fp32 accumulate) or e4m3 (m16n8k32; the block's
//              partial product is added to a separate fp32 accumulator: two-level accumulation).
//              K and V tiles stream in with cp.async, double-buffered.
//   epilogue : O = acc / l * v_scale + v_mean, rounded to the output dtype; LSE.
// The numerics are those of docs/NUMERICS.md §3; the CPU reference computes the same with the same
// tiles (kSm80Tiles). Synchronization: every cp.async group is waited for and followed by a
// __syncthreads() before any warp reads the tile; a stage is refilled only after a
// __syncthreads() that follows the last read of its previous contents.
#pragma once

#include <cstdint>
#include <limits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attention/sm80/config.h"
#include "attention/sm80/params.h"
#include "common/device_numerics.cuh"
#include "common/ptx/mma.cuh"

namespace sageattn::sm80 {

struct SeqBounds {
  int64_t q_begin, q_len, k_len;
};

__device__ __forceinline__ SeqBounds seq_bounds(const KernelParams& p, int64_t b) {
  if (p.cu_seqlens_q)
    return {p.cu_seqlens_q[b], int64_t(p.cu_seqlens_q[b + 1]) - p.cu_seqlens_q[b],
            int64_t(p.cu_seqlens_k[b + 1]) - p.cu_seqlens_k[b]};
  return {0, p.seqlen_q, p.seqlen_k};
}

__device__ __forceinline__ float load_q_elem(const KernelParams& p, int64_t off) {
  const uint16_t raw = static_cast<const uint16_t*>(p.q)[off];
  return p.bf16 ? __uint_as_float(uint32_t(raw) << 16) : __half2float(__ushort_as_half(raw));
}

// 8 consecutive Q elements of one row starting at element offset `off` (zeros past head_dim).
__device__ __forceinline__ void load_q8(const KernelParams& p, int64_t off, int c0, float (&x)[8]) {
  if (c0 >= p.head_dim) {
#pragma unroll
    for (int j = 0; j < 8; ++j) x[j] = 0.0f;
  } else if (p.q_aligned) {
    if (p.bf16) dev::load8<true>(static_cast<const uint16_t*>(p.q) + off, x);
    else dev::load8<false>(static_cast<const uint16_t*>(p.q) + off, x);
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) x[j] = load_q_elem(p, off + j);
  }
}

__device__ __forceinline__ uint32_t pack_e4m3x4(float a, float b, float c, float d) {
  return uint32_t(ptx::cvt_e4m3x2(a, b)) | (uint32_t(ptx::cvt_e4m3x2(c, d)) << 16);
}

template <int kHeadDim, PvMode kMode>
__global__ void __launch_bounds__(kThreads, (KernelConfig<kHeadDim, kMode>::kMinBlocksPerSm))
    attention_kernel(const __grid_constant__ KernelParams p) {
  using Cfg = KernelConfig<kHeadDim, kMode>;
  constexpr int kD = Cfg::kD;
  constexpr int kKSteps = kD / 32;    // int8 k-steps of Q.K^T
  constexpr int kNTilesS = kBlockK / 8;  // 8 n-tiles of keys
  constexpr int kNTilesO = kD / 8;       // output n-tiles (channels)
  constexpr float kPOffset = Cfg::kFp8 ? kLog2Fp8E4M3Max : 0.0f;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  constexpr TileConfig kTiles = kSm80Tiles;  // a local copy: usable with runtime arguments

  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* k_smem = smem;                                   // [kKStages][64][kKPitch]
  uint8_t* v_smem = smem + Cfg::kKStages * Cfg::kKTile;     // [kVStages][...]
  // [128][kQPitch] int8: prologue only (in the V region) or resident (after the V region).
  uint8_t* q_smem = Cfg::kQInRegisters ? v_smem : v_smem + Cfg::kVRegion;
  __shared__ float q_amax[kBlockQ];  // per local Q group (at most 128/32*8 = 32 used)
  __shared__ float q_km[kBlockQ];    // q . kmean per row (LSE correction)

  const int64_t b = blockIdx.z, h = blockIdx.y;
  const SeqBounds sb = seq_bounds(p, b);
  const int64_t row0 = int64_t(blockIdx.x) * kBlockQ;
  if (row0 >= sb.q_len) return;  // uniform: this tile lies past the sequence
  const int64_t hk = h / (p.heads_q / p.heads_kv);
  const int64_t bhk = b * p.heads_kv + hk;
  const int64_t np = p.seqlen_k_padded;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;

  // ---- the key blocks this tile visits ----
  const int64_t k_len = sb.k_len, q_len = sb.q_len;
  int64_t n_blocks = (k_len + kBlockK - 1) / kBlockK;
  const bool causal = p.mask == MaskMode::kCausal;
  if (causal) {
    const int64_t last_row = (row0 + kBlockQ < q_len ? row0 + kBlockQ : q_len) - 1;
    const int64_t last_key = last_row + k_len - q_len;  // inclusive; < 0: nothing visible
    const int64_t visible_blocks = last_key < 0 ? 0 : (last_key + kBlockK) / kBlockK;
    n_blocks = visible_blocks < n_blocks ? visible_blocks : n_blocks;
  }

  const int8_t* k_src = p.k_codes + bhk * np * kD;
  const uint8_t* v_src = static_cast<const uint8_t*>(p.v_codes) + bhk * np * kD * (Cfg::kFp8 ? 1 : 2);

  auto load_k = [&](int64_t blk, int stage) {
    uint8_t* dst = k_smem + stage * Cfg::kKTile;
    const int8_t* src = k_src + blk * kBlockK * kD;
    constexpr int kChunks = kBlockK * kD / 16;
    for (int i = tid; i < kChunks; i += kThreads) {
      const int r = i / (kD / 16), c = i % (kD / 16);
      ptx::cp_async_16(ptx::smem_u32(dst + r * Cfg::kKPitch + c * 16), src + r * kD + c * 16, 16);
    }
  };
  auto load_v = [&](int64_t blk, int stage) {
    uint8_t* dst = v_smem + stage * Cfg::kVTile;
    if constexpr (Cfg::kFp8) {  // [kD channels][64 k-positions]
      constexpr int kChunks = kD * kBlockK / 16;
      for (int i = tid; i < kChunks; i += kThreads) {
        const int c = i / (kBlockK / 16), j = i % (kBlockK / 16);
        ptx::cp_async_16(ptx::smem_u32(dst + c * Cfg::kVPitch + j * 16),
                         v_src + c * np + blk * kBlockK + j * 16, 16);
      }
    } else {  // [64 tokens][kD halves]
      constexpr int kChunks = kBlockK * kD * 2 / 16;
      for (int i = tid; i < kChunks; i += kThreads) {
        const int r = i / (kD * 2 / 16), c = i % (kD * 2 / 16);
        ptx::cp_async_16(ptx::smem_u32(dst + r * Cfg::kVPitch + c * 16),
                         v_src + ((blk * kBlockK + r) * kD) * 2 + c * 16, 16);
      }
    }
  };

  if (n_blocks > 0) load_k(0, 0);
  ptx::cp_async_commit();

  // ---- prologue: quantize Q into shared memory ----
  const GroupSpec qg = kTiles.q_groups(p.granularity);
  for (int i = tid; i < kBlockQ; i += kThreads) q_amax[i] = 0.0f, q_km[i] = 0.0f;
  __syncthreads();
  constexpr int kVecsPerRow = kD / 8;
  constexpr int kQVecs = kBlockQ * kVecsPerRow;
  const int64_t q_base = (p.cu_seqlens_q ? 0 : b * p.q_stride_b) + h * p.q_stride_h;
  const float* km = p.k_mean + bhk * kD;
  const bool want_qkm = p.lse != nullptr && p.smooth_k;
  static_assert(kQVecs % kThreads == 0 && 32 % kVecsPerRow == 0,
                "every lane runs every iteration; a row's vectors sit in consecutive lanes");
  for (int i = tid; i < kQVecs; i += kThreads) {
    const int r = i / kVecsPerRow, c0 = (i % kVecsPerRow) * 8;
    const int64_t row = row0 + r;
    float x[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (row < q_len) load_q8(p, q_base + (sb.q_begin + row) * p.q_stride_n + c0, c0, x);
    float a = 0.0f, dot = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      a = fmaxf(a, fabsf(x[j]));
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
  }
  __syncthreads();
  for (int i = tid; i < kQVecs; i += kThreads) {
    const int r = i / kVecsPerRow, c0 = (i % kVecsPerRow) * 8;
    const int64_t row = row0 + r;
    float x[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (row < q_len) load_q8(p, q_base + (sb.q_begin + row) * p.q_stride_n + c0, c0, x);
    const float inv = __fdiv_rn(kInt8Max, fmaxf(q_amax[qg.group_of(r)], kMinAmax));
    uint32_t w[2] = {0u, 0u};
#pragma unroll
    for (int j = 0; j < 8; ++j)
      w[j / 4] |= uint32_t(static_cast<uint8_t>(dev::int8_code(x[j], inv))) << (8 * (j % 4));
    *reinterpret_cast<uint2*>(q_smem + r * Cfg::kQPitch + c0) = make_uint2(w[0], w[1]);
  }
  __syncthreads();

  // Q fragments of this warp's 16 rows; one dequant factor per thread (rows g and g + 8 share
  // a group under every granularity: see include/sageattn/layout.h).
  // This thread's ldmatrix row address in the Q tile (rows warp*16.., 16-byte halves of k32).
  const uint32_t q_addr = ptx::smem_u32(
      q_smem + (warp * kRowsPerWarp + ((lane / 8) % 2) * 8 + lane % 8) * Cfg::kQPitch + (lane / 16) * 16);
  uint32_t q_frag[Cfg::kQInRegisters ? kKSteps : 1][4];
  if constexpr (Cfg::kQInRegisters) {
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) ptx::ldmatrix_x4(q_frag[ks], q_addr + ks * 32);
  }
  const int r_lo = warp * kRowsPerWarp + g;  // CTA-local rows of this thread: r_lo, r_lo + 8
  const float q_amax_g = fmaxf(q_amax[qg.group_of(r_lo)], kMinAmax);
  const float sq = __fmul_rn(__fdiv_rn(q_amax_g, kInt8Max), p.scale_log2);
  __syncthreads();  // with Q in registers, q_smem (the V region) is free from here on

  if (n_blocks > 0) load_v(0, 0);
  ptx::cp_async_commit();

  // ---- main loop ----
  float acc[kNTilesO][4];
#pragma unroll
  for (int n = 0; n < kNTilesO; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  float m_row[2] = {kNegInf, kNegInf};  // running max (base 2) of rows r_lo, r_lo + 8
  float l_row[2] = {0.0f, 0.0f};        // this thread's share of the running sum
  const GroupSpec kg = kTiles.k_groups(p.granularity);
  const float* k_scale_src = p.k_scales + bhk * (np / kBlockK) * kg.count;
  const int64_t row_lo = row0 + r_lo;  // sequence-local rows of this thread

  for (int64_t j = 0; j < n_blocks; ++j) {
    const int ks_stage = Cfg::kKStages == 2 ? int(j & 1) : 0;
    const int v_stage = int(j & 1);
    ptx::cp_async_wait<1>();  // K_j has landed (V_j may still be in flight)
    __syncthreads();

    // S = Q8 . K8^T
    int32_t s_int[kNTilesS][4];
#pragma unroll
    for (int n = 0; n < kNTilesS; ++n) s_int[n][0] = s_int[n][1] = s_int[n][2] = s_int[n][3] = 0;
    {
      const uint8_t* kt = k_smem + ks_stage * Cfg::kKTile;
      const int mi = lane / 8;
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) {
        uint32_t qa[4];
        if constexpr (Cfg::kQInRegisters) {
#pragma unroll
          for (int e = 0; e < 4; ++e) qa[e] = q_frag[ks][e];
        } else {
          ptx::ldmatrix_x4(qa, q_addr + ks * 32);
        }
#pragma unroll
        for (int np2 = 0; np2 < kNTilesS / 2; ++np2) {
          const int key = (2 * np2 + mi / 2) * 8 + lane % 8;
          uint32_t bfr[4];
          ptx::ldmatrix_x4(bfr, ptx::smem_u32(kt + key * Cfg::kKPitch + ks * 32 + (mi % 2) * 16));
          const uint32_t b0[2] = {bfr[0], bfr[1]}, b1[2] = {bfr[2], bfr[3]};
          ptx::mma_s8_16832(s_int[2 * np2], qa, b0);
          ptx::mma_s8_16832(s_int[2 * np2 + 1], qa, b1);
        }
      }
    }
    if constexpr (Cfg::kKStages == 2) {
      if (j + 1 < n_blocks) load_k(j + 1, (j + 1) & 1);
      ptx::cp_async_commit();
    }

    // Dequantize into base-2 logits and mask.
    const float sk = k_scale_src[j * kg.count + (kg.count == 4 ? t : 0)];
    const float dq = __fmul_rn(sq, sk);
    float s[kNTilesS][4];
#pragma unroll
    for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = __fmul_rn(static_cast<float>(s_int[n][e]), dq);
    const int64_t key0 = j * kBlockK;
    const bool need_mask = key0 + kBlockK > k_len || (causal && key0 + kBlockK - 1 > row0 + k_len - q_len);
    if (need_mask) {
#pragma unroll
      for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t key = key0 + n * 8 + 2 * t + (e & 1);
          const int64_t row = row_lo + (e >= 2 ? 8 : 0);
          const bool visible = key < k_len && (!causal || key <= row + k_len - q_len);
          if (!visible) s[n][e] = kNegInf;
        }
    }

    // Online softmax (rows r_lo: e = 0,1; r_lo + 8: e = 2,3).
    float alpha[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float mx = kNegInf;
#pragma unroll
      for (int n = 0; n < kNTilesS; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * hr], s[n][2 * hr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_row[hr], mx);
      alpha[hr] = m_row[hr] == kNegInf ? 0.0f : ptx::exp2_approx(m_row[hr] - m_new);
      // A row with nothing visible yet keeps m = -inf; its P are exp2(-inf) = 0.
      const float m_shift = m_new == kNegInf ? 0.0f : m_new - kPOffset;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pv = ptx::exp2_approx(s[n][2 * hr + e] - m_shift);
          s[n][2 * hr + e] = pv;
          sum += pv;
        }
      l_row[hr] = l_row[hr] * alpha[hr] + sum;
      m_row[hr] = m_new;
    }
#pragma unroll
    for (int n = 0; n < kNTilesO; ++n) {
      acc[n][0] *= alpha[0], acc[n][1] *= alpha[0];
      acc[n][2] *= alpha[1], acc[n][3] *= alpha[1];
    }

    ptx::cp_async_wait<Cfg::kKStages == 2 ? 1 : 0>();  // V_j has landed
    __syncthreads();
    if constexpr (Cfg::kKStages == 1) {
      if (j + 1 < n_blocks) load_k(j + 1, 0);
      ptx::cp_async_commit();
    }
    if (j + 1 < n_blocks) load_v(j + 1, (j + 1) & 1);
    ptx::cp_async_commit();

    // O += P . V
    const uint8_t* vt = v_smem + v_stage * Cfg::kVTile;
    const int mi = lane / 8;
    if constexpr (Cfg::kFp8) {
      uint32_t pa[2][4];  // two k32 steps; k-positions follow quant::fp8_v_kpos
#pragma unroll
      for (int st = 0; st < 2; ++st) {
        const int n0 = 4 * st;
        pa[st][0] = pack_e4m3x4(s[n0][0], s[n0][1], s[n0 + 1][0], s[n0 + 1][1]);
        pa[st][1] = pack_e4m3x4(s[n0][2], s[n0][3], s[n0 + 1][2], s[n0 + 1][3]);
        pa[st][2] = pack_e4m3x4(s[n0 + 2][0], s[n0 + 2][1], s[n0 + 3][0], s[n0 + 3][1]);
        pa[st][3] = pack_e4m3x4(s[n0 + 2][2], s[n0 + 2][3], s[n0 + 3][2], s[n0 + 3][3]);
      }
#pragma unroll
      for (int np2 = 0; np2 < kNTilesO / 2; ++np2) {
        const int ch = (2 * np2 + mi / 2) * 8 + lane % 8;
        uint32_t bfr[2][4];
#pragma unroll
        for (int st = 0; st < 2; ++st)
          ptx::ldmatrix_x4(bfr[st], ptx::smem_u32(vt + ch * Cfg::kVPitch + st * 32 + (mi % 2) * 16));
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int n = 2 * np2 + half;
          if constexpr (kMode == PvMode::kFp8) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // the block's partial: level one
#pragma unroll
            for (int st = 0; st < 2; ++st) {
              const uint32_t bb[2] = {bfr[st][2 * half], bfr[st][2 * half + 1]};
              ptx::mma_e4m3_16832_f32(part, pa[st], bb);
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[n][e] += part[e];  // level two: true fp32
          } else {
            uint32_t part[2] = {0u, 0u};  // fp16 accumulator, flushed every block
#pragma unroll
            for (int st = 0; st < 2; ++st) {
              const uint32_t bb[2] = {bfr[st][2 * half], bfr[st][2 * half + 1]};
              ptx::mma_e4m3_16832_f16(part, pa[st], bb);
            }
            const float2 lo = __half22float2(*reinterpret_cast<const __half2*>(&part[0]));
            const float2 hi = __half22float2(*reinterpret_cast<const __half2*>(&part[1]));
            acc[n][0] += lo.x, acc[n][1] += lo.y, acc[n][2] += hi.x, acc[n][3] += hi.y;
          }
        }
      }
    } else {
      uint32_t pa[4][4];  // four k16 steps
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        pa[st][0] = ptx::cvt_f16x2(s[2 * st][0], s[2 * st][1]);
        pa[st][1] = ptx::cvt_f16x2(s[2 * st][2], s[2 * st][3]);
        pa[st][2] = ptx::cvt_f16x2(s[2 * st + 1][0], s[2 * st + 1][1]);
        pa[st][3] = ptx::cvt_f16x2(s[2 * st + 1][2], s[2 * st + 1][3]);
      }
#pragma unroll
      for (int st = 0; st < 4; ++st) {
#pragma unroll
        for (int np2 = 0; np2 < kNTilesO / 2; ++np2) {
          const int token = st * 16 + (mi % 2) * 8 + lane % 8;
          const int ch = (2 * np2 + mi / 2) * 8;
          uint32_t bfr[4];
          ptx::ldmatrix_x4_trans(bfr, ptx::smem_u32(vt + token * Cfg::kVPitch + ch * 2));
          const uint32_t b0[2] = {bfr[0], bfr[1]}, b1[2] = {bfr[2], bfr[3]};
          ptx::mma_f16_16816(acc[2 * np2], pa[st], b0);
          ptx::mma_f16_16816(acc[2 * np2 + 1], pa[st], b1);
        }
      }
    }
  }
  ptx::cp_async_wait<0>();

  // ---- epilogue ----
  const float* vs = p.v_scales + bhk * kD;
  const float* vmn = p.v_mean + bhk * kD;
  const int64_t o_base = (p.cu_seqlens_q ? 0 : b * p.o_stride_b) + h * p.o_stride_h;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float l = l_row[hr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int64_t row = row_lo + 8 * hr;
    if (row >= q_len) continue;
    const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
    const int64_t o_row = o_base + (sb.q_begin + row) * p.o_stride_n;
#pragma unroll
    for (int n = 0; n < kNTilesO; ++n) {
      const int c = n * 8 + 2 * t;
      if (c >= p.head_dim) continue;
      float o0 = 0.0f, o1 = 0.0f;
      if (l > 0.0f) {
        o0 = acc[n][2 * hr] * inv_l * vs[c] + vmn[c];
        o1 = acc[n][2 * hr + 1] * inv_l * vs[c + 1] + vmn[c + 1];
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
    if (p.lse && t == 0) {
      float lse = kNegInf;
      if (l > 0.0f) {
        const float lse2 = m_row[hr] + __log2f(l) - kPOffset;
        lse = lse2 * static_cast<float>(kLn2) + (p.smooth_k ? p.scale * q_km[r_lo + 8 * hr] : 0.0f);
      }
      const int64_t lse_off = (p.cu_seqlens_q ? 0 : b * p.lse_stride_b) + h * p.lse_stride_h +
                              (sb.q_begin + row) * p.lse_stride_n;
      p.lse[lse_off] = lse;
    }
  }
}

}  // namespace sageattn::sm80
