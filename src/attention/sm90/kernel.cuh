// src/attention/sm90/kernel.cuh: the warp-specialized wgmma + TMA attention kernel (sm_90a).
//
// Roles, tiles and shared memory: config.h. Per CTA:
//   setup    : thread 0 initializes the mbarriers of the K/V ring; the consumers (384 threads)
//              quantize the CTA's 192 Q rows into the swizzled int8 Q tile (the same prologue as the
//              sm80 kernel: attention/common/tile_io.cuh) while the producer's first loads fly.
//   producer : for each 128-key block j, stage s = j % kStages: waits until every consumer warp
//              released the stage's previous tiles (empty_k / empty_v), then arms full_k / full_v
//              with the tile bytes and issues the TMA loads (K: [128 keys][D] int8; V: the
//              quantizer's layout). Tokens past the padded length are zero-filled by TMA.
//   consumer : each of the three warpgroups, independently, per block j: wait full_k; S = Q8 K8^T
//              on wgmma s8 (int32; one I2FP per logit gives the exact float); wait; release the K
//              stage; masks and the online softmax (base 2, fp32); P packed as the wgmma A
//              fragment (registers); wait full_v; P.V on wgmma (fp8: into zeroed partial
//              accumulators, one per 64 channels, both in flight, each then folded as
//              acc = acc * alpha + partial, two-level; fp16: acc rescaled by alpha first, then
//              accumulated); wait; release the V stage. The loop is synchronous inside a
//              warpgroup (160 registers do not hold two blocks in flight); the overlap of softmax
//              and GEMMs comes from the three warpgroups sharing the SM.
//   epilogue : O = acc / l * v_scale + v_mean and the LSE, as in the sm80 kernel (v_scale and
//              v_mean staged in shared memory by the prologue).
// The numerics are docs/NUMERICS.md §3 with the tiles kSm90Tiles (128-key softmax steps, K groups
// of 64 keys: two dequantization factors per step); the CPU reference run with kSm90Tiles computes
// the same up to fp32 summation order and ex2.approx.
#pragma once

#include <climits>
#include <cstdio>
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

// Diagnostic (off by default): -DSAGEATTN_SM90_TRACE=<CTA x index> makes lane 0 of every consumer
// warp of CTA (x, 0, 0) stamp the SM clock at the points SM90_TRACE(i) of
// the main loop (0 starts an iteration; 1 K landed, 2 Q.K^T issued, 3 P.V issued, 4 Q.K^T done,
// 5 row max, 6 exponentials, 7 P.V done) and printf the mean cycles per block spent before each
// point; bench/NOTES.md reads these. Caution: the trace's registers make ptxas serialize the wgmmas
// (warning C7512, a wait after each): the issue phases then include the GEMMs' execution, and the
// build runs ~30% slower; read the softmax phases only.
#ifdef SAGEATTN_SM90_TRACE
inline constexpr int kTracePoints = 10;
#define SM90_TRACE_DECL                                                                           \
  const bool trace_on = blockIdx.x == SAGEATTN_SM90_TRACE && blockIdx.y == 0 && blockIdx.z == 0 && \
                        lane == 0;                                                                \
  long long trace_last = 0, trace_sum[kTracePoints] = {};                                         \
  int trace_n = 0;
#define SM90_TRACE(i)                                        \
  do {                                                       \
    if (trace_on) {                                          \
      const long long now = clock64();                       \
      if (trace_last != 0) trace_sum[i] += now - trace_last; \
      trace_last = now;                                      \
      trace_n += (i) == 0;                                   \
    }                                                        \
  } while (0)
// SM90_TRACE_READY(i, bar, parity): adds 1000 to slot i when the wait that follows finds the phase
// incomplete (a non-blocking test; try_wait itself may suspend in hardware, so a wait that never
// retries proves nothing): slot i prints per mille of iterations.
#define SM90_TRACE_READY(i, bar, parity)                                    \
  do {                                                                      \
    if (trace_on && !ptx::mbar_test(bar, parity)) trace_sum[i] += 1000; \
  } while (0)
#define SM90_TRACE_PRINT                                                                           \
  if (trace_on && trace_n > 2) {                                                                   \
    long long t_[kTracePoints];                                                                    \
    for (int i = 0; i < kTracePoints; ++i) t_[i] = trace_sum[i] / trace_n;                        \
    printf("sm90 trace wg %d warp %d n %d: %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld\n", cw, \
           w4, trace_n, t_[0], t_[1], t_[2], t_[3], t_[4], t_[5], t_[6], t_[7], t_[8], t_[9]);      \
  }
#else
#define SM90_TRACE_DECL
#define SM90_TRACE(i) ((void)0)
#define SM90_TRACE_READY(i, bar, parity) ((void)0)
#define SM90_TRACE_PRINT
#endif

