// src/common/device_numerics.cuh: device twins of the bit-exact quantization steps of
// docs/NUMERICS.md §2. Each is written with explicitly rounded intrinsics (__fmul_rn, __fsub_rn,
// __fdiv_rn) so that nvcc cannot contract or reorder them; each returns exactly the bits of the
// CPU reference (src/cpu/reference.cpp, src/common/numerics.h).
#pragma once

#include <cstdint>

#include <cuda_fp16.h>

#include "common/numerics.h"
#include "common/ptx/mma.cuh"
#include "sageattn/layout.h"

namespace sageattn::dev {

// Symmetric int8 code of x * inv: rne, clamped to [-127, 127], NaN -> 0 (num::int8_quantize).
__device__ __forceinline__ int8_t int8_code(float x, float inv) {
  const float y = __fmul_rn(x, inv);
  if (y != y) return 0;
  return static_cast<int8_t>(__float2int_rn(fminf(fmaxf(y, -kInt8Max), kInt8Max)));
}

// e4m3 code of x * inv (num::fp8e4m3_from_float(x * inv)).
__device__ __forceinline__ uint8_t fp8_code(float x, float inv) {
  const float y = __fmul_rn(x, inv);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  return static_cast<uint8_t>(ptx::cvt_e4m3x2(y, 0.0f) & 0xFFu);
#else
  return num::fp8e4m3_from_float(y);
#endif
}

// fp16 bits of x * inv (num::fp16_from_float(x * inv)).
__device__ __forceinline__ uint16_t fp16_code(float x, float inv) {
  return __half_as_ushort(__float2half_rn(__fmul_rn(x, inv)));
}

// Positive floats order like their bit patterns: atomicMax on the bits is a float max.
__device__ __forceinline__ void atomic_max_nonneg(float* addr, float value) {
  atomicMax(reinterpret_cast<unsigned int*>(addr), __float_as_uint(value));
}

// The 8 f16/bf16 elements packed in raw (element 0 in the low half of raw.x) widened to float
// (exact for both dtypes). The dtype test sits inside the loop: for a runtime `bf16` ptxas then
// predicates the two conversions instead of duplicating the caller's code around a branch; a
// compile-time `bf16` (the Q prologue's per-dtype instances) folds it away.
__device__ __forceinline__ void widen8(const uint4& raw, bool bf16, float (&x)[8]) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t lo = w[i] & 0xFFFFu, hi = w[i] >> 16;
    if (bf16) {
      x[2 * i] = __uint_as_float(lo << 16);
      x[2 * i + 1] = __uint_as_float(hi << 16);
    } else {
      x[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(lo)));
      x[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(hi)));
    }
  }
}

// The base-2 exponent s * dq + shift of one logit (docs/NUMERICS.md §3 step 3), where shift is
// num::p_shift of the row max m. Fast: one fused multiply-add. Exact (rows with
// exact_shift_row(m)): s * dq rounded first, as the CPU reference computes it, so that the row's
// largest element gives exactly m + shift (num::kExactShiftLogit says why the fused form cannot).
__device__ __forceinline__ bool exact_shift_row(float m) { return !(fabsf(m) < num::kExactShiftLogit); }
template <bool kExact>
__device__ __forceinline__ float shifted_logit(float s, float dq, float shift) {
  if constexpr (kExact) return __fadd_rn(__fmul_rn(s, dq), shift);
  else return fmaf(s, dq, shift);
}

}  // namespace sageattn::dev
