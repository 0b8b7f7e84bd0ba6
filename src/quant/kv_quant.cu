// src/quant/kv_quant.cu: the fused K/V quantizer (contract: kv_quant.h; work order and deadlock
// freedom: kv_quant_schedule.h).
//
// One persistent kernel. Each CTA takes tickets from a global counter; a ticket is a work item of
// one 64-token block of one (sequence, KV head):
//   stats item    cp.async the block's K and V rows into shared memory (DRAM -> L2 -> smem), add
//                 each channel's tokens in order (the contract's order within a chunk), write
//                 the chunk record [K sum, V sum, V min, V max][dp] to `partials`, arrive on its
//                 group's counter (kMeanGroupChunks chunks per group). The last stats item of a
//                 group to arrive folds the group's chunk records in ascending chunk order into
//                 the group record (same layout, `group_partials`) and arrives on the head's
//                 counter; the last group of a head to arrive folds the head's group records in
//                 ascending group order into the K mean, V mean and V scales and publishes them
//                 (counter + 1, release). Both folds start from 0 / +-inf: the two-level order of
//                 docs/NUMERICS.md §2. The critical path from a head's last stats item to its
//                 published stats reads <= 8 chunk records and ceil(chunks / 8) group records
//                 (one level: all the chunks, 64 at N = 4K; bench/NOTES.md sections 24, 26).
//   quantize item cp.async the same rows again (now an L2 hit: the item trails its stats item by
//                 `lead` items, see choose_lead), spin until the head's stats are published
//                 (acquire), then from shared memory: K amax per group, int8 K codes (8-byte
//                 stores), fp8 V transposed into [channel][token] (each thread builds 16
//                 permuted codes of two channels in registers and stages them in shared
//                 memory; after a barrier, 4 lanes store each channel's 64-byte run: whole
//                 32-byte sectors, bench/NOTES.md section 35) or fp16 V.
// A block past a sequence's end is padding: its quantize item writes zeros and waits for nothing.
// early_v (kv_quant.h; fp16 mode, V not smoothed, short heads): the stats item also writes the
// block's V codes, unscaled; the quantize item loads only K, waits for the head's stats arrivals
// (not the fold) and adds the K sums of the chunk records itself, in the two-level order; the
// fold rewrites V only for a head with a scaled channel. No group records: the stats items arrive
// on the head's counter, and the head's fold adds its chunk records two-level too. The stats
// item's arrival is deferred: thread 0 releases it at the start of the CTA's next iteration,
// after that item's tile is issued, so that the release's fence drains the stores while the tile
// is in flight instead of idling the CTA; the head's fold is then done by its quantize item of
// block 0, after its K codes (nobody waits for it). Deadlock freedom is kept: a deferred arrival
// is released before the CTA's next item can wait, and after the loop. Measured: bench/NOTES.md
// section 12.
//
// Bytes at hd128, N = 1K, B = 32, H = 32 (bf16): K and V read once from DRAM (537 MB) if the
// second read hits L2, int8 K + fp8 V written (268 MB); the chunk records (34 MB) and the group
// records (4 MB) are written, read back from L2 by the folds and discarded there: ~0.81 GB of
// DRAM traffic instead of 1.34 GB for the two-pass version (0.19 ms at 4.3 TB/s).
//
// Counters (KvQuantParams::counters): heads = b * h_kv head counters, then heads x G group
// counters (G = kv_quant_groups(blocks) per head), then the ticket counter. For a head with
// chunks = ceil(len / 64) and groups = ceil(chunks / 8), group g holding
// n_g = min(8, chunks - 8 g) chunks:
//   group counter g    0 -> n_g: the stats arrivals of its chunks (acq_rel); the last one folds
//                      the group and arrives on the head's counter.
//   head counter       0 -> a = max(groups, 1): the group arrivals (one empty arrival for an empty
//                      sequence, so that its neutral stats are written too); the last one folds
//                      the head: a -> a + 1 (release).
//   quantize items     wait for > a (acquire).
//   early_v            no group level: 0 -> chunks, the stats arrivals (deferred, release) on the
//                      head counter; quantize items wait for >= chunks (the records), and the
//                      head's quantize item of block 0 folds (chunks -> chunks + 1).
// Stats items and folds never wait; only quantize items do. A fold (of a group or a head) is done
// by the item that arrived last, right after its arrival told it so. All counters are zeroed by
// kv_quantize before each launch (one memset: they are contiguous) and are not reset by the
// kernel.
//
// Memory ordering: writers store (weak), __syncthreads(), then thread 0 does the release (or
// acq_rel) RMW at device scope; the barrier makes the other threads' stores part of what thread
// 0 releases (PTX release is cumulative). Readers: thread 0 acquires, __syncthreads(), then the
// block reads with L2-only loads (cp.async.cg, ld.global.cg). This is the pattern of the CUDA
// grid barrier. Chained: a group's last arrival (acq_rel) acquires its chunk records and its
// group record is released with its head arrival (acq_rel); the head's last arrival acquires
// every group record (the earlier arrivals' releases head one release sequence of RMWs on the
// counter), and the publication releases the stats to the quantize items.
#include "quant/kv_quant.h"

#include <cuda/atomic>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/check.h"
#include "common/cuda_check.h"
#include "common/device_numerics.cuh"
#include "common/ptx/mma.cuh"
#include "quant/kv_quant_schedule.h"

namespace sageattn::quant {
namespace {

constexpr int kThreads = 256;
constexpr int kBlock = kSm80Tiles.k_block;  // tokens per work item (the K quantization block)
static_assert(kBlock == kMeanChunkTokens,
              "a work item is one K quantization block and one mean chunk at once");
constexpr int kGroupChunks = kMeanGroupChunks;  // chunk records per group record
constexpr int kPartialFields = 4;  // per chunk (group) and channel: K sum, V sum, V min, V max
constexpr int kMaxKGroups = 4;     // K groups per block (per-thread granularity: 4)
constexpr int kControlWords = 1;   // after the head and group counters: the ticket counter
constexpr unsigned kSpinSleepNs = 128;
constexpr int kEarlyVMaxBlocks = 32;  // early_v for heads of at most this many blocks (kv_quantize)

// Probe (bench/NOTES.md section 32, Next 2), off by default: -DSAGEATTN_KV_QUANT_TRACE=1 times,
// with the GPU's global timer (ns), the chain from a head's last stats arrival to its published
// stats and the quantize items' waits for them, sums them over the launch and prints them from
// the host after each launch (which it synchronizes). Not for production builds.
#ifndef SAGEATTN_KV_QUANT_TRACE
#define SAGEATTN_KV_QUANT_TRACE 0
#endif
#if SAGEATTN_KV_QUANT_TRACE
enum TraceField : int {
  kTraceHeads,        // heads published by their last stats item (not early_v)
  kTraceChainNs,      // sum: last group arrival (arrive_last true) -> head published
  kTraceGroupFoldNs,  // sum, same heads: last group arrival -> head arrival (the group fold)
  kTraceQuantItems,   // quantize items of blocks with tokens
  kTraceSpinItems,    // those that found their head unpublished
  kTraceWaitNs,       // sum over all quantize items: thread 0's wait for the head's stats
  kTraceStatsItems,   // stats items with tokens (not early_v)
  kTraceStatsNs,      // sum: stats item entry (tile in flight) -> its group arrival returned
  // The chain's steps, summed over the same heads as kTraceChainNs (bench/NOTES.md section 33):
  kTraceStepGroupFold,   // last group arrival -> its chunk records folded (fold_records)
  kTraceStepGroupStore,  // -> the group record stored, the CTA's barrier passed
  kTraceStepHeadArrive,  // -> thread 0's acq_rel arrival on the head's counter returned
  kTraceStepHeadFold,    // -> the group records folded
  kTraceFields
};
__device__ unsigned long long g_trace[kTraceFields];
__device__ __forceinline__ void trace_add(TraceField f, uint64_t v) {
  atomicAdd(&g_trace[f], static_cast<unsigned long long>(v));
}
#endif

// Compile-time shape of a work item for the padded head dim kDp.
template <int kDp>
struct Shape {
  static constexpr int kVecs = kDp / 8;                  // 16-byte vectors (8 elements) per row
  static constexpr int kTileElems = kBlock * kDp;        // one tensor's tile, 16-bit elements
  static constexpr int kSmemBytes = 2 * kTileElems * 2;  // K and V tiles
  static constexpr int kRowsPerPass = kThreads / kVecs;  // rows covered by one 16-byte per thread
  static constexpr int kPasses = kBlock / kRowsPerPass;
  static constexpr int kRecord = kPartialFields * kDp;  // floats per chunk (group) record
  static constexpr int kChains = kRecord / kThreads;    // fold chains per thread
  // Records per fold batch: two batches (double buffer) fill the tile buffer.
  static constexpr int kFoldBatch = kSmemBytes / 2 / (kRecord * 4);
  // Two tile buffers: the next item's tile loads while the current item is processed. Measured
  // (bench/NOTES.md section 10): hd64 gains 8%; hd128 loses (3 CTAs per SM instead of 4).
  static constexpr bool kPrefetch = kDp == 64;
  static constexpr int kBuffers = kPrefetch ? 2 : 1;
  // early_v (kv_quant.h) is compiled for hd128 and hd256 only. At hd64 it measured slower than
  // the two-pass V (bench/NOTES.md section 12), and its code alone costs the hd64 kernel (48
  // registers) a spill.
  static constexpr bool kEarlyV = kDp >= 128;
  // cp.async groups that may still be pending once the current item's tile has landed: the
  // next item's tile (one group, possibly empty, committed after the current one's).
  static constexpr int kYoungerGroups = kPrefetch ? 1 : 0;
  // Resident CTAs per SM, and the register cap (__launch_bounds__) that lets them fit without
  // spills (ptxas: hd64 48 registers, hd128 64, hd256 128; uncapped, ptxas spends 124-155
  // registers on ILP).
  static constexpr int kCtasPerSm = kDp == 64 ? 5 : kDp == 128 ? 4 : 2;
  static_assert(kDp % 64 == 0 && kDp <= 256, "padded head dims 64, 128, 256");
  static_assert(kThreads % kVecs == 0 && kBlock % kRowsPerPass == 0, "rows tile the block");
  // Every row a thread visits (r0 + j * kRowsPerPass) lies in the same K group: the per-thread
  // groups repeat every stride * count = 8 rows.
  static_assert(kRowsPerPass % 8 == 0, "a thread's rows share one K group");
  static_assert(kRecord % kThreads == 0 && (kFoldBatch * kRecord / 4) % kThreads == 0,
                "the fold's chains and copies tile the block");
  static_assert(kFoldBatch >= 1, "a fold batch holds at least one chunk record");
  static_assert(kRecord * 4 % 128 == 0,
                "records are whole 128-byte lines (partials is 256-aligned)");
};

// ------------------------------------------------------------------------------ device helpers
// 16-bit element bits -> float (exact for both dtypes).
template <bool kBf16>
__device__ __forceinline__ void widen2(uint32_t w, float& lo, float& hi) {
  if constexpr (kBf16) {
    lo = __uint_as_float(w << 16);
    hi = __uint_as_float(w & 0xFFFF0000u);
  } else {
    lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xFFFFu)));
    hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
  }
}

template <bool kBf16>
__device__ __forceinline__ float widen1(uint16_t w) {
  if constexpr (kBf16) return __uint_as_float(uint32_t(w) << 16);
  else return __half2float(__ushort_as_half(w));
}

template <bool kBf16>
__device__ __forceinline__ void widen8(const uint4& v, float (&x)[8]) {
  widen2<kBf16>(v.x, x[0], x[1]);
  widen2<kBf16>(v.y, x[2], x[3]);
  widen2<kBf16>(v.z, x[4], x[5]);
  widen2<kBf16>(v.w, x[6], x[7]);
}

// Two e4m3 codes (lo in bits 0-7, hi in bits 8-15), each exactly dev::fp8_code's bits.
__device__ __forceinline__ uint32_t e4m3x2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  return ptx::cvt_e4m3x2(lo, hi);
#else
  return uint32_t(num::fp8e4m3_from_float(lo)) | (uint32_t(num::fp8e4m3_from_float(hi)) << 8);
#endif
}