// Probe (bench/NOTES.md section 36), off by default: -DSAGEATTN_SM90_CTA_TRACE=1 times each CTA's
// phases with the GPU's global timer (ns) and sums them over the launch: setup (entry -> the
// mbarriers initialized), the Q prologue (entry -> its last barrier), the first K tile's wait
// after it, each consumer warpgroup's loop and epilogue, and the gap on an SM between a CTA's last
// warpgroup end and the next CTA's entry. launch_kernel.cuh prints the sums after each launch
// (which it synchronizes). Not for production builds.
#ifndef SAGEATTN_SM90_CTA_TRACE
#define SAGEATTN_SM90_CTA_TRACE 0
#endif
#if SAGEATTN_SM90_CTA_TRACE
enum CtaTraceField : int {
  kCtaTraceCtas,        // CTAs with rows (those that did not return at once)
  kCtaTraceSetupNs,     // sum: entry -> mbarriers initialized (thread 0)
  kCtaTracePrologueNs,  // sum: entry -> the Q prologue's last barrier (consumer thread 0)
  kCtaTraceFirstKNs,    // sum: that barrier -> the first K tile landed, where it landed later
  kCtaTraceWgs,         // consumer warpgroups (each counted once: warp 0, lane 0)
  kCtaTraceLoopNs,      // sum over warpgroups: prologue barrier -> its loop's end
  kCtaTraceEpilogueNs,  // sum over warpgroups: loop end -> its stores issued
  kCtaTraceGaps,        // CTAs that found an earlier CTA's end on their SM (< 100 us before)
  kCtaTraceGapNs,       // sum: the SM's last warpgroup end of the earlier CTA -> this entry
  kCtaTraceFirstEntry,  // min entry (atomicMin)
  kCtaTraceLastEnd,     // max warpgroup end (atomicMax)
  kCtaTraceFields
};
// Internal linkage: each instantiation file has its own copy, read by its own launcher.
static __device__ unsigned long long g_cta_trace[kCtaTraceFields];
static __device__ unsigned long long g_cta_sm_end[1024];  // by %smid: the last warpgroup end
#define SM90_CTA_TRACE(x) x
#else
#define SM90_CTA_TRACE(x)
#endif

#ifndef SAGEATTN_SM90_Q_PREFETCH
#define SAGEATTN_SM90_Q_PREFETCH 0
#endif
#if SAGEATTN_SM90_Q_PREFETCH
// The Q rows of the CTA with linear index (this one's + %nsmid) into L2, by the 32 lanes of a warp
// (the experiment in the kernel's producer warpgroup).
__device__ __forceinline__ void prefetch_next_q(const KernelParams& p, int lane) {
  // 32-bit index arithmetic (a 64-bit division is a called subroutine, whose registers made ptxas
  // spill in the consumers' key loop); grids of 2^31 CTAs or more are not prefetched for.
  const uint64_t n_ctas = uint64_t(gridDim.x) * gridDim.y;
  const uint64_t next64 = uint64_t(blockIdx.y) * gridDim.x + blockIdx.x + ptx::nsmid();
  if (n_ctas >= (1ull << 31) || next64 >= n_ctas) return;
  const uint32_t next = uint32_t(next64), nx = gridDim.x, tiles = uint32_t(query_tiles(p.seqlen_q));
  const uint32_t x = next % nx, h = next / nx, b = x / tiles;
  const attn::SeqBounds sb = attn::seq_bounds(p, b);
  const int64_t row0 = int64_t(x - b * tiles) * kBlockQ;
  if (row0 >= sb.q_len) return;
  const int rows = sb.q_len - row0 < kBlockQ ? int(sb.q_len - row0) : kBlockQ;
  const int row_bytes = 2 * p.head_dim;
  for (int r = lane; r < rows; r += 32) {
    const uint8_t* row = static_cast<const uint8_t*>(p.q) + 2 * attn::q_row_offset(p, sb, b, h, row0 + r);
    for (int o = 0; o < row_bytes; o += 128) ptx::prefetch_l2(row + o);
    ptx::prefetch_l2(row + row_bytes - 1);  // the last line of an unaligned row
  }
}
#endif

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
  __shared__ float q_inv[kBlockQ];   // the Q prologue's scratch: per row
  // Q group of each local row (GroupSpec::group_of, tabled for the prologue). The dynamic shared
  // memory is aligned by hand (above), so static arrays may have any size.
  __shared__ uint8_t q_grp[kBlockQ];
  // K dequantization scales of each stage's block: [stage][K group block (64 keys)][sub-group]
  __shared__ float k_sc_smem[kStages][kBlockK / kKBlock][4];
#if SAGEATTN_SM90_Q_PREFETCH
  __shared__ __align__(8) uint64_t q_prefetch_go;  // the K-scale thread arrives after its last block
#endif

  const int64_t tiles = query_tiles(p.seqlen_q);  // grid x = sequence * tiles + tile
  const int64_t b = int64_t(blockIdx.x) / tiles, h = blockIdx.y;
  const attn::SeqBounds sb = attn::seq_bounds(p, b);
  const int64_t row0 = (int64_t(blockIdx.x) - b * tiles) * kBlockQ;
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
#if SAGEATTN_SM90_CTA_TRACE
  // Kept in shared memory, not registers, so that the probe adds nothing live across the loop:
  // [0] the CTA's entry, [1 + cw] warpgroup cw's end of the prologue (written and read by its
  // warp 0, lane 0), [1 + kConsumers] the first K tile's arrival (the K-scale thread observes it;
  // read at the end, long after: a probe's liberty).
  __shared__ unsigned long long s_cta_t[2 + kConsumers];
