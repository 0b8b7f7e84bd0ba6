// src/attention/sm90/kernel.cuh: the warp-specialized wgmma + TMA attention kernel (sm_90a).
//
// Roles, tiles and shared memory: config.h. Per CTA:
//   setup    : thread 0 initializes the mbarriers of the K/V ring; the consumers (256 threads)
//              quantize the CTA's 128 Q rows into the swizzled int8 Q tile (the same prologue as the
//              sm80 kernel: attention/common/tile_io.cuh) while the producer's first loads fly.
//   producer : for each 128-key block j, stage s = j % kStages: waits until every consumer warp
//              released the stage's previous tiles (empty_k / empty_v), then arms full_k / full_v
//              with the tile bytes and issues the TMA loads (K: [128 keys][D] int8; V: the
//              quantizer's layout). Tokens past the padded length are zero-filled by TMA.
//   consumer : per block: wait full_k; S = Q8 K8^T on wgmma s8 (int32, onto the biased start of
//              the sm80 kernel, so one FADD recovers float(S)); release the K stage; masks, the
//              online softmax (base 2, fp32) and P packed as the wgmma A fragment; wait full_v;
//              P.V on wgmma; release the V stage; fp8: acc = acc * alpha + partial (two-level).
//   epilogue : O = acc / l * v_scale + v_mean and the LSE, as in the sm80 kernel.
// The numerics are docs/NUMERICS.md §3 with the tiles kSm90Tiles (128-key softmax steps, K groups
// of 64 keys: two dequantization factors per step); the CPU reference run with kSm90Tiles computes
// the same up to fp32 summation order and ex2.approx.
#pragma once

#include <climits>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <cuda.h>

#include "attention/common/params.h"
#include "attention/common/tile_io.cuh"
#include "attention/sm90/config.h"
#include "common/ptx/hopper.cuh"
#include "common/ptx/mma.cuh"
#include "common/ptx/wgmma.cuh"