// L2 eviction policy for cp.async: the stats pass leaves K/V lines at normal priority (they must
// survive until the quantize item re-reads them); the quantize pass marks them evict-first (dead
// after this read), so that L2 keeps the lines still waiting for their second read.
__device__ __forceinline__ uint64_t l2_policy(bool evict_first) {
  uint64_t pol;
  if (evict_first) {
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
  } else {
    asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;\n" : "=l"(pol));
  }
  return pol;
}

__device__ __forceinline__ void cp_async_16_policy(void* smem, const void* gmem, uint64_t pol) {
  asm volatile(
      "cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(ptx::smem_u32(smem)),
      "l"(gmem), "l"(pol)
      : "memory");
}

// Drops the 128-byte L2 line at `p` without writing it back to DRAM (its data becomes undefined).
__device__ __forceinline__ void discard_l2_line(const void* p) {
  asm volatile("discard.global.L2 [%0], 128;\n" ::"l"(p) : "memory");
}

struct Head {
  int64_t b, h, bh;
  int64_t begin, len;  // first token in the user's tensor, token count
  uint32_t chunks;     // ceil(len / kBlock): blocks with tokens
};

__device__ __forceinline__ Head head_of(const KvQuantParams& p, uint32_t bh) {
  Head r;
  r.bh = bh;
  r.b = bh / static_cast<uint32_t>(p.heads_kv);
  r.h = bh % static_cast<uint32_t>(p.heads_kv);
  if (p.cu_seqlens_k) {
    r.begin = p.cu_seqlens_k[r.b];
    r.len = int64_t(p.cu_seqlens_k[r.b + 1]) - r.begin;
  } else {
    r.begin = 0;
    r.len = p.seqlen_k;
  }
  r.chunks = static_cast<uint32_t>((r.len + kBlock - 1) / kBlock);
  return r;
}

// Groups of a head that hold tokens: ceil(chunks / kGroupChunks) (not kept in Head: one register
// fewer across the main loop, where hd128 has none to spare).
__device__ __forceinline__ uint32_t groups_of(const Head& hd) {
  return (hd.chunks + kGroupChunks - 1) / kGroupChunks;
}

// Counters (kv_quant.h, layout at the top of this file), for heads of `blocks` blocks.
__device__ __forceinline__ uint32_t* head_counter(const KvQuantParams& p, int64_t bh) {
  return p.counters + bh;
}
__device__ __forceinline__ uint32_t* group_counter(const KvQuantParams& p, uint32_t blocks,
                                                   int64_t bh, uint32_t group) {
  return p.counters + p.batch * p.heads_kv + bh * kv_quant_groups(blocks) + group;
}
__device__ __forceinline__ uint32_t* ticket_counter(const KvQuantParams& p, uint32_t blocks) {
  return p.counters + p.batch * p.heads_kv * (1 + kv_quant_groups(blocks));
}

// Rows [0, rows) of block t0 of K and V -> sk, sv ([kBlock][kDp] 16-bit elements); a null sk or
// sv skips that tensor. Channels >= d and rows >= rows are not written (every reader masks them).
// Aligned: 16-byte cp.async with the L2 policy l2_policy(k_evict_first / v_evict_first) (the
// caller commits the group); otherwise 2-byte loads, visible after a barrier.
template <int kDp>
__device__ __forceinline__ void load_tile(const KvQuantParams& p, const Head& hd, int64_t t0,
                                          int rows, bool aligned, bool k_evict_first,
                                          bool v_evict_first, uint16_t* sk, uint16_t* sv) {
  using S = Shape<kDp>;
  const int d = static_cast<int>(p.head_dim);
  const uint16_t* kg = static_cast<const uint16_t*>(p.k) +
                       (p.cu_seqlens_k ? 0 : hd.b * p.k_stride_b) + hd.h * p.k_stride_h +
                       (hd.begin + t0) * p.k_stride_n;
  const uint16_t* vg = static_cast<const uint16_t*>(p.v) +
                       (p.cu_seqlens_k ? 0 : hd.b * p.v_stride_b) + hd.h * p.v_stride_h +
                       (hd.begin + t0) * p.v_stride_n;
  if (aligned) {
    // A thread copies the 16-byte vector c of rows r0 + j * kRowsPerPass (kThreads is a multiple
    // of kVecs): one pointer per tensor, stepped by kRowsPerPass rows.
    const int r0 = threadIdx.x / S::kVecs, c = (threadIdx.x % S::kVecs) * 8;
    if (c >= d) return;
    const uint64_t k_pol = l2_policy(k_evict_first), v_pol = l2_policy(v_evict_first);
    const uint16_t* kp = kg + r0 * p.k_stride_n + c;
    const uint16_t* vp = vg + r0 * p.v_stride_n + c;
    const int64_t k_step = S::kRowsPerPass * p.k_stride_n, v_step = S::kRowsPerPass * p.v_stride_n;
#pragma unroll
    for (int j = 0; j < S::kPasses; ++j) {
      const int r = r0 + j * S::kRowsPerPass;
      if (r < rows) {
        if (sk) cp_async_16_policy(sk + r * kDp + c, kp, k_pol);
        if (sv) cp_async_16_policy(sv + r * kDp + c, vp, v_pol);
      }
      kp += k_step, vp += v_step;
    }
  } else {
    for (int i = threadIdx.x; i < S::kTileElems; i += kThreads) {
      const int r = i / kDp, c = i % kDp;
      if (r < rows && c < d) {
        if (sk) sk[r * kDp + c] = kg[r * p.k_stride_n + c];
        if (sv) sv[r * kDp + c] = vg[r * p.v_stride_n + c];
      }
    }
  }
}

// Tokens of block blk of a head that holds tokens (blk < hd.chunks).
__device__ __forceinline__ int rows_of(const Head& hd, uint32_t blk) {
  const int64_t left = hd.len - int64_t(blk) * kBlock;
  return static_cast<int>(left < kBlock ? left : kBlock);
}

// A ticket's work item, its head and block.
struct Ticket {
  bool valid;  // t < tickets
  KvQuantItem it;
  Head hd;
  uint32_t blk;
};

__device__ __forceinline__ Ticket decode(const KvQuantParams& p, const KvQuantSchedule& s,
                                         uint32_t t) {
  Ticket r{};
  r.valid = t < s.tickets();
  if (r.valid) {
    r.it = kv_quant_item(t, s);
    r.hd = head_of(p, r.it.index / s.blocks);
    r.blk = r.it.index % s.blocks;
  }
  return r;
}

// Starts loading the tile of ticket tk into sk, sv when its item has one (a block with tokens)
// and commits one cp.async group, empty otherwise, so that every ticket is exactly one group.
// Lines read for the last time are marked evict-first: K and V in the quantize pass; with
// early_v, V in the stats pass (its fp16 codes are written there) and not at all in the quantize
// pass.
template <int kDp>
__device__ __forceinline__ void issue_tile(const KvQuantParams& p, const Ticket& tk, bool aligned,
                                           bool early_v, uint16_t* sk, uint16_t* sv) {
  if (tk.valid && tk.blk < tk.hd.chunks) {
    const bool stats = tk.it.stats;
    load_tile<kDp>(p, tk.hd, int64_t(tk.blk) * kBlock, rows_of(tk.hd, tk.blk), aligned, !stats,
                   !stats || early_v, sk, stats || !early_v ? sv : nullptr);
  }
  ptx::cp_async_commit();
}

// Thread 0's next ticket. An item takes it once its tile has landed (the atomic's round trip
// then overlaps the item's compute and stores, and the ticket does not wait behind a whole item:
// see choose_lead); the main loop takes it if the item did not.
struct NextTicket {
  uint32_t* counter;
  uint32_t value;
  bool taken;
  __device__ __forceinline__ void take() {
    if (threadIdx.x == 0 && !taken) value = atomicAdd(counter, 1u), taken = true;
  }
};

// ------------------------------------------------------------------------------- fp16 V codes
// fp16 V codes of block t0 (rows < `rows` hold tokens; the rest of the block and channels >= d get
// 0) into the [np][dp] layout: (x - vm[c]) * vinv[c] in fp16 (kScaled), or x itself (exact:
// fp16(x * 1)) for unsmoothed channels kept unscaled (layout.h; vm and vinv unused). Thread = 8
// channels (one 16-byte vector) of rows r0 + j * kRowsPerPass, as for K.
template <bool kBf16, int kDp, bool kScaled>
__device__ __forceinline__ void write_v_fp16(const KvQuantParams& p, int64_t bh, int64_t t0,
                                             int rows, const uint16_t* sv, const float* vm,
                                             const float* vinv) {
  using S = Shape<kDp>;
  const int c0 = (threadIdx.x % S::kVecs) * 8, r0 = threadIdx.x / S::kVecs;
  const bool col_ok = c0 < p.head_dim;
  uint16_t* v_dst = static_cast<uint16_t*>(p.v_codes) + (bh * p.seqlen_k_padded + t0) * kDp + c0;
#pragma unroll
  for (int j = 0; j < S::kPasses; ++j) {
    const int r = r0 + j * S::kRowsPerPass;
    uint32_t w[4] = {0u, 0u, 0u, 0u};
    if (r < rows && col_ok) {
      float x[8];
      widen8<kBf16>(*reinterpret_cast<const uint4*>(sv + r * kDp + c0), x);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const uint32_t code = kScaled
                                  ? dev::fp16_code(__fsub_rn(x[e], vm[c0 + e]), vinv[c0 + e])
                                  : __half_as_ushort(__float2half_rn(x[e]));
        w[e / 2] |= code << (16 * (e % 2));
      }
    }
    __stcs(reinterpret_cast<uint4*>(v_dst + int64_t(r) * kDp), make_uint4(w[0], w[1], w[2], w[3]));
  }
}

// ---------------------------------------------------------------------------------- stats item
// Chunk record of one block: a thread owns kCpt channels of K or of V and adds the block's rows
// in token order (the contract's order within a chunk). Shared-memory reads: a warp reads 32
// consecutive elements (or pairs) of one row: no bank conflict.
template <bool kBf16, int kDp>
__device__ __forceinline__ void block_stats(const KvQuantParams& p, int rows, const uint16_t* sk,
                                            const uint16_t* sv, float* record) {
  constexpr int kCpt = kDp <= 128 ? 1 : 2;  // channels per thread
  constexpr int kPerTensor = kDp / kCpt;    // threads per tensor (64 or 128)
  static_assert(2 * kPerTensor <= kThreads && kPerTensor % 32 == 0, "K and V warps are uniform");
  const int tensor = threadIdx.x / kPerTensor, c = (threadIdx.x % kPerTensor) * kCpt;
  if (tensor >= 2 || c >= p.head_dim) return;
  const uint16_t* col = (tensor == 0 ? sk : sv) + c;
  float x[kCpt];
  auto load_row = [&](int r) {
    if constexpr (kCpt == 1) {
      x[0] = widen1<kBf16>(col[r * kDp]);
    } else {
      widen2<kBf16>(*reinterpret_cast<const uint32_t*>(col + r * kDp), x[0], x[1]);
    }
  };
  if (tensor == 0) {
    float sum[kCpt];
#pragma unroll
    for (int j = 0; j < kCpt; ++j) sum[j] = 0.0f;
#pragma unroll 8
    for (int r = 0; r < rows; ++r) {
      load_row(r);
#pragma unroll
      for (int j = 0; j < kCpt; ++j) sum[j] = __fadd_rn(sum[j], x[j]);
    }
#pragma unroll
    for (int j = 0; j < kCpt; ++j) record[0 * kDp + c + j] = sum[j];
  } else {
    float sum[kCpt], lo[kCpt], hi[kCpt];
#pragma unroll
    for (int j = 0; j < kCpt; ++j) sum[j] = 0.0f, lo[j] = INFINITY, hi[j] = -INFINITY;
#pragma unroll 8
    for (int r = 0; r < rows; ++r) {
      load_row(r);
#pragma unroll
      for (int j = 0; j < kCpt; ++j) {
        sum[j] = __fadd_rn(sum[j], x[j]);
        // A NaN counts as both -inf and +inf (fminf / fmaxf would skip it), so that the channel's
        // amax comes out +inf, as the reference's num::amax_abs makes it.
        lo[j] = fminf(lo[j], fmaxf(x[j], -INFINITY));
        hi[j] = fmaxf(hi[j], fminf(x[j], INFINITY));
      }
    }
#pragma unroll
    for (int j = 0; j < kCpt; ++j) {
      record[1 * kDp + c + j] = sum[j];
      record[2 * kDp + c + j] = lo[j];
      record[3 * kDp + c + j] = hi[j];
    }
  }
}