#endif
  if (tid == 0) {
#if SAGEATTN_SM90_CTA_TRACE
    const unsigned long long t_entry = ptx::globaltimer_ns();
    s_cta_t[0] = t_entry;
    s_cta_t[1 + kConsumers] = 0;
    const unsigned long long prev_end = atomicAdd(&g_cta_sm_end[ptx::smid() % 1024], 0ull);
    atomicAdd(&g_cta_trace[kCtaTraceCtas], 1ull);
    atomicMin(&g_cta_trace[kCtaTraceFirstEntry], t_entry);
    if (prev_end != 0 && prev_end <= t_entry && t_entry - prev_end < 100000ull) {
      atomicAdd(&g_cta_trace[kCtaTraceGaps], 1ull);
      atomicAdd(&g_cta_trace[kCtaTraceGapNs], t_entry - prev_end);
    }
#endif
    for (int s = 0; s < kStages; ++s) {
      ptx::mbar_init(&full_k[s], 2);  // the TMA thread (expect_tx) and the K-scale thread
      ptx::mbar_init(&full_v[s], 1);
      ptx::mbar_init(&empty_k[s], kConsumers * 4);  // one arrival per consumer warp
      ptx::mbar_init(&empty_v[s], kConsumers * 4);
    }
#if SAGEATTN_SM90_Q_PREFETCH
    ptx::mbar_init(&q_prefetch_go, 1);
#endif
    ptx::mbar_init_fence();
    SM90_CTA_TRACE(atomicAdd(&g_cta_trace[kCtaTraceSetupNs], ptx::globaltimer_ns() - s_cta_t[0]);)
  }
  __syncthreads();

  // Warp-uniform by construction; the shuffle lets the compiler know it, so that values derived
  // from it (the consumer's Q rows, hence the wgmma descriptors) live in uniform registers.
  const int wg = __shfl_sync(0xffffffffu, tid / kWarpgroupThreads, 0);
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
    } else if (warp == 1 && lane == 0) {
      // The K scales of block j (two 64-key groups blocks, kg.count sub-groups each) into the
      // stage's slot; its arrival on full_k (release semantics) publishes them with the K tile.
      const GroupSpec kg = kTiles.k_groups(p.granularity);
      const float* src = p.k_scales + bhk * kg.num_groups(p.seqlen_k_padded);
      const int kblocks_per_head = int(p.seqlen_k_padded / kKBlock);
      for (int j = 0; j < n_blocks; ++j) {
        const int s = j % kStages;
        const uint32_t round = uint32_t(j / kStages);
        float v[kBlockK / kKBlock][4];
#pragma unroll
        for (int half = 0; half < kBlockK / kKBlock; ++half) {
          int kb = j * (kBlockK / kKBlock) + half;  // past the padded length: masked keys only
          kb = kb < kblocks_per_head ? kb : kblocks_per_head - 1;
#pragma unroll
          for (int i = 0; i < 4; ++i) v[half][i] = i < kg.count ? src[kb * kg.count + i] : 0.0f;
        }
        if (j >= kStages) ptx::mbar_wait(&empty_k[s], (round - 1) & 1u);
#pragma unroll
        for (int half = 0; half < kBlockK / kKBlock; ++half)
#pragma unroll
          for (int i = 0; i < 4; ++i) k_sc_smem[s][half][i] = v[half][i];
        ptx::mbar_arrive(&full_k[s]);
#if SAGEATTN_SM90_CTA_TRACE
        if (j == 0) {  // observes the first K tile's arrival (the consumers wait for the same phase)
          ptx::mbar_wait(&full_k[0], 0u);
          s_cta_t[1 + kConsumers] = ptx::globaltimer_ns();
        }
#endif
      }
#if SAGEATTN_SM90_Q_PREFETCH
      ptx::mbar_arrive(&q_prefetch_go);  // warp 2 prefetches the next CTA's Q rows now
#endif
    }
#if SAGEATTN_SM90_Q_PREFETCH
    else if (warp == 2) {
      // Experiment (bench/NOTES.md, Next of the twenty-seventh session): the Q rows of the CTA that
      // will likely follow this one on some SM (linear index + %nsmid: one CTA per SM, dispatched
      // in order) into L2, so that its prologue does not wait for DRAM (~1.7 us per tile,
      // section 36). Issued once the K-scale thread has handed out the last block's scales, i.e.
      // about two key blocks, the epilogue and the gap (~6 us at 1K) before that CTA's prologue.
      ptx::mbar_wait(&q_prefetch_go, 0u);
      prefetch_next_q(p, lane);
    }
