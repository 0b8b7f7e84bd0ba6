// The sm90 kernel's CTA -> (sequence, head, query tile) orders (src/attention/sm90/tile_order.h):
// both are bijections onto the grid's tiles, the natural order is the grid's own layout, and the
// longest-first order starts long causal tiles first, group by group, so that list scheduling of
// causal work ends on short tiles (a model of the GPU's CTA dispatch, not a timing).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <queue>
#include <vector>

#include "attention/sm90/tile_order.h"

namespace sageattn::sm90 {
namespace {

struct Grid {
  int64_t batch, heads, tiles, group;
};

// Every (b, h, tile) of the grid exactly once, each coordinate in range.
void expect_bijection(const Grid& g) {
  const int64_t n = g.batch * g.heads * g.tiles;
  std::vector<int> seen(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    const TileCoord c = tile_of_cta(i, g.batch, g.heads, g.tiles, g.group);
    ASSERT_TRUE(c.b >= 0 && c.b < g.batch && c.h >= 0 && c.h < g.heads && c.tile >= 0 &&
                c.tile < g.tiles)
        << "cta " << i << " -> (" << c.b << ", " << c.h << ", " << c.tile << ") group " << g.group;
    ++seen[static_cast<size_t>((c.h * g.batch + c.b) * g.tiles + c.tile)];
  }
  for (int64_t k = 0; k < n; ++k)
    ASSERT_EQ(seen[static_cast<size_t>(k)], 1) << "tile " << k << " group " << g.group;
}

TEST(TileOrder, BothOrdersCoverEveryTileOnce) {
  for (const Grid& g : {Grid{1, 1, 1, 0}, Grid{2, 3, 5, 0}, Grid{3, 4, 7, 1}, Grid{3, 4, 7, 5},
                        Grid{3, 4, 7, 12}, Grid{3, 4, 7, 100}, Grid{1, 7, 86, 6},
                        Grid{5, 1, 9, 2}})
    expect_bijection(g);
}

TEST(TileOrder, NaturalOrderIsTheGridLayout) {
  // launch_kernel.cuh: x = b * tiles + tile, y = h; CTAs launch x fastest.
  const int64_t batch = 3, heads = 4, tiles = 7;
  for (int64_t y = 0; y < heads; ++y)
    for (int64_t x = 0; x < batch * tiles; ++x) {
      const TileCoord c = tile_of_cta(y * batch * tiles + x, batch, heads, tiles, 0);
      EXPECT_EQ(c.b, x / tiles);
      EXPECT_EQ(c.h, y);
      EXPECT_EQ(c.tile, x % tiles);
    }
}

TEST(TileOrder, LongestFirstWithinEachGroup) {
  const int64_t batch = 3, heads = 4, tiles = 7, group = 5;  // 12 pairs: groups of 5, 5, 2
  const int64_t span = group * tiles;
  for (int64_t i = 1; i < batch * heads * tiles; ++i) {
    const TileCoord prev = tile_of_cta(i - 1, batch, heads, tiles, group);
    const TileCoord cur = tile_of_cta(i, batch, heads, tiles, group);
    const int64_t pair = cur.h * batch + cur.b;
    EXPECT_EQ(pair / group, i / span) << "cta " << i << " outside its group";
    if (i % span != 0) {
      EXPECT_LE(cur.tile, prev.tile) << "cta " << i;
    }
  }
  EXPECT_EQ(tile_of_cta(0, batch, heads, tiles, group).tile, tiles - 1);
  EXPECT_EQ(tile_of_cta(batch * heads * tiles - 1, batch, heads, tiles, group).tile, 0);
}

TEST(TileOrder, CausalGroupKeepsAboutTwentyFourMegabytes) {
  // hd128 fp8 (1 + 1 bytes per key and channel): 4 MB per pair at 16K -> 6 pairs; 96 at 1K.
  EXPECT_EQ(causal_group(16384, 128, 1, 64), 6);
  EXPECT_EQ(causal_group(1024, 128, 1, 1024), 96);
  EXPECT_EQ(causal_group(1024, 128, 1, 40), 40);        // at most every pair
  EXPECT_EQ(causal_group(1 << 20, 256, 2, 8), 1);       // at least one
  EXPECT_EQ(causal_group(4096, 64, 2, 1000), (int64_t(24) << 20) / (4096 * 64 * 3));
}

// Makespan of list scheduling in launch order on `sms` SMs (one CTA each), a causal tile costing
// the key blocks it visits: the model the longest-first order is for.
double makespan(int64_t n, int64_t batch, int64_t heads, int64_t group, int64_t sms,
                double* lower_bound) {
  constexpr int64_t kBlockQ = 192, kBlockK = 128;
  const int64_t tiles = (n + kBlockQ - 1) / kBlockQ;
  std::priority_queue<double, std::vector<double>, std::greater<double>> free_at;
  for (int64_t s = 0; s < sms; ++s) free_at.push(0.0);
  double total = 0.0, end = 0.0;
  for (int64_t i = 0; i < batch * heads * tiles; ++i) {
    const TileCoord c = tile_of_cta(i, batch, heads, tiles, group);
    const int64_t last_row = std::min((c.tile + 1) * kBlockQ, n) - 1;
    const double cost = double(last_row / kBlockK + 1);
    const double start = free_at.top();
    free_at.pop();
    free_at.push(start + cost);
    end = std::max(end, start + cost);
    total += cost;
  }
  *lower_bound = total / double(sms);
  return end;
}

TEST(TileOrder, LongestFirstRemovesTheCausalTailInTheModel) {
  // B x N = 32K tokens, 32 heads, 132 SMs (H100), hd128 fp8 groups from causal_group.
  for (const int64_t n : {1024, 4096, 16384}) {
    const int64_t batch = 32768 / n, heads = 32;
    const int64_t group = causal_group(n, 128, 1, batch * heads);
    double bound = 0.0;
    const double natural = makespan(n, batch, heads, 0, 132, &bound);
    const double longest_first = makespan(n, batch, heads, group, 132, &bound);
    EXPECT_GT(natural, 1.015 * bound) << "N " << n << ": the natural order has a tail";
    EXPECT_LT(longest_first, 1.01 * bound) << "N " << n << ", group " << group;
  }
}

}  // namespace
}  // namespace sageattn::sm90
