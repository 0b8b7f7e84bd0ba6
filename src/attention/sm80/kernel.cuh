// src/attention/sm80/kernel.cuh: the mma.sync attention kernel (sm80, sm86, sm89, sm90).
//
// One CTA = 128 query rows of one (sequence, query head); each warp owns kMTiles m16 tiles
// (config.h: 8 warps x 16 rows, or 4 warps x 32 rows where one fragment feeds two MMAs).
//   prologue : Q rows are read twice from global memory: once for the int8 group amax (and
//              q . kmean for the LSE), once to quantize into shared memory; each warp then
//              keeps its Q as mma A fragments in registers for the whole loop, or re-reads them
//              from the resident Q tile every K block (Cfg::kQInRegisters).
//   main loop: for each 64-key block, S = Q8 K8^T (mma m16n8k32 s8, int32), dequantized by
//              sq * sk into base-2 logits; causal / tail masks; online softmax (exp2); P.V with
//              P from registers: fp16 (m16n8k16, fp32 accumulate) or e4m3 (m16n8k32; the block's
//              partial product is added to a separate fp32 accumulator: two-level accumulation).
//              On sm_90a the fp16 P.V of hd64/hd128 runs on wgmma instead (common/ptx/wgmma.cuh):
//              each m-tile's as soon as its P is ready, overlapping the next m-tile's softmax.
//              K and V tiles stream in with cp.async, double-buffered.
//   epilogue : O = acc / l * v_scale + v_mean, rounded to the output dtype; LSE.
// The numerics are those of docs/NUMERICS.md §3; the CPU reference computes the same with the same
// tiles (kSm80Tiles). Synchronization: every cp.async group is waited for and followed by a
// __syncthreads() before any warp reads the tile (for wgmma, with a fence.proxy.async between
// them); a stage is refilled only after a __syncthreads() that follows the last read of its
// previous contents (wgmma reads: after the wgmma.wait_group that covers them).
#pragma once

#include <climits>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attention/sm80/config.h"
#include "attention/common/params.h"
#include "attention/common/tile_io.cuh"
#include "common/device_numerics.cuh"
#include "common/ptx/mma.cuh"
#include "common/ptx/wgmma.cuh"

