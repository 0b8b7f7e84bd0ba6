// tests/cpu/test_quantize.cpp: the quantization steps of the CPU reference are the bit-exact
// definitions the GPU quantizers must reproduce (src/cpu/reference.h, DESIGN.md §1.1-1.4).
//
// Each test checks one definition against an oracle written here from the documented formula
// (GroupSpec fragment groups, the fixed-order K mean, int8 scales/codes with round-half-even,
// the V scales and codes of the three PV modes), plus the properties that make the formula
// right: ranges, reconstruction error, all-zero and empty groups. Deterministic seeds only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/numerics.h"
#include "cpu/reference.h"
#include "cpu/test_support.h"
#include "sageattn/layout.h"

namespace sageattn {
namespace {

using test::f32_bits;
using test::Rng;

constexpr Granularity kGranularities[] = {Granularity::kPerBlock, Granularity::kPerWarp,
                                          Granularity::kPerThread};

// ============================================================================ GroupSpec

// Oracle: the group of token t, written from the fragment layout of mma.sync m16n8 rather than
// from GroupSpec's formula.
int64_t expected_q_group(Granularity g, int64_t t) {
  switch (g) {
    case Granularity::kPerBlock:
      return t / 128;  // one CTA's 128 rows
    case Granularity::kPerWarp:
      return t / 32;  // one warp's 32 rows
    case Granularity::kPerThread:
      return t / 32 * 8 + t % 8;  // rows r with r % 8 == lane / 4
  }
  return -1;
}
int64_t expected_k_group(Granularity g, int64_t t) {
  switch (g) {
    case Granularity::kPerBlock:
    case Granularity::kPerWarp:
      return t / 64;  // one K block of 64 tokens
    case Granularity::kPerThread:
      return t / 64 * 4 + (t % 8) / 2;  // columns (c % 8) / 2 == lane % 4
  }
  return -1;
}
int64_t expected_groups(int64_t tokens, int64_t block, int64_t count) {
  return (tokens + block - 1) / block * count;
}

TEST(GroupSpecTest, Sm80TilesAreTheDocumentedOnes) {
  EXPECT_EQ(kSm80Tiles.block_q, 128);
  EXPECT_EQ(kSm80Tiles.block_k, 64);
  EXPECT_EQ(kSm80Tiles.warp_q, 32);
}

TEST(GroupSpecTest, GroupOfMatchesFragmentLayoutForEveryGranularity) {
  for (Granularity g : kGranularities) {
    const GroupSpec qg = kSm80Tiles.q_groups(g), kg = kSm80Tiles.k_groups(g);
    for (int64_t t = 0; t < 1000; ++t) {
      ASSERT_EQ(qg.group_of(t), expected_q_group(g, t)) << to_string(g) << " Q token " << t;
      ASSERT_EQ(kg.group_of(t), expected_k_group(g, t)) << to_string(g) << " K token " << t;
    }
  }
}

TEST(GroupSpecTest, NumGroupsCountsAShortLastBlockAsAWholeBlock) {
  struct Expect {
    Granularity g;
    int64_t q_block, q_count, k_block, k_count;
  };
  const Expect table[] = {{Granularity::kPerBlock, 128, 1, 64, 1},
                          {Granularity::kPerWarp, 32, 1, 64, 1},
                          {Granularity::kPerThread, 32, 8, 64, 4}};
  for (const Expect& e : table) {
    const GroupSpec qg = kSm80Tiles.q_groups(e.g), kg = kSm80Tiles.k_groups(e.g);
    for (int64_t n : {0, 1, 2, 7, 8, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000}) {
      EXPECT_EQ(qg.num_groups(n), expected_groups(n, e.q_block, e.q_count))
          << to_string(e.g) << " Q tokens " << n;
      EXPECT_EQ(kg.num_groups(n), expected_groups(n, e.k_block, e.k_count))
          << to_string(e.g) << " K tokens " << n;
      // Every token's group is a valid index; the last token lands in the last block.
      if (n > 0) {
        EXPECT_LT(qg.group_of(n - 1), qg.num_groups(n));
        EXPECT_LT(kg.group_of(n - 1), kg.num_groups(n));
        EXPECT_GE(qg.group_of(n - 1), qg.num_groups(n) - qg.count);
        EXPECT_GE(kg.group_of(n - 1), kg.num_groups(n) - kg.count);
      }
    }
  }
}

// Per-thread Q: two rows share a group iff they are in the same 32-row warp block and have the
// same row % 8 (the rows of one m16n8 accumulator thread). 4 rows per group in a full block.
TEST(GroupSpecTest, PerThreadQGroupsRowsWithEqualRowMod8InAWarpBlock) {
  const GroupSpec qg = kSm80Tiles.q_groups(Granularity::kPerThread);
  for (int64_t a = 0; a < 160; ++a)
    for (int64_t b = 0; b < 160; ++b) {
      const bool same = a / 32 == b / 32 && a % 8 == b % 8;
      ASSERT_EQ(qg.group_of(a) == qg.group_of(b), same) << "rows " << a << ", " << b;
    }
  std::vector<int> members(qg.num_groups(128), 0);
  for (int64_t t = 0; t < 128; ++t) ++members[qg.group_of(t)];
  for (int m : members) EXPECT_EQ(m, 4);
}

// Per-thread K: two tokens share a group iff they are in the same 64-token block and have the
// same (t % 8) / 2 (the columns of one m16n8 accumulator thread). 16 tokens per group.
TEST(GroupSpecTest, PerThreadKGroupsTokensWithEqualPairColumnInABlock) {
  const GroupSpec kg = kSm80Tiles.k_groups(Granularity::kPerThread);
  for (int64_t a = 0; a < 200; ++a)
    for (int64_t b = 0; b < 200; ++b) {
      const bool same = a / 64 == b / 64 && (a % 8) / 2 == (b % 8) / 2;
      ASSERT_EQ(kg.group_of(a) == kg.group_of(b), same) << "tokens " << a << ", " << b;
    }
  std::vector<int> members(kg.num_groups(128), 0);
  for (int64_t t = 0; t < 128; ++t) ++members[kg.group_of(t)];
  for (int m : members) EXPECT_EQ(m, 16);
}

// ============================================================================ channel_mean

// The documented order, written out (docs/NUMERICS.md §2): fp32 sums of 64-token chunks (tokens
// ascending), chunk sums added in ascending order within groups of 8 chunks, group sums added in
// ascending order (every sum from 0), then divided by the token count.
std::vector<float> grouped_mean_oracle(const std::vector<float>& x, int64_t tokens, int64_t dim) {
  std::vector<float> mean(dim);
  for (int64_t d = 0; d < dim; ++d) {
    float total = 0.0f;
    for (int64_t g = 0; g < tokens; g += 64 * 8) {
      float group = 0.0f;
      for (int64_t c = g; c < std::min<int64_t>(tokens, g + 64 * 8); c += 64) {
        float chunk = 0.0f;
        for (int64_t t = c; t < std::min<int64_t>(tokens, c + 64); ++t) chunk += x[t * dim + d];
        group += chunk;
      }
      total += group;
    }
    mean[d] = tokens > 0 ? total / static_cast<float>(tokens) : 0.0f;
  }
  return mean;
}

// The one-level order the library used before the groups: chunk sums added in ascending order.
// It equals the grouped order up to 9 chunks (the first group is added to 0 first in both) and
// may differ from 10 chunks on.
std::vector<float> flat_chunk_mean(const std::vector<float>& x, int64_t tokens, int64_t dim) {
  std::vector<float> mean(dim);
  for (int64_t d = 0; d < dim; ++d) {
    float total = 0.0f;
    for (int64_t c = 0; c < tokens; c += 64) {
      float chunk = 0.0f;
      for (int64_t t = c; t < std::min<int64_t>(tokens, c + 64); ++t) chunk += x[t * dim + d];
      total += chunk;
    }
    mean[d] = tokens > 0 ? total / static_cast<float>(tokens) : 0.0f;
  }
  return mean;
}

// Wide dynamic range (values from 2^-8 to 2^8 times N(0,1), plus a per-channel offset) so that
// fp32 rounding depends on the order of the additions.
std::vector<float> wide_range_input(int64_t tokens, int64_t dim, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(tokens * dim);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t d = 0; d < dim; ++d)
      x[t * dim + d] = static_cast<float>(std::ldexp(rng.normal(), int(rng.below(17)) - 8) +
                                          0.37 * static_cast<double>(d));
  return x;
}

std::vector<float> library_mean(const std::vector<float>& x, int64_t tokens, int64_t dim) {
  std::vector<float> mean(dim, test::poison_f32());
  cpu::channel_mean(x.data(), tokens, dim, mean.data());
  return mean;
}

TEST(ChannelMeanTest, ChunkIsSixtyFourTokens) { EXPECT_EQ(kMeanChunkTokens, 64); }
TEST(ChannelMeanTest, GroupIsEightChunks) { EXPECT_EQ(kMeanGroupChunks, 8); }

// Lengths around the chunk and group edges: 1, 8, 9, 10, 16, 17, 18 and 65 chunks, short last
// chunks and short last groups.
TEST(ChannelMeanTest, EqualsTheDocumentedOrderBitForBit) {
  const int64_t dim = 64;
  for (int64_t tokens : {1, 63, 64, 65, 200, 512, 513, 576, 577, 640, 1000, 1024, 1025, 1088, 1100,
                         4097}) {
    const std::vector<float> x = wide_range_input(tokens, dim, 100 + tokens);
    const std::vector<float> expect = grouped_mean_oracle(x, tokens, dim);
    const std::vector<float> got = library_mean(x, tokens, dim);
    EXPECT_EQ(test::count_bit_mismatches(expect, got), 0) << "tokens " << tokens;
  }
}

// The bit-for-bit test above is only a proof of the order if other plausible orders give other
// bits on the same kind of data: a naive sequential fp32 sum, a multiply by 1/N instead of the
// division, and the one-level chunk order (chunk sums added in order, no groups) all differ
// somewhere on 1000 tokens (16 chunks, two groups) x 64 channels.
TEST(ChannelMeanTest, OtherOrdersGiveOtherBitsOnTheSameData) {
  const int64_t tokens = 1000, dim = 64;
  const std::vector<float> x = wide_range_input(tokens, dim, 7);
  const std::vector<float> got = library_mean(x, tokens, dim);
  std::vector<float> sequential(dim), reciprocal(dim);
  const std::vector<float> expect = grouped_mean_oracle(x, tokens, dim);
  for (int64_t d = 0; d < dim; ++d) {
    float s = 0.0f;
    for (int64_t t = 0; t < tokens; ++t) s += x[t * dim + d];
    sequential[d] = s / static_cast<float>(tokens);
    float total = 0.0f;  // the documented order, but a multiply by 1 / N at the end
    for (int64_t g = 0; g < tokens; g += 512) {
      float group = 0.0f;
      for (int64_t c = g; c < std::min<int64_t>(tokens, g + 512); c += 64) {
        float chunk = 0.0f;
        for (int64_t t = c; t < std::min<int64_t>(tokens, c + 64); ++t) chunk += x[t * dim + d];
        group += chunk;
      }
      total += group;
    }
    reciprocal[d] = total * (1.0f / static_cast<float>(tokens));
  }
  EXPECT_EQ(test::count_bit_mismatches(expect, got), 0);
  EXPECT_GT(test::count_bit_mismatches(sequential, got), 0);
  EXPECT_GT(test::count_bit_mismatches(reciprocal, got), 0);
  EXPECT_GT(test::count_bit_mismatches(flat_chunk_mean(x, tokens, dim), got), 0);
}

// Up to 9 chunks the grouped order is the one-level chunk order (one group, or one group and one
// chunk, each added to 0 first): the contract change left N <= 576 alone.
TEST(ChannelMeanTest, UpToNineChunksEqualsTheOneLevelOrder) {
  const int64_t dim = 64;
  for (int64_t tokens : {1, 64, 200, 512, 513, 576}) {
    const std::vector<float> x = wide_range_input(tokens, dim, 300 + tokens);
    EXPECT_EQ(test::count_bit_mismatches(flat_chunk_mean(x, tokens, dim),
                                         library_mean(x, tokens, dim)),
              0)
        << "tokens " << tokens;
  }
}

// An input where the order decides the answer: token 0 holds 2^24 and the other 127 tokens hold 1.
// A sequential fp32 sum loses every 1 (2^24 + 1 rounds back to 2^24, ties to even): mean 2^17.
// The chunked order loses the 63 ones of chunk 0 but adds chunk 1's exact 64: mean
// (2^24 + 64) / 128 = 131072.5. An exact sum would give (2^24 + 127) / 128 instead. Channel 1
// holds -2^24 first: -2^24 + k is exact in fp32, nothing is lost, mean (-2^24 + 127) / 128.
TEST(ChannelMeanTest, AdversarialInputShowsTheChunkedOrder) {
  const int64_t tokens = 128, dim = 2;
  std::vector<float> x(tokens * dim, 1.0f);
  x[0] = 16777216.0f;
  x[1] = -16777216.0f;
  const std::vector<float> got = library_mean(x, tokens, dim);
  EXPECT_EQ(got[0], 131072.5f);
  EXPECT_EQ(got[1], -131071.0078125f);
  float sequential = 0.0f;
  for (int64_t t = 0; t < tokens; ++t) sequential += x[t * dim];
  EXPECT_EQ(sequential / 128.0f, 131072.0f);
  EXPECT_NE(got[0], sequential / 128.0f);
}

// An input where the groups decide the answer. 1100 tokens: 18 chunks (the last holds 12 tokens),
// groups of 8, 8 and 2 chunks. Token 0 holds 2^24 in every channel; each channel has two more
// tokens of 1 in two different chunks:
//   channel 0: chunks 8 and 9 (group 1): the group sum 2 joins 2^24 exactly, total 2^24 + 2;
//              the one-level order adds 2^24 + 1 twice, and each rounds back to 2^24 (ties to
//              even), total 2^24.
//   channel 1: chunks 16 and 17 (the short last group, the short last chunk): the same.
//   channel 2: chunks 1 and 2 (group 0): both orders add each 1 to 2^24 alone: total 2^24.
// Means (2^24 + 2) / 1100 = 0x1.dca022p+13 and 2^24 / 1100 = 0x1.dca01ep+13 in fp32.
TEST(ChannelMeanTest, AdversarialInputShowsTheGroupedOrder) {
  const int64_t tokens = 1100, dim = 3;
  std::vector<float> x(tokens * dim, 0.0f);
  for (int64_t d = 0; d < dim; ++d) x[d] = 16777216.0f;
  const int64_t ones[dim][2] = {{8 * 64, 9 * 64 + 5}, {16 * 64 + 3, 17 * 64 + 11}, {64, 2 * 64}};
  for (int64_t d = 0; d < dim; ++d)
    for (int64_t t : ones[d]) x[t * dim + d] = 1.0f;
  const std::vector<float> got = library_mean(x, tokens, dim);
  EXPECT_EQ(got[0], 0x1.dca022p+13f);
  EXPECT_EQ(got[1], 0x1.dca022p+13f);
  EXPECT_EQ(got[2], 0x1.dca01ep+13f);
  const std::vector<float> flat = flat_chunk_mean(x, tokens, dim);
  EXPECT_EQ(flat[0], 0x1.dca01ep+13f);
  EXPECT_EQ(flat[1], 0x1.dca01ep+13f);
  EXPECT_EQ(flat[2], 0x1.dca01ep+13f);
}

TEST(ChannelMeanTest, ZeroTokensGiveZeros) {
  const std::vector<float> x(1, 5.0f);  // never read
  const std::vector<float> got = library_mean(x, 0, 16);
  for (float m : got) EXPECT_EQ(f32_bits(m), 0u);  // +0, not NaN, not the poison
}

// ============================================================================ quantize_int8

struct Int8Result {
  std::vector<int8_t> codes;
  std::vector<float> scales;
};

Int8Result run_int8(const std::vector<float>& x, int64_t tokens, int64_t dim, const GroupSpec& gs,
                    float factor) {
  Int8Result r;
  r.codes.assign(tokens * dim, int8_t(99));                        // 99 is never a valid code here
  r.scales.assign(gs.num_groups(tokens) + 1, test::poison_f32());  // +1: detects overruns
  cpu::quantize_int8(x.data(), tokens, dim, gs, factor, r.codes.data(), r.scales.data());
  return r;
}

// Tokens with magnitudes spread over 2^-6..2^6 (per token), so that groups have different amax.
std::vector<float> spread_tokens(int64_t tokens, int64_t dim, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(tokens * dim);
  for (int64_t t = 0; t < tokens; ++t) {
    const int e = static_cast<int>(rng.below(13)) - 6;
    for (int64_t d = 0; d < dim; ++d)
      x[t * dim + d] = static_cast<float>(std::ldexp(rng.normal(), e));
  }
  return x;
}

// Oracle: amax per group over the group's tokens (membership from the fragment layout oracle).
std::vector<float> group_amax(const std::vector<float>& x, int64_t tokens, int64_t dim,
                              int64_t n_groups, bool is_q, Granularity g) {
  std::vector<float> amax(n_groups, 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t grp = is_q ? expected_q_group(g, t) : expected_k_group(g, t);
    for (int64_t d = 0; d < dim; ++d) amax[grp] = std::max(amax[grp], std::fabs(x[t * dim + d]));
  }
  return amax;
}

int8_t rne_code(float x, float inv) {
  const float y = std::nearbyint(x * inv);  // default rounding mode: nearest, ties to even
  return static_cast<int8_t>(std::clamp(y, -127.0f, 127.0f));
}

TEST(QuantizeInt8Test, ScalesAndCodesFollowTheDefinitionForEveryGroupLayout) {
  const int64_t dim = 64;
  const float q_factor = static_cast<float>(static_cast<double>(0.125f) * kLog2e);
  for (Granularity g : kGranularities)
    for (bool is_q : {true, false})
      for (int64_t tokens : {1, 33, 100, 129, 300}) {
        const GroupSpec gs = is_q ? kSm80Tiles.q_groups(g) : kSm80Tiles.k_groups(g);
        const float factor = is_q ? q_factor : 1.0f;
        const std::vector<float> x = spread_tokens(tokens, dim, 1000 + tokens);
        const Int8Result r = run_int8(x, tokens, dim, gs, factor);
        const int64_t n_groups = gs.num_groups(tokens);
        const std::vector<float> amax = group_amax(x, tokens, dim, n_groups, is_q, g);
        SCOPED_TRACE(testing::Message()
                     << to_string(g) << (is_q ? " Q" : " K") << " tokens " << tokens);
        for (int64_t grp = 0; grp < n_groups; ++grp) {
          const float a = std::max(amax[grp], kMinAmax);
          ASSERT_EQ(f32_bits(r.scales[grp]), f32_bits((a / 127.0f) * factor)) << "group " << grp;
        }
        EXPECT_EQ(f32_bits(r.scales[n_groups]), test::kPoison32) << "wrote past num_groups";
        for (int64_t t = 0; t < tokens; ++t) {
          const int64_t grp = is_q ? expected_q_group(g, t) : expected_k_group(g, t);
          const float inv = 127.0f / std::max(amax[grp], kMinAmax);
          for (int64_t d = 0; d < dim; ++d)
            ASSERT_EQ(r.codes[t * dim + d], rne_code(x[t * dim + d], inv))
                << "token " << t << " dim " << d << " x " << x[t * dim + d];
        }
      }
}

// The element that holds a group's amax maps to +-127 (never 126 from an inexact 127 / amax), for
// many amax values; every code stays in [-127, 127].
TEST(QuantizeInt8Test, AmaxElementMapsToPlusMinus127) {
  const GroupSpec gs = kSm80Tiles.k_groups(Granularity::kPerWarp);
  const int64_t tokens = 64, dim = 8;
  Rng rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<float> x(tokens * dim);
    for (float& e : x) e = static_cast<float>(rng.uniform() * 2.0 - 1.0);
    const float amax = static_cast<float>(std::ldexp(1.0 + rng.uniform(), int(rng.below(40)) - 20));
    const int64_t at = rng.below(tokens * dim);
    for (float& e : x) e *= amax * 0.999f;
    x[at] = trial % 2 ? amax : -amax;
    const Int8Result r = run_int8(x, tokens, dim, gs, 1.0f);
    ASSERT_EQ(r.codes[at], trial % 2 ? 127 : -127) << "amax " << amax;
    for (int8_t c : r.codes) ASSERT_TRUE(c >= -127 && c <= 127);
  }
}