// ------------------------------------------------------------------------------------- folds
// threadIdx.x as the folds read it: an opaque read, so that the folds' index math stays on their
// (rare) path. Computed from threadIdx.x, it is loop-invariant and the compiler hoists it to the
// kernel's entry, where it holds registers across the whole main loop: with the group folds, hd128
// (64-register cap) spilled 8 bytes.
__device__ __forceinline__ int fold_tid() {
  unsigned t;
  asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(t));
  return static_cast<int>(t);
}

// Fold chain e = field * kDp + channel: a thread owns chains fold_tid() + k * kThreads (k <
// kChains). The K and V sum fields add (fp32, round to nearest), the V min / max fields take the
// min / max (order-independent, folded the same way).
template <int kDp>
__device__ __forceinline__ int chain_field(int k) {
  return (fold_tid() + k * kThreads) / kDp;
}
__device__ __forceinline__ float fold_start(int field) {
  return field < 2 ? 0.0f : field == 2 ? INFINITY : -INFINITY;
}
__device__ __forceinline__ float fold_add(int field, float acc, float x) {
  return field < 2 ? __fadd_rn(acc, x) : field == 2 ? fminf(acc, x) : fmaxf(acc, x);
}

// Folds the n records at src (S::kRecord floats apart, written by other CTAs and acquired) into
// acc (started here from fold_start) in ascending record order. One level: acc = fold_add(acc,
// record r) for r = 0 .. n-1.
// two_level (early_v only, where the head's chunk records are folded without group records):
// each group of kGroupChunks records is folded from fold_start, and the group results into acc in
// group order, exactly the group records' order (docs/NUMERICS.md §2). The records stream through
// two shared-memory batches of kFoldBatch records in `buf` (cp.async, one batch in flight while
// the other is added). Once a batch has landed its records are dead in global memory (the next
// launch rewrites them before reading): their dirty L2 lines are dropped instead of written back
// to DRAM (2 KB per block at hd128, 4% of the DRAM traffic), except the K sums with keep_k_sums
// (early_v: the quantize items fold their K mean from them).
template <int kDp>
__device__ void fold_records(const KvQuantParams& p, const float* src, int n, bool two_level,
                             bool keep_k_sums, float* buf, float (&acc)[Shape<kDp>::kChains]) {
  using S = Shape<kDp>;
  constexpr int kRecord = S::kRecord, kBatch = S::kFoldBatch, kChains = S::kChains;
  // Dead code at hd64 (no early_v there): the group accumulators cost no registers.
  two_level = S::kEarlyV && two_level;
  const int d = static_cast<int>(p.head_dim), tid = fold_tid();
  auto issue = [&](int batch) {
    float* dst = buf + (batch & 1) * kBatch * kRecord;
#pragma unroll 1  // a rare path: registers matter more (hd64 runs at 48)
    for (int j = 0; j < kBatch * kRecord / 4 / kThreads; ++j) {
      const int i = tid + j * kThreads;
      const int rec = i / (kRecord / 4), e = (i % (kRecord / 4)) * 4;
      const int r = batch * kBatch + rec;
      // Only channels < d were written (d % 8 == 0: whole 16-byte vectors).
      if (r < n && e % kDp < d)
        ptx::cp_async_16(ptx::smem_u32(dst + rec * kRecord + e), src + int64_t(r) * kRecord + e,
                         16);
    }
    ptx::cp_async_commit();
  };

  float grp[kChains];  // two_level: the current group's fold
#pragma unroll
  for (int k = 0; k < kChains; ++k) acc[k] = grp[k] = fold_start(chain_field<kDp>(k));
  if (n > 0) issue(0);
  for (int batch = 0; batch * kBatch < n; ++batch) {
    if ((batch + 1) * kBatch < n) {
      issue(batch + 1);
      ptx::cp_async_wait<1>();
    } else {
      ptx::cp_async_wait<0>();
    }
    __syncthreads();  // batch `batch` has landed for every thread's copies
    constexpr int kLines = kRecord * 4 / 128;  // 128-byte lines per record (records are aligned)
    const int first_line = keep_k_sums ? kLines / kPartialFields : 0;
    for (int l = tid; l < kBatch * kLines; l += kThreads) {
      const int r = batch * kBatch + l / kLines;
      if (r < n && l % kLines >= first_line)
        discard_l2_line(src + int64_t(r) * kRecord + (l % kLines) * 32);
    }
    const float* rec0 = buf + (batch & 1) * kBatch * kRecord;
    const int m = min(kBatch, n - batch * kBatch);
    for (int i = 0; i < m; ++i) {
      const int r = batch * kBatch + i;
      const bool group_end = r % kGroupChunks == kGroupChunks - 1 || r == n - 1;
#pragma unroll
      for (int k = 0; k < kChains; ++k) {
        const int e = tid + k * kThreads, field = e / kDp;
        if (e % kDp < d) {
          const float x = rec0[i * kRecord + e];
          if (two_level) {
            grp[k] = fold_add(field, grp[k], x);
            if (group_end) {
              acc[k] = fold_add(field, acc[k], grp[k]);
              grp[k] = fold_start(field);
            }
          } else {
            acc[k] = fold_add(field, acc[k], x);
          }
        }
      }
    }
    __syncthreads();  // this buffer is refilled by batch + 2
  }
}

// One channel's published stats from its folded fields (K sum, V sum, V min, V max), exactly as
// the CPU reference computes them (publish_head).
struct ChannelStats {
  float km, vm, scale, inv;
  bool scaled;  // an fp16-mode channel with e != 0 (inv != 1)
};
__device__ __forceinline__ ChannelStats channel_stats(const KvQuantParams& p, const Head& hd,
                                                      float ks, float vs, float vmin, float vmax) {
  ChannelStats r{0.0f, 0.0f, 1.0f, 1.0f, false};
  const float count = static_cast<float>(hd.len);
  // An empty sequence has mean 0 (channel_mean); its amax comes out as -inf below, which
  // the formulas turn into the reference's values for amax = 0.
  if (p.smooth_k == Smoothing::kOn && hd.len > 0) r.km = __fdiv_rn(ks, count);
  if (p.smooth_v == Smoothing::kOn && hd.len > 0) r.vm = __fdiv_rn(vs, count);
  // max_t |v_t - vm| = max(vmax - vm, vm - vmin) exactly: fp32 subtraction is monotonic.
  const float amax = fmaxf(__fsub_rn(vmax, r.vm), __fsub_rn(r.vm, vmin));
  if (!num::amax_is_finite(amax)) {
    // A channel holding NaN or inf (amax +inf, or NaN through a non-finite mean): scale NaN,
    // multiplier 1, as in the reference (docs/NUMERICS.md, "Special values").
    r.scale = __int_as_float(0x7FC00000);
    r.inv = 1.0f;
  } else if (p.pv_mode == PvMode::kFp16) {
    const int e = num::fp16_v_exponent(amax);
    r.scaled = e != 0;
    r.scale = ldexpf(1.0f, e);
    r.inv = ldexpf(1.0f, -e);
  } else {
    const float range = p.pv_mode == PvMode::kFp8 ? kFp8E4M3Max : p.tiles.fp16acc_v_range();
    const float a = fmaxf(amax, kMinAmax);
    r.scale = __fdiv_rn(a, range);
    r.inv = __fdiv_rn(range, a);
  }
  return r;
}

// The head's fold, after its records are folded into acc (fold_records: the group records of a
// head, by the head's last group to arrive, or, with early_v, its chunk records, two-level, by its
// quantize item of block 0): the K mean, V mean and V scales, exactly as the CPU reference
// computes them, published (head counter + 1, release). `buf` is the tile buffer (free now).
// early_v: the stats items wrote the head's fp16 V codes unscaled; if some channel is scaled
// after all (e != 0, a rare amax), the fold rewrites the head's V here, from a third read of V.
template <bool kBf16, int kDp>
__device__ void publish_head(const KvQuantParams& p, const Head& hd, bool aligned, bool early_v,
                             const float (&acc)[Shape<kDp>::kChains], float* buf, float* s_vm,
                             float* s_vinv) {
  const int d = static_cast<int>(p.head_dim);
#pragma unroll
  for (int k = 0; k < Shape<kDp>::kChains; ++k) buf[threadIdx.x + k * kThreads] = acc[k];
  __syncthreads();

  const int c = threadIdx.x;
  bool scaled = false;  // an fp16-mode channel with e != 0 (s_vinv != 1)
  if (c < kDp) {
    float km = 0.0f, vm = 0.0f, scale = 1.0f, inv = 1.0f;
    if (c < d) {
      const ChannelStats cs = channel_stats(p, hd, buf[0 * kDp + c], buf[1 * kDp + c],
                                            buf[2 * kDp + c], buf[3 * kDp + c]);
      km = cs.km, vm = cs.vm, scale = cs.scale, inv = cs.inv, scaled = cs.scaled;
    }
    const int64_t o = hd.bh * kDp + c;
    p.k_mean[o] = km;
    p.v_mean[o] = vm;
    p.v_scales[o] = scale;
    p.v_inv[o] = inv;
    s_vm[c] = vm;
    s_vinv[c] = inv;
  }
  // Every stat is stored (and s_vm, s_vinv are visible) before thread 0 releases them.
  if (__syncthreads_or(scaled) && early_v) {
    // Ordered after the stats items' unscaled stores: thread 0 acquired their arrivals.
    uint16_t* const sv = reinterpret_cast<uint16_t*>(buf);
    for (uint32_t b = 0; b < hd.chunks; ++b) {
      const int rows = rows_of(hd, b);
      load_tile<kDp>(p, hd, int64_t(b) * kBlock, rows, aligned, false, true, nullptr, sv);
      ptx::cp_async_commit();
      ptx::cp_async_wait<0>();
      __syncthreads();
      write_v_fp16<kBf16, kDp, true>(p, hd.bh, int64_t(b) * kBlock, rows, sv, s_vm, s_vinv);
      __syncthreads();
    }
  }
  if (threadIdx.x == 0) {
    cuda::atomic_ref<uint32_t, cuda::thread_scope_device> word(*head_counter(p, hd.bh));
    word.fetch_add(1u, cuda::memory_order_release);
  }
}

// The CTA's arrival on counter c, expecting n arrivals in all (acq_rel by thread 0, so that the
// last arrival acquires the others' records): true, in every thread, for the last one.
// `s_last` is shared scratch; the caller's next barrier must come before it is reused.
__device__ __forceinline__ bool arrive_last(uint32_t* c, uint32_t n, int* s_last) {
  if (threadIdx.x == 0) {
    cuda::atomic_ref<uint32_t, cuda::thread_scope_device> word(*c);
    *s_last = word.fetch_add(1u, cuda::memory_order_acq_rel) == n - 1;
  }
  __syncthreads();
  return *s_last;
}