namespace sageattn::sm80 {

using attn::KernelParams;
using attn::pack_e4m3x4;
using attn::SeqBounds;
using attn::seq_bounds;

template <int kHeadDim, PvMode kMode>
__global__ void __launch_bounds__(KernelConfig<kHeadDim, kMode>::kThreads,
                                  KernelConfig<kHeadDim, kMode>::kMinBlocksPerSm)
    attention_kernel(const __grid_constant__ KernelParams p) {
  using Cfg = KernelConfig<kHeadDim, kMode>;
  constexpr int kD = Cfg::kD;
  constexpr int kM = Cfg::kMTiles;       // m16 tiles of this warp
  constexpr int kThreads = Cfg::kThreads;
  constexpr int kKSteps = kD / 32;       // int8 k-steps of Q.K^T
  constexpr int kNTilesS = kBlockK / 8;  // 8 n-tiles of keys
  constexpr int kNTilesO = kD / 8;       // output n-tiles (channels)
  constexpr float kPOffset = Cfg::kFp8 ? kLog2Fp8E4M3Max : 0.0f;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  constexpr TileConfig kTiles = kSm80Tiles;  // a local copy: usable with runtime arguments
  // P.V on wgmma (sm_90a builds, fp16 mode, hd128 and hd64; SAGEATTN_SM80_WGMMA_PV=0 turns it
  // off). Every 4 warps of the CTA are one warpgroup (hd128: the CTA; hd64: two of them): m16
  // tile mt of its 4 warps forms the 64-row wgmma tile mt, whose A (P) and D (the accumulator)
  // fragments are the mma.sync ones (common/ptx/wgmma.cuh).
  // The tensor cores read V from shared memory (128-byte swizzled, see v_dst0) instead of
  // ldmatrix + HMMA, and each m-tile's P.V is issued as soon as its P is packed, so it runs
  // during the next m-tile's softmax. H100, N = 16K, kernel TFLOPS: hd128 412 -> 479 (a P.V
  // issued after the whole softmax: 457; unswizzled V: 394-403), hd64 337 -> 389 (bench/NOTES.md
  // section 9).
#ifndef SAGEATTN_SM80_WGMMA_PV
#define SAGEATTN_SM80_WGMMA_PV 1
#endif
#if SAGEATTN_HAVE_WGMMA && SAGEATTN_SM80_WGMMA_PV
  constexpr bool kWgPv = kMode == PvMode::kFp16 && (kHeadDim == 64 || kHeadDim == 128) && Cfg::kThreads % 128 == 0;
#else
  constexpr bool kWgPv = false;
#endif
  static_assert(!kWgPv || (Cfg::kEarlyKLoad && Cfg::kKStages == 2), "V_j is waited for before the softmax");

  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* k_smem = smem;                                   // [kKStages][64][kKPitch]
  uint8_t* v_smem = smem + Cfg::kKStages * Cfg::kKTile;     // [kVStages][...]
  // [128][kQPitch] int8: prologue only (in the V region) or resident (after the V region).
  uint8_t* q_smem = Cfg::kQInRegisters ? v_smem : v_smem + Cfg::kVRegion;
  // Static shared memory stays exactly 1 KB: the dynamic stages after it must start 1 KB aligned
  // (the wgmma V operand's swizzle atoms; checked by the __trap below). q_amax holds the local Q
  // groups' amax in its first half and the prologue's per-group inverse scales in its second.
  __shared__ float q_amax[kBlockQ];
  __shared__ float q_km[kBlockQ];  // q . kmean per row (LSE correction)
  constexpr int kMaxQGroups = int(kTiles.q_groups(Granularity::kPerThread).num_groups(kBlockQ));
  static_assert(2 * kMaxQGroups <= kBlockQ, "the group tables share q_amax");
  float* const q_inv = q_amax + kBlockQ / 2;

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
  // Token counts and indices inside one sequence fit int32 (launch.cu checks the lengths); 32-bit
  // loop state leaves more registers to the accumulators.
  const int k_len = int(sb.k_len), q_len = int(sb.q_len);
  const int diag = k_len - q_len;  // causal: row i sees keys j <= i + diag (bottom-right aligned)
  int n_blocks = (k_len + kBlockK - 1) / kBlockK;
  const bool causal = p.mask == MaskMode::kCausal;
  if (causal) {
    const int last_row = (int(row0) + kBlockQ < q_len ? int(row0) + kBlockQ : q_len) - 1;
    const int last_key = last_row + diag;  // inclusive; < 0: nothing visible
    const int visible_blocks = last_key < 0 ? 0 : (last_key + kBlockK) / kBlockK;
    n_blocks = visible_blocks < n_blocks ? visible_blocks : n_blocks;
  }

  const int8_t* k_src = p.k_codes + bhk * np * kD;
  const uint8_t* v_src = static_cast<const uint8_t*>(p.v_codes) + bhk * np * kD * (Cfg::kFp8 ? 1 : 2);

  // cp.async coordinates: thread tid copies 16-byte chunk tid % kCols of row tid / kCols, then
  // the same chunk kThreads / kCols rows further on, and so on: one base address per operand and
  // compile-time offsets (no per-chunk address registers live across the loop).
  constexpr int kKCols = kD / 16;                           // K: [64 keys][kD bytes]
  constexpr int kVCols = Cfg::kFp8 ? kBlockK / 16 : kD * 2 / 16;  // V: [kD][64 B] or [64][2 kD B]
  constexpr int kVRowsTotal = Cfg::kFp8 ? kD : kBlockK;
  static_assert(kThreads % kKCols == 0 && kThreads % kVCols == 0, "whole rows per pass");
  constexpr int kKRowsPerPass = kThreads / kKCols, kVRowsPerPass = kThreads / kVCols;
  static_assert(kBlockK % kKRowsPerPass == 0 && kVRowsTotal % kVRowsPerPass == 0, "whole passes");
  const uint32_t k_dst0 = ptx::smem_u32(k_smem) + (tid / kKCols) * Cfg::kKPitch + (tid % kKCols) * 16;
  const int8_t* k_src0 = k_src + (tid / kKCols) * kD + (tid % kKCols) * 16;
  // fp8: row = channel (stride np bytes), fp16: row = token (stride 2 kD bytes).
  const int64_t v_row_stride = Cfg::kFp8 ? np : int64_t(kD) * 2;
  // wgmma P.V: a pass copies kVRowsPerPass / 8 whole 8-token groups of the V tile; thread tid
  // the 16-byte chunk vc = (tid / 8) % kVCols of token vr = tid % 8 + 8 * (tid / (8 * kVCols)).
  static_assert(!kWgPv || kVRowsPerPass % 8 == 0, "whole 8-token groups per pass");
  constexpr uint32_t kVGroupBytes = 8 * kD * 2;  // one 8-token group in the wgmma layout
  constexpr uint32_t kVPassBytes = kWgPv ? kVRowsPerPass / 8 * kVGroupBytes : kVRowsPerPass * Cfg::kVPitch;
  const int vr = tid % 8 + 8 * (tid / (8 * kVCols)), vc = (tid / 8) % kVCols;
  // wgmma: the 128-byte swizzle of an MN-major operand (common/ptx/wgmma.cuh): an 8-token group
  // is kD / 64 1 KB atoms (64 channels each); token r's chunk c (channels 8c..8c+7) lands in
  // atom c / 8, row r % 8, 16-byte slot (c % 8) ^ (r % 8).
  const uint32_t v_dst0 =
      ptx::smem_u32(v_smem) +
      (kWgPv ? (vr / 8) * kVGroupBytes + (vc / 8) * 1024 + (vr % 8) * 128 + ((vc % 8) ^ (vr % 8)) * 16
             : (tid / kVCols) * Cfg::kVPitch + (tid % kVCols) * 16);
  const uint8_t* v_src0 = v_src + (kWgPv ? vr * v_row_stride + vc * 16
                                         : (tid / kVCols) * v_row_stride + (tid % kVCols) * 16);
  auto load_k = [&](int blk, int stage) {
    const int8_t* src = k_src0 + int64_t(blk) * kBlockK * kD;
#pragma unroll 1  // unrolled, ptxas held more addresses and spilled (bench/NOTES.md section 6)
    for (int pass = 0; pass < kBlockK / kKRowsPerPass; ++pass)
      ptx::cp_async_16(k_dst0 + stage * Cfg::kKTile + pass * kKRowsPerPass * Cfg::kKPitch,
                       src + pass * kKRowsPerPass * kD, 16);
  };
  // The V operand of the k16 step starting at shared address a: two 8-token groups, i.e. two
  // atoms along K (SBO = one group) of two atoms along N (LBO = 1 KB).
  [[maybe_unused]] auto wgmma_v_desc = [](uint32_t a) { return ptx::wgmma_desc_mn_sw128(a, 1024, kVGroupBytes); };
  if constexpr (kWgPv) {  // swizzle atoms start 1024-byte aligned (the V stages are whole KB)
    static_assert(Cfg::kKStages * Cfg::kKTile % 1024 == 0 && Cfg::kVTile % 1024 == 0, "1 KB aligned V stages");
    if ((ptx::smem_u32(v_smem) & 1023u) != 0) __trap();
  }
  auto load_v = [&](int blk, int stage) {
    // fp8: the block's 64 k-positions of every channel; fp16: the block's 64 token rows.
    const uint8_t* src = v_src0 + int64_t(blk) * (Cfg::kFp8 ? kBlockK : kBlockK * kD * 2);
#pragma unroll 1  // unrolled, ptxas held more addresses and spilled (bench/NOTES.md section 6)
    for (int pass = 0; pass < kVRowsTotal / kVRowsPerPass; ++pass)
      ptx::cp_async_16(v_dst0 + stage * Cfg::kVTile + pass * kVPassBytes,
                       src + pass * kVRowsPerPass * v_row_stride, 16);
  };

  if (n_blocks > 0) load_k(0, 0);
  ptx::cp_async_commit();

  // ---- prologue: quantize Q into shared memory ----
  const GroupSpec qg = kTiles.q_groups(p.granularity);
  attn::quantize_q_tile<kD, kBlockQ, kThreads, false>(
      p, sb, b, h, bhk, row0, tid, q_amax, q_km, q_inv, int(qg.num_groups(kBlockQ)), [&](int r) { return qg.group_of_local(r); },
      [] { __syncthreads(); },
      [&](int r, int c0, uint2 codes) { *reinterpret_cast<uint2*>(q_smem + r * Cfg::kQPitch + c0) = codes; });
  __syncthreads();

  // This thread's rows: CTA-local r_lo(mt) = warp * kRowsPerWarp + 16 * mt + g, and r_lo + 8.
  // All of them share one Q group under every granularity (warp_q covers a warp's rows; the
  // per-thread groups follow g: include/sageattn/layout.h), hence one dequant factor.
  const int r_warp = warp * Cfg::kRowsPerWarp;
  // This thread's ldmatrix row address in the Q tile (16 rows of m-tile mt, 16-byte halves of k32).
  const uint32_t q_addr = ptx::smem_u32(
      q_smem + (r_warp + ((lane / 8) % 2) * 8 + lane % 8) * Cfg::kQPitch + (lane / 16) * 16);
  constexpr uint32_t kQMTileBytes = 16 * Cfg::kQPitch;
  uint32_t q_frag[Cfg::kQInRegisters ? kM : 1][Cfg::kQInRegisters ? kKSteps : 1][4];
  if constexpr (Cfg::kQInRegisters) {
#pragma unroll
    for (int mt = 0; mt < kM; ++mt)
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) ptx::ldmatrix_x4(q_frag[mt][ks], q_addr + mt * kQMTileBytes + ks * 32);
  }
  const float q_amax_g = fmaxf(q_amax[qg.group_of_local(r_warp + g)], kMinAmax);
  const float sq = __fmul_rn(__fdiv_rn(q_amax_g, kInt8Max), fabsf(p.scale_log2));  // >= 0
  __syncthreads();  // with Q in registers, q_smem (the V region) is free from here on