namespace sageattn::sm90 {

using attn::KernelParams;

template <int kHeadDim, PvMode kMode>
__global__ void __launch_bounds__(kThreads, 1)
    attention_kernel(const __grid_constant__ KernelParams p, const __grid_constant__ CUtensorMap tm_k,
                     const __grid_constant__ CUtensorMap tm_v) {
#if SAGEATTN_HAVE_WGMMA
  using Cfg = KernelConfig<kHeadDim, kMode>;
  constexpr int kD = Cfg::kD;
  constexpr int kStages = Cfg::kStages;
  constexpr int kSw = Cfg::kQkSwizzle;
  constexpr int kNTilesS = kBlockK / 8;  // 16 n8 tiles of keys
  constexpr int kNTilesO = kD / 8;       // output n8 tiles (channels)
  constexpr float kPOffset = Cfg::kFp8 ? kLog2Fp8E4M3Max : 0.0f;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  constexpr TileConfig kTiles = kSm90Tiles;

  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint8_t* q_smem = smem + Cfg::kQOffset;
  uint8_t* k_smem = smem + Cfg::kKOffset;
  uint8_t* v_smem = smem + Cfg::kVOffset;
  __shared__ __align__(8) uint64_t full_k[kStages], full_v[kStages], empty_k[kStages], empty_v[kStages];
  __shared__ float q_amax[kBlockQ];  // per local Q group
  __shared__ float q_km[kBlockQ];    // q . kmean per row (LSE correction)

  const int64_t b = blockIdx.z, h = blockIdx.y;
  const attn::SeqBounds sb = attn::seq_bounds(p, b);
  const int64_t row0 = int64_t(blockIdx.x) * kBlockQ;
  if (row0 >= sb.q_len) return;  // uniform: this tile lies past the sequence
  const int64_t hk = h / (p.heads_q / p.heads_kv);
  const int64_t bhk = b * p.heads_kv + hk;

  // ---- the key blocks this CTA visits (token indices of one sequence fit int32: launch.cu) ----
  const int k_len = int(sb.k_len), q_len = int(sb.q_len);
  const int diag = k_len - q_len;  // causal: row i sees keys j <= i + diag (bottom-right aligned)
  const bool causal = p.mask == MaskMode::kCausal;
  int n_blocks = (k_len + kBlockK - 1) / kBlockK;
  if (causal) {
    const int last_row = (int(row0) + kBlockQ < q_len ? int(row0) + kBlockQ : q_len) - 1;
    const int last_key = last_row + diag;  // inclusive; < 0: nothing visible
    const int visible_blocks = last_key < 0 ? 0 : (last_key + kBlockK) / kBlockK;
    n_blocks = visible_blocks < n_blocks ? visible_blocks : n_blocks;
  }

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      ptx::mbar_init(&full_k[s], 1);
      ptx::mbar_init(&full_v[s], 1);
      ptx::mbar_init(&empty_k[s], kConsumers * 4);  // one arrival per consumer warp
      ptx::mbar_init(&empty_v[s], kConsumers * 4);
    }
    ptx::mbar_init_fence();
  }
  __syncthreads();

  const int wg = tid / kWarpgroupThreads;
  if (wg == 0) {
    // ---------------- producer ----------------
    ptx::setmaxnreg_dec<kProducerRegs>();
    if (warp == 0 && lane == 0) {
      const int32_t head = int32_t(bhk);
      for (int j = 0; j < n_blocks; ++j) {
        const int s = j % kStages;
        const uint32_t round = uint32_t(j / kStages);
        if (j >= kStages) ptx::mbar_wait(&empty_k[s], (round - 1) & 1u);
        ptx::mbar_arrive_expect_tx(&full_k[s], uint32_t(Cfg::kKTileBytes));
        ptx::tma_load_3d(k_smem + s * Cfg::kKTileBytes, &tm_k, 0, j * kBlockK, head, &full_k[s]);
        if (j >= kStages) ptx::mbar_wait(&empty_v[s], (round - 1) & 1u);
        ptx::mbar_arrive_expect_tx(&full_v[s], uint32_t(Cfg::kVTileBytes));
        uint8_t* vt = v_smem + s * Cfg::kVTileBytes;
        if constexpr (Cfg::kFp8) {  // [D channels][128 k-positions]
          ptx::tma_load_3d(vt, &tm_v, j * kBlockK, 0, head, &full_v[s]);
        } else {  // D / 64 slabs of [128 tokens][64 channels]
#pragma unroll
          for (int slab = 0; slab < kD / 64; ++slab)
            ptx::tma_load_3d(vt + slab * (kBlockK * 128), &tm_v, slab * 64, j * kBlockK, head, &full_v[s]);
        }
      }
    }
    return;
  }

  // ---------------- consumers ----------------
  ptx::setmaxnreg_inc<kConsumerRegs>();
  const int ctid = tid - kWarpgroupThreads;  // 0..255
  const int cw = wg - 1;                     // consumer index: rows cw * 64 .. cw * 64 + 63
  const int w4 = warp % 4;                   // warp inside the warpgroup: rows w4 * 16 ..
  const int g = lane / 4, t = lane % 4;

  // ---- prologue: Q -> swizzled int8 tile ----
  const GroupSpec qg = kTiles.q_groups(p.granularity);
  attn::quantize_q_tile<kD, kBlockQ, kConsumers * kWarpgroupThreads>(
      p, sb, b, h, bhk, row0, qg, ctid, q_amax, q_km,
      [] { ptx::named_barrier_sync(kBarConsumers, kConsumers * kWarpgroupThreads); },
      [&](int r, int c0, uint2 codes) {
        *reinterpret_cast<uint2*>(q_smem + ptx::swizzle_offset<kSw>(uint32_t(r * kD + c0))) = codes;
      });
  ptx::fence_proxy_async();  // the Q tile, written by threads, is read by wgmma
  ptx::named_barrier_sync(kBarConsumers, kConsumers * kWarpgroupThreads);

  const int r_local = cw * kRowsPerConsumer + w4 * 16 + g;  // this thread's rows: r_local, r_local + 8
  // Every granularity gives rows r_local and r_local + 8 one Q group (warp_q = 16 rows; per-thread
  // groups follow g), hence one dequant factor.
  const float q_amax_g = fmaxf(q_amax[qg.group_of(r_local)], kMinAmax);
  const float sq = __fmul_rn(__fdiv_rn(q_amax_g, kInt8Max), fabsf(p.scale_log2));  // >= 0
  const int row_lo = int(row0) + r_local;  // sequence-local row of half 0

  const GroupSpec kg = kTiles.k_groups(p.granularity);
  const int kgroups_per_head = int(kg.num_groups(p.seqlen_k_padded));
  const float* k_scale_src = p.k_scales + bhk * kgroups_per_head;
  const int kblocks_per_head = int(p.seqlen_k_padded / kKBlock);
  auto key_limit = [&](int row) { return causal ? (row + diag + 1 < k_len ? row + diag + 1 : k_len) : k_len; };

  // Descriptors: Q (A) rows of this warpgroup, K (B) rows = keys; both K-major, kD-byte rows.
  const uint32_t q_addr = ptx::smem_u32(q_smem) + cw * kRowsPerConsumer * kD;
  const uint32_t k_addr = ptx::smem_u32(k_smem);
  const uint32_t v_addr = ptx::smem_u32(v_smem);

  float acc[kNTilesO][4];