// The tile (if the block holds tokens) is in flight in sk, sv (issue_tile).
// early_v: also writes the block's fp16 V codes unscaled (first, so that the stores have drained
// by the arrival's release), before the arrival, so that the fold's rewrite of a head with a
// scaled channel is ordered after them; the arrival is deferred (the head's counter).
// Otherwise the arrivals of the protocol at the top: on the group's counter; the group's last
// arrival folds the group's chunk records (ascending, from fold_start) into the group record and
// arrives on the head's counter; the head's last arrival folds the group records (ascending, from
// fold_start) and publishes. Neither waits. The folds stage records in the tile buffer `sk`, free
// once the record is stored.
template <bool kBf16, int kDp>
__device__ __forceinline__ void stats_item(const KvQuantParams& p, const KvQuantSchedule& s,
                                           const Head& hd, uint32_t blk, bool aligned,
                                           bool early_v, uint16_t* sk, uint16_t* sv, int* s_last,
                                           float* s_vm, float* s_vinv, uint32_t& pending,
                                           NextTicket& next) {
  using S = Shape<kDp>;
  if (blk >= max(hd.chunks, 1u)) return;  // a block past the sequence: nothing to add, no arrival
#if SAGEATTN_KV_QUANT_TRACE
  const uint64_t t_entry = ptx::globaltimer_ns();
  uint64_t t_group = t_entry, t_folded = t_entry, t_stored = t_entry;
#endif
  if (blk < hd.chunks) {
    const int rows = rows_of(hd, blk);
    ptx::cp_async_wait<S::kYoungerGroups>();
    __syncthreads();
    next.take();
    if (early_v)
      write_v_fp16<kBf16, kDp, false>(p, hd.bh, int64_t(blk) * kBlock, rows, sv, nullptr,
                                      nullptr);
    block_stats<kBf16, kDp>(p, rows, sk, sv,
                            p.partials + (hd.bh * int64_t(s.blocks) + blk) * S::kRecord);
    if (early_v) {
      // Deferred arrival: released by the main loop once the next tile is issued (the stores
      // drain meanwhile); the head's quantize item of block 0 folds.
      if (threadIdx.x == 0) pending = static_cast<uint32_t>(hd.bh);
      return;
    }
  }
  __syncthreads();  // the record is stored (and the tile no longer read)
  float* const buf = reinterpret_cast<float*>(sk);
  const uint32_t g = blk / kGroupChunks, first = g * kGroupChunks;
  if (hd.chunks > 0) {  // (an empty sequence, blk 0, no record: on the head's counter directly)
    const uint32_t n = min(uint32_t(kGroupChunks), hd.chunks - first);
    const bool last = arrive_last(group_counter(p, s.blocks, hd.bh, g), n, s_last);
#if SAGEATTN_KV_QUANT_TRACE
    t_group = ptx::globaltimer_ns();
    if (threadIdx.x == 0)
      trace_add(kTraceStatsItems, 1), trace_add(kTraceStatsNs, t_group - t_entry);
#endif
    if (!last) return;  // a later one folds
    float acc[S::kChains];
    fold_records<kDp>(p, p.partials + (hd.bh * int64_t(s.blocks) + first) * S::kRecord,
                      static_cast<int>(n), false, false, buf, acc);
#if SAGEATTN_KV_QUANT_TRACE
    t_folded = ptx::globaltimer_ns();
#endif
    float* dst = p.group_partials + (hd.bh * kv_quant_groups(s.blocks) + g) * S::kRecord;
#pragma unroll
    for (int k = 0; k < S::kChains; ++k) {
      const int e = threadIdx.x + k * kThreads;
      if (e % kDp < p.head_dim) dst[e] = acc[k];
    }
    __syncthreads();  // the group record is stored; every thread has read s_last
#if SAGEATTN_KV_QUANT_TRACE
    t_stored = ptx::globaltimer_ns();
#endif
  }
  if (!arrive_last(head_counter(p, hd.bh), max(groups_of(hd), 1u), s_last)) return;
#if SAGEATTN_KV_QUANT_TRACE
  const uint64_t t_head = ptx::globaltimer_ns();
#endif
  float acc[S::kChains];
  const float* const records = p.group_partials + hd.bh * kv_quant_groups(s.blocks) * S::kRecord;
  const int groups = static_cast<int>(groups_of(hd));
  fold_records<kDp>(p, records, groups, false, false, buf, acc);
#if SAGEATTN_KV_QUANT_TRACE
  const uint64_t t_head_folded = ptx::globaltimer_ns();
#endif
  publish_head<kBf16, kDp>(p, hd, aligned, early_v, acc, buf, s_vm, s_vinv);
#if SAGEATTN_KV_QUANT_TRACE
  if (threadIdx.x == 0 && hd.chunks > 0) {
    trace_add(kTraceHeads, 1);
    trace_add(kTraceChainNs, ptx::globaltimer_ns() - t_group);
    trace_add(kTraceGroupFoldNs, t_head - t_group);
    trace_add(kTraceStepGroupFold, t_folded - t_group);
    trace_add(kTraceStepGroupStore, t_stored - t_folded);
    trace_add(kTraceStepHeadArrive, t_head - t_stored);
    trace_add(kTraceStepHeadFold, t_head_folded - t_head);
  }
#endif
}

// Thread 0: a deferred stats arrival on counter c (release: the loop's barrier ordered the
// block's stores before it).
__device__ __forceinline__ void release_arrival(uint32_t* c) {
  cuda::atomic_ref<uint32_t, cuda::thread_scope_device> word(*c);
  word.fetch_add(1u, cuda::memory_order_release);
}
constexpr uint32_t kNoArrival = 0xFFFFFFFFu;

// ------------------------------------------------------------------------------- quantize item
// Thread 0: wait until the head's counter reaches `target` (acquire): groups + 1 for the
// published stats, chunks for the stats items' arrivals alone (early_v: the chunk records).
__device__ __forceinline__ void wait_for_counter(uint32_t* counter, uint32_t target) {
  cuda::atomic_ref<uint32_t, cuda::thread_scope_device> word(*counter);
  while (word.load(cuda::memory_order_acquire) < target) __nanosleep(kSpinSleepNs);
}

// A block past the sequence's end: zero codes; the K scale of block 0 of an empty sequence is
// the all-zero group's (amax 0 -> kMinAmax), as the two-pass version wrote it. K and V apart (the
// cluster kernel handles one tensor per CTA).
template <int kDp>
__device__ __forceinline__ void write_padding_k(const KvQuantParams& p, const Head& hd,
                                                uint32_t blk) {
  const int64_t np = p.seqlen_k_padded, t0 = int64_t(blk) * kBlock;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  uint4* k_dst = reinterpret_cast<uint4*>(p.k_codes + (hd.bh * np + t0) * kDp);
  for (int i = threadIdx.x; i < kBlock * kDp / 16; i += kThreads) __stcs(k_dst + i, zero);
  const GroupSpec kg = p.tiles.k_groups(p.granularity);
  if (threadIdx.x < kg.count && t0 < max(hd.len, int64_t(1)))
    p.k_scales[(hd.bh * (np / kBlock) + blk) * kg.count + threadIdx.x] =
        __fdiv_rn(fmaxf(0.0f, kMinAmax), kInt8Max);
}
template <int kDp>
__device__ __forceinline__ void write_padding_v(const KvQuantParams& p, const Head& hd,
                                                uint32_t blk) {
  const int64_t np = p.seqlen_k_padded, t0 = int64_t(blk) * kBlock;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  if (p.pv_mode == PvMode::kFp16) {
    uint4* v_dst =
        reinterpret_cast<uint4*>(static_cast<uint16_t*>(p.v_codes) + (hd.bh * np + t0) * kDp);
    for (int i = threadIdx.x; i < kBlock * kDp * 2 / 16; i += kThreads) __stcs(v_dst + i, zero);
  } else {
    uint8_t* v_dst = static_cast<uint8_t*>(p.v_codes) + hd.bh * kDp * np + t0;
    for (int i = threadIdx.x; i < kDp * (kBlock / 16); i += kThreads)
      __stcs(reinterpret_cast<uint4*>(v_dst + int64_t(i / (kBlock / 16)) * np +
                                      (i % (kBlock / 16)) * 16),
             zero);
  }
}

// K codes and group scales of block blk (rows < `rows` hold tokens, blk < the head's chunks) from
// the K tile sk and the head's K mean s_km; s_amax (kMaxKGroups floats, zeroed) collects the
// block's group amax. A barrier inside (s_amax); the caller's next barrier must come before s_amax
// is reused.
template <bool kBf16, int kDp>
__device__ __forceinline__ void k_codes_block(const KvQuantParams& p, int64_t bh, uint32_t blk,
                                              int rows, const uint16_t* sk, const float* s_km,
                                              float* s_amax) {
  using S = Shape<kDp>;
  const int tid = threadIdx.x, lane = tid & 31, d = static_cast<int>(p.head_dim);
  const int64_t np = p.seqlen_k_padded, t0 = int64_t(blk) * kBlock;
  // K: amax per group. Thread = 8 channels (one 16-byte vector) of rows r0 + j * kRowsPerPass
  // (a warp reads consecutive 16-byte vectors of a row: conflict-free), all in one group.
  const GroupSpec kg = p.tiles.k_groups(p.granularity);
  const int c0 = (tid % S::kVecs) * 8, r0 = tid / S::kVecs;
  const bool col_ok = c0 < d;
  float km[8];
  {
    const float4 a = *reinterpret_cast<const float4*>(s_km + c0);
    const float4 b = *reinterpret_cast<const float4*>(s_km + c0 + 4);
    km[0] = a.x, km[1] = a.y, km[2] = a.z, km[3] = a.w, km[4] = b.x, km[5] = b.y, km[6] = b.z,
    km[7] = b.w;
  }
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < S::kPasses; ++j) {
    const int r = r0 + j * S::kRowsPerPass;
    if (r < rows && col_ok) {
      float x[8];
      widen8<kBf16>(*reinterpret_cast<const uint4*>(sk + r * kDp + c0), x);
#pragma unroll
      for (int e = 0; e < 8; ++e) amax = fmaxf(amax, num::amax_abs(__fsub_rn(x[e], km[e])));
    }
  }
  // Lanes of one group: the whole warp (one group per block), or the 2 rows of a per-thread
  // group (stride 2): 2 * kVecs consecutive lanes, capped at the warp.
  const int group = kg.count == 1 ? 0 : (r0 / kg.stride) % kg.count;
  const int span = kg.count == 1 ? 32 : min(32, kg.stride * S::kVecs);
  for (int o = 1; o < span; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((lane & (span - 1)) == 0) dev::atomic_max_nonneg(&s_amax[group], amax);
  __syncthreads();

  // K codes: 8 codes (8 bytes) per row visit; padding rows / channels get 0.
  {
    const float inv = __fdiv_rn(kInt8Max, fmaxf(s_amax[group], kMinAmax));
    int8_t* k_dst = p.k_codes + (bh * np + t0) * kDp + c0;
#pragma unroll
    for (int j = 0; j < S::kPasses; ++j) {
      const int r = r0 + j * S::kRowsPerPass;
      uint32_t w[2] = {0u, 0u};
      if (r < rows && col_ok) {
        float x[8];
        widen8<kBf16>(*reinterpret_cast<const uint4*>(sk + r * kDp + c0), x);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const uint32_t code = static_cast<uint8_t>(dev::int8_code(__fsub_rn(x[e], km[e]), inv));
          w[e / 4] |= code << (8 * (e % 4));
        }
      }
      __stcs(reinterpret_cast<uint2*>(k_dst + int64_t(r) * kDp), make_uint2(w[0], w[1]));
    }
  }
  if (tid < kg.count)  // blk < chunks: this block holds tokens
    p.k_scales[(bh * (np / kBlock) + blk) * kg.count + tid] =
        __fdiv_rn(fmaxf(s_amax[tid], kMinAmax), kInt8Max);
}