// Round half to even, not half away from zero: with amax 127 the factor 127 / amax is exactly 1.
TEST(QuantizeInt8Test, RoundsHalfToEven) {
  const GroupSpec gs = kSm80Tiles.k_groups(Granularity::kPerWarp);
  const std::vector<float> x = {127.0f, 2.5f, 3.5f,   -2.5f,   -3.5f,      0.5f,
                                -0.5f,  1.5f, 126.5f, -126.5f, 2.4999998f, 2.5000002f};
  const std::vector<int8_t> expect = {127, 2, 4, -2, -4, 0, 0, 2, 126, -126, 2, 3};
  const Int8Result r = run_int8(x, 1, static_cast<int64_t>(x.size()), gs, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r.codes[i], expect[i]) << "x = " << x[i];
  EXPECT_EQ(r.scales[0], 1.0f);
}

// |x - code * s| <= s / 2 for every element (s = amax / 127), up to the fp32 rounding of x * inv.
TEST(QuantizeInt8Test, ReconstructionErrorIsAtMostHalfAStep) {
  for (Granularity g : kGranularities) {
    const GroupSpec gs = kSm80Tiles.q_groups(g);
    const int64_t tokens = 257, dim = 128;
    const std::vector<float> x = spread_tokens(tokens, dim, 5);
    const Int8Result r = run_int8(x, tokens, dim, gs, 1.0f);
    double worst = 0.0;
    for (int64_t t = 0; t < tokens; ++t) {
      const double s = r.scales[gs.group_of(t)];
      for (int64_t d = 0; d < dim; ++d) {
        const double xv = x[t * dim + d];
        const double err = std::fabs(xv - r.codes[t * dim + d] * s);
        worst = std::max(worst, err / s);
        // slack: fp32 rounding of x * (127 / amax) and of the scale itself (a few ulps)
        ASSERT_LE(err, 0.5 * s * (1 + 1e-4) + std::fabs(xv) * 0x1.0p-21)
            << to_string(g) << " t " << t;
      }
    }
    EXPECT_GT(worst, 0.45) << "the bound is not exercised";  // the test data reach the bound
  }
}