#pragma unroll
  for (int n = 0; n < kNTilesO; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  float m_row[2] = {kNegInf, kNegInf}, l_row[2] = {0.0f, 0.0f};

  // Biased int32 logits (see the sm80 kernel): 0x4B400000 + s is the float 1.5 * 2^23 + s.
  constexpr int32_t kLogitBias = 0x4B400000;
  static_assert(127 * 127 * kD < (1 << 22), "|q8 . k8| < 2^22: the biased logits stay in one binade");
  auto unbias = [](int32_t biased) { return __int_as_float(biased) - 12582912.0f; };

  auto block = [&](int j, auto mask_tag) {
    constexpr bool kMask = decltype(mask_tag)::value;
    constexpr int32_t kMasked = INT32_MIN;
    const int s = j % kStages;
    const uint32_t parity = uint32_t(j / kStages) & 1u;

    // ---- S = Q8 K8^T ----
    int32_t sacc[kNTilesS][4];
#pragma unroll
    for (int n = 0; n < kNTilesS; ++n) sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = kLogitBias;
    ptx::mbar_wait(&full_k[s], parity);
    ptx::wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kD / 32; ++ks)
      ptx::wgmma_m64n128k32_s8_ss(reinterpret_cast<int32_t(&)[kNTilesS * 4]>(sacc),
                                  ptx::wgmma_desc_k_sw<kSw>(q_addr + ks * 32, 8 * kSw),
                                  ptx::wgmma_desc_k_sw<kSw>(k_addr + s * Cfg::kKTileBytes + ks * 32, 8 * kSw));
    ptx::wgmma_commit();
    ptx::wgmma_wait<0>();
#pragma unroll
    for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(sacc[n][e])::"memory");
    if (lane == 0) ptx::mbar_arrive(&empty_k[s]);

    // ---- online softmax ----
    // Dequant factors of the step's two K groups blocks (n-tiles 0-7 and 8-15); a block past the
    // padded length holds only masked keys: its factor is never used on a visible key.
    float dq[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      int kb = j * (kBlockK / kKBlock) + half;
      kb = kb < kblocks_per_head ? kb : kblocks_per_head - 1;
      dq[half] = __fmul_rn(sq, k_scale_src[kb * kg.count + (kg.count == 4 ? t : 0)]);
    }
    const int key0 = j * kBlockK;
    float alpha[2], neg_shift[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      if constexpr (kMask) {
        const int lim = key_limit(row_lo + 8 * hr) - key0 - 2 * t;
#pragma unroll
        for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
          for (int e = 0; e < 2; ++e) sacc[n][2 * hr + e] = n * 8 + e < lim ? sacc[n][2 * hr + e] : kMasked;
      }
      float m_blk = kNegInf;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        int32_t mx[kNTilesS / 2];
#pragma unroll
        for (int n = 0; n < kNTilesS / 2; ++n)
          mx[n] = max(sacc[half * 8 + n][2 * hr], sacc[half * 8 + n][2 * hr + 1]);
#pragma unroll
        for (int w = kNTilesS / 4; w > 0; w /= 2)
#pragma unroll
          for (int n = 0; n < w; ++n) mx[n] = max(mx[n], mx[n + w]);
        const float mh = (kMask && mx[0] == kMasked) ? kNegInf : __fmul_rn(unbias(mx[0]), dq[half]);
        m_blk = fmaxf(m_blk, mh);
      }
      m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 1));
      m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 2));
      const float m_new = fmaxf(m_row[hr], m_blk);
      alpha[hr] = m_row[hr] == kNegInf ? 0.0f : ptx::exp2_approx(m_row[hr] - m_new);
      neg_shift[hr] = m_new == kNegInf ? 0.0f : kPOffset - m_new;
      m_row[hr] = m_new;
    }
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float sum[2] = {0.0f, 0.0f};
#pragma unroll
      for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int32_t si = sacc[n][2 * hr + e];
          float x = fmaf(unbias(si), dq[n / 8], neg_shift[hr]);
          if constexpr (kMask) x = si == kMasked ? kNegInf : x;
          const float pv = ptx::exp2_approx(x);
          sacc[n][2 * hr + e] = __float_as_int(pv);  // P overwrites S
          sum[e] += pv;
        }
      l_row[hr] = l_row[hr] * alpha[hr] + (sum[0] + sum[1]);
    }
    auto pf = [&](int n, int e) { return __int_as_float(sacc[n][e]); };

    // ---- P.V ----
    if constexpr (Cfg::kFp8) {
      // Four k32 steps of 32 keys; k-positions follow quant::fp8_v_kpos (the V layout).
      uint32_t pa[4][4];
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        const int n0 = 4 * st;
        pa[st][0] = attn::pack_e4m3x4(pf(n0, 0), pf(n0, 1), pf(n0 + 1, 0), pf(n0 + 1, 1));
        pa[st][1] = attn::pack_e4m3x4(pf(n0, 2), pf(n0, 3), pf(n0 + 1, 2), pf(n0 + 1, 3));
        pa[st][2] = attn::pack_e4m3x4(pf(n0 + 2, 0), pf(n0 + 2, 1), pf(n0 + 3, 0), pf(n0 + 3, 1));
        pa[st][3] = attn::pack_e4m3x4(pf(n0 + 2, 2), pf(n0 + 2, 3), pf(n0 + 3, 2), pf(n0 + 3, 3));
      }
      float part[kNTilesO][4];
      ptx::mbar_wait(&full_v[s], parity);
      ptx::wgmma_fence();
      const uint32_t vt = v_addr + s * Cfg::kVTileBytes;
      auto& pd = reinterpret_cast<float(&)[kNTilesO * 4]>(part);
      if constexpr (kD == 128) {
        ptx::wgmma_m64n128k32_e4m3_rs_zero(pd, pa[0], ptx::wgmma_desc_k_sw<128>(vt, 1024));
#pragma unroll
        for (int st = 1; st < 4; ++st)
          ptx::wgmma_m64n128k32_e4m3_rs(pd, pa[st], ptx::wgmma_desc_k_sw<128>(vt + st * 32, 1024));
      } else {
        ptx::wgmma_m64n64k32_e4m3_rs_zero(pd, pa[0], ptx::wgmma_desc_k_sw<128>(vt, 1024));
#pragma unroll
        for (int st = 1; st < 4; ++st)
          ptx::wgmma_m64n64k32_e4m3_rs(pd, pa[st], ptx::wgmma_desc_k_sw<128>(vt + st * 32, 1024));
      }
      ptx::wgmma_commit();
      ptx::wgmma_wait<0>();