// V codes of block t0 (rows < `rows` hold tokens) from the V tile sv and the head's V mean s_vm
// and multipliers s_vinv: fp16 ([np][dp]) or fp8 (transposed, permuted), the fp8 codes staged in
// `stage` (kDp * kBlock bytes). A barrier inside (fp8); the caller's next barrier must come before
// the next call reuses `stage`. kStageInTile: `stage` is the tile sv itself (the cluster kernel,
// whose shared memory is all tiles): every unit's codes are computed before a barrier, then staged.
template <bool kBf16, int kDp, bool kStageInTile = false>
__device__ __forceinline__ void v_codes_block(const KvQuantParams& p, int64_t bh, int64_t t0,
                                              int rows, const uint16_t* sv, const float* s_vm,
                                              const float* s_vinv, uint8_t* stage) {
  const int tid = threadIdx.x, d = static_cast<int>(p.head_dim);
  const int64_t np = p.seqlen_k_padded;
  if (p.pv_mode == PvMode::kFp16) {  // fp16: same [np][dp] layout and thread mapping as K
    write_v_fp16<kBf16, kDp, true>(p, bh, t0, rows, sv, s_vm, s_vinv);
    return;
  }

  // fp8, transposed: unit = (channel pair c, c+1; quarter q = 16 tokens). The quarter's
  // 16 codes of a channel are one 16-byte run at k-positions 16q .. 16q+15 (fp8_v_kpos keeps
  // tokens w < 16 of a 32-token chunk in positions < 16). Within it, 32-bit word t holds tokens
  // 2t, 2t+1, 8+2t, 9+2t (k-positions 4t .. 4t+3). A warp reads 32 consecutive pairs of a row
  // (128 bytes): conflict-free.
  constexpr int kPairs = kDp / 2, kUnits = 4 * kPairs;
  // The block's V codes are staged for whole-sector stores (below; bench/NOTES.md section 35: the
  // quantizer is bound by L2 traffic, and direct 16-byte stores of the transposed V wrote half
  // sectors).
  static_assert(kDp * kBlock == kPairs * 128, "a pair's 2 x 64 codes fill one 128-byte slot");
  constexpr int kThreadUnits = (kUnits + kThreads - 1) / kThreads;
  uint4 staged[kStageInTile ? 2 * kThreadUnits : 1];  // kStageInTile: held until the barrier
#pragma unroll
  for (int j = 0; j < kThreadUnits; ++j) {
    const int i = tid + j * kThreads;
    if (kUnits % kThreads != 0 && i >= kUnits) break;
    const int c = (i % kPairs) * 2, q = i / kPairs;
    uint32_t w0[4] = {0u, 0u, 0u, 0u}, w1[4] = {0u, 0u, 0u, 0u};
    if (c < d) {
      const float m0 = s_vm[c], m1 = s_vm[c + 1], i0 = s_vinv[c], i1 = s_vinv[c + 1];
      // Word by word: only the 4 tokens of one word are live at a time.
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        float y0[4], y1[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const int r = 16 * q + (k < 2 ? 2 * t + k : 8 + 2 * t + (k - 2));
          y0[k] = 0.0f, y1[k] = 0.0f;  // padding tokens: code 0
          if (r < rows) {
            float x0, x1;
            widen2<kBf16>(*reinterpret_cast<const uint32_t*>(sv + r * kDp + c), x0, x1);
            y0[k] = __fmul_rn(__fsub_rn(x0, m0), i0);
            y1[k] = __fmul_rn(__fsub_rn(x1, m1), i1);
          }
        }
        w0[t] = e4m3x2(y0[0], y0[1]) | (e4m3x2(y0[2], y0[3]) << 16);
        w1[t] = e4m3x2(y1[0], y1[1]) | (e4m3x2(y1[2], y1[3]) << 16);
      }
    }
    // Staged: pair c / 2's 128-byte slot holds its 8 runs (channel c + which, quarter q) at
    // 16-byte position (2q + which) ^ (pair % 8): a quarter warp (8 consecutive pairs, one q)
    // writes 8 distinct bank groups.
    if constexpr (kStageInTile) {
      staged[2 * j] = make_uint4(w0[0], w0[1], w0[2], w0[3]);
      staged[2 * j + 1] = make_uint4(w1[0], w1[1], w1[2], w1[3]);
    } else {
      const int pr = c / 2;
      *reinterpret_cast<uint4*>(stage + pr * 128 + (((2 * q) ^ (pr & 7)) * 16)) =
          make_uint4(w0[0], w0[1], w0[2], w0[3]);
      *reinterpret_cast<uint4*>(stage + pr * 128 + (((2 * q + 1) ^ (pr & 7)) * 16)) =
          make_uint4(w1[0], w1[1], w1[2], w1[3]);
    }
  }
  if constexpr (kStageInTile) {
    __syncthreads();  // every thread has read the tile: it becomes the staging area
#pragma unroll
    for (int j = 0; j < kThreadUnits; ++j) {
      const int i = tid + j * kThreads;
      if (kUnits % kThreads != 0 && i >= kUnits) break;
      const int c = (i % kPairs) * 2, q = i / kPairs, pr = c / 2;
      *reinterpret_cast<uint4*>(stage + pr * 128 + (((2 * q) ^ (pr & 7)) * 16)) = staged[2 * j];
      *reinterpret_cast<uint4*>(stage + pr * 128 + (((2 * q + 1) ^ (pr & 7)) * 16)) =
          staged[2 * j + 1];
    }
  }
  // Each channel's 64 codes of the block are one 64-byte run in v_codes: four consecutive lanes
  // store it (two whole 32-byte sectors per run, 16 per warp instruction), instead of four
  // warps storing a 16-byte half sector each. Run u: channel u / 4, quarter u % 4; a quarter warp
  // reads one pair's 128-byte slot (conflict-free).
  __syncthreads();  // the staged codes are visible
  constexpr int kRuns = kDp * 4;
  static_assert(kRuns % kThreads == 0 || kThreads % kRuns == 0, "runs tile the block");
#pragma unroll
  for (int j = 0; j < (kRuns + kThreads - 1) / kThreads; ++j) {
    const int u = tid + j * kThreads;
    if (kRuns % kThreads != 0 && u >= kRuns) break;
    const int c = u / 4, q = u % 4, pr = c / 2;
    const uint4 w = *reinterpret_cast<const uint4*>(
        stage + pr * 128 + (((2 * q + (c & 1)) ^ (pr & 7)) * 16));
    __stcs(reinterpret_cast<uint4*>(static_cast<uint8_t*>(p.v_codes) + (bh * kDp + c) * np + t0 +
                                    16 * q),
           w);
  }
}

// Quantizes one block whose tile is in flight (cp.async) and whose head stats are published.
// early_v: only K (its tile alone was loaded; the stats items and the fold wrote V), and the head's
// chunk records are all written but not yet folded: the K mean is folded here from their K sums,
// with the fold's additions in the fold's order (two-level: fold_records; bit-identical to
// k_mean).
template <bool kBf16, int kDp>
__device__ void quantize_block(const KvQuantParams& p, const Head& hd, uint32_t blocks,
                               uint32_t blk, int rows, bool early_v, const uint16_t* sk,
                               const uint16_t* sv, float* s_amax, float* s_km, float* s_vm,
                               float* s_vinv, NextTicket& next) {
  using S = Shape<kDp>;
  const int tid = threadIdx.x, d = static_cast<int>(p.head_dim);
  const int64_t t0 = int64_t(blk) * kBlock, bh = hd.bh;

  // Head stats -> shared memory (L2 loads: written by other CTAs during this launch), overlapped
  // with the tile's arrival.
  if (early_v) {
    if (tid < kDp) {
      float km = 0.0f;
      if (tid < d && p.smooth_k == Smoothing::kOn) {  // blk < chunks: len > 0
        const float* src = p.partials + bh * int64_t(blocks) * S::kRecord + tid;  // K sums
        const int n = static_cast<int>(hd.chunks);
        float acc = 0.0f, grp = 0.0f;  // the total, the current group's sum
        constexpr int kLoads = 16;  // records in flight per thread (early_v: hd128 and hd256 only)
        static_assert(kLoads % kGroupChunks == 0, "a load batch holds whole groups");
        for (int base = 0; base < n; base += kLoads) {
          float x[kLoads];
#pragma unroll
          for (int j = 0; j < kLoads; ++j)
            x[j] = base + j < n ? __ldcg(src + int64_t(base + j) * S::kRecord) : 0.0f;
#pragma unroll
          for (int j = 0; j < kLoads; ++j) {
            if (base + j < n) grp = __fadd_rn(grp, x[j]);
            // The group ends: at a multiple of kGroupChunks (base is one) or at the last record.
            if (base + j < n && (j % kGroupChunks == kGroupChunks - 1 || base + j == n - 1)) {
              acc = __fadd_rn(acc, grp);
              grp = 0.0f;
            }
          }
        }
        km = __fdiv_rn(acc, static_cast<float>(hd.len));
      }
      s_km[tid] = km;
    }
  } else {
    for (int c = tid; c < kDp; c += kThreads) {
      s_km[c] = __ldcg(p.k_mean + bh * kDp + c);
      s_vm[c] = __ldcg(p.v_mean + bh * kDp + c);
      s_vinv[c] = __ldcg(p.v_inv + bh * kDp + c);
    }
  }
  ptx::cp_async_wait<S::kYoungerGroups>();
  __syncthreads();  // tile and stats visible to the block
  next.take();

  k_codes_block<kBf16, kDp>(p, bh, blk, rows, sk, s_km, s_amax);
  if (early_v) return;
  // The fp8 V codes' staging area, free again at the next item (the main loop's barrier).
  __shared__ __align__(16) uint8_t s_vstage[kDp * kBlock];
  v_codes_block<kBf16, kDp>(p, bh, t0, rows, sv, s_vm, s_vinv, s_vstage);
}

// The tile (if the block holds tokens) is in flight in sk, sv (issue_tile): the raw rows do not
// depend on the stats, so they load before the wait for them.
template <bool kBf16, int kDp>
__device__ __forceinline__ void quantize_item(const KvQuantParams& p, const Head& hd,
                                              uint32_t blocks, uint32_t blk, bool aligned,
                                              bool early_v, uint16_t* sk, const uint16_t* sv,
                                              float* s_amax, float* s_km, float* s_vm,
                                              float* s_vinv, NextTicket& next) {
  if (blk >= hd.chunks) {
    write_padding_k<kDp>(p, hd, blk);
    write_padding_v<kDp>(p, hd, blk);
    return;
  }
  const int rows = rows_of(hd, blk);
  if (threadIdx.x < kMaxKGroups) s_amax[threadIdx.x] = 0.0f;
  if (threadIdx.x == 0) {
    uint32_t target = early_v ? hd.chunks : groups_of(hd) + 1u;
#if SAGEATTN_KV_QUANT_TRACE
    const uint64_t t0 = ptx::globaltimer_ns();
    const bool spun = cuda::atomic_ref<uint32_t, cuda::thread_scope_device>(
                          *head_counter(p, hd.bh)).load(cuda::memory_order_relaxed) < target;
#endif
    wait_for_counter(head_counter(p, hd.bh), target);
#if SAGEATTN_KV_QUANT_TRACE
    trace_add(kTraceQuantItems, 1), trace_add(kTraceSpinItems, spun ? 1 : 0);
    trace_add(kTraceWaitNs, ptx::globaltimer_ns() - t0);
#endif
  }
  __syncthreads();  // thread 0 acquired the records or the stats; s_amax is zeroed
  quantize_block<kBf16, kDp>(p, hd, blocks, blk, rows, early_v, sk, sv, s_amax, s_km, s_vm,
                             s_vinv, next);
  if (early_v && blk == 0) {  // the head's fold (its stats items' arrivals are acquired)
    __syncthreads();          // the K tile is no longer read: the fold stages records there
    using S = Shape<kDp>;
    float* const buf = reinterpret_cast<float*>(sk);
    float acc[S::kChains];
    // The chunk records, two-level; their K sums stay in L2 (this head's quantize items read them).
    fold_records<kDp>(p, p.partials + hd.bh * int64_t(blocks) * S::kRecord,
                      static_cast<int>(hd.chunks), true, true, buf, acc);
    publish_head<kBf16, kDp>(p, hd, aligned, early_v, acc, buf, s_vm, s_vinv);
  }
}

