// src/common/ptx/bulk.cuh: bulk (TMA engine) copies global -> shared memory and the mbarrier
// they complete on (sm_90+; PTX ISA "cp.async.bulk", "mbarrier"). Callers compile them only for
// __CUDA_ARCH__ >= 900; on older targets every wrapper traps.
//
// Use: one thread initializes the barrier (count 1) and fences the init; after a block barrier,
// one thread arrives with expect_tx(total bytes), then any threads issue copies of a multiple of
// 16 bytes between 16-byte aligned addresses; the phase completes when the arrival and every
// byte are in, and mbar_wait(parity 0) returns with the bytes visible to the waiting thread.
#pragma once

#include <cstdint>

#include "common/ptx/mma.cuh"  // smem_u32

namespace sageattn::ptx {

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count)
               : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#else
  __trap();
#endif
}

// Arrive once and expect `bytes` more bytes of transactions in the current phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
      : "memory");
#else
  __trap();
#endif
}

// Spins until the phase with the given parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n"
      "}\n" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
#else
  __trap();
#endif
}

// `bytes` (a multiple of 16) from global `src` to this CTA's shared `dst` (both 16-byte
// aligned), completing on `bar`, with the L2 cache policy `pol` (createpolicy).
__device__ __forceinline__ void bulk_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                         uint64_t pol) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
      " [%0], [%1], %2, [%3], %4;\n" ::"r"(smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(bar)), "l"(pol)
      : "memory");
#else
  __trap();
#endif
}

}  // namespace sageattn::ptx