#pragma unroll
      for (int st = 0; st < 4; ++st)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(pa[st][e])::"memory");
#pragma unroll
      for (int n = 0; n < kNTilesO; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(part[n][e])::"memory");
      if (lane == 0) ptx::mbar_arrive(&empty_v[s]);
      // Two-level accumulation: the block's partial product joins the fp32 accumulator.
#pragma unroll
      for (int n = 0; n < kNTilesO; ++n) {
        acc[n][0] = fmaf(acc[n][0], alpha[0], part[n][0]);
        acc[n][1] = fmaf(acc[n][1], alpha[0], part[n][1]);
        acc[n][2] = fmaf(acc[n][2], alpha[1], part[n][2]);
        acc[n][3] = fmaf(acc[n][3], alpha[1], part[n][3]);
      }
    } else {
      // Eight k16 steps of 16 keys, f16 P; the accumulator is rescaled first (skipped when no
      // row of the warp moved its max: alpha == 1 exactly) and accumulated by the tensor cores.
      uint32_t pa[8][4];
#pragma unroll
      for (int st = 0; st < 8; ++st) {
        pa[st][0] = ptx::cvt_f16x2(pf(2 * st, 0), pf(2 * st, 1));
        pa[st][1] = ptx::cvt_f16x2(pf(2 * st, 2), pf(2 * st, 3));
        pa[st][2] = ptx::cvt_f16x2(pf(2 * st + 1, 0), pf(2 * st + 1, 1));
        pa[st][3] = ptx::cvt_f16x2(pf(2 * st + 1, 2), pf(2 * st + 1, 3));
      }
      if (!__all_sync(0xffffffffu, alpha[0] == 1.0f && alpha[1] == 1.0f)) {
#pragma unroll
        for (int n = 0; n < kNTilesO; ++n) {
          acc[n][0] *= alpha[0], acc[n][1] *= alpha[0];
          acc[n][2] *= alpha[1], acc[n][3] *= alpha[1];
        }
      }
      ptx::mbar_wait(&full_v[s], parity);
      ptx::wgmma_fence();
      const uint32_t vt = v_addr + s * Cfg::kVTileBytes;
      auto& ad = reinterpret_cast<float(&)[kNTilesO * 4]>(acc);
      // The V slab of 64 channels c is 128 tokens x 128 bytes: a k16 step is 16 token rows
      // (2 KB); atoms adjacent in N (channels) are one slab apart (LBO), in K 8 rows (SBO).
#pragma unroll
      for (int st = 0; st < 8; ++st) {
        const uint64_t desc = ptx::wgmma_desc_mn_sw128(vt + st * 2048, kBlockK * 128, 1024);
        if constexpr (kD == 128) ptx::wgmma_m64n128k16_f16_rs_tnb(ad, pa[st], desc);
        else ptx::wgmma_m64n64k16_f16_rs_tnb(ad, pa[st], desc);
      }
      ptx::wgmma_commit();
      ptx::wgmma_wait<0>();
#pragma unroll
      for (int st = 0; st < 8; ++st)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(pa[st][e])::"memory");
