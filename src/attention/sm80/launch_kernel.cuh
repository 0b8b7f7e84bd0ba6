// src/attention/sm80/launch_kernel.cuh: the launcher template the inst_hd*.cu files instantiate.
#pragma once

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
  const dim3 grid(unsigned((kp.seqlen_q + kBlockQ - 1) / kBlockQ), unsigned(kp.heads_q),
                  unsigned(kp.batch));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(kp);
  SAGEATTN_CUDA_CHECK_LAUNCH();
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
