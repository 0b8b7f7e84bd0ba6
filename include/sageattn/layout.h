// sageattn/layout.h: the one source of truth for tile sizes, quantization group layouts and the
// numeric constants of the contract (DESIGN.md §1, docs/NUMERICS.md).
//
// Kernels, quantizers, the CPU reference, host heuristics and the Python package all read these
// values; nothing else may repeat a block size. Everything here is constexpr and plain C++ so
// that host code and device code can include it.
//
// Quantization groups. A group is a set of tokens of one (batch, head) that share one int8
// dequantization factor. Tokens are cut into blocks of `block` tokens (counted from the start of
// each sequence; the last block may be short). Inside a block, token t belongs to sub-group
// (t / stride) % count. Group index = block_index * count + sub-group. This describes all three
// granularities for the mma.sync fragment layouts:
//   per-block  : Q {block_q, 1, 1};   K {k_block, 1, 1}
//   per-warp   : Q {warp_q, 1, 1};    K {k_block, 1, 1}
//   per-thread : Q {warp_q, 1, 8}     (an m16n8 accumulator thread holds rows r with r % 8 == lane / 4)
//                K {k_block, 2, 4}    (it holds columns c with (c % 8) / 2 == lane % 4)
// The wgmma accumulator (sm90) spreads rows and columns over a warp's lanes exactly as m16n8 does,
// so the same groups serve both kernel families.
#pragma once

#include <cstdint>

#include "sageattn/types.h"

namespace sageattn {

// ---- numeric constants (named once; kernels and the reference use these) ----
inline constexpr double kLog2e = 1.4426950408889634074;   // log2(e)
inline constexpr double kLn2 = 0.69314718055994530942;    // ln(2)
inline constexpr float kInt8Max = 127.0f;                 // symmetric int8 range [-127, 127]
inline constexpr float kFp8E4M3Max = 448.0f;              // largest finite e4m3 value
inline constexpr float kLog2Fp8E4M3Max = 8.8073549220576041f;  // log2(448): P is scaled to [0, 448]
inline constexpr float kFp16Max = 65504.0f;               // largest finite fp16 value
// An all-zero group quantizes with this amax instead of 0: never a division by zero, and
// 127 / kMinAmax stays finite in fp32.
inline constexpr float kMinAmax = 1e-30f;
// K and V means are summed in fp32 in a fixed two-level order: chunks of kMeanChunkTokens tokens
// (tokens ascending within a chunk, from 0), groups of kMeanGroupChunks consecutive chunks (the
// last group may be short; chunk sums ascending within a group, from 0), then the group sums in
// ascending group order (from 0), divided by the token count. A fixed order makes the GPU
// quantizers bit-identical to the CPU reference; the groups keep the GPU's fold of a head short
// (docs/NUMERICS.md §2).
inline constexpr int kMeanChunkTokens = 64;
inline constexpr int kMeanGroupChunks = 8;
// fp16 P·V mode: a V channel whose amax lies in [2^kFp16VKeepMinExp, 2^kFp16VKeepMaxExp) is
// converted unscaled (scale 1): every bf16 value of magnitude >= 2^-17 is exact in fp16 and a
// smaller one is off by at most 2^-25 <= 2^-15 * amax. Any other channel with amax > 0 is scaled by
// a power of two 2^e so that its amax lands in [2^(kFp16VTargetExp - 1), 2^kFp16VTargetExp): a
// power of two keeps every bf16 value exact in fp16 (8 significant bits fit in 11) and fp32 block
// sums far from overflow. Unscaled channels let the GPU quantizer convert V in the same pass that
// reads it for the statistics (docs/NUMERICS.md §2).
inline constexpr int kFp16VKeepMinExp = -10;
inline constexpr int kFp16VKeepMaxExp = 15;
inline constexpr int kFp16VTargetExp = 14;
// fp8 MMA instructions (mma.sync m16n8k32, wgmma k32) reduce this many products per step; with
// fp16 accumulation (fp8_fp16acc) the running sum is rounded to fp16 after each step.
inline constexpr int kFp8MmaK = 32;

// ---- quantization groups ----
struct GroupSpec {
  int block;   // tokens per block
  int stride;  // tokens per sub-group step inside a block
  int count;   // sub-groups per block