  if (n_blocks > 0) load_v(0, 0);
  ptx::cp_async_commit();

  // ---- main loop ----
  float acc[kM][kNTilesO][4];
#pragma unroll
  for (int mt = 0; mt < kM; ++mt)
#pragma unroll
    for (int n = 0; n < kNTilesO; ++n) acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.0f;
  // Running max (base 2) and this thread's share of the running sum of rows r_lo(mt) (+8 * hr).
  float m_row[kM][2], l_row[kM][2];
#pragma unroll
  for (int mt = 0; mt < kM; ++mt) m_row[mt][0] = m_row[mt][1] = kNegInf, l_row[mt][0] = l_row[mt][1] = 0.0f;
  const GroupSpec kg = kTiles.k_groups(p.granularity);
  const float* k_scale_src = p.k_scales + bhk * (np / kBlockK) * kg.count;
  const int row_lo = int(row0) + r_warp + g;  // sequence-local row of m-tile 0, half 0
  // Keys visible to row r: key < key_limit(r) (the tail, and the causal diagonal).
  auto key_limit = [&](int row) {
    return causal ? (row + diag + 1 < k_len ? row + diag + 1 : k_len) : k_len;
  };

  // The int32 logits start from kLogitBias instead of 0 (the IMMA adds onto it): the biased
  // integer 0x4B400000 + s is the bit pattern of the float 1.5 * 2^23 + s for |s| < 2^22, so one
  // exact FADD recovers float(s), where an I2FP conversion would be needed otherwise (a
  // quarter-rate conversion before sm90). The max over biased integers is the biased max.
  // H100, N = 16K, kernel TFLOPS: hd64 fp16 321 -> 329, fp8 292 -> 297, hd128 unchanged (412),
  // and no more spills at hd128 fp16 (bench/NOTES.md section 9).
  constexpr int32_t kLogitBias = 0x4B400000;  // the bits of num::kRniMagic
  static_assert(127 * 127 * kD < (1 << 22), "|q8 . k8| < 2^22: the biased logits stay in one binade");
  auto unbias = [](int32_t biased) { return __int_as_float(biased) - num::kRniMagic; };