// ------------------------------------------------------------------------------------- kernel
template <bool kBf16, int kDp>
__global__ void __launch_bounds__(kThreads, Shape<kDp>::kCtasPerSm)
    kv_quant_kernel(const __grid_constant__ KvQuantParams p, const KvQuantSchedule s,
                    bool aligned, bool early_v_arg) {
  using S = Shape<kDp>;
  const bool early_v = S::kEarlyV && early_v_arg;
  extern __shared__ __align__(16) uint8_t smem[];
  uint16_t* const tiles = reinterpret_cast<uint16_t*>(smem);  // kBuffers x [K tile, V tile]
  __shared__ __align__(16) float s_km[kDp];
  __shared__ __align__(16) float s_vm[kDp];
  __shared__ __align__(16) float s_vinv[kDp];
  __shared__ float s_amax[kMaxKGroups];
  __shared__ uint32_t s_ticket[2];  // prologue: the first tickets; then by iteration parity
  __shared__ int s_last;
  uint32_t* const tickets = ticket_counter(p, s.blocks);
  auto tile_k = [&](uint32_t b) { return tiles + b * 2 * S::kTileElems; };

  // Tickets held: `cur` (being processed) and, with prefetch, `nxt` (its tile loading); thread 0
  // fetches one more once cur's tile has landed (NextTicket), its round trip hidden by cur's
  // compute. Each CTA therefore fetches exactly kBuffers tickets past the end.
  if (threadIdx.x == 0)
    for (int i = 0; i < S::kBuffers; ++i) s_ticket[i] = atomicAdd(tickets, 1u);
  __syncthreads();
  uint32_t cur = s_ticket[0], nxt = s_ticket[S::kBuffers - 1];
  if (S::kPrefetch)
    issue_tile<kDp>(p, decode(p, s, cur), aligned, early_v, tile_k(0), tile_k(0) + S::kTileElems);
  __syncthreads();  // s_ticket is read before iteration 0 writes it
  NextTicket next{tickets, 0u, false};
  uint32_t pending = kNoArrival;  // thread 0: the head of a deferred stats arrival (early_v)
  for (uint32_t iter = 0; cur < s.tickets(); ++iter) {
    const uint32_t buf = S::kPrefetch ? iter & 1u : 0u;
    uint16_t* const sk = tile_k(buf);
    uint16_t* const sv = sk + S::kTileElems;
    const Ticket tk = decode(p, s, cur);
    if (S::kPrefetch) {  // the next item's tile into the other buffer (freed by the last barrier)
      uint16_t* const other = tile_k(buf ^ 1u);
      issue_tile<kDp>(p, decode(p, s, nxt), aligned, early_v, other, other + S::kTileElems);
    } else {
      issue_tile<kDp>(p, tk, aligned, early_v, sk, sv);
    }
    if (threadIdx.x == 0 && pending != kNoArrival) {
      release_arrival(head_counter(p, pending));
      pending = kNoArrival;
    }
    next.taken = false;
    if (tk.it.stats)
      stats_item<kBf16, kDp>(p, s, tk.hd, tk.blk, aligned, early_v, sk, sv, &s_last, s_vm, s_vinv,
                             pending, next);
    else
      quantize_item<kBf16, kDp>(p, tk.hd, s.blocks, tk.blk, aligned, early_v, sk, sv, s_amax,
                                s_km, s_vm, s_vinv, next);
    next.take();  // items without a tile (padding, empty arrivals) take it here
    // s_ticket[parity]: its previous value was read before the previous iteration's barrier.
    if (threadIdx.x == 0) s_ticket[iter & 1u] = next.value;
    __syncthreads();  // shared memory (tile, stats, s_amax, s_last) is free again
    const uint32_t fetched = s_ticket[iter & 1u];
    if (S::kPrefetch) cur = nxt, nxt = fetched;
    else cur = fetched;
  }
  if (threadIdx.x == 0 && pending != kNoArrival) release_arrival(head_counter(p, pending));
}

// ------------------------------------------------------------------- cluster kernel (sm_90 up)
// kv_quant.h: one thread-block cluster per (head, tensor); its CTAs hold the head's K (or V) in
// shared memory, so the tensor is read from DRAM once, and the statistics go from CTA to CTA
// through distributed shared memory instead of records in global memory and counters.
constexpr int kMaxCluster = 16;  // CTAs per cluster; above 8 the non-portable sizes (one GPC)

template <int kDp>
struct ClusterShape {
  // Blocks of one tensor per CTA: 64 KB of tiles (hd64 8, hd128 4, hd256 2 blocks), so that
  // several CTAs share an SM and one's loads overlap another's compute and stores.
  static constexpr int kCtaBlocks = 32768 / (kBlock * kDp);
  static constexpr int kTileBytes = kCtaBlocks * kBlock * kDp * 2;
  static constexpr int kLanesPerChannel = kThreads / kDp;      // threads of one channel's chains
  static constexpr int kChains = kCtaBlocks * kDp / kThreads;  // (block, channel) chains a thread
  static constexpr int kCtasPerSm = kDp == 256 ? 2 : 3;
  static_assert(kChains * kThreads == kCtaBlocks * kDp && kLanesPerChannel * kDp == kThreads,
                "the stats chains tile the CTA's threads");
};

// Probe, off by default: -DSAGEATTN_KV_QUANT_CLUSTER_TRACE=1 sums each CTA's phases (thread 0's
// global timer, ns) over a launch and prints them from the host after it (synchronizing).
#ifndef SAGEATTN_KV_QUANT_CLUSTER_TRACE
#define SAGEATTN_KV_QUANT_CLUSTER_TRACE 0
#endif
#if SAGEATTN_KV_QUANT_CLUSTER_TRACE
// Phases: load (entry -> tiles landed), stats, sync (first cluster barrier), fold, codes, exit
// (the last cluster wait); then CTAs, the first entry and the last exit (span).
enum ClusterTrace : int {
  kCtLoad, kCtStats, kCtSync, kCtFold, kCtCodes, kCtExit, kCtCtas, kCtFirst, kCtLast, kCtFields
};
__device__ unsigned long long g_ctrace[kCtFields];
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ uint32_t cluster_ctarank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
// barrier.cluster in two halves: arrive (release: this thread's shared-memory writes, and reads,
// are ordered before it) and wait (acquire). Every thread of every CTA of the cluster takes part.
__device__ __forceinline__ void cluster_arrive() {
  asm volatile("barrier.cluster.arrive.release;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.acquire;\n" ::: "memory");
}
// The float at `local`'s offset in the shared memory of the cluster's CTA `rank`.
__device__ __forceinline__ float ld_cluster(const float* local, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n"
               : "=r"(remote)
               : "r"(ptx::smem_u32(local)), "r"(rank));
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];\n" : "=f"(v) : "r"(remote) : "memory");
  return v;
}
#endif

// Grid: `cluster` CTAs per (head, tensor), clusters ordered (head 0 K, head 0 V, head 1 K, ...).
// CTA `rank` of a cluster owns blocks [rank * kCtaBlocks, (rank + 1) * kCtaBlocks) of the padded
// sequence (those below np). Per CTA:
//   1. cp.async its blocks' rows of its tensor into shared memory (evict-first: read once).
//   2. The chunk sums of each of its blocks (ascending tokens from 0, the contract's chunk order)
//      into s_sum; for V also each thread's min / max over its rows into s_lo / s_hi.
//   3. Cluster barrier. Thread c folds channel c over the cluster: the head's chunk sums in the
//      two-level order of docs/NUMERICS.md §2 (groups of kMeanGroupChunks chunks from 0, the
//      group sums from 0, each read from the CTA that owns the chunk), V's min / max over every
//      CTA's threads (order-independent), then channel_stats: the same formulas as the ticket
//      kernel's publish_head, so the stats are bit-identical. Rank 0 stores them for the
//      attention kernel. Cluster arrive: this CTA's remote reads are done.
//   4. Codes of its blocks from shared memory (k_codes_block / v_codes_block, as the ticket
//      kernel's quantize items), padding blocks zeroed; cluster wait (no CTA exits while another
//      may still read its shared memory), exit.
template <bool kBf16, int kDp>
__global__ void __launch_bounds__(kThreads, ClusterShape<kDp>::kCtasPerSm)
    kv_quant_cluster_kernel(const __grid_constant__ KvQuantParams p, int cluster, bool aligned) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using C = ClusterShape<kDp>;
  extern __shared__ __align__(16) uint8_t smem[];
  uint16_t* const tiles = reinterpret_cast<uint16_t*>(smem);  // [kCtaBlocks][kBlock][kDp]
  __shared__ float s_sum[C::kCtaBlocks * kDp];  // [block][channel]: the blocks' chunk sums
  __shared__ float s_lo[kThreads], s_hi[kThreads];  // V: min / max over each thread's chains
  __shared__ __align__(16) float s_km[kDp];
  __shared__ __align__(16) float s_vm[kDp];
  __shared__ __align__(16) float s_vinv[kDp];
  __shared__ float s_amax[C::kCtaBlocks * kMaxKGroups];  // K: one slot set per block

  const int tid = threadIdx.x, d = static_cast<int>(p.head_dim);
  const uint32_t rank = cluster_ctarank();
  const uint32_t cid = blockIdx.x / static_cast<uint32_t>(cluster);
  const bool is_v = (cid & 1u) != 0;
  const Head hd = head_of(p, cid >> 1);
  const uint32_t blocks = static_cast<uint32_t>(p.seqlen_k_padded / kBlock);
  const uint32_t first = rank * C::kCtaBlocks;
  auto tile = [&](int j) { return tiles + j * kBlock * kDp; };
#if SAGEATTN_KV_QUANT_CLUSTER_TRACE
  uint64_t tt[kCtExit + 2];
  tt[0] = ptx::globaltimer_ns();
#define SAGEATTN_CT_MARK(i) (tt[(i) + 1] = ptx::globaltimer_ns())
#else
#define SAGEATTN_CT_MARK(i) ((void)0)
#endif

  // 1. Load.
#pragma unroll 1
  for (int j = 0; j < C::kCtaBlocks; ++j) {
    const uint32_t blk = first + j;
    if (blk < hd.chunks)
      load_tile<kDp>(p, hd, int64_t(blk) * kBlock, rows_of(hd, blk), aligned, true, true,
                     is_v ? nullptr : tile(j), is_v ? tile(j) : nullptr);
  }
  ptx::cp_async_commit();
  if (tid < C::kCtaBlocks * kMaxKGroups) s_amax[tid] = 0.0f;
  ptx::cp_async_wait<0>();
  __syncthreads();
  SAGEATTN_CT_MARK(kCtLoad);

  // 2. Chunk sums (and V's min / max). Chain i of thread tid: channel tid % kDp of block
  // tid / kDp + i * kLanesPerChannel. A warp reads 32 consecutive channels of a row.
  const int c = tid % kDp;
  float lo = INFINITY, hi = -INFINITY;
#pragma unroll
  for (int i = 0; i < C::kChains; ++i) {
    const int j = tid / kDp + i * C::kLanesPerChannel;
    const uint32_t blk = first + j;
    if (c < d && blk < hd.chunks) {
      const int rows = rows_of(hd, blk);
      const uint16_t* col = tile(j) + c;
      float sum = 0.0f;
      if (is_v) {
#pragma unroll 8
        for (int r = 0; r < rows; ++r) {
          const float x = widen1<kBf16>(col[r * kDp]);
          sum = __fadd_rn(sum, x);
          // A NaN counts as both -inf and +inf (block_stats).
          lo = fminf(lo, fmaxf(x, -INFINITY));
          hi = fmaxf(hi, fminf(x, INFINITY));
        }
      } else {
#pragma unroll 8
        for (int r = 0; r < rows; ++r) sum = __fadd_rn(sum, widen1<kBf16>(col[r * kDp]));
      }
      s_sum[j * kDp + c] = sum;
    }
  }
  s_lo[tid] = lo, s_hi[tid] = hi;
  SAGEATTN_CT_MARK(kCtStats);
  cluster_arrive();
  cluster_wait();  // every CTA's sums, minima and maxima are visible across the cluster

  SAGEATTN_CT_MARK(kCtSync);
  // 3. The head's stats of this tensor, channel by channel.
  if (tid < kDp) {
    float km = 0.0f, vm = 0.0f, scale = 1.0f, inv = 1.0f;
    if (tid < d) {
      const bool sums = is_v ? p.smooth_v == Smoothing::kOn : p.smooth_k == Smoothing::kOn;
      float total = 0.0f;
      if (sums) {
        const int n = static_cast<int>(hd.chunks);
        for (int g0 = 0; g0 < n; g0 += kGroupChunks) {
          float x[kGroupChunks];
#pragma unroll
          for (int k = 0; k < kGroupChunks; ++k) {
            const int i = g0 + k;
            x[k] = i < n ? ld_cluster(&s_sum[(i % C::kCtaBlocks) * kDp + tid],
                                      static_cast<uint32_t>(i / C::kCtaBlocks))
                         : 0.0f;
          }
          float grp = 0.0f;
#pragma unroll
          for (int k = 0; k < kGroupChunks; ++k)
            if (g0 + k < n) grp = __fadd_rn(grp, x[k]);
          total = __fadd_rn(total, grp);
        }
      }
      float vlo = INFINITY, vhi = -INFINITY;
      if (is_v) {
        for (int r = 0; r < cluster; ++r)
#pragma unroll
          for (int k = 0; k < C::kLanesPerChannel; ++k) {
            vlo = fminf(vlo, ld_cluster(&s_lo[tid + k * kDp], static_cast<uint32_t>(r)));
            vhi = fmaxf(vhi, ld_cluster(&s_hi[tid + k * kDp], static_cast<uint32_t>(r)));
          }
      }
      // K passes an all-zero V (amax 0: no special value on the unused path).
      const ChannelStats cs = channel_stats(p, hd, is_v ? 0.0f : total, is_v ? total : 0.0f,
                                            is_v ? vlo : 0.0f, is_v ? vhi : 0.0f);
      km = cs.km, vm = cs.vm, scale = cs.scale, inv = cs.inv;
    }
    const int64_t o = hd.bh * kDp + tid;
    if (is_v) {
      if (rank == 0) p.v_mean[o] = vm, p.v_scales[o] = scale, p.v_inv[o] = inv;
      s_vm[tid] = vm, s_vinv[tid] = inv;
    } else {
      if (rank == 0) p.k_mean[o] = km;
      s_km[tid] = km;
    }
  }
  cluster_arrive();  // this CTA's reads of the others' shared memory are done
  __syncthreads();   // s_km / s_vm / s_vinv are visible
  SAGEATTN_CT_MARK(kCtFold);

  // 4. Codes.