// An all-zero group, and the empty groups of a short per-thread block, get all-zero codes and
// the finite positive scale kMinAmax / 127 * factor: never a division by zero.
TEST(QuantizeInt8Test, ZeroAndEmptyGroupsGetZeroCodesAndAFinitePositiveScale) {
  const float factor = 0.17f;
  // K per warp, 130 tokens: block 1 (tokens 64..127) is all zero.
  {
    const GroupSpec gs = kSm80Tiles.k_groups(Granularity::kPerWarp);
    const int64_t tokens = 130, dim = 16;
    std::vector<float> x = spread_tokens(tokens, dim, 9);
    std::fill(x.begin() + 64 * dim, x.begin() + 128 * dim, 0.0f);
    const Int8Result r = run_int8(x, tokens, dim, gs, factor);
    EXPECT_EQ(f32_bits(r.scales[1]), f32_bits((kMinAmax / 127.0f) * factor));
    EXPECT_TRUE(std::isfinite(r.scales[1]) && r.scales[1] > 0.0f);
    for (int64_t i = 64 * dim; i < 128 * dim; ++i) ASSERT_EQ(r.codes[i], 0);
    EXPECT_GT(r.scales[0], 1e-7f);
    EXPECT_GT(r.scales[2], 1e-7f);
  }
  // Q per thread, 35 tokens: block 1 holds rows 32..34 only, groups 8 + 3..7 are empty.
  {
    const GroupSpec gs = kSm80Tiles.q_groups(Granularity::kPerThread);
    const int64_t tokens = 35, dim = 16;
    const std::vector<float> x = spread_tokens(tokens, dim, 10);
    const Int8Result r = run_int8(x, tokens, dim, gs, factor);
    ASSERT_EQ(gs.num_groups(tokens), 16);
    for (int64_t grp = 11; grp < 16; ++grp) {
      EXPECT_EQ(f32_bits(r.scales[grp]), f32_bits((kMinAmax / 127.0f) * factor)) << grp;
      EXPECT_TRUE(std::isfinite(r.scales[grp]) && r.scales[grp] > 0.0f);
    }
    for (int64_t grp = 0; grp < 11; ++grp) EXPECT_GT(r.scales[grp], 1e-7f) << grp;
  }
  // Everything zero, including +-0: codes 0.
  {
    const GroupSpec gs = kSm80Tiles.q_groups(Granularity::kPerWarp);
    std::vector<float> x(32 * 8, 0.0f);
    for (size_t i = 0; i < x.size(); i += 2) x[i] = -0.0f;
    const Int8Result r = run_int8(x, 32, 8, gs, 1.0f);
    for (int8_t c : r.codes) ASSERT_EQ(c, 0);
    EXPECT_EQ(r.scales[0], kMinAmax / 127.0f);
    EXPECT_TRUE(std::isfinite(127.0f / kMinAmax));
  }
}

