// src/common/ptx/hopper.cuh: the sm_90 synchronization and copy primitives of the warp-specialized
// kernels, as thin wrappers: mbarriers and TMA tile loads through CCCL's cuda::ptx, plus the
// instructions it does not wrap (setmaxnreg, named barriers).
//
// mbarrier protocol used here (PTX ISA, "mbarrier"): a barrier completes a phase when its pending
// arrivals reach zero and its expected transaction bytes (expect_tx, counted down by the TMA unit
// as bytes land) reach zero; waiters name the phase by its parity. A TMA load signals completion
// on the barrier given to it; its shared-memory writes are then visible to threads that observed
// the phase complete (and to wgmma, which reads through the same async proxy).
#pragma once

#include <cstdint>

#include <cuda/ptx>

namespace sageattn::ptx {

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  cuda::ptx::mbarrier_init(bar, count);
}

// Makes the initializations visible to the async proxy (TMA) and the other threads; follow with a
// CTA barrier.
__device__ __forceinline__ void mbar_init_fence() {
  cuda::ptx::fence_mbarrier_init(cuda::ptx::sem_release, cuda::ptx::scope_cluster);
}

// Spins until the phase of parity `parity` of `bar` has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  while (!cuda::ptx::mbarrier_try_wait_parity(bar, parity)) {
  }
}

// Whether the phase of parity `parity` of `bar` has completed, without waiting (diagnostics).
__device__ __forceinline__ bool mbar_test(uint64_t* bar, uint32_t parity) {
  return cuda::ptx::mbarrier_test_wait_parity(bar, parity);
}

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) { (void)cuda::ptx::mbarrier_arrive(bar); }

// One arrival that also expects `bytes` more transaction bytes in the current phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  (void)cuda::ptx::mbarrier_arrive_expect_tx(cuda::ptx::sem_release, cuda::ptx::scope_cta,
                                             cuda::ptx::space_shared, bar, bytes);
}

// TMA: the 3-D box of `map` at coordinates (c0 innermost, c1, c2) into shared memory at dst,
// completing `bytes` (the whole box, out-of-bounds elements zero-filled) on `bar`.
__device__ __forceinline__ void tma_load_3d(void* dst, const void* map, int32_t c0, int32_t c1, int32_t c2,
                                            uint64_t* bar) {
  const int32_t coords[3] = {c0, c1, c2};
  cuda::ptx::cp_async_bulk_tensor(cuda::ptx::space_cluster, cuda::ptx::space_global, dst, map, coords, bar);
}

// Register reallocation between warpgroups (every warp of the warpgroup executes it).
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
#endif
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
#endif
}

// Named barrier `id` (1..15; 0 is __syncthreads) over `threads` threads (a multiple of 32).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// The 128-byte line holding addr into L2 (no register written; a hint: may be dropped).
__device__ __forceinline__ void prefetch_l2(const void* addr) {
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(addr));
}
// Number of SM identifiers (%nsmid: at least the SM count; ids need not be contiguous).
__device__ __forceinline__ uint32_t nsmid() {
  uint32_t n;
  asm volatile("mov.u32 %0, %%nsmid;\n" : "=r"(n));
  return n;
}

}  // namespace sageattn::ptx