  // One K block. kMask: some key of the block is invisible to some row of the CTA (the last
  // block of a ragged length, the blocks on the causal diagonal); the other blocks skip the
  // masking code entirely. The body has no data-dependent branch, so the compiler can overlap
  // the second m-tile's MMAs with the first one's softmax.
  auto block = [&](int j, auto mask_tag) {
    constexpr bool kMask = decltype(mask_tag)::value;
    constexpr int32_t kMasked = INT32_MIN;  // below any (biased) logit
    const int ks_stage = Cfg::kKStages == 2 ? (j & 1) : 0;
    const int v_stage = j & 1;
    const int j_next = j + 1 < n_blocks ? j + 1 : j;  // the last block reloads itself: unread
    ptx::cp_async_wait<1>();  // K_j has landed (V_j may still be in flight)
    __syncthreads();
    if constexpr (Cfg::kKStages == 2 && Cfg::kEarlyKLoad) {  // stage (j + 1) & 1: last read in block j - 1
      load_k(j_next, (j + 1) & 1);
      ptx::cp_async_commit();
    }

    // Per m-tile: S = Q8 . K8^T (int32); each thread's row max on its integer logits (its dequant
    // factor dq >= 0 is monotone, so max(s * dq) = max(s) * dq exactly); P = exp2(s * dq - m_shift)
    // in one FFMA, packed into MMA A fragments. The S of all m-tiles is computed at once, so each
    // K fragment read from shared memory feeds every m-tile's MMAs (both S live: a few bytes of
    // spills at hd128, yet +3.8% over one m-tile at a time, whose IMMAs waited on those reads;
    // bench/NOTES.md section 8).
    constexpr int kPaSteps = Cfg::kFp8 ? 2 : 4;  // k32 e4m3 steps or k16 f16 steps of 64 keys
    uint32_t pa[kM][kPaSteps][4];
    float alpha[kM][2];
    const float sk = k_scale_src[j * kg.count + (kg.count == 4 ? t : 0)];
    const float dq = __fmul_rn(sq, sk);
    const int key0 = j * kBlockK;
    const uint8_t* kt = k_smem + ks_stage * Cfg::kKTile;
    int32_t s_all[kM][kNTilesS][4];
#pragma unroll
    for (int mt = 0; mt < kM; ++mt)
#pragma unroll
      for (int n = 0; n < kNTilesS; ++n)
        s_all[mt][n][0] = s_all[mt][n][1] = s_all[mt][n][2] = s_all[mt][n][3] = kLogitBias;
    {
      const int mi = lane / 8;
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) {
        uint32_t qa[kM][4];
#pragma unroll
        for (int mt = 0; mt < kM; ++mt) {
          if constexpr (Cfg::kQInRegisters) {
#pragma unroll
            for (int e = 0; e < 4; ++e) qa[mt][e] = q_frag[mt][ks][e];
          } else {
            ptx::ldmatrix_x4(qa[mt], q_addr + mt * kQMTileBytes + ks * 32);
          }
        }
#pragma unroll
        for (int np2 = 0; np2 < kNTilesS / 2; ++np2) {
          const int key = (2 * np2 + mi / 2) * 8 + lane % 8;
          uint32_t bfr[4];
          ptx::ldmatrix_x4(bfr, ptx::smem_u32(kt + key * Cfg::kKPitch + ks * 32 + (mi % 2) * 16));
          const uint32_t b0[2] = {bfr[0], bfr[1]}, b1[2] = {bfr[2], bfr[3]};
#pragma unroll
          for (int mt = 0; mt < kM; ++mt) {
            ptx::mma_s8_16832(s_all[mt][2 * np2], qa[mt], b0);
            ptx::mma_s8_16832(s_all[mt][2 * np2 + 1], qa[mt], b1);
          }
        }
      }
    }
    // Online softmax of m-tile mt (rows r_lo(mt): e = 0,1; r_lo(mt) + 8: e = 2,3), in two steps:
    // the masks and the row max (alpha, m_row, and the shift of the exponent), then P = exp2(.)
    // packed into MMA A fragments (overwriting S in the same registers) and the row sums.
    float neg_shift[kM][2];
    auto row_max = [&](int mt) {
      int32_t (&s_int)[kNTilesS][4] = s_all[mt];
      if constexpr (kMask) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int lim = key_limit(row_lo + 16 * mt + 8 * hr) - key0 - 2 * t;
#pragma unroll
          for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              s_int[n][2 * hr + e] = n * 8 + e < lim ? s_int[n][2 * hr + e] : kMasked;
        }
      }
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        int32_t mx[kNTilesS];  // pairwise tree: exact (max is associative), short dependency chains
#pragma unroll
        for (int n = 0; n < kNTilesS; ++n) mx[n] = max(s_int[n][2 * hr], s_int[n][2 * hr + 1]);