#endif
    return;
  }

  // ---------------- consumers ----------------
  ptx::setmaxnreg_inc<kConsumerRegs>();
  const int ctid = tid - kWarpgroupThreads;  // 0 .. kConsumers * 128 - 1
  const int cw = wg - 1;                     // consumer index: rows cw * 64 .. cw * 64 + 63
  const int w4 = warp % 4;                   // warp inside the warpgroup: rows w4 * 16 ..
  const int g = lane / 4, t = lane % 4;

  // ---- prologue: Q -> swizzled int8 tile ----
  static_assert(kBlockQ <= 256, "a tile's Q groups (at most one per row) are numbered in a uint8_t");
  // GroupSpec::group_of_local with the granularity's group sizes as constants (no integer division).
  auto q_group_of = [&](int i) {
    switch (p.granularity) {
      case Granularity::kPerBlock: return kTiles.q_groups(Granularity::kPerBlock).group_of_local(i);
      case Granularity::kPerWarp: return kTiles.q_groups(Granularity::kPerWarp).group_of_local(i);
      default: return kTiles.q_groups(Granularity::kPerThread).group_of_local(i);
    }
  };
  for (int i = ctid; i < kBlockQ; i += kConsumers * kWarpgroupThreads) q_grp[i] = uint8_t(q_group_of(i));
  // (the prologue's first barrier publishes the table)
  // The epilogue's V scales and means, staged in shared memory during the prologue: read from L2
  // in the epilogue they cost two round trips per tile (store_out_rows loads them 8 n-tiles at a
  // time; bench/NOTES.md section 37: the epilogue 2.2 -> 1.7 us). Their loads are issued before
  // the prologue's and stored after it. [b, h_kv, dp] floats in a 256-byte-aligned workspace,
  // dp = kD: each head's rows are 16-byte aligned.
  __shared__ __align__(16) float v_sc_smem[2][kD];  // [0] V scales, [1] V means
  constexpr int kVScVecs = 2 * kD / 4;                // float4 loads
  static_assert(kVScVecs <= kConsumers * kWarpgroupThreads, "one float4 per loading thread");
  float4 v_sc_stage = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (ctid < kVScVecs)
    v_sc_stage = reinterpret_cast<const float4*>((ctid < kVScVecs / 2 ? p.v_scales : p.v_mean) + bhk * kD)[ctid % (kVScVecs / 2)];
  // The inverse scales per row: the per-group table's form (`tid < groups`) made ptxas spill in
  // the main loop (96 bytes in fp8).
  attn::quantize_q_tile<kD, kBlockQ, kConsumers * kWarpgroupThreads, true>(
      p, sb, b, h, bhk, row0, ctid, q_amax, q_km, q_inv, kBlockQ, [&](int r) { return int(q_grp[r]); },
      [] { ptx::named_barrier_sync(kBarConsumers, kConsumers * kWarpgroupThreads); },
      [&, q_base = ptx::smem_u32(q_smem)](int r, int c0, uint2 codes) {
        ptx::st_shared_v2(q_base + ptx::swizzle_offset<kSw>(uint32_t(r * kD + c0)), codes);
      });
  if (ctid < kVScVecs) reinterpret_cast<float4*>(&v_sc_smem[0][0])[ctid] = v_sc_stage;
  ptx::fence_proxy_async();  // the Q tile, written by threads, is read by wgmma
  ptx::named_barrier_sync(kBarConsumers, kConsumers * kWarpgroupThreads);
#if SAGEATTN_SM90_CTA_TRACE
  if (warp % 4 == 0 && lane == 0) s_cta_t[1 + cw] = ptx::globaltimer_ns();
#endif

  const int r_local = cw * kRowsPerConsumer + w4 * 16 + g;  // this thread's rows: r_local, r_local + 8
  // Every granularity gives rows r_local and r_local + 8 one Q group (warp_q = 16 rows; per-thread
  // groups follow g), hence one dequant factor.
  const float q_amax_g = fmaxf(q_amax[q_grp[r_local]], kMinAmax);
  const float sq = __fmul_rn(__fdiv_rn(q_amax_g, kInt8Max), fabsf(p.scale_log2));  // >= 0
  const int row_lo = int(row0) + r_local;  // sequence-local row of half 0

  const int k_sub = kTiles.k_groups(p.granularity).count == 4 ? t : 0;  // this thread's K sub-group
  auto key_limit = [&](int row) { return causal ? (row + diag + 1 < k_len ? row + diag + 1 : k_len) : k_len; };

  // Descriptors, built once and advanced per stage and k-step (ptx::wgmma_desc_advance): Q (A)
  // rows of this warpgroup and K (B) rows = keys, both K-major with kD-byte rows; V: fp8 K-major
  // (channels of kBlockK k-positions), fp16 MN-major slabs of 64 channels (kBlockK x 128 bytes).
  const uint64_t q_desc = ptx::wgmma_desc_k_sw<kSw>(ptx::smem_u32(q_smem) + cw * kRowsPerConsumer * kD, 8 * kSw);
  const uint64_t k_desc = ptx::wgmma_desc_k_sw<kSw>(ptx::smem_u32(k_smem), 8 * kSw);
  const uint64_t v_desc = Cfg::kFp8 ? ptx::wgmma_desc_k_sw<128>(ptx::smem_u32(v_smem), 1024)
                                    : ptx::wgmma_desc_mn_sw128(ptx::smem_u32(v_smem), kBlockK * 128, 1024);

  float acc[kNTilesO][4];