// ============================================================================ quantize_v

struct VResult {
  std::vector<float> values, scales;
  std::vector<uint8_t> codes;
};

VResult run_v(const std::vector<float>& x, int64_t tokens, int64_t dim, PvMode mode) {
  VResult r;
  r.values.assign(tokens * dim, test::poison_f32());
  r.scales.assign(dim, test::poison_f32());
  r.codes.assign(tokens * dim, uint8_t(0x7F));
  const bool fp8 = mode != PvMode::kFp16;
  cpu::quantize_v(x.data(), tokens, dim, mode, kSm80Tiles, r.values.data(), r.scales.data(),
                  fp8 ? r.codes.data() : nullptr);
  return r;
}

// V with per-channel magnitudes from 2^-12 to 2^12 and per-channel offsets, one all-zero channel
// (channel 3) and one channel whose amax sits on a negative value (channel 5).
std::vector<float> v_data(int64_t tokens, int64_t dim, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> mag(dim), off(dim);
  for (int64_t d = 0; d < dim; ++d) {
    mag[d] = std::ldexp(1.0 + rng.uniform(), int(rng.below(25)) - 12);
    off[d] = rng.uniform() < 0.5 ? 0.0 : 3.0 * mag[d] * rng.normal();
  }
  std::vector<float> x(tokens * dim);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t d = 0; d < dim; ++d)
      x[t * dim + d] = d == 3 ? 0.0f : static_cast<float>(off[d] + mag[d] * rng.normal());
  x[7 * dim + 5] = -1e4f * static_cast<float>(mag[5]);
  return x;
}