#pragma unroll 1
  for (int j = 0; j < C::kCtaBlocks; ++j) {
    const uint32_t blk = first + j;
    if (blk >= blocks) break;
    if (blk < hd.chunks) {
      const int rows = rows_of(hd, blk);
      if (is_v)
        v_codes_block<kBf16, kDp, true>(p, hd.bh, int64_t(blk) * kBlock, rows, tile(j), s_vm,
                                        s_vinv, reinterpret_cast<uint8_t*>(tile(j)));
      else
        k_codes_block<kBf16, kDp>(p, hd.bh, blk, rows, tile(j), s_km, s_amax + j * kMaxKGroups);
    } else if (is_v) {
      write_padding_v<kDp>(p, hd, blk);
    } else {
      write_padding_k<kDp>(p, hd, blk);
    }
    // No barrier between blocks: each has its own s_amax slots and stages its V in its own tile.
  }
  SAGEATTN_CT_MARK(kCtCodes);
  cluster_wait();
#if SAGEATTN_KV_QUANT_CLUSTER_TRACE
  SAGEATTN_CT_MARK(kCtExit);
  if (tid == 0) {
    for (int i = 0; i <= kCtExit; ++i) atomicAdd(&g_ctrace[i], tt[i + 1] - tt[i]);
    atomicAdd(&g_ctrace[kCtCtas], 1ull);
    atomicMin(&g_ctrace[kCtFirst], tt[0]);
    atomicMax(&g_ctrace[kCtLast], tt[kCtExit + 1]);
  }
#endif
#undef SAGEATTN_CT_MARK
#else
  __trap();  // launched only on devices with clusters (kv_quantize checks)
#endif
}

// --------------------------------------------------------------------------------- host side
std::size_t align256(std::size_t x) { return (x + 255) / 256 * 256; }

struct Sizes {
  std::size_t k_codes, k_scales, k_mean, v_codes, v_scales, v_inv, v_mean, partials,
      group_partials, counters;
};

// Words of `counters`: head counters, group counters, the ticket counter (contiguous: one memset).
std::size_t counter_words(const KvQuantParams& p) {
  const std::size_t heads = std::size_t(p.batch * p.heads_kv);
  const std::size_t groups = std::size_t(kv_quant_groups(p.seqlen_k_padded / kMeanChunkTokens));
  return heads * (1 + groups) + kControlWords;
}

Sizes sizes(const KvQuantParams& p) {
  const std::size_t bh = std::size_t(p.batch * p.heads_kv);
  const std::size_t np = std::size_t(p.seqlen_k_padded), dp = std::size_t(p.head_dim_padded);
  const std::size_t chunks = np / kMeanChunkTokens;
  const std::size_t groups = std::size_t(kv_quant_groups(int64_t(chunks)));
  const GroupSpec kg = p.tiles.k_groups(p.granularity);
  const std::size_t v_elem = p.pv_mode == PvMode::kFp16 ? 2 : 1;
  return {align256(bh * np * dp),
          align256(bh * std::size_t(kg.num_groups(int64_t(np))) * sizeof(float)),
          align256(bh * dp * sizeof(float)),
          align256(bh * np * dp * v_elem),
          align256(bh * dp * sizeof(float)),
          align256(bh * dp * sizeof(float)),
          align256(bh * dp * sizeof(float)),
          align256(bh * chunks * kPartialFields * dp * sizeof(float)),
          align256(bh * groups * kPartialFields * dp * sizeof(float)),
          align256(counter_words(p) * sizeof(uint32_t))};
}

// A positive integer from the environment, or `fallback`. Tuning overrides for the device
// benchmark (kv_quant.h lists them); unset in normal use.
int64_t env_positive(const char* name, int64_t fallback) {
  const char* s = std::getenv(name);
  if (s == nullptr || *s == '\0') return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  return (*end == '\0' && v > 0 && v < (1LL << 31)) ? v : fallback;
}

// lead (kv_quant_schedule.h): the quantize item of a block is handed out about `lead` stats
// items after its stats item. Two opposite costs:
//  - too small: a quantize item is handed out before its head's stats are published and its CTA
//    spins. When a head's first quantize item is handed out, the head's last stats item was
//    handed out ~2 * (lead - blocks) tickets earlier. It must have finished: a CTA takes its next
//    ticket half-way through its current item (NextTicket), so a ticket finishes ~1.5 item
//    times after it is handed out, while the grid hands out ~1.5 * grid tickets. And its CTA must
//    have folded the head's records: the fold streams ~32 KB per ~0.8 us of L2 latency, so 2 KB
//    per chunk at hd128 is ~50 ns, ~7 tickets at the ~130 tickets/us of the target speed. So
//    2 * (lead - blocks) ~ 1.5 * grid + 7 * blocks: lead ~ blocks + 3/4 grid + 4 * blocks. That
//    estimate held at 1K only: longer heads wait much longer than it says (the slack is measured
//    below). That was the one-level fold (all the head's chunk records after its last stats
//    item); the two-level fold reads <= 8 chunk records and blocks / 8 group records there, so
//    the fold's share of the slack is now ~(8 + blocks / 8) records' worth. Measured again with
//    the two-level fold (H200, hd128, N = 4K, B = 8; bench/NOTES.md section 27): the default
//    below (held + 1024 at 64 blocks) 696 TFLOPS e2e, slack 500 687, 1500 693, all items 685.
//  - too large: between the two reads of a block, lead stats items bring lead x (K + V tile)
//    bytes into L2 and the quantize items write lead x tile / 2 (evict-first). At hd128, N = 1K,
//    B = 32 (grid 528, blocks 16): lead = 476 -> 15 MB of live K/V lines + 8 MB of output:
//    well inside the H200's 50 MB L2. Long sequences (blocks = 512 at 32K) give up L2 reuse (the
//    head alone is 16 MB and its fold is long): two DRAM reads, like the old two-pass code.
int64_t choose_lead(bool prefetch, int64_t blocks, int64_t grid, int64_t items) {
  // With prefetch a CTA holds two tickets ahead of the one it finishes: ~2.8 item times from
  // hand-out to finish instead of ~1.5.
  const int64_t held = prefetch ? 3 * grid / 2 : 3 * grid / 4;
  // Measured (bench/NOTES.md section 20, H100, hd128, B x N = 32K tokens): the best slack grows
  // faster than the blocks per head: ~4 x blocks at 16 blocks (1K), 2000-4000 at 64 (4K), 8000 up
  // to all items at 256 (16K), where a quantize item waiting on its head's fold costs more than the
  // L2 reuse saves. blocks x max(4, blocks / 4) follows that.
  const int64_t slack = env_positive("SAGEATTN_KV_QUANT_LEAD_SLACK", held + blocks * std::max<int64_t>(4, blocks / 4));
  return std::min(items, blocks + slack);
}

template <bool kBf16, int kDp>
void launch(const KvQuantParams& p, bool aligned, bool early_v, cudaStream_t stream) {
  using S = Shape<kDp>;
  const auto kernel = &kv_quant_kernel<kBf16, kDp>;
  constexpr int kSmem = S::kBuffers * S::kSmemBytes;
  if (kSmem > 48 * 1024)
    SAGEATTN_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  int device = 0, sms = 0, occupancy = 0;
  SAGEATTN_CUDA_CHECK(cudaGetDevice(&device));
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  SAGEATTN_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, kernel, kThreads, kSmem));
  SAGEATTN_CHECK_CODE(occupancy > 0, ErrorCode::kInternal, "kv_quantize: the kernel for head dim ",
                      kDp, " does not fit on an SM");
  const int64_t per_sm = std::min<int64_t>(
      occupancy,
      env_positive("SAGEATTN_KV_QUANT_CTAS_PER_SM", S::kCtasPerSm));

  const int64_t grid_sms = std::min<int64_t>(sms, env_positive("SAGEATTN_KV_QUANT_SMS", sms));

  const int64_t heads = p.batch * p.heads_kv, blocks = p.seqlen_k_padded / kBlock;
  const int64_t items = heads * blocks;
  const int64_t grid = std::min(per_sm * grid_sms, 2 * items);
  // Tickets run to 2 * items + S::kBuffers * grid - 1 (kBuffers fetches past the end per CTA).
  SAGEATTN_CHECK_CODE(2 * items + S::kBuffers * grid <= int64_t(UINT32_MAX), ErrorCode::kUnsupported,
                      "kv_quantize: ", heads, " heads x ", blocks,
                      " blocks is too many work items");
  KvQuantSchedule s;
  s.items = static_cast<uint32_t>(items);
  s.blocks = static_cast<uint32_t>(blocks);
  s.lead = static_cast<uint32_t>(choose_lead(S::kPrefetch, blocks, grid, items));

  // Head, group and ticket counters in one memset (they are contiguous).
  SAGEATTN_CUDA_CHECK(cudaMemsetAsync(p.counters, 0, counter_words(p) * sizeof(uint32_t), stream));
#if SAGEATTN_KV_QUANT_TRACE
  void* trace = nullptr;
  SAGEATTN_CUDA_CHECK(cudaGetSymbolAddress(&trace, g_trace));
  SAGEATTN_CUDA_CHECK(cudaMemsetAsync(trace, 0, sizeof(g_trace), stream));
#endif
  kv_quant_kernel<kBf16, kDp>
      <<<static_cast<unsigned>(grid), kThreads, kSmem, stream>>>(p, s, aligned, early_v);
  SAGEATTN_CUDA_CHECK_LAUNCH();
#if SAGEATTN_KV_QUANT_TRACE
  unsigned long long t[kTraceFields] = {};
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(t, trace, sizeof(t), cudaMemcpyDeviceToHost, stream));
  SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
  auto mean_us = [](unsigned long long ns, unsigned long long n) {
    return n ? 1e-3 * ns / n : 0.0;
  };
  std::fprintf(stderr,
               "kv_quant trace: hd %d grid %lld lead %u | stats items %llu, entry->arrival"
               " %.2f us | heads %llu, chain (last group arrival -> published) %.2f us, of it"
               " group fold %.2f us | quantize items %llu, %llu spun, wait %.2f us per item,"
               " %.1f us per CTA | chain steps (us): group records folded %.2f, group record"
               " stored %.2f, head arrival %.2f, group records folded %.2f, published %.2f\n",
               kDp, static_cast<long long>(grid), s.lead, t[kTraceStatsItems],
               mean_us(t[kTraceStatsNs], t[kTraceStatsItems]), t[kTraceHeads],
               mean_us(t[kTraceChainNs], t[kTraceHeads]),
               mean_us(t[kTraceGroupFoldNs], t[kTraceHeads]), t[kTraceQuantItems],
               t[kTraceSpinItems], mean_us(t[kTraceWaitNs], t[kTraceQuantItems]),
               1e-3 * t[kTraceWaitNs] / static_cast<double>(grid),
               mean_us(t[kTraceStepGroupFold], t[kTraceHeads]),
               mean_us(t[kTraceStepGroupStore], t[kTraceHeads]),
               mean_us(t[kTraceStepHeadArrive], t[kTraceHeads]),
               mean_us(t[kTraceStepHeadFold], t[kTraceHeads]),
               mean_us(t[kTraceChainNs] - t[kTraceGroupFoldNs] - t[kTraceStepHeadFold],
                       t[kTraceHeads]));
#endif
}


// The cluster kernel's CTAs per cluster for p: one per kCtaBlocks blocks of the padded sequence.
template <int kDp>
int64_t cluster_size(const KvQuantParams& p) {
  const int64_t per_cta = ClusterShape<kDp>::kCtaBlocks;
  return (p.seqlen_k_padded / kBlock + per_cta - 1) / per_cta;
}

