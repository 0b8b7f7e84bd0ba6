// src/common/ptx/wgmma.cuh: the few sm_90a warpgroup MMA (wgmma) wrappers the mma.sync kernel
// uses for its P.V on Hopper (a warpgroup = the 4 warps of a CTA, 128 threads, converged).
//
// wgmma.mma_async m64nNk16, A from registers: warp w of the warpgroup supplies rows 16w..16w+15
// of the 64-row A tile, in exactly the m16n8k16 A fragment of mma.cuh; its accumulator D holds
// the same rows, as N/8 consecutive m16n8 C fragments (d[4i..4i+3] = n-tile i). So a warp's
// mma.sync fragments (A: P, C: the output accumulator) feed wgmma unchanged.
//
// B comes from shared memory through a matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
// start address, leading (LBO) and stride (SBO) byte offsets (each >> 4) and a swizzle mode.
// Here: an MN-major ("transposed") f16 B with the 128-byte swizzle, whose canonical layout is
// made of 1024-byte atoms, each 8 K rows x 128 bytes (64 consecutive N elements), the 16-byte
// chunk c of row r stored at chunk c ^ r (r = address bits 7-9, so atoms start 1 KB aligned);
// LBO = bytes between atoms adjacent in N, SBO = bytes between atoms adjacent in K.
//
// Ordering rules the caller keeps: wgmma_fence() before the first wgmma after registers it uses
// (A, D) were written by other instructions; shared memory written through the generic proxy
// (st.shared, cp.async) is made visible to wgmma by fence_proxy_async() in the writing threads,
// then a barrier; D and A must not be touched between the wgmma and the wgmma_wait<> covering it.
#pragma once

#include <cstdint>

namespace sageattn::ptx {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SAGEATTN_HAVE_WGMMA 1
#else
#define SAGEATTN_HAVE_WGMMA 0
#endif

// Descriptor of an MN-major, 128-byte-swizzled shared-memory operand (see above).
__device__ __forceinline__ uint64_t wgmma_desc_mn_sw128(uint32_t smem_addr, uint32_t lbo_bytes,
                                                       uint32_t sbo_bytes) {
  return uint64_t((smem_addr & 0x3FFFFu) >> 4) | (uint64_t((lbo_bytes & 0x3FFFFu) >> 4) << 16) |
         (uint64_t((sbo_bytes & 0x3FFFFu) >> 4) << 32) | (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() {
#if SAGEATTN_HAVE_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#if SAGEATTN_HAVE_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}

// Waits until at most N committed wgmma groups of this warpgroup are pending.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if SAGEATTN_HAVE_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#else
  __trap();
#endif
}

// Orders this thread's earlier generic-proxy shared-memory writes before later async-proxy reads.
__device__ __forceinline__ void fence_proxy_async() {
#if SAGEATTN_HAVE_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#else
  __trap();
#endif
}

// D(64x128, f32) += A(64x16, f16, registers) * B(16x128, f16, MN-major in shared memory).
__device__ __forceinline__ void wgmma_m64n128k16_f16_rs_tnb(float (&d)[64], const uint32_t (&a)[4],
                                                            uint64_t b_desc) {
#if SAGEATTN_HAVE_WGMMA
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, "
      "%40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, "
      "%56, %57, %58, %59, %60, %61, %62, %63 "
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]),
        "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]),
        "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),
        "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
#else
  (void)d, (void)a, (void)b_desc;
  __trap();
#endif
}

// D(64x64, f32) += A(64x16, f16, registers) * B(16x64, f16, MN-major in shared memory).
__device__ __forceinline__ void wgmma_m64n64k16_f16_rs_tnb(float (&d)[32], const uint32_t (&a)[4],
                                                          uint64_t b_desc) {
#if SAGEATTN_HAVE_WGMMA
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31 "
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]),
        "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
#else
  (void)d, (void)a, (void)b_desc;
  __trap();
#endif
}

}  // namespace sageattn::ptx