std::vector<float> channel_amax(const std::vector<float>& x, int64_t tokens, int64_t dim) {
  std::vector<float> a(dim, 0.0f);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t d = 0; d < dim; ++d) a[d] = std::max(a[d], std::fabs(x[t * dim + d]));
  return a;
}

// fp8 modes: scale_c = amax_c / range; value = fp8(x * (range / amax_c)); codes match values;
// |value| <= range and the amax element maps to +-range; value * scale reconstructs x to e4m3's
// relative precision 2^-4 (normal codes) or half a subnormal step 2^-10 * scale.
void check_fp8_mode(PvMode mode, float range) {
  const int64_t tokens = 300, dim = 64;
  const std::vector<float> x = v_data(tokens, dim, 21);
  const VResult r = run_v(x, tokens, dim, mode);
  const std::vector<float> amax = channel_amax(x, tokens, dim);
  for (int64_t d = 0; d < dim; ++d) {
    const float a = std::max(amax[d], kMinAmax);
    ASSERT_EQ(f32_bits(r.scales[d]), f32_bits(a / range)) << "channel " << d;
  }
  double worst_rel = 0.0;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t d = 0; d < dim; ++d) {
      const int64_t i = t * dim + d;
      const float a = std::max(amax[d], kMinAmax);
      const uint8_t code = num::fp8e4m3_from_float(x[i] * (range / a));
      ASSERT_EQ(r.codes[i], code) << "t " << t << " d " << d;
      ASSERT_EQ(f32_bits(r.values[i]), f32_bits(num::fp8e4m3_to_float(code)));
      ASSERT_LE(std::fabs(r.values[i]), range);
      if (std::fabs(x[i]) == amax[d] && amax[d] > 0.0f) {
        ASSERT_EQ(std::fabs(r.values[i]), range) << "amax element of channel " << d;
      }
      const double s = r.scales[d], xv = x[i];
      const double err = std::fabs(static_cast<double>(r.values[i]) * s - xv);
      ASSERT_LE(err, std::max(std::fabs(xv) * 0x1.0p-4, 0x1.0p-10 * s) * (1 + 1e-6))
          << "t " << t << " d " << d << " x " << xv;
      if (std::fabs(xv) > 0x1.0p-6 * s) worst_rel = std::max(worst_rel, err / std::fabs(xv));
    }
  EXPECT_GT(worst_rel, 0.05) << "the relative bound is not exercised";
  // The all-zero channel: zero values, scale kMinAmax / range (finite, positive).
  for (int64_t t = 0; t < tokens; ++t) ASSERT_EQ(r.values[t * dim + 3], 0.0f);
  EXPECT_EQ(r.scales[3], kMinAmax / range);
  EXPECT_GT(r.scales[3], 0.0f);
}