#pragma unroll
        for (int w = kNTilesS / 2; w > 0; w /= 2)
#pragma unroll
          for (int n = 0; n < w; ++n) mx[n] = max(mx[n], mx[n + w]);
        const int32_t mx0 = mx[0];
        // This thread's max in fp32 (all its keys share dq), then across the row's 4 threads (whose
        // dq differ under per-thread K groups).
        float m_blk = (kMask && mx0 == kMasked) ? kNegInf : __fmul_rn(unbias(mx0), dq);
        m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 1));
        m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 2));
        const float m_new = fmaxf(m_row[mt][hr], m_blk);
        alpha[mt][hr] = m_row[mt][hr] == kNegInf ? 0.0f : ptx::exp2_approx(m_row[mt][hr] - m_new);
        // A row with nothing visible yet keeps m = -inf; its P are 0 (masked: kMasked -> -inf).
        neg_shift[mt][hr] = m_new == kNegInf ? 0.0f : num::p_shift(kPOffset, m_new);
        m_row[mt][hr] = m_new;
      }
    };
    auto exponentiate = [&](int mt) {
      int32_t (&s_int)[kNTilesS][4] = s_all[mt];
      // One half-row; rows with huge maxima take the exact exponent (dev::shifted_logit).
      auto exp_half = [&](int hr, auto exact) {
        float sum[2] = {0.0f, 0.0f};  // two chains (even and odd keys of each pair)
#pragma unroll
        for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int32_t si = s_int[n][2 * hr + e];
            float x = dev::shifted_logit<decltype(exact)::value>(unbias(si), dq, neg_shift[mt][hr]);
            if constexpr (kMask) x = si == kMasked ? kNegInf : x;
            const float pv = ptx::exp2_approx(x);
            s_int[n][2 * hr + e] = __float_as_int(pv);  // P overwrites S (same registers)
            sum[e] += pv;
          }
        l_row[mt][hr] = l_row[mt][hr] * alpha[mt][hr] + (sum[0] + sum[1]);
      };
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        if (!dev::exact_shift_row(m_row[mt][hr])) exp_half(hr, std::false_type{});
        else exp_half(hr, std::true_type{});
      }
      auto pf = [&](int n, int e) { return __int_as_float(s_int[n][e]); };
      if constexpr (Cfg::kFp8) {  // two k32 steps; k-positions follow quant::fp8_v_kpos
#pragma unroll
        for (int st = 0; st < 2; ++st) {
          const int n0 = 4 * st;
          pa[mt][st][0] = pack_e4m3x4(pf(n0, 0), pf(n0, 1), pf(n0 + 1, 0), pf(n0 + 1, 1));
          pa[mt][st][1] = pack_e4m3x4(pf(n0, 2), pf(n0, 3), pf(n0 + 1, 2), pf(n0 + 1, 3));
          pa[mt][st][2] = pack_e4m3x4(pf(n0 + 2, 0), pf(n0 + 2, 1), pf(n0 + 3, 0), pf(n0 + 3, 1));
          pa[mt][st][3] = pack_e4m3x4(pf(n0 + 2, 2), pf(n0 + 2, 3), pf(n0 + 3, 2), pf(n0 + 3, 3));
        }
      } else {  // four k16 steps
#pragma unroll
        for (int st = 0; st < 4; ++st) {
          pa[mt][st][0] = ptx::cvt_f16x2(pf(2 * st, 0), pf(2 * st, 1));
          pa[mt][st][1] = ptx::cvt_f16x2(pf(2 * st, 2), pf(2 * st, 3));
          pa[mt][st][2] = ptx::cvt_f16x2(pf(2 * st + 1, 0), pf(2 * st + 1, 1));
          pa[mt][st][3] = ptx::cvt_f16x2(pf(2 * st + 1, 2), pf(2 * st + 1, 3));
        }
      }
    };
    // alpha == 1 exactly when a row's max did not move (ex2(0) = 1): multiplying by it is the
    // identity, so a warp whose rows all kept their max skips the rescale (most blocks of a long
    // sequence; bench/NOTES.md section 6).
    auto rescale = [&] {
      bool unit = true;
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) unit = unit && alpha[mt][0] == 1.0f && alpha[mt][1] == 1.0f;
      if (!__all_sync(0xffffffffu, unit)) {
#pragma unroll
        for (int mt = 0; mt < kM; ++mt)
#pragma unroll
          for (int n = 0; n < kNTilesO; ++n) {
            acc[mt][n][0] *= alpha[mt][0], acc[mt][n][1] *= alpha[mt][0];
            acc[mt][n][2] *= alpha[mt][1], acc[mt][n][3] *= alpha[mt][1];
          }
      }
    };

    if constexpr (kWgPv) {
      // Every row max first, so that both accumulators are rescaled before the first wgmma (an
      // accumulator register touched while a wgmma is in flight makes ptxas serialize them);
      // then each m-tile's P.V is issued as soon as its P is packed, in flight during the next
      // m-tile's exponentials.
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) row_max(mt);
      rescale();
      ptx::cp_async_wait<1>();  // V_j has landed (K_{j+1} may still be in flight) ...
      ptx::fence_proxy_async();  // ... and is visible to wgmma
      __syncthreads();
      load_v(j_next, (j + 1) & 1);  // its stage was last read by block j - 1's wgmma (waited for)
      ptx::cp_async_commit();
      const uint8_t* vt = v_smem + v_stage * Cfg::kVTile;
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
        exponentiate(mt);
        ptx::wgmma_fence();