#pragma unroll
      for (int n = 0; n < kNTilesO; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(acc[n][e])::"memory");
      if (lane == 0) ptx::mbar_arrive(&empty_v[s]);
    }
  };

  // Blocks every key of which is visible to every row of the CTA run without mask code; the rest
  // (the ragged last block, the causal diagonal) run the masked body. Both consumer warpgroups
  // visit every block of the CTA (the producer's ring expects both).
  int n_full = k_len / kBlockK;
  if (causal) {
    const int first_row_limit = int(row0) + diag + 1;
    const int n_causal_full = first_row_limit <= 0 ? 0 : first_row_limit / kBlockK;
    n_full = n_causal_full < n_full ? n_causal_full : n_full;
  }
  n_full = n_full < n_blocks ? n_full : n_blocks;
  for (int j = 0; j < n_full; ++j) block(j, std::false_type{});
  for (int j = n_full; j < n_blocks; ++j) block(j, std::true_type{});

  // ---- epilogue ----
  const float* vs = p.v_scales + bhk * kD;
  const float* vmn = p.v_mean + bhk * kD;
  const int64_t o_base = (p.cu_seqlens_q ? 0 : b * p.o_stride_b) + h * p.o_stride_h;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float l = l_row[hr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = row_lo + 8 * hr;
    if (row >= q_len) continue;
    attn::store_out_row(p, o_base + (sb.q_begin + row) * p.o_stride_n, acc, hr, l, t, vs, vmn);
    if (p.lse && t == 0) attn::store_lse(p, sb, b, h, row, m_row[hr], l, kPOffset, q_km[r_local + 8 * hr]);
  }
#else
  (void)p, (void)tm_k, (void)tm_v;
  __trap();
#endif
}

}  // namespace sageattn::sm90