#pragma unroll
  for (int n = 0; n < kNTilesO; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  float m_row[2] = {kNegInf, kNegInf}, l_row[2] = {0.0f, 0.0f};

  // int32 logits -> float: exact (|q8 . k8| < 2^24), one I2FP each (not on the XU pipe).
  static_assert(127 * 127 * kD < (1 << 24), "|q8 . k8| < 2^24: int32 -> float is exact");
  auto to_float = [](int32_t s) { return __int2float_rn(s); };

  // Registers: S (64 int32, P overwrites it as fp32 bits), the accumulator (64), P as A fragments
  // (16 fp8 / 32 f16) and, in fp8 mode, the block's partial product (64, live only around P.V).
  int32_t sacc[kNTilesS][4];
  constexpr int kPaSteps = Cfg::kFp8 ? 4 : 8;  // k32 e4m3 steps or k16 f16 steps per block
  uint32_t pa[kPaSteps][4];
  constexpr int kPartTiles = Cfg::kFp8 ? 8 : 1;       // fp8: 64 channels of the partial product
  constexpr int kPvParts = Cfg::kFp8 ? kD / 64 : 1;   // P.V issues per block
  // fp8 at hd128: both 64-channel halves of P.V in flight at once, each into its own partial
  // product, the first folded while the second runs (bench/NOTES.md section 20: +2-3% at 4K-16K;
  // -DSAGEATTN_SM90_PV_OVERLAP=0 issues them one after the other, as before).
#ifndef SAGEATTN_SM90_PV_OVERLAP
#define SAGEATTN_SM90_PV_OVERLAP 1
#endif
  constexpr bool kPvOverlap = Cfg::kFp8 && kPvParts > 1 && SAGEATTN_SM90_PV_OVERLAP;
  constexpr int kPartBufs = kPvOverlap ? kPvParts : 1;
  float part[kPartBufs][kPartTiles][4];
  float alpha[2] = {0.0f, 0.0f};
  float k_sc[2];  // the K scales of the block in flight (its two 64-key groups blocks)
  SM90_TRACE_DECL

  auto fence_s = [&] {
#pragma unroll
    for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(sacc[n][e])::"memory");
  };
  // After a P.V group completed: partial product buf may be read.
  auto fence_part = [&](int buf) {
#pragma unroll
    for (int n = 0; n < kPartTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(part[buf][n][e])::"memory");
  };
  // After P.V completed: P's registers may be reused and the product (part or acc) read.
  auto fence_pv = [&] {
#pragma unroll
    for (int st = 0; st < kPaSteps; ++st)
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(pa[st][e])::"memory");
    if constexpr (Cfg::kFp8) {
#pragma unroll
      for (int buf = 0; buf < kPartBufs; ++buf) fence_part(buf);
    } else {
#pragma unroll
      for (int n = 0; n < kNTilesO; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(acc[n][e])::"memory");
    }
  };

  // ---- S = Q8 K8^T of block j (issued, not waited for) ----
  auto issue_qk = [&](int j) {
    const int s = j % kStages;
    SM90_TRACE_READY(8, &full_k[s], uint32_t(j / kStages) & 1u);
    ptx::mbar_wait(&full_k[s], uint32_t(j / kStages) & 1u);
    SM90_TRACE(1);
#pragma unroll
    for (int half = 0; half < 2; ++half) k_sc[half] = k_sc_smem[s][half][k_sub];
    ptx::wgmma_fence();
    auto& sd = reinterpret_cast<int32_t(&)[kNTilesS * 4]>(sacc);
    const uint64_t kt = ptx::wgmma_desc_advance(k_desc, uint32_t(s * Cfg::kKTileBytes));
    ptx::wgmma_m64n128k32_s8_ss<false>(sd, q_desc, kt);
#pragma unroll
    for (int ks = 1; ks < kD / 32; ++ks)
      ptx::wgmma_m64n128k32_s8_ss(sd, ptx::wgmma_desc_advance(q_desc, ks * 32), ptx::wgmma_desc_advance(kt, ks * 32));
    ptx::wgmma_commit();
  };

  // ---- P.V of block j (issued, not waited for): fp8 into part, 64 output channels (c) at a time,
  // so that the partial product needs 32 registers, not 64; fp16 into acc, all channels ----
  auto wait_v = [&](int j) {
    const int s = j % kStages;
    SM90_TRACE_READY(9, &full_v[s], uint32_t(j / kStages) & 1u);
    ptx::mbar_wait(&full_v[s], uint32_t(j / kStages) & 1u);
  };
  auto issue_pv = [&](int j, int c) {
    const int s = j % kStages;
    ptx::wgmma_fence();
    const uint32_t vt = uint32_t(s * Cfg::kVTileBytes);  // the stage's offset from v_desc
    if constexpr (Cfg::kFp8) {
      // Four k32 steps of 32 keys; k-positions follow quant::fp8_v_kpos (the V layout). V rows are
      // channels of 128 bytes: channels 64c .. 64c + 63 start 64c * 128 bytes in.
      auto& pd = reinterpret_cast<float(&)[kPartTiles * 4]>(part[c % kPartBufs]);
      const uint64_t vc = ptx::wgmma_desc_advance(v_desc, vt + uint32_t(c) * 64 * kBlockK);
      ptx::wgmma_m64n64k32_e4m3_rs<false>(pd, pa[0], vc);
#pragma unroll
      for (int st = 1; st < 4; ++st) ptx::wgmma_m64n64k32_e4m3_rs(pd, pa[st], ptx::wgmma_desc_advance(vc, st * 32));
    } else {
      // Eight k16 steps of 16 keys. The V slab of 64 channels is 128 tokens x 128 bytes: a k16
      // step is 16 token rows (2 KB); atoms adjacent in N (channels) are one slab apart (LBO), in
      // K 8 rows (SBO).
      auto& ad = reinterpret_cast<float(&)[kNTilesO * 4]>(acc);
#pragma unroll
      for (int st = 0; st < 8; ++st) {
        const uint64_t desc = ptx::wgmma_desc_advance(v_desc, vt + st * 2048);
        if constexpr (kD == 128) ptx::wgmma_m64n128k16_f16_rs_tnb(ad, pa[st], desc);
        else ptx::wgmma_m64n64k16_f16_rs_tnb(ad, pa[st], desc);
      }
    }
    ptx::wgmma_commit();
  };
  // __syncwarp first: lane 0's arrival must follow every lane's reads of the stage (the K scales
  // in k_sc_smem; racecheck flagged the producer's next-round write against them without it).
  auto release = [&](uint64_t* bars, int j) {
    __syncwarp();
    if (lane == 0) ptx::mbar_arrive(&bars[j % kStages]);
  };

  // ---- online softmax of block j on sacc: P overwrites S (fp32 bits), alpha = the rescale ----
  // K scales of the step's two K groups blocks (n-tiles 0-7 and 8-15), read from the stage's slot
  // (the producer's K-scale thread) by issue_qk after full_k, before the stage is released.
  auto softmax = [&](int j, auto mask_tag) {
    constexpr bool kMask = decltype(mask_tag)::value;
    constexpr int32_t kMasked = INT32_MIN;
    const float dq[2] = {__fmul_rn(sq, k_sc[0]), __fmul_rn(sq, k_sc[1])};
    const int key0 = j * kBlockK;
    float neg_shift[2];
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
        // Two chains of three-input maxima (few live temporaries: registers are scarce).
        int32_t mx0 = max(sacc[half * 8][2 * hr], sacc[half * 8][2 * hr + 1]);
        int32_t mx1 = max(sacc[half * 8 + 1][2 * hr], sacc[half * 8 + 1][2 * hr + 1]);
#pragma unroll
        for (int n = 2; n < kNTilesS / 2; n += 2) {
          mx0 = max(mx0, max(sacc[half * 8 + n][2 * hr], sacc[half * 8 + n][2 * hr + 1]));
          mx1 = max(mx1, max(sacc[half * 8 + n + 1][2 * hr], sacc[half * 8 + n + 1][2 * hr + 1]));
        }
        mx0 = max(mx0, mx1);
        const float mh = (kMask && mx0 == kMasked) ? kNegInf : __fmul_rn(to_float(mx0), dq[half]);
        m_blk = fmaxf(m_blk, mh);
      }
      m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 1));
      m_blk = fmaxf(m_blk, __shfl_xor_sync(0xffffffffu, m_blk, 2));
      const float m_new = fmaxf(m_row[hr], m_blk);
      alpha[hr] = m_row[hr] == kNegInf ? 0.0f : ptx::exp2_approx(m_row[hr] - m_new);
      neg_shift[hr] = m_new == kNegInf ? 0.0f : num::p_shift(kPOffset, m_new);
      m_row[hr] = m_new;
    }
    SM90_TRACE(5);
    // One half-row; rows with huge maxima take the exact exponent (dev::shifted_logit).
    auto exp_half = [&](int hr, auto exact) {
      float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // four partial sums: short dependency chains
#pragma unroll
      for (int n = 0; n < kNTilesS; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int32_t si = sacc[n][2 * hr + e];
          float x = dev::shifted_logit<decltype(exact)::value>(to_float(si), dq[n / 8], neg_shift[hr]);
          if constexpr (kMask) x = si == kMasked ? kNegInf : x;
          const float pv = ptx::exp2_approx(x);
          sacc[n][2 * hr + e] = __float_as_int(pv);  // P overwrites S
          sum[(n % 2) * 2 + e] += pv;
        }
      l_row[hr] = l_row[hr] * alpha[hr] + ((sum[0] + sum[1]) + (sum[2] + sum[3]));
    };
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      if (!dev::exact_shift_row(m_row[hr])) exp_half(hr, std::false_type{});
      else exp_half(hr, std::true_type{});
    }
    SM90_TRACE(6);
  };

  // ---- P (fp32 bits in sacc) -> the wgmma A fragments ----
  auto pack_p = [&] {
    auto pf = [&](int n, int e) { return __int_as_float(sacc[n][e]); };
    if constexpr (Cfg::kFp8) {
#pragma unroll
      for (int st = 0; st < 4; ++st) {
        const int n0 = 4 * st;
        pa[st][0] = attn::pack_e4m3x4(pf(n0, 0), pf(n0, 1), pf(n0 + 1, 0), pf(n0 + 1, 1));
        pa[st][1] = attn::pack_e4m3x4(pf(n0, 2), pf(n0, 3), pf(n0 + 1, 2), pf(n0 + 1, 3));
        pa[st][2] = attn::pack_e4m3x4(pf(n0 + 2, 0), pf(n0 + 2, 1), pf(n0 + 3, 0), pf(n0 + 3, 1));
        pa[st][3] = attn::pack_e4m3x4(pf(n0 + 2, 2), pf(n0 + 2, 3), pf(n0 + 3, 2), pf(n0 + 3, 3));
      }
    } else {
#pragma unroll
      for (int st = 0; st < 8; ++st) {
        pa[st][0] = ptx::cvt_f16x2(pf(2 * st, 0), pf(2 * st, 1));
        pa[st][1] = ptx::cvt_f16x2(pf(2 * st, 2), pf(2 * st, 3));
        pa[st][2] = ptx::cvt_f16x2(pf(2 * st + 1, 0), pf(2 * st + 1, 1));
        pa[st][3] = ptx::cvt_f16x2(pf(2 * st + 1, 2), pf(2 * st + 1, 3));
      }
    }
  };

  // ---- fp8, after P.V of a block completed: acc = acc * alpha + partial (two-level accumulation);
  // fp16, before P.V of a block: acc *= alpha (skipped when no row of the warp moved its max:
  // alpha == 1 exactly) ----
  auto fold = [&](const float (&a)[2], int c) {
    if constexpr (Cfg::kFp8) {
#pragma unroll
      for (int n = 0; n < kPartTiles; ++n) {
        float* o = acc[c * kPartTiles + n];
        const float* pp = part[c % kPartBufs][n];
        o[0] = fmaf(o[0], a[0], pp[0]);
        o[1] = fmaf(o[1], a[0], pp[1]);
        o[2] = fmaf(o[2], a[1], pp[2]);
        o[3] = fmaf(o[3], a[1], pp[3]);
      }
    } else if (!__all_sync(0xffffffffu, a[0] == 1.0f && a[1] == 1.0f)) {
#pragma unroll
      for (int n = 0; n < kNTilesO; ++n) {
        acc[n][0] *= a[0], acc[n][1] *= a[0];
        acc[n][2] *= a[1], acc[n][3] *= a[1];
      }
    }
  };

  // The blocks this warpgroup computes: under a causal mask, those its last row sees (the CTA's
  // n_blocks follows the CTA's last row); none when its rows lie past the sequence. Blocks every
  // key of which is visible to every row of the warpgroup run without mask code; the rest (the
  // ragged last block, the causal diagonal) run the masked body.
  const int wg_row0 = int(row0) + cw * kRowsPerConsumer;  // sequence-local first row
  int my_blocks = wg_row0 < q_len ? n_blocks : 0;
  int n_full = k_len / kBlockK;
  if (causal) {
    const int wg_last = (wg_row0 + kRowsPerConsumer < q_len ? wg_row0 + kRowsPerConsumer : q_len) - 1;
    const int last_key = wg_last + diag;
    const int visible = last_key < 0 ? 0 : (last_key + kBlockK) / kBlockK;
    my_blocks = visible < my_blocks ? visible : my_blocks;
    const int first_row_limit = wg_row0 + diag + 1;
    const int n_causal_full = first_row_limit <= 0 ? 0 : first_row_limit / kBlockK;
    n_full = n_causal_full < n_full ? n_causal_full : n_full;
  }
  n_full = n_full < my_blocks ? n_full : my_blocks;
  auto softmax_of = [&](int j) {
    if (j < n_full) softmax(j, std::false_type{});
    else softmax(j, std::true_type{});
  };

  for (int j = 0; j < my_blocks; ++j) {
    SM90_TRACE(0);
    issue_qk(j);
    SM90_TRACE(2);
    ptx::wgmma_wait<0>();
    fence_s();
    SM90_TRACE(4);
    release(empty_k, j);
    softmax_of(j);
    pack_p();
    if constexpr (!Cfg::kFp8) fold(alpha, 0);  // fp16: acc *= alpha before P.V adds to it
    wait_v(j);
    SM90_TRACE(3);
    if constexpr (kPvOverlap) {
      static_assert(kPvParts == 2, "the overlap is written for two halves");
      issue_pv(j, 0);
      issue_pv(j, 1);
      ptx::wgmma_wait<1>();
      fence_part(0);
      fold(alpha, 0);
      ptx::wgmma_wait<0>();
      fence_pv();
      fold(alpha, 1);
    } else {
#pragma unroll
      for (int c = 0; c < kPvParts; ++c) {
        issue_pv(j, c);
        ptx::wgmma_wait<0>();
        fence_pv();
        if constexpr (Cfg::kFp8) fold(alpha, c);  // acc = acc * alpha + partial
      }
    }
    SM90_TRACE(7);
    release(empty_v, j);
  }
  SM90_TRACE_PRINT;
  // Blocks of the CTA this warpgroup does not compute: its warps still release them, each after
  // the stage's tiles landed (so that an arrival always counts toward the round it belongs to).
  for (int j = my_blocks; j < n_blocks; ++j) {
    const int s = j % kStages;
    ptx::mbar_wait(&full_k[s], uint32_t(j / kStages) & 1u);
    release(empty_k, j);
    ptx::mbar_wait(&full_v[s], uint32_t(j / kStages) & 1u);
    release(empty_v, j);
  }

  SM90_CTA_TRACE(const unsigned long long t_loop = ptx::globaltimer_ns();)
  // ---- epilogue ----
  const float* vs = v_sc_smem[0];  // staged by the prologue
  const float* vmn = v_sc_smem[1];
  const int64_t o_base = (p.cu_seqlens_q ? 0 : b * p.o_stride_b) + h * p.o_stride_h;
  float l[2];
  int64_t o_row[2];
  bool in_seq[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    l[hr] = l_row[hr];
    l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
    l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
    const int row = row_lo + 8 * hr;
    in_seq[hr] = row < q_len;
    o_row[hr] = o_base + (sb.q_begin + row) * p.o_stride_n;
  }
  // O goes through the warp's own 16 Q rows in shared memory (free once the warpgroup's GEMMs are
  // done; kD bytes per row, so two passes of kD / 2 channels), then out by 16-byte stores: a warp
  // instruction writes whole 16-byte pieces of 32 / kChunks rows instead of 8 rows x 4 bytes x 4
  // threads (4x fewer store instructions, whole sectors; bench/NOTES.md section 38: kernel +3.6%
  // at hd128 1K). Same values and rounding as store_out_rows' fast path, which serves out rows
  // that are not 16-byte aligned, padded head dims, hd64 and the fp16 mode: at hd64 the staged
  // path (its code, not its time) cost the key loop 5.5% at 16K and 1.5% at 4K, and fp16 at hd128
  // gained 1.4% at 1K but measured -3% at 16K (one sample; section 38).