#pragma unroll
        for (int st = 0; st < 4; ++st)
          if constexpr (kD == 128)
            ptx::wgmma_m64n128k16_f16_rs_tnb(reinterpret_cast<float(&)[kNTilesO * 4]>(acc[mt]), pa[mt][st],
                                             wgmma_v_desc(ptx::smem_u32(vt) + st * 2 * kVGroupBytes));
          else
            ptx::wgmma_m64n64k16_f16_rs_tnb(reinterpret_cast<float(&)[kNTilesO * 4]>(acc[mt]), pa[mt][st],
                                            wgmma_v_desc(ptx::smem_u32(vt) + st * 2 * kVGroupBytes));
      }
      ptx::wgmma_commit();
      ptx::wgmma_wait<0>();
      // The wgmma operands stay untouched (and live) until here.
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
#pragma unroll
        for (int st = 0; st < 4; ++st)
#pragma unroll
          for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(pa[mt][st][e])::"memory");
#pragma unroll
        for (int n = 0; n < kNTilesO; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(acc[mt][n][e])::"memory");
      }
      return;  // what follows is the mma.sync path
    } else {
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) row_max(mt), exponentiate(mt);
    }
    if constexpr (Cfg::kKStages == 2 && !Cfg::kEarlyKLoad) {  // stage (j + 1) & 1 was last read in block j - 1
      load_k(j_next, (j + 1) & 1);
      ptx::cp_async_commit();
    }
    rescale();

    ptx::cp_async_wait<Cfg::kKStages == 2 ? 1 : 0>();  // V_j has landed
    __syncthreads();
    if constexpr (Cfg::kKStages == 1) {
      load_k(j_next, 0);
      ptx::cp_async_commit();
    }
    load_v(j_next, (j + 1) & 1);
    ptx::cp_async_commit();

    // O += P . V
    const uint8_t* vt = v_smem + v_stage * Cfg::kVTile;
    [[maybe_unused]] const int mi = lane / 8;
    if constexpr (Cfg::kFp8) {
#pragma unroll
      for (int np2 = 0; np2 < kNTilesO / 2; ++np2) {
        const int ch = (2 * np2 + mi / 2) * 8 + lane % 8;
        uint32_t bfr[2][4];
#pragma unroll
        for (int st = 0; st < 2; ++st)
          ptx::ldmatrix_x4(bfr[st], ptx::smem_u32(vt + ch * Cfg::kVPitch + st * 32 + (mi % 2) * 16));
#pragma unroll
        for (int mt = 0; mt < kM; ++mt)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int n = 2 * np2 + half;
            if constexpr (kMode == PvMode::kFp8) {
              float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // the block's partial: level one
#pragma unroll
              for (int st = 0; st < 2; ++st) {
                const uint32_t bb[2] = {bfr[st][2 * half], bfr[st][2 * half + 1]};
                ptx::mma_e4m3_16832_f32(part, pa[mt][st], bb);
              }
#pragma unroll
              for (int e = 0; e < 4; ++e) acc[mt][n][e] += part[e];  // level two: true fp32
            } else {
              uint32_t part[2] = {0u, 0u};  // fp16 accumulator, flushed every block
#pragma unroll
              for (int st = 0; st < 2; ++st) {
                const uint32_t bb[2] = {bfr[st][2 * half], bfr[st][2 * half + 1]};
                ptx::mma_e4m3_16832_f16(part, pa[mt][st], bb);
              }
              const float2 lo = __half22float2(*reinterpret_cast<const __half2*>(&part[0]));
              const float2 hi = __half22float2(*reinterpret_cast<const __half2*>(&part[1]));
              acc[mt][n][0] += lo.x, acc[mt][n][1] += lo.y, acc[mt][n][2] += hi.x, acc[mt][n][3] += hi.y;
            }
          }
      }
    } else {
#pragma unroll
      for (int st = 0; st < 4; ++st) {
#pragma unroll
        for (int np2 = 0; np2 < kNTilesO / 2; ++np2) {
          const int token = st * 16 + (mi % 2) * 8 + lane % 8;
          const int ch = (2 * np2 + mi / 2) * 8;
          uint32_t bfr[4];
          ptx::ldmatrix_x4_trans(bfr, ptx::smem_u32(vt + token * Cfg::kVPitch + ch * 2));
          const uint32_t b0[2] = {bfr[0], bfr[1]}, b1[2] = {bfr[2], bfr[3]};
#pragma unroll
          for (int mt = 0; mt < kM; ++mt) {
            ptx::mma_f16_16816(acc[mt][2 * np2], pa[mt][st], b0);
            ptx::mma_f16_16816(acc[mt][2 * np2 + 1], pa[mt][st], b1);
          }
        }
      }
    }
  };

  // Blocks whose every key is visible to every row of the CTA come first (no mask code); the
  // rest (at most the diagonal blocks and the ragged last block) run the masked body. The split
  // is uniform over the CTA (the body has barriers).
  int n_full = k_len / kBlockK;
  if (causal) {
    const int first_row_limit = int(row0) + diag + 1;  // keys visible to the CTA's first row
    const int n_causal_full = first_row_limit <= 0 ? 0 : first_row_limit / kBlockK;
    n_full = n_causal_full < n_full ? n_causal_full : n_full;
  }
  n_full = n_full < n_blocks ? n_full : n_blocks;
  for (int j = 0; j < n_full; ++j) block(j, std::false_type{});
  for (int j = n_full; j < n_blocks; ++j) block(j, std::true_type{});
  ptx::cp_async_wait<0>();

  // ---- epilogue ----
  const float* vs = p.v_scales + bhk * kD;
  const float* vmn = p.v_mean + bhk * kD;
  const int64_t o_base = (p.cu_seqlens_q ? 0 : b * p.o_stride_b) + h * p.o_stride_h;
#pragma unroll
  for (int mt = 0; mt < kM; ++mt) {
    float l[2];
    int64_t o_row[2];
    bool in_seq[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      l[hr] = l_row[mt][hr];
      l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
      l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
      const int row = row_lo + 16 * mt + 8 * hr;
      in_seq[hr] = row < q_len;
      o_row[hr] = o_base + (sb.q_begin + row) * p.o_stride_n;
    }
    attn::store_out_rows(p, o_row, in_seq, acc[mt], l, t, vs, vmn);
    if (p.lse && t == 0) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr)
        if (in_seq[hr])
          attn::store_lse(p, sb, b, h, row_lo + 16 * mt + 8 * hr, m_row[mt][hr], l[hr], kPOffset,
                          q_km[r_warp + 16 * mt + 8 * hr + g]);
    }
  }
}

}  // namespace sageattn::sm80
