// src/attention/sm90/config.h: compile-time configuration of the warp-specialized wgmma kernel.
//
// One CTA = kSm90Tiles.block_q = 192 query rows of one (sequence, query head), four warpgroups:
//   warpgroup 0: the producer. One thread issues the TMA loads of K and V tiles (128 keys each)
//                into a ring of kStages stages, each stage guarded by a "full" mbarrier (the TMA
//                bytes landed) and an "empty" one (every consumer warp is done reading it).
//   warpgroups 1-3: consumers, 64 query rows each, each running its own synchronous loop: Q.K^T on
//                wgmma s8 (Q and K from shared memory), the online softmax in registers, P.V on
//                wgmma with P from registers: e4m3 (fp8 mode: the block's partial product in a
//                separate accumulator, added to the fp32 output accumulator, two-level
//                accumulation) or f16 (fp16 mode). Three independent consumers per SM: while one
//                runs its softmax (exponentials on the XU pipe), the others' GEMMs keep the tensor
//                cores busy (bench/NOTES.md section 16).
// Shared memory: the int8 Q tile (192 x D), K stages (128 x D int8), V stages (fp8: D x 128, the
// quantizer's transposed, permuted layout; fp16: 128 x D as D / 64 slabs of 64 channels). Every
// tile is 1 KB aligned and stored in the swizzled layout that TMA writes and wgmma reads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sageattn/layout.h"

namespace sageattn::sm90 {

inline constexpr int kBlockQ = kSm90Tiles.block_q;
inline constexpr int kBlockK = kSm90Tiles.block_k;
inline constexpr int kKBlock = kSm90Tiles.k_block;  // K quantization block (tokens)
inline constexpr int kWarpgroupThreads = 128;
inline constexpr int kConsumers = 3;  // consumer warpgroups
inline constexpr int kThreads = kWarpgroupThreads * (kConsumers + 1);
inline constexpr int kRowsPerConsumer = kBlockQ / kConsumers;
// Registers per thread after setmaxnreg: 3 x 128 x 160 + 128 x 24 <= 64K. At launch every thread
// holds 65536 / 512 = 128 (__launch_bounds__); setmaxnreg moves the producer's share to the
// consumers.
inline constexpr int kConsumerRegs = 160;
inline constexpr int kProducerRegs = 24;
// Named barrier ids (0 is __syncthreads).
inline constexpr int kBarConsumers = 1;  // the consumer threads
inline constexpr int kBarWarpgroup0 = 2;  // + cw: consumer warpgroup cw's 128 threads
// K/V ring depth (-DSAGEATTN_SM90_STAGES=n for experiments).
#ifndef SAGEATTN_SM90_STAGES
#define SAGEATTN_SM90_STAGES 2
#endif
// Query tiles of kBlockQ rows per sequence (max_seqlen_q rows): the grid's x holds
// sequences x tiles.
__host__ __device__ constexpr int64_t query_tiles(int64_t seqlen_q) { return (seqlen_q + kBlockQ - 1) / kBlockQ; }
// Shared memory a CTA may use on sm90 (227 KB).
inline constexpr std::size_t kSmemBudget = 227 * 1024;

static_assert(kRowsPerConsumer == 64, "a consumer warpgroup owns one m64 wgmma tile of rows");
static_assert(kBlockK == 128 && kBlockK % kKBlock == 0, "P fragments are built for 128-key blocks");
static_assert(kConsumers * kWarpgroupThreads * kConsumerRegs + kWarpgroupThreads * kProducerRegs <= 65536,
              "register file");

template <int kHeadDim, PvMode kMode>
struct KernelConfig {
  static_assert(kHeadDim == 64 || kHeadDim == 128, "sm90 head dim instantiation");
  static_assert(kMode == PvMode::kFp16 || kMode == PvMode::kFp8, "sm90 P.V modes: fp16, fp8");
  static constexpr int kD = kHeadDim;
  static constexpr bool kFp8 = kMode == PvMode::kFp8;
  // int8 rows of Q and K are kD bytes: the swizzle that spans one row.
  static constexpr int kQkSwizzle = kD >= 128 ? 128 : 64;
  static constexpr int kStages = SAGEATTN_SM90_STAGES;
  static constexpr std::size_t kQBytes = std::size_t(kBlockQ) * kD;
  static constexpr std::size_t kKTileBytes = std::size_t(kBlockK) * kD;
  static constexpr std::size_t kVTileBytes = std::size_t(kBlockK) * kD * (kFp8 ? 1 : 2);
  static constexpr std::size_t kQOffset = 0;
  static constexpr std::size_t kKOffset = kQOffset + kQBytes;
  static constexpr std::size_t kVOffset = kKOffset + kStages * kKTileBytes;
  // + 1 KB: the dynamic shared memory base is aligned up to 1 KB in the kernel.
  static constexpr std::size_t kSmemBytes = kVOffset + kStages * kVTileBytes + 1024;
  static_assert(kQBytes % 1024 == 0 && kKTileBytes % 1024 == 0 && kVTileBytes % 1024 == 0,
                "1 KB aligned tiles (swizzle atoms)");
  static_assert(kSmemBytes + 4 * 1024 <= kSmemBudget, "shared memory budget");
};

}  // namespace sageattn::sm90