#ifndef SAGEATTN_SM90_O_STAGE_FP16
#define SAGEATTN_SM90_O_STAGE_FP16 0  // experiment, off: fp16 1K +1.4%, 16K -2.5% (NOTES sections 38, 39)
#endif
  constexpr bool kOStage = kD == 128 && (Cfg::kFp8 || SAGEATTN_SM90_O_STAGE_FP16);
  if (kOStage && p.o_aligned16 && p.head_dim == kD) {
    constexpr int kChunks = kD / 16;                    // 16-byte chunks of a row per pass
    constexpr int kRowsPerLine = 128 / (kChunks * 16);  // rows sharing a 128-byte line
    const uint32_t stage = ptx::smem_u32(q_smem) + uint32_t((cw * kRowsPerConsumer + w4 * 16) * kD);
    auto chunk_addr = [&](int row, int c) {  // swizzled: conflict-free 4-byte writes and 16-byte reads
      return stage + uint32_t(row * kD + ((c ^ ((row / kRowsPerLine) & (kChunks - 1))) * 16));
    };
    float inv_l[2];
    bool visible[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) visible[hr] = l[hr] != 0.0f, inv_l[hr] = visible[hr] ? 1.0f / l[hr] : 0.0f;
    // The warpgroup's wgmmas read these rows: all four warps are past their last GEMM.
    ptx::named_barrier_sync(kBarWarpgroup0 + cw, kWarpgroupThreads);
    uint16_t* const out_rows = static_cast<uint16_t*>(p.out) + o_base;
    const int warp_row0 = int(row0) + cw * kRowsPerConsumer + w4 * 16;  // sequence-local
#pragma unroll
    for (int pass = 0; pass < 2; ++pass) {
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int n = pass * kChunks + c;
        const float2 sc = *reinterpret_cast<const float2*>(vs + n * 8 + 2 * t);
        const float2 mn = *reinterpret_cast<const float2*>(vmn + n * 8 + 2 * t);
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const float a0 = acc[n][2 * hr], a1 = acc[n][2 * hr + 1];
          ptx::st_shared_b32(chunk_addr(g + 8 * hr, c) + 4 * t,
                             p.bf16 ? attn::out_pair<true>(a0, a1, inv_l[hr], visible[hr], sc, mn)
                                    : attn::out_pair<false>(a0, a1, inv_l[hr], visible[hr], sc, mn));
        }
      }
      __syncwarp();
