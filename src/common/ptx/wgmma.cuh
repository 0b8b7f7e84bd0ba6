// src/common/ptx/wgmma.cuh: the sm_90a warpgroup MMA (wgmma) wrappers of the sm90 kernels and of
// the mma.sync kernel's P.V on Hopper (a warpgroup = 4 consecutive warps, 128 threads, converged).
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
// The 8-bit operands (s8 Q.K^T, e4m3 P.V) are K-major only: each row (an M or N index) holds its K
// elements contiguously, 8 rows of `swizzle` bytes make an atom (the 16-byte chunk c of row r stored
// at chunk c ^ (r % 8) for 128 bytes, c ^ (r / 2 % 4) for 64: address bits 4-6 (4-5) XOR bits 7-9
// (7-8), the pattern TMA writes), SBO = bytes between atoms adjacent in M/N, and a k-step inside
// the swizzle width is a plain start-address offset (the hardware swizzles the final address).
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

// Descriptor of a K-major operand with a 128- or 64-byte swizzle (see above; LBO is unused).
template <int kSwizzleBytes>
__device__ __forceinline__ uint64_t wgmma_desc_k_sw(uint32_t smem_addr, uint32_t sbo_bytes) {
  static_assert(kSwizzleBytes == 128 || kSwizzleBytes == 64, "128- or 64-byte swizzle");
  constexpr uint64_t kMode = kSwizzleBytes == 128 ? 1 : 2;  // layout type, bits 62-63
  return uint64_t((smem_addr & 0x3FFFFu) >> 4) | (uint64_t(1) << 16) |
         (uint64_t((sbo_bytes & 0x3FFFFu) >> 4) << 32) | (kMode << 62);
}

// A descriptor moved `bytes` (a multiple of 16) further into shared memory. The start address is
// the descriptor's low 14 bits (address >> 4) and every operand lies in the shared window (at most
// 228 KB on sm_90), so the sum stays inside that field: one 32-bit add on the low word. Descriptors
// built once and advanced like this keep the main loops' address arithmetic to one add each.
__device__ __forceinline__ uint64_t wgmma_desc_advance(uint64_t desc, uint32_t bytes) {
  return (desc & ~uint64_t(0xFFFFFFFFu)) | uint32_t(uint32_t(desc) + (bytes >> 4));
}

// Byte offset `off` of a dense row-major tile (rows of kSwizzleBytes bytes, 1 KB aligned) moved to
// where the kSwizzleBytes swizzle (TMA's and wgmma's) puts it.
template <int kSwizzleBytes>
__host__ __device__ constexpr uint32_t swizzle_offset(uint32_t off) {
  return off ^ (((off >> 7) & uint32_t(kSwizzleBytes / 16 - 1)) << 4);
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

// D(64x128, s32) += A(64x32, s8) * B(32x128, s8)^T; A (rows x k) and B (columns x k) K-major in
// shared memory, through descriptors. The 8-bit wrappers take kAccumulate = false for D = A * B
// (scale-d = 0: D's previous contents are ignored, so it needs no initialization).
template <bool kAccumulate = true>
__device__ __forceinline__ void wgmma_m64n128k32_s8_ss(int32_t (&d)[64], uint64_t a_desc, uint64_t b_desc) {
#if SAGEATTN_HAVE_WGMMA
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, "
      "%40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, "
      "%56, %57, %58, %59, %60, %61, %62, %63 "
      "}, %64, %65, p;\n"
      "}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]),
        "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]),
        "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]),
        "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]),
        "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
        "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]),
        "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
        "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]),
        "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
        "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]),
        "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
        "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]),
        "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(a_desc), "l"(b_desc), "n"(kAccumulate ? 1 : 0));
#else
  (void)d, (void)a_desc, (void)b_desc;
  __trap();
#endif
}

// D(64x128, f32) += A(64x32, e4m3, registers) * B(32x128, e4m3, K-major in shared memory).
template <bool kAccumulate = true>
__device__ __forceinline__ void wgmma_m64n128k32_e4m3_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t b_desc) {
#if SAGEATTN_HAVE_WGMMA
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, "
      "%40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, "
      "%56, %57, %58, %59, %60, %61, %62, %63 "
      "}, {%64, %65, %66, %67}, %68, p, 1, 1;\n"
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
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "n"(kAccumulate ? 1 : 0));
#else
  (void)d, (void)a, (void)b_desc;
  __trap();
#endif
}

// D(64x64, f32) += A(64x32, e4m3, registers) * B(32x64, e4m3, K-major in shared memory).
template <bool kAccumulate = true>
__device__ __forceinline__ void wgmma_m64n64k32_e4m3_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b_desc) {
#if SAGEATTN_HAVE_WGMMA
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, "
      "%8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31 "
      "}, {%32, %33, %34, %35}, %36, p, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]),
        "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
        "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "n"(kAccumulate ? 1 : 0));
#else
  (void)d, (void)a, (void)b_desc;
  __trap();
#endif
}

}  // namespace sageattn::ptx
