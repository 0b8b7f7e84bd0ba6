// src/attention/sm80/launch_kernel.cuh: the launcher template the inst_hd*.cu files instantiate.
#pragma once

#include "attention/common/launch_common.h"
#include "attention/sm80/kernel.cuh"
#include "attention/sm80/launch.h"
#include "common/cuda_check.h"

namespace sageattn::sm80 {

template <int kHeadDim, PvMode kMode>
void launch_attention(const KernelParams& kp, cudaStream_t stream) {
  using Cfg = KernelConfig<kHeadDim, kMode>;
  const auto kernel = attention_kernel<kHeadDim, kMode>;
  SAGEATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           int(Cfg::kSmemBytes)));
  // Grid (query tiles, heads, sequences); more than kMaxGridYZ sequences (grid z's cap) run in
  // slices, each a call of its own (sequences are independent). The API keeps heads_q within the
  // cap (detail::gpu_backend_serves).
  const unsigned q_tiles = unsigned((kp.seqlen_q + kBlockQ - 1) / kBlockQ);
  for (int64_t b0 = 0; b0 < kp.batch; b0 += attn::kMaxGridYZ) {
    const int64_t nb = kp.batch - b0 < attn::kMaxGridYZ ? kp.batch - b0 : attn::kMaxGridYZ;
    const KernelParams sp =
        nb == kp.batch ? kp : attn::slice_batches(kp, b0, nb, kHeadDim, kSm80Tiles, Cfg::kFp8 ? 1 : 2);
    const dim3 grid(q_tiles, unsigned(kp.heads_q), unsigned(nb));
    kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(sp);
    SAGEATTN_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace sageattn::sm80

// Instantiates the three P·V modes of one head dim.
#define SAGEATTN_SM80_INSTANTIATE(HD)                                                            \
  template void sageattn::sm80::launch_attention<HD, sageattn::PvMode::kFp16>(                   \
      const sageattn::sm80::KernelParams&, cudaStream_t);                                                        \
  template void sageattn::sm80::launch_attention<HD, sageattn::PvMode::kFp8>(                    \
      const sageattn::sm80::KernelParams&, cudaStream_t);                                                        \
  template void sageattn::sm80::launch_attention<HD, sageattn::PvMode::kFp8Fp16Acc>(             \
      const sageattn::sm80::KernelParams&, cudaStream_t)