  constexpr int64_t num_groups(int64_t tokens) const {
    return (tokens + block - 1) / block * count;
  }
  constexpr int64_t group_of(int64_t token) const { return group_index(token); }
  // group_of in 32-bit arithmetic, for token indices inside one tile (kernels: 64-bit division by
  // a runtime divisor costs a subroutine call).
  constexpr int group_of_local(int token) const { return group_index(token); }
  template <typename T>
  constexpr T group_index(T token) const {
    return token / block * count + (token % block) / stride % count;
  }
};

// Tile sizes of one kernel family. The online softmax advances block_k keys at a time, so the
// reference that checks a kernel must use that kernel's block_k. K is quantized in blocks of
// k_block tokens (the GPU quantizer's work item); block_k is a multiple of it, so a softmax step
// covers block_k / k_block K quantization blocks.
struct TileConfig {
  int block_q;  // query rows per CTA
  int block_k;  // keys per softmax step
  int warp_q;   // query rows per warp (per warpgroup-warp on sm90)
  int k_block;  // tokens per K quantization block

  constexpr GroupSpec q_groups(Granularity g) const {
    switch (g) {
      case Granularity::kPerBlock: return {block_q, 1, 1};
      case Granularity::kPerWarp: return {warp_q, 1, 1};
      case Granularity::kPerThread: return {warp_q, 1, 8};
    }
    return {warp_q, 1, 1};
  }
  constexpr GroupSpec k_groups(Granularity g) const {
    switch (g) {
      case Granularity::kPerBlock:
      case Granularity::kPerWarp: return {k_block, 1, 1};
      case Granularity::kPerThread: return {k_block, 2, 4};
    }
    return {k_block, 1, 1};
  }
  // fp8_fp16acc: V is scaled to [-r, r] with r chosen so one block's partial sum of P·V stays
  // below fp16's 65504 even when every P is 448: block_k * 448 * r <= 65504 (r = 2.25 at 64).
  constexpr float fp16acc_v_range() const { return 2.25f * 64.0f / static_cast<float>(block_k); }
};

// The mma.sync kernel family (sm80/sm86/sm89/sm90 generic path). The CPU backend emulates these
// tiles, so its quantized results are the ones the sm80 kernels must reproduce.
inline constexpr TileConfig kSm80Tiles{128, 64, 32, 64};
// The warp-specialized wgmma kernels (sm90a): three consumer warpgroups of 64 rows (192 per CTA),
// 128-key steps, K groups of the shared quantizer's 64 tokens (two per step).
inline constexpr TileConfig kSm90Tiles{192, 128, 16, 64};

// Head dims: any multiple of 8 in [kMinHeadDim, kMaxHeadDim].
inline constexpr int kMinHeadDim = 8;
inline constexpr int kMaxHeadDim = 256;
inline constexpr int kHeadDimMultiple = 8;

static_assert(kSm80Tiles.block_q % kSm80Tiles.warp_q == 0, "warps must tile block_q");
static_assert(kSm80Tiles.block_k % 8 == 0, "per-thread K groups need block_k % 8 == 0");
static_assert(kSm80Tiles.k_block == kSm80Tiles.block_k && kSm90Tiles.k_block == kSm80Tiles.k_block,
              "one K quantizer (64-token items) serves both kernel families");
static_assert(kSm90Tiles.block_k % kSm90Tiles.k_block == 0 && kSm90Tiles.block_q % kSm90Tiles.warp_q == 0,
              "sm90 steps hold whole K groups; warps tile block_q");
static_assert(kSm80Tiles.block_k * kFp8E4M3Max * (2.25f * 64.0f / kSm80Tiles.block_k) <= kFp16Max,
              "fp8_fp16acc: one block's partial sum must fit fp16");

}  // namespace sageattn
