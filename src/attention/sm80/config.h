// src/attention/sm80/config.h: compile-time configuration of the mma.sync attention kernel.
//
// One CTA computes kSm80Tiles.block_q = 128 query rows of one (sequence, head), visiting K/V in
// blocks of block_k = 64 keys. A warp owns kMTiles m16 tiles (16 or 32 rows): with two, every K or
// V fragment it reads from shared memory feeds two MMAs (half the ldmatrix traffic per FLOP) at
// the price of twice the accumulator registers. Shared memory holds K tiles (int8, [64][D]), V
// tiles (fp8 transposed [D][64], or fp16 [64][D]) and the int8 Q tile (resident, or in the
// prologue only when Q lives in registers as mma A fragments). Every shared row is padded by
// 16 bytes so the 8 row addresses of an ldmatrix land in 8 different bank groups.
#pragma once

#include <cstddef>

#include "sageattn/layout.h"

namespace sageattn::sm80 {

inline constexpr int kBlockQ = kSm80Tiles.block_q;
inline constexpr int kBlockK = kSm80Tiles.block_k;
inline constexpr int kRowPad = 16;                      // bytes of padding per shared row
// Shared memory a block may use on every sm80-family device (sm86/sm89 allow 99 KB per block).
inline constexpr std::size_t kSmemBudget = 99 * 1024;

static_assert(kBlockK == 64, "P fragments are built for 64-key blocks");

// m16 tiles per warp for a head dim (see the header comment; bench/NOTES.md has the measurements).
// SAGEATTN_SM80_MTILES_HD<d> overrides it for experiments.
#ifndef SAGEATTN_SM80_MTILES_HD64
#define SAGEATTN_SM80_MTILES_HD64 1
#endif
#ifndef SAGEATTN_SM80_MTILES_HD128
#define SAGEATTN_SM80_MTILES_HD128 2
#endif
// Where a block issues the cp.async of the next K tile: -1 by head dim and mode (kEarlyKLoad
// below), 1 right after the block's first barrier, 0 after its softmax.
#ifndef SAGEATTN_SM80_EARLY_K_LOAD
#define SAGEATTN_SM80_EARLY_K_LOAD -1
#endif
constexpr int m_tiles_for(int head_dim) {
  return head_dim == 64 ? SAGEATTN_SM80_MTILES_HD64 : head_dim == 128 ? SAGEATTN_SM80_MTILES_HD128 : 1;
}

template <int kHeadDim, PvMode kMode>
struct KernelConfig {
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "head dim instantiation");
  static_assert(kMode == PvMode::kFp16 || kMode == PvMode::kFp8 || kMode == PvMode::kFp8Fp16Acc,
                "resolved PV mode");
  static constexpr int kD = kHeadDim;
  static constexpr bool kFp8 = kMode != PvMode::kFp16;
  static constexpr int kMTiles = m_tiles_for(kD);
  static constexpr int kRowsPerWarp = 16 * kMTiles;
  static constexpr int kWarps = kBlockQ / kRowsPerWarp;
  static constexpr int kThreads = 32 * kWarps;
  static_assert(kMTiles == 1 || kMTiles == 2, "one or two m16 tiles per warp");
  static_assert(kSm80Tiles.warp_q % kRowsPerWarp == 0,
                "a Q quantization group must cover whole warps' rows (one dequant factor per thread)");
  static constexpr int kKPitch = kD + kRowPad;                 // bytes per K row (int8)
  static constexpr int kQPitch = kD + kRowPad;                 // bytes per Q row (int8)
  static constexpr int kVPitch = kFp8 ? kBlockK + kRowPad      // fp8: [D][64] bytes
                                      : kD * 2 + kRowPad;      // fp16: [64][D] halves
  static constexpr int kVRows = kFp8 ? kD : kBlockK;
  static constexpr std::size_t kKTile = std::size_t(kBlockK) * kKPitch;
  static constexpr std::size_t kVTile = std::size_t(kVRows) * kVPitch;
  static constexpr std::size_t kQTile = std::size_t(kBlockQ) * kQPitch;
  // Two K stages when they fit, else one (fp16 P·V at D = 256 on 99 KB devices).
  static constexpr int kKStages = (2 * kKTile + 2 * kVTile <= kSmemBudget) ? 2 : 1;
  static constexpr int kVStages = 2;
  // The next K tile's cp.async at the start of a block (more time in flight, and ptxas spills
  // less at hd128) rather than after its softmax. H100, N = 16K, kernel TFLOPS: hd128 fp16
  // 389 -> 414, fp8 351 -> 361, hd64 fp16 325 -> 329, but hd64 fp8 299 -> 285, so not there;
  // hd256 unmeasured, unchanged (bench/NOTES.md section 8).
  static constexpr bool kEarlyKLoad = SAGEATTN_SM80_EARLY_K_LOAD >= 0 ? SAGEATTN_SM80_EARLY_K_LOAD != 0
                                                                     : (kD == 128 || (kD == 64 && !kFp8));
  // Q fragments: kept in registers for the whole loop (hd64: they are few; hd256: two CTAs per
  // SM are out of reach anyway), or re-read from a resident int8 Q tile every K block (hd128:
  // frees the 16 registers whose lack made the two-CTA build spill; bench/NOTES.md).
  static constexpr bool kQInRegisters = kD != 128;
  static_assert(!kQInRegisters || kMTiles == 1 || kD <= 64, "Q fragments in registers: few of them");
  // A Q tile in registers is only needed before the main loop: it shares the V stages' space.
  static constexpr std::size_t kVRegion =
      (!kQInRegisters || kVStages * kVTile > kQTile) ? kVStages * kVTile : kQTile;
  static constexpr std::size_t kSmemBytes =
      kKStages * kKTile + kVRegion + (kQInRegisters ? 0 : kQTile);
  // CTAs per SM the register allocation targets (__launch_bounds__). One m16 tile per warp: 2 CTAs
  // of 8 warps cap registers at 128 so 16 warps share an SM and hide each other's latency
  // (bench/NOTES.md: 1 CTA of 8 warps left 64% of scheduler cycles with no eligible warp); D = 256
  // needs more registers. Two m16 tiles per warp: 2 CTAs of 4 warps, up to 255 registers.
  static constexpr int kMinBlocksPerSm = kD <= 128 ? 2 : 1;
  static_assert(kSmemBytes <= kSmemBudget, "shared memory budget");
  static_assert(kKPitch % 16 == 0 && kVPitch % 16 == 0 && ((kKPitch / 16) % 2) == 1 &&
                    ((kVPitch / 16) % 2) == 1,
                "padded pitches must be an odd number of 16-byte units (conflict-free ldmatrix)");
};

}  // namespace sageattn::sm80
