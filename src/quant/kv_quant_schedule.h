// src/quant/kv_quant_schedule.h: the order in which the fused K/V quantizer (kv_quant.cu) hands
// out its work items. Pure integer arithmetic, usable from host and device code.
//
// Work items. Every (sequence b, KV head h) -- a "head", index bh = b * h_kv + h -- is cut into
// `blocks` blocks of kBlock (= k_block = kMeanChunkTokens = 64) tokens, padding included. Each
// block is two items:
//   stats item    (bh, block): the fp32 chunk sums of K and V and the V min / max of the block's
//                 tokens (its reads of K and V come from DRAM and leave the lines in L2);
//   quantize item (bh, block): int8 K codes and scales, fp8 / fp16 V codes of the block. It
//                 needs the head's means and V scales, i.e. every stats item of the head.
// Items of one kind are numbered head-major: index = bh * blocks + block.
//
// Order. Tickets 0, 1, 2, ... (one global atomic counter) map to items as follows:
//   tickets [0, lead)                        stats items 0 .. lead-1
//   then, alternating, for k = 0 .. items-lead-1:
//     ticket lead + 2k                        stats item lead + k
//     ticket lead + 2k + 1                    quantize item k
//   then the remaining quantize items items-lead .. items-1, one ticket each.
// So the quantize items trail the stats items by `lead` items: a block is read from DRAM by its
// stats item and again, about `lead` stats items later, by its quantize item. If the bytes read
// and written in between fit in L2, the second read is an L2 hit (kv_quant.cu chooses lead).
//
// Deadlock freedom (quantize items spin-wait on their head's stats): with lead >= blocks, every
// stats item of a head has a smaller ticket than every quantize item of that head (proof at
// kv_quant_check_order below). Tickets are taken by running CTAs in increasing order, stats
// items never wait (the one that arrives last on its group's or its head's counter folds the
// records there, which waits for nothing: a head's stats are published once all its stats items
// have finished), and a CTA takes its next ticket only while it is running. Induction on the
// smallest unfinished ticket m: the CTA holding m is either processing it -- a stats item
// finishes; a quantize item waits only on smaller tickets, all finished -- or holds m as its
// prefetched next ticket while processing a smaller one, which contradicts m being the smallest
// unfinished ticket. No co-residency of the grid is assumed. (With early_v a stats item counts as
// finished once its deferred arrival is released: at the start of its CTA's next iteration, which
// waits for nothing before it, or after the CTA's last item.)
#pragma once

#include <cstdint>

#include <cuda_runtime.h>  // __host__ __device__

namespace sageattn::quant {

struct KvQuantSchedule {
  uint32_t items = 0;   // items of each kind: heads (b * h_kv) x blocks
  uint32_t blocks = 0;  // blocks per head (seqlen_k_padded / block_k)
  uint32_t lead =
      0;  // stats items handed out before the first quantize item; blocks <= lead <= items

  __host__ __device__ constexpr uint32_t tickets() const { return 2 * items; }
};

struct KvQuantItem {
  bool stats;      // stats item (else quantize item)
  uint32_t index;  // bh * blocks + block
};

// The item of ticket t (t < s.tickets()).
__host__ __device__ constexpr KvQuantItem kv_quant_item(uint32_t t, const KvQuantSchedule& s) {
  if (t < s.lead) return {true, t};
  const uint32_t u = t - s.lead, paired = 2 * (s.items - s.lead);
  if (u < paired)
    return (u & 1u) ? KvQuantItem{false, u >> 1} : KvQuantItem{true, s.lead + (u >> 1)};
  return {false, (s.items - s.lead) + (u - paired)};
}

// The ticket of an item (inverse of kv_quant_item).
__host__ __device__ constexpr uint32_t kv_quant_ticket(KvQuantItem it, const KvQuantSchedule& s) {
  if (it.stats) return it.index < s.lead ? it.index : s.lead + 2 * (it.index - s.lead);
  const uint32_t k = it.index;
  return k < s.items - s.lead ? s.lead + 2 * k + 1 : s.items + k;
}

// Proof that the order is safe: the last stats item of head bh, S = (bh+1)*blocks - 1, precedes
// every quantize item k of bh (k >= bh*blocks, so S <= k + blocks - 1 <= k + lead - 1).
//  - S < lead: ticket(S) = S < lead <= ticket(Q k).
//  - S >= lead: ticket(S) = 2S - lead <= 2k + lead - 2 < 2k + lead + 1 = ticket(Q k) when Q k is
//    paired; a tail item (k >= items - lead) has ticket items + k >= 2 * items - lead, above every
//    stats ticket.
// Quantize tickets grow with k, so comparing with the head's first quantize item is enough.
__host__ __device__ constexpr bool kv_quant_check_order(uint32_t bh, const KvQuantSchedule& s) {
  const uint32_t last_stats = kv_quant_ticket({true, (bh + 1) * s.blocks - 1}, s);
  return last_stats < kv_quant_ticket({false, bh * s.blocks}, s);
}

}  // namespace sageattn::quant