// A launch configuration of the cluster kernel: `grid` CTAs in clusters of `cluster`.
struct ClusterLaunch {
  cudaLaunchAttribute attr{};
  cudaLaunchConfig_t cfg{};
  ClusterLaunch(int64_t grid, int64_t cluster, int smem, cudaStream_t stream) {
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = static_cast<unsigned>(cluster);
    attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
    cfg.gridDim = dim3(static_cast<unsigned>(grid));
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = static_cast<size_t>(smem);
    cfg.stream = stream, cfg.attrs = &attr, cfg.numAttrs = 1;
  }
  ClusterLaunch(const ClusterLaunch&) = delete;  // cfg.attrs points into the object
  ClusterLaunch& operator=(const ClusterLaunch&) = delete;
};

// Why the cluster kernel cannot take p on the current device (null: it can). The device check
// (clusters of this size schedulable with this shared memory) runs once per device and size.
template <bool kBf16, int kDp>
const char* cluster_unfit(const KvQuantParams& p) {
  using C = ClusterShape<kDp>;
  const int64_t cluster = cluster_size<kDp>(p);
  if (cluster > kMaxCluster) return "the head is longer than one cluster holds";
  if (p.batch * p.heads_kv * 2 * cluster > int64_t(INT32_MAX)) return "too many heads for one grid";
  int device = 0, major = 0;
  SAGEATTN_CUDA_CHECK(cudaGetDevice(&device));
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major < 9) return "the device has no thread-block clusters (compute capability < 9.0)";
  // Per (device, cluster size): 0 unknown, 1 schedulable, 2 not.
  constexpr int kDevices = 64;
  static std::atomic<uint8_t> fits[kDevices][kMaxCluster + 1];
  if (device >= kDevices) return "device index beyond the cluster kernel's table";
  std::atomic<uint8_t>& known = fits[device][cluster];
  if (known.load(std::memory_order_relaxed) == 0) {
    // A device that refuses any step (the shared memory, a non-portable size, the occupancy
    // query) does not get the cluster kernel: its errors are not sticky and are cleared here.
    const auto kernel = &kv_quant_cluster_kernel<kBf16, kDp>;
    cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kTileBytes);
    if (e == cudaSuccess && cluster > 8)
      e = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    int clusters = 0;
    if (e == cudaSuccess) {
      const ClusterLaunch l(2 * cluster, cluster, C::kTileBytes, nullptr);
      e = cudaOccupancyMaxActiveClusters(&clusters, kernel, &l.cfg);
    }
    if (e != cudaSuccess) (void)cudaGetLastError();
    known.store(e == cudaSuccess && clusters > 0 ? 1 : 2, std::memory_order_relaxed);
  }
  return known.load(std::memory_order_relaxed) == 1
             ? nullptr
             : "clusters of this size do not fit the device";
}

template <bool kBf16, int kDp>
void launch_cluster(const KvQuantParams& p, bool aligned, cudaStream_t stream) {
  const int64_t cluster = cluster_size<kDp>(p);
  const ClusterLaunch l(p.batch * p.heads_kv * 2 * cluster, cluster, ClusterShape<kDp>::kTileBytes,
                        stream);
#if SAGEATTN_KV_QUANT_CLUSTER_TRACE
  void* trace = nullptr;
  SAGEATTN_CUDA_CHECK(cudaGetSymbolAddress(&trace, g_ctrace));
  unsigned long long init[kCtFields] = {};
  init[kCtFirst] = ~0ull;
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(trace, init, sizeof(init), cudaMemcpyHostToDevice, stream));
#endif
  SAGEATTN_CUDA_CHECK(cudaLaunchKernelEx(&l.cfg, &kv_quant_cluster_kernel<kBf16, kDp>, p,
                                         static_cast<int>(cluster), aligned));
  SAGEATTN_CUDA_CHECK_LAUNCH();
#if SAGEATTN_KV_QUANT_CLUSTER_TRACE
  unsigned long long t[kCtFields] = {};
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(t, trace, sizeof(t), cudaMemcpyDeviceToHost, stream));
  SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
  const double n = t[kCtCtas] ? double(t[kCtCtas]) : 1.0;
  double life = 0;
  for (int i = 0; i <= kCtExit; ++i) life += double(t[i]);
  std::fprintf(stderr,
               "kv_quant cluster trace: hd %d cluster %lld CTAs %llu span %.1f us, mean CTAs in"
               " flight %.1f | per CTA (us): load %.2f stats %.2f sync %.2f fold %.2f codes %.2f"
               " exit %.2f = %.2f\n",
               kDp, static_cast<long long>(cluster), t[kCtCtas],
               1e-3 * double(t[kCtLast] - t[kCtFirst]), life / double(t[kCtLast] - t[kCtFirst]),
               1e-3 * t[kCtLoad] / n, 1e-3 * t[kCtStats] / n,
               1e-3 * t[kCtSync] / n, 1e-3 * t[kCtFold] / n, 1e-3 * t[kCtCodes] / n,
               1e-3 * t[kCtExit] / n, 1e-3 * life / n);
#endif
}

// Null if the cluster kernel can take p here, else why not (kv_quant_cluster_unfit).
const char* cluster_unfit_any(const KvQuantParams& p) {
  const bool bf16 = p.dtype == DType::kBF16;
  switch (p.head_dim_padded) {
    case 64: return bf16 ? cluster_unfit<true, 64>(p) : cluster_unfit<false, 64>(p);
    case 128: return bf16 ? cluster_unfit<true, 128>(p) : cluster_unfit<false, 128>(p);
    default: return bf16 ? cluster_unfit<true, 256>(p) : cluster_unfit<false, 256>(p);
  }
}
}  // namespace

const char* kv_quant_cluster_unfit(const KvQuantParams& p) {
  if (p.head_dim_padded != 64 && p.head_dim_padded != 128 && p.head_dim_padded != 256)
    return "head_dim_padded is not 64, 128 or 256";
  return cluster_unfit_any(p);
}

std::size_t kv_quant_workspace_bytes(const KvQuantParams& p) {
  const Sizes s = sizes(p);
  return s.k_codes + s.k_scales + s.k_mean + s.v_codes + s.v_scales + s.v_inv + s.v_mean +
         s.partials + s.group_partials + s.counters;
}

void kv_quant_bind_workspace(KvQuantParams& p, void* workspace) {
  const Sizes s = sizes(p);
  auto* w = static_cast<uint8_t*>(workspace);
  p.k_codes = reinterpret_cast<int8_t*>(w), w += s.k_codes;
  p.k_scales = reinterpret_cast<float*>(w), w += s.k_scales;
  p.k_mean = reinterpret_cast<float*>(w), w += s.k_mean;
  p.v_codes = w, w += s.v_codes;
  p.v_scales = reinterpret_cast<float*>(w), w += s.v_scales;
  p.v_inv = reinterpret_cast<float*>(w), w += s.v_inv;
  p.v_mean = reinterpret_cast<float*>(w), w += s.v_mean;
  p.partials = reinterpret_cast<float*>(w), w += s.partials;
  p.group_partials = reinterpret_cast<float*>(w), w += s.group_partials;
  p.counters = reinterpret_cast<uint32_t*>(w);
}

void kv_quantize(const KvQuantParams& p, cudaStream_t stream) {
  const int64_t dp = p.head_dim_padded;
  SAGEATTN_CHECK_CODE(dp == 64 || dp == 128 || dp == 256, ErrorCode::kInternal,
                      "kv_quantize: head_dim_padded=", dp, " (64, 128 or 256)");
  SAGEATTN_CHECK_CODE(p.head_dim > 0 && p.head_dim <= dp && p.head_dim % 8 == 0,
                      ErrorCode::kInternal, "kv_quantize: head_dim=", p.head_dim,
                      " with head_dim_padded=", dp);
  SAGEATTN_CHECK_CODE(p.tiles.k_block == kBlock, ErrorCode::kInternal,
                      "kv_quantize: k_block=", p.tiles.k_block, " has no instantiation");
  SAGEATTN_CHECK_CODE(p.seqlen_k_padded % kBlock == 0, ErrorCode::kInternal,
                      "kv_quantize: seqlen_k_padded=", p.seqlen_k_padded);
  const GroupSpec kg = p.tiles.k_groups(p.granularity);
  SAGEATTN_CHECK_CODE(kg.block == kBlock &&
                          ((kg.stride == 1 && kg.count == 1) || (kg.stride == 2 && kg.count == 4)),
                      ErrorCode::kInternal, "kv_quantize: K groups {", kg.block, ", ", kg.stride,
                      ", ", kg.count, "} are not laid out for this kernel");
  SAGEATTN_CHECK_CODE(p.dtype == DType::kBF16 || p.dtype == DType::kF16, ErrorCode::kInternal,
                      "kv_quantize: dtype ", to_string(p.dtype));
  if (p.batch == 0 || p.heads_kv == 0 || p.seqlen_k_padded == 0) return;
  const bool aligned = (reinterpret_cast<uintptr_t>(p.k) % 16 == 0) &&
                       (reinterpret_cast<uintptr_t>(p.v) % 16 == 0) && p.k_stride_b % 8 == 0 &&
                       p.k_stride_h % 8 == 0 && p.k_stride_n % 8 == 0 && p.v_stride_b % 8 == 0 &&
                       p.v_stride_h % 8 == 0 && p.v_stride_n % 8 == 0;
  // Short heads in fp16 mode without V smoothing (early_v): the stats items convert V (most
  // channels are kept unscaled, layout.h, so the conversion needs no head statistics and V is read
  // once) and the quantize items fold their K mean from the chunk records (which costs a read of
  // blocks x 4 * dp bytes per item, hence the cap). The head dims it is compiled for:
  // Shape::kEarlyV.
  const bool early_v = p.pv_mode == PvMode::kFp16 && p.smooth_v == Smoothing::kOff &&
                       p.seqlen_k_padded / kBlock <=
                           env_positive("SAGEATTN_KV_QUANT_EARLY_V_MAX_BLOCKS", kEarlyVMaxBlocks);
  const bool bf16 = p.dtype == DType::kBF16;
  // The cluster kernel where it can run, unless a path is forced (kv_quant.h). kAuto takes it
  // where it was measured at least level with the ticket kernel (bench/NOTES.md section 39: hd64
  // and hd128, fp8 and fp16 modes); not yet at padded head dim 256 (two CTAs per SM) nor where the
  // ticket kernel reads V once (early_v, compiled for hd128 and hd256), both unmeasured.
  // SAGEATTN_KV_QUANT_CLUSTER (kAuto only): 1 wherever it fits, 0 never, else that policy. The
  // device is asked whether the kernel fits only when it is wanted.
  bool cluster = p.path == KvQuantPath::kCluster;
  if (p.path == KvQuantPath::kAuto) {
    const char* env = std::getenv("SAGEATTN_KV_QUANT_CLUSTER");
    const std::string_view e = env != nullptr ? env : "";
    cluster = e == "1" || (e != "0" && dp != 256 && !(early_v && dp >= 128));
  }
  const char* unfit = cluster ? cluster_unfit_any(p) : nullptr;
  SAGEATTN_CHECK_CODE(p.path != KvQuantPath::kCluster || unfit == nullptr,
                      ErrorCode::kUnsupported, "kv_quantize: the cluster kernel cannot take ",
                      p.batch * p.heads_kv, " heads of ", p.seqlen_k_padded,
                      " padded tokens at head dim ", dp, ": ", unfit);
  if (cluster && unfit == nullptr) {
    switch (dp) {
      case 64:
        return bf16 ? launch_cluster<true, 64>(p, aligned, stream)
                    : launch_cluster<false, 64>(p, aligned, stream);
      case 128:
        return bf16 ? launch_cluster<true, 128>(p, aligned, stream)
                    : launch_cluster<false, 128>(p, aligned, stream);
      default:
        return bf16 ? launch_cluster<true, 256>(p, aligned, stream)
                    : launch_cluster<false, 256>(p, aligned, stream);
    }
  }
  switch (dp) {
    case 64:
      return bf16 ? launch<true, 64>(p, aligned, early_v, stream)
                  : launch<false, 64>(p, aligned, early_v, stream);
    case 128:
      return bf16 ? launch<true, 128>(p, aligned, early_v, stream)
                  : launch<false, 128>(p, aligned, early_v, stream);
    default:
      return bf16 ? launch<true, 256>(p, aligned, early_v, stream)
                  : launch<false, 256>(p, aligned, early_v, stream);
  }
}

}  // namespace sageattn::quant
