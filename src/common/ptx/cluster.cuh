// src/common/ptx/cluster.cuh: thread block cluster primitives (sm_90+; PTX ISA "Cluster of
// Cooperative Thread Arrays", "barrier.cluster", "mapa"). Callers compile them only for
// __CUDA_ARCH__ >= 900; on older targets every wrapper traps.
//
// A cluster's CTAs are co-scheduled on one GPC and can read each other's shared memory
// (distributed shared memory). map_rank turns a pointer into this CTA's shared memory into a
// generic pointer to the same offset in CTA `rank`'s, which ordinary loads then read.
// barrier.cluster orders memory: arrive.release + wait.acquire makes every shared-memory store a
// thread made before its arrive visible to every thread of the cluster after its wait. A CTA
// whose shared memory another CTA may still read must not exit before that reader has arrived
// on a later barrier (hence the relaxed arrive / wait pair around the end of a kernel).
#pragma once

#include <cstdint>

namespace sageattn::ptx {

__device__ __forceinline__ uint32_t cluster_ctarank() {
  uint32_t r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
#else
  __trap();
#endif
  return r;
}

// Arrive on the cluster barrier, publishing this thread's earlier memory operations (release).
__device__ __forceinline__ void cluster_arrive_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

// Arrive without ordering memory (only "this thread is past here").
__device__ __forceinline__ void cluster_arrive_relaxed() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

// Wait until every thread of the cluster has arrived; acquire what released arrivals published.
__device__ __forceinline__ void cluster_wait_acquire() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

// The generic address of `p`'s shared-memory offset in CTA `rank` of this cluster.
template <typename T>
__device__ __forceinline__ const T* map_rank(const T* p, uint32_t rank) {
  uint64_t r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm("mapa.u64 %0, %1, %2;\n" : "=l"(r) : "l"(reinterpret_cast<uint64_t>(p)), "r"(rank));
#else
  __trap();
#endif
  return reinterpret_cast<const T*>(r);
}

}  // namespace sageattn::ptx
