// src/attention/sm80/launch_kernel.cuh: the launcher template the inst_hd*.cu files instantiate.
#pragma once

#include <atomic>
#include <cstdint>

#include "attention/sm80/kernel.cuh"
#include "attention/sm80/launch.h"
#include "common/cuda_check.h"

namespace sageattn::sm80 {

template <int kHeadDim, PvMode kMode>
void launch_attention(const KernelParams& kp, cudaStream_t stream) {
  using Cfg = KernelConfig<kHeadDim, kMode>;
  const auto kernel = attention_kernel<kHeadDim, kMode>;
  // The shared-memory attribute is per device: set once on each (a host call per launch saved).
  static std::atomic<uint64_t> attribute_set{0};  // bit d: set on device d (d < 64)
  int device = 0;
  SAGEATTN_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = device < 64 ? uint64_t(1) << device : 0;
  if (!(attribute_set.load(std::memory_order_relaxed) & bit)) {
    SAGEATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(Cfg::kSmemBytes)));
    attribute_set.fetch_or(bit, std::memory_order_relaxed);
  }
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
