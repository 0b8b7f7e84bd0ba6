// src/common/ptx/mma.cuh: thin, documented wrappers for the warp-level PTX the sm80 kernel family
// uses: mma.sync (int8, f16, e4m3), ldmatrix, cp.async, and the conversions/exp2 of the softmax.
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k*"), lane = 4 * g + t with
// g = lane / 4 (group) and t = lane % 4 (thread in group):
//   C/D (m16n8, 32-bit):   c0,c1 -> row g,     cols 2t, 2t+1;   c2,c3 -> row g + 8, same cols
//   A 8-bit (m16n8k32):    a[0] row g, k 4t..4t+3;  a[1] row g+8, k 4t..;  a[2] row g, k 16+4t..;
//                          a[3] row g+8, k 16+4t..   (4 bytes per register, k ascending)
//   B 8-bit (m16n8k32):    b[0] col g, k 4t..4t+3;  b[1] col g, k 16+4t..
//   A f16 (m16n8k16):      a[0] row g, k 2t,2t+1;  a[1] row g+8, k 2t..;  a[2] row g, k 8+2t..;
//                          a[3] row g+8, k 8+2t..
//   B f16 (m16n8k16):      b[0] col g, k 2t,2t+1;  b[1] col g, k 8+2t..
// Every wrapper is a single instruction (or a fixed short sequence); none touches memory other
// than the one it names.
#pragma once

#include <cstdint>

#include <cuda_fp16.h>

namespace sageattn::ptx {

// ---------------------------------------------------------------- mma.sync
// D += A(s8, 16x32) * B(s8, 32x8), int32 accumulate. sm80+.
__device__ __forceinline__ void mma_s8_16832(int32_t (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// D += A(f16, 16x16) * B(f16, 16x8), fp32 accumulate. sm80+.
__device__ __forceinline__ void mma_f16_16816(float (&d)[4], const uint32_t (&a)[4],
                                              const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// D += A(e4m3, 16x32) * B(e4m3, 32x8), fp32 accumulate (about 22 significant bits kept by the
// hardware: callers flush to a true fp32 accumulator every K block). sm89+.
__device__ __forceinline__ void mma_e4m3_16832_f32(float (&d)[4], const uint32_t (&a)[4],
                                                   const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // dispatch never selects an fp8 kernel below sm89
#endif
}

// D += A(e4m3) * B(e4m3), fp16 accumulate: d[0] = (row g: c0,c1), d[1] = (row g+8: c2,c3) as
// f16x2. sm89+.
__device__ __forceinline__ void mma_e4m3_16832_f16(uint32_t (&d)[2], const uint32_t (&a)[4],
                                                   const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f16.e4m3.e4m3.f16 {%0,%1}, {%2,%3,%4,%5}, {%6,%7}, "
      "{%0,%1};\n"
      : "+r"(d[0]), "+r"(d[1])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

// ---------------------------------------------------------------- ldmatrix
// Four 8x8 b16 matrices; lane l supplies the shared address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}
// Transposed variant: each thread receives column elements instead of row elements.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

// ---------------------------------------------------------------- cp.async
// 16-byte global -> shared copy; src_bytes < 16 zero-fills the rest (0 = all zeros, no read).
__device__ __forceinline__ void cp_async_16(uint32_t smem_addr, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr), "l"(gmem),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N of this thread's committed groups are still pending.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// For diagnostic probes: the GPU's global timer (ns) and the SM the thread runs on.
__device__ __forceinline__ uint64_t globaltimer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ uint32_t smid() {
  uint32_t id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  return id;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 8 bytes to shared memory (addr 8-byte aligned): an STS where the compiler would see only a
// generic pointer (a hand-aligned dynamic shared-memory base) and emit a generic store.
__device__ __forceinline__ void st_shared_v2(uint32_t addr, uint2 v) {
  asm volatile("st.shared.v2.b32 [%0], {%1, %2};\n" ::"r"(addr), "r"(v.x), "r"(v.y) : "memory");
}
__device__ __forceinline__ void st_shared_b32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ uint4 ld_shared_v4(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr) : "memory");
  return v;
}

// ---------------------------------------------------------------- conversions, exp2
// 2^x, the MUFU.EX2 approximation (max rel. error 2^-22; ftz). -inf -> +0.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats -> two e4m3 in the low 16 bits: lo goes to bits 0-7, hi to bits 8-15.
// Round-to-nearest-even, saturating (cvt.rn.satfinite). sm89+.
__device__ __forceinline__ uint16_t cvt_e4m3x2(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  uint16_t r;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(r) : "f"(hi), "f"(lo));
  return r;
#else
  __trap();
  return 0;
#endif
}

// Two floats -> f16x2 (lo in bits 0-15), round-to-nearest-even.
__device__ __forceinline__ uint32_t cvt_f16x2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// Two floats -> f16x2 / bf16x2 (lo in bits 0-15), round-to-nearest-even, saturating to the largest
// finite value (cvt.rn.satfinite: +-inf and magnitudes beyond it become +-max, NaN stays NaN), the
// same as num::saturate before the rounding: a value between max and the halfway point to the next
// power of two rounds to max either way. sm80+.
__device__ __forceinline__ uint32_t cvt_f16x2_satfinite(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.satfinite.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ uint32_t cvt_bf16x2_satfinite(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.satfinite.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

}  // namespace sageattn::ptx