TEST(QuantizeVTest, Fp8ScalesCodesAndRange) { check_fp8_mode(PvMode::kFp8, 448.0f); }

TEST(QuantizeVTest, Fp8Fp16AccScalesCodesAndRange) {
  const float r = kSm80Tiles.fp16acc_v_range();
  EXPECT_EQ(r, 2.25f);
  EXPECT_EQ(num::fp8e4m3_to_float(num::fp8e4m3_from_float(r)), r);  // the range is an e4m3 value
  // One block's worst partial sum of P*V (every P = 448, every |V| = r) fits fp16.
  EXPECT_LE(static_cast<double>(kSm80Tiles.block_k) * 448.0 * r, 65504.0);
  check_fp8_mode(PvMode::kFp8Fp16Acc, r);
}

// fp16 mode: scale_c = 1 for an all-zero channel and for amax_c in [2^-10, 2^15) (layout.h's keep
// range), else 2^e with amax_c / 2^e in [2^13, 2^14); value = fp16(x / scale_c). A power of two
// makes every bf16 input exact (value * scale == x), except unscaled values below 2^-17 (fp16
// subnormals), which are within half a subnormal step 2^-25.
TEST(QuantizeVTest, Fp16ScalesArePowersOfTwoAndReproduceBf16Exactly) {
  const int64_t tokens = 200, dim = 64;
  std::vector<float> x = test::round_to(DType::kBF16, v_data(tokens, dim, 31));
  const float keep_lo = std::ldexp(1.0f, kFp16VKeepMinExp);
  const float keep_hi = std::ldexp(1.0f, kFp16VKeepMaxExp);
  // A bf16 value below 2^-17 that fp16 cannot hold exactly (bits down to 2^-27), in the first
  // unscaled channel.
  {
    const std::vector<float> a = channel_amax(x, tokens, dim);
    int64_t d = 0;
    while (d < dim && !(a[d] >= keep_lo && a[d] < keep_hi)) ++d;
    ASSERT_LT(d, dim) << "no channel in the keep range";
    x[11 * dim + d] = 0x1.22p-20f;
  }
  const VResult r = run_v(x, tokens, dim, PvMode::kFp16);
  const std::vector<float> amax = channel_amax(x, tokens, dim);
  int kept = 0, scaled = 0;
  for (int64_t d = 0; d < dim; ++d) {
    int e = 0;
    ASSERT_EQ(std::frexp(r.scales[d], &e), 0.5f) << "not a power of two: channel " << d;
    if (amax[d] == 0.0f || (amax[d] >= keep_lo && amax[d] < keep_hi)) {
      EXPECT_EQ(r.scales[d], 1.0f) << "channel " << d << " amax " << amax[d];
      kept += amax[d] > 0.0f;
      continue;
    }
    ++scaled;
    const double ratio = static_cast<double>(amax[d]) / r.scales[d];
    EXPECT_GE(ratio, 8192.0) << "channel " << d;
    EXPECT_LT(ratio, 16384.0) << "channel " << d;
  }
  // The data covers both sides of the rule (magnitudes 2^-12 .. 2^12, channel 5 at 1e4 x).
  EXPECT_GT(kept, 10);
  EXPECT_GE(scaled, 2);
  int tiny = 0, inexact = 0;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t d = 0; d < dim; ++d) {
      const int64_t i = t * dim + d;
      ASSERT_EQ(f32_bits(r.values[i]),
                f32_bits(num::fp16_to_float(num::fp16_from_float(x[i] / r.scales[d]))));
      ASSERT_LT(std::fabs(r.values[i]), r.scales[d] == 1.0f ? keep_hi : 16384.0f);
      if (r.scales[d] == 1.0f && std::fabs(x[i]) < 0x1.0p-17f) {
        ++tiny;
        inexact += r.values[i] != x[i];
        ASSERT_LE(std::fabs(r.values[i] - x[i]), 0x1.0p-25f) << "t " << t << " d " << d;
      } else {
        ASSERT_EQ(f32_bits(r.values[i] * r.scales[d]), f32_bits(x[i])) << "t " << t << " d " << d;
      }
    }
  EXPECT_GT(tiny, 0);
  EXPECT_GT(inexact, 0) << "the planted 0x1.22p-20 must round in fp16";
}

// fp16 mode with fp32 inputs: reconstruction within fp16's relative precision 2^-11, or half a
// subnormal step 2^-25 * scale for values below fp16's normal range.
TEST(QuantizeVTest, Fp16ReconstructsFp32WithinHalfAnUlp) {
  const int64_t tokens = 200, dim = 64;
  const std::vector<float> x = v_data(tokens, dim, 41);
  const VResult r = run_v(x, tokens, dim, PvMode::kFp16);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t d = 0; d < dim; ++d) {
      const int64_t i = t * dim + d;
      const double err = std::fabs(static_cast<double>(r.values[i]) * r.scales[d] - x[i]);
      ASSERT_LE(err, std::max(std::fabs(x[i]) * 0x1.0p-11, 0x1.0p-25 * r.scales[d]))
          << "t " << t << " d " << d;
    }
}

}  // namespace
}  // namespace sageattn
