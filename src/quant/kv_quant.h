// src/quant/kv_quant.h: K and V quantization on the GPU, bit-identical to the CPU reference
// (docs/NUMERICS.md §2; tests/gpu/test_gpu_quant.cu proves it).
//
// One fused, persistent kernel, no host round trip (kv_quant.cu; work order in
// kv_quant_schedule.h). Every 64-token block of every (sequence, KV head) is two work items:
//   stats:    fp32 sums of K and V and min / max of V over the block (one kMeanChunkTokens chunk)
//             -> a chunk record. The sums follow the two-level order of docs/NUMERICS.md §2: the
//             last stats item of a group of kMeanGroupChunks chunks to finish (atomic counter per
//             group) folds the group's chunk records in ascending order into a group record; the
//             last group of a head (counter per head) folds the group records in ascending order
//             into the K mean, V mean and V scales. The order is fixed, so the result is
//             deterministic whichever item finishes last, and the fold that quantize items wait
//             for reads <= kMeanGroupChunks + groups records instead of all the head's chunks.
//   quantize: K' = K - mean -> int8 with group scales; V (- mean) -> fp8 e4m3 (transposed, tokens
//             permuted within 32-token chunks for the mma.m16n8k32 A/B fragments) or fp16. Handed
//             out a fixed number of items after the stats item of the same block, so that its
//             second read of K and V hits L2; it waits (acquire) for its head's stats.
// early_v (fp16 mode, V not smoothed, head dim padded to 128 or 256, at most 32 blocks per head;
// measured slower at hd64, bench/NOTES.md section 12): nearly every channel keeps
// scale 1 (docs/NUMERICS.md §2), so the stats item writes the block's fp16 V codes unscaled and
// the quantize item handles K alone (V is read once), folding its K mean itself from the head's
// chunk records (in the two-level order, no group records) once every stats item has arrived (no
// wait for a fold). The stats items' arrivals (on the head's counter, no group level) are
// released one iteration late (kv_quant.cu) and the head's quantize item of block 0 folds the
// chunk records, two-level. A head with a scaled channel has its V rewritten by its fold.
// The cluster kernel (kv_quant.cu; sm_90 and newer, heads of at most 16 x 512 / dp blocks: N <= 4K
// at hd128, 8K at hd64, 2K at hd256) does the same work with one DRAM read of K and V and no
// counters: one thread-block cluster per (head, tensor) holds the head's K (or V) in its CTAs'
// shared memory (64 KB each), adds each CTA's chunk sums, folds them across the cluster through
// distributed shared memory in the same two-level order, and quantizes from shared memory. Same
// bits as the ticket kernel (tests/gpu/test_gpu_quant.cu runs both). kv_quantize takes it where it
// can run and was measured to pay: head dims 64 and 128, except early_v heads (KvQuantParams::path,
// SAGEATTN_KV_QUANT_CLUSTER below).
// Output buffers are padded: tokens to a multiple of block_k, channels to head_dim_padded, the
// padding filled with zeros (codes) / neutral values (scales 1, means 0). An empty sequence gets
// neutral means and scales too.
//
// Tuning overrides (environment, read by kv_quantize; unset in normal use, for device sweeps):
//   SAGEATTN_KV_QUANT_CTAS_PER_SM  resident CTAs per SM (default, capped by occupancy: hd64 5
//                                  with two tile buffers each, hd128 4, hd256 2)
//   SAGEATTN_KV_QUANT_SMS          the ticket kernel's grid sized for at most this many SMs
//                                  (default: all): times the quantizer on part of the GPU, for the
//                                  overlap design of bench/NOTES.md section 40 (with CTAS_PER_SM=1,
//                                  one CTA on each of that many SMs)
//   SAGEATTN_KV_QUANT_LEAD_SLACK   stats items handed out ahead of the quantize items beyond one
//                                  head's blocks (default: 3/4 grid, 3/2 grid with two tile
//                                  buffers, + blocks x max(4, blocks / 4), blocks per head)
//   SAGEATTN_KV_QUANT_CLUSTER      0: the ticket kernel even where the cluster kernel would run;
//                                  1: the cluster kernel wherever it fits (KvQuantPath::kAuto only)
//   SAGEATTN_KV_QUANT_EARLY_V_MAX_BLOCKS  early_v for heads of at most this many blocks
//                                  (default 32; 1 turns it off for every head longer than 64)
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "sageattn/layout.h"
#include "sageattn/types.h"