#pragma unroll
      for (int i = 0; i < 16 * kChunks / 32; ++i) {
        const int row = lane / kChunks + i * (32 / kChunks), c = lane % kChunks;
        const uint4 v = ptx::ld_shared_v4(chunk_addr(row, c));
        const int seq_row = warp_row0 + row;
        if (seq_row < q_len)
          *reinterpret_cast<uint4*>(out_rows + (sb.q_begin + seq_row) * p.o_stride_n + pass * (kD / 2) + c * 8) = v;
      }
      __syncwarp();
    }
  } else {
    attn::store_out_rows(p, o_row, in_seq, acc, l, t, vs, vmn);
  }
  if (p.lse && t == 0) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr)
      if (in_seq[hr]) attn::store_lse(p, sb, b, h, row_lo + 8 * hr, m_row[hr], l[hr], kPOffset, q_km[r_local + 8 * hr]);
  }
#if SAGEATTN_SM90_CTA_TRACE
  __syncwarp();
  if (warp % 4 == 0 && lane == 0) {
    const unsigned long long t_end = ptx::globaltimer_ns();
    atomicAdd(&g_cta_trace[kCtaTraceWgs], 1ull);
    atomicAdd(&g_cta_trace[kCtaTraceLoopNs], t_loop - s_cta_t[1 + cw]);
    atomicAdd(&g_cta_trace[kCtaTraceEpilogueNs], t_end - t_loop);
    atomicMax(&g_cta_trace[kCtaTraceLastEnd], t_end);
    atomicMax(&g_cta_sm_end[ptx::smid() % 1024], t_end);
    if (ctid == 0) {
      const unsigned long long t_prologue = s_cta_t[1], t_k0 = s_cta_t[1 + kConsumers];
      atomicAdd(&g_cta_trace[kCtaTracePrologueNs], t_prologue - s_cta_t[0]);
      if (t_k0 > t_prologue) atomicAdd(&g_cta_trace[kCtaTraceFirstKNs], t_k0 - t_prologue);
    }
  }
#endif
#else
  (void)p, (void)tm_k, (void)tm_v;
  __trap();
#endif
}

}  // namespace sageattn::sm90
