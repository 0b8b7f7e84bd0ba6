// src/attention/sm90/tile_order.h: which (sequence, query head, query tile) each CTA of the sm90
// attention kernel computes, from its place in launch order. Pure integer arithmetic, usable from
// host and device code (tests/cpu/test_tile_order.cpp checks it on the CPU).
//
// The grid is x = sequences x query tiles, y = query heads (launch_kernel.cuh), and CTAs start in
// launch order, x fastest: linear = y * gridDim.x + x. A "pair" is one (query head h, sequence b),
// numbered p = h * batch + b, which is the order the grid's rows of tiles come in.
//
// Natural order (group <= 0): pair p = linear / tiles, tile = linear % tiles. The tiles of one pair
// start together, so its K/V tiles are read from L2 by all of them.
//
// Longest first (causal; experiment, off by default: -DSAGEATTN_SM90_CAUSAL_ORDER=1,
// bench/NOTES.md section 31). A causal tile t visits about t + 1 key blocks, so the natural order
// starts the longest tiles of the last pairs last and the grid ends on them: SMs idle while the
// last long tiles run. Here the pairs are cut into groups of `group` consecutive pairs; inside a
// group, tiles go from the last (longest) to the first, each tile index over the group's pairs.
// The grid then ends on short tiles (list scheduling, longest first). The group bounds how many
// pairs' K/V are read at once (causal_group: about 24 MB of them, half of an H100's L2).
#pragma once

#include <cstdint>

#include "common/numerics.h"  // SAGEATTN_HD

namespace sageattn::sm90 {

struct TileCoord {
  int64_t b;     // sequence
  int64_t h;     // query head
  int64_t tile;  // query tile within the sequence (rows tile * block_q ..)
};

// The CTA at launch position `linear` (0 .. batch * heads * tiles - 1) of a grid of `tiles` query
// tiles per sequence; group <= 0: natural order, else longest first in groups of `group` pairs.
SAGEATTN_HD TileCoord tile_of_cta(int64_t linear, int64_t batch, int64_t heads, int64_t tiles,
                                  int64_t group) {
  if (group <= 0) {
    const int64_t pair = linear / tiles;
    return {pair % batch, pair / batch, linear % tiles};
  }
  const int64_t span = group * tiles;  // CTAs of one full group
  const int64_t g = linear / span, within = linear - g * span;
  // The last group may hold fewer pairs; its CTAs are the grid's last, so `within` stays below
  // its own pairs x tiles.
  const int64_t rest = batch * heads - g * group;
  const int64_t size = rest < group ? rest : group;
  const int64_t rank = within / size;  // 0 = the longest tile
  const int64_t pair = g * group + (within - rank * size);
  return {pair % batch, pair / batch, tiles - 1 - rank};
}

// Pairs per group for the longest-first order: as many pairs as keep about 24 MB of K/V codes
// (seqlen_k x head_dim_padded x (1 + v_bytes) each) read at once, at least 1, at most all.
SAGEATTN_HD int64_t causal_group(int64_t seqlen_k, int64_t head_dim_padded, int64_t v_bytes,
                                 int64_t pairs) {
  const int64_t per_pair = seqlen_k * head_dim_padded * (1 + v_bytes);
  const int64_t g = per_pair > 0 ? (int64_t(24) << 20) / per_pair : pairs;
  return g < 1 ? 1 : g > pairs ? pairs : g;
}

}  // namespace sageattn::sm90