namespace sageattn::quant {

// Which kernel quantizes (the comment above): kAuto the cluster kernel where it can run and pays,
// else the ticket kernel; kTickets always the ticket kernel; kCluster the cluster kernel or an
// Error (kUnsupported) saying why it cannot (tests, benchmarks).
enum class KvQuantPath { kAuto, kTickets, kCluster };

struct KvQuantParams {
  // ---- inputs ----
  const void* k = nullptr;  // [b, h_kv, n_k, d] (element strides below; unit stride on d)
  const void* v = nullptr;  // [b, h_kv, n_k, d]
  int64_t k_stride_b = 0, k_stride_h = 0, k_stride_n = 0;
  int64_t v_stride_b = 0, v_stride_h = 0, v_stride_n = 0;
  const int32_t* cu_seqlens_k = nullptr;  // [batch + 1] on the device, or null (dense)
  DType dtype = DType::kBF16;
  int64_t batch = 0, heads_kv = 0;
  int64_t seqlen_k = 0;         // dense: the length; varlen: the max length
  int64_t head_dim = 0;         // d
  int64_t head_dim_padded = 0;  // dp: d rounded up to the kernel's head dim
  int64_t seqlen_k_padded = 0;  // np: seqlen_k rounded up to block_k
  TileConfig tiles = kSm80Tiles;
  Granularity granularity = Granularity::kPerWarp;
  Smoothing smooth_k = Smoothing::kOn;
  Smoothing smooth_v = Smoothing::kOff;
  PvMode pv_mode = PvMode::kFp8;  // resolved
  KvQuantPath path = KvQuantPath::kAuto;

  // ---- outputs (workspace) ----
  int8_t* k_codes = nullptr;  // [b, h_kv, np, dp]
  float* k_scales = nullptr;  // [b, h_kv, np / block_k * groups_per_block]
  float* k_mean = nullptr;    // [b, h_kv, dp]
  void* v_codes = nullptr;    // fp8: uint8 [b, h_kv, dp, np] (permuted); fp16: [b, h_kv, np, dp]
  float* v_scales = nullptr;  // [b, h_kv, dp]: dequantization factor per channel
  float* v_inv = nullptr;     // [b, h_kv, dp]: the quantizer's multiplier (range / amax, 2^-e)
  float* v_mean = nullptr;    // [b, h_kv, dp]
  float* partials = nullptr;  // [b, h_kv, np / kMeanChunkTokens, 4, dp]: chunk records
  float* group_partials = nullptr;  // [b, h_kv, groups, 4, dp]: group records (kv_quant_groups)
  // [b * h_kv + b * h_kv * groups + 1]: one counter per (sequence, KV head), one per (sequence,
  // KV head, group) (head-major), then the work-ticket counter; zeroed by kv_quantize itself
  // before each launch, in one memset (any contents on entry).
  uint32_t* counters = nullptr;
};

// Groups of kMeanGroupChunks chunks per head for `blocks` = np / kMeanChunkTokens chunks per head
// (the last group may be short): the stride of group_partials and of the group counters.
__host__ __device__ constexpr int64_t kv_quant_groups(int64_t blocks) {
  return (blocks + kMeanGroupChunks - 1) / kMeanGroupChunks;
}

// Bytes of workspace the buffers above need, each 256-byte aligned, in the order of the struct.
std::size_t kv_quant_workspace_bytes(const KvQuantParams& p);
// Points the output buffers of p into `workspace` (kv_quant_workspace_bytes(p) bytes).
void kv_quant_bind_workspace(KvQuantParams& p, void* workspace);

// Null if the cluster kernel can quantize p on the current device, else the reason it cannot.
const char* kv_quant_cluster_unfit(const KvQuantParams& p);

// Quantizes K and V on `stream` with the kernel p.path selects. The ticket kernel: one memset that
// zeroes the per-head and per-group counters and the ticket counter (the workspace may be fresh
// memory), then one kernel. The cluster kernel: one kernel (no counters).
void kv_quantize(const KvQuantParams& p, cudaStream_t stream);

// k-position of token w (0 <= w < 32) inside a 32-token chunk of the fp8 V layout: the order in
// which an m16n8k32 A fragment built from the m16n8 accumulators of S holds its keys.
// Token w = 8 * (i / 2) + 2 * t + (i % 2) sits at k-position 4 * t + i (+16 for w >= 16).
__host__ __device__ constexpr int fp8_v_kpos(int w) {
  const int hi = w & 16, u = w & 15;
  return hi + 4 * ((u & 7) >> 1) + 2 * (u >> 3) + (u & 1);
}

}  // namespace sageattn::quant
