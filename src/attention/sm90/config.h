// src/attention/sm90/config.h: compile-time configuration of the warp-specialized wgmma kernel.
//
// One CTA = kSm90Tiles.block_q = 128 query rows of one (sequence, query head), three warpgroups:
//   warpgroup 0: the producer. One thread issues the TMA loads of K and V tiles (128 keys each)
//                into a ring of kStages stages, each stage guarded by a "full" mbarrier (the TMA
//                bytes landed) and an "empty" one (every consumer warp is done reading it).
//   warpgroups 1, 2: consumers, 64 query rows each. Q.K^T on wgmma s8 (Q and K from shared
//                memory), the online softmax in registers, P.V on wgmma with P from registers:
//                e4m3 (fp8 mode: the block's partial product in a separate accumulator, added to the
//                fp32 output accumulator, two-level accumulation) or f16 (fp16 mode).
// Shared memory: the int8 Q tile (128 x D), K stages (128 x D int8), V stages (fp8: D x 128, the
// quantizer's transposed, permuted layout; fp16: 128 x D as D / 64 slabs of 64 channels). Every
// tile is 1 KB aligned and stored in the swizzled layout that TMA writes and wgmma reads.
#pragma once

#include <cstddef>

#include "sageattn/layout.h"

namespace sageattn::sm90 {

inline constexpr int kBlockQ = kSm90Tiles.block_q;
inline constexpr int kBlockK = kSm90Tiles.block_k;
inline constexpr int kKBlock = kSm90Tiles.k_block;  // K quantization block (tokens)
inline constexpr int kWarpgroupThreads = 128;
inline constexpr int kConsumers = 2;  // consumer warpgroups
inline constexpr int kThreads = kWarpgroupThreads * (kConsumers + 1);
inline constexpr int kRowsPerConsumer = kBlockQ / kConsumers;
// Registers per thread after setmaxnreg: 2 x 128 x 240 + 128 x 24 <= 64K.
inline constexpr int kConsumerRegs = 240;
inline constexpr int kProducerRegs = 24;
// Named barrier ids (0 is __syncthreads).
inline constexpr int kBarConsumers = 1;  // the 256 consumer threads
// Ping-pong: consumer warpgroup c waits on barrier kBarTurn + c before issuing its wgmmas of a
// block, and arrives on the other's after: the two warpgroups' GEMMs alternate on the tensor
// cores, so that one's softmax runs while the other's GEMMs do (ids kBarTurn, kBarTurn + 1).
// Off by default: on an H100 it cost 1-2% (bench/NOTES.md section 15); -DSAGEATTN_SM90_PINGPONG=1
// builds it.
inline constexpr int kBarTurn = 2;
#ifndef SAGEATTN_SM90_PINGPONG
#define SAGEATTN_SM90_PINGPONG 0
#endif
inline constexpr bool kPingPong = SAGEATTN_SM90_PINGPONG != 0;
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
  static constexpr int kStages = 2;
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
