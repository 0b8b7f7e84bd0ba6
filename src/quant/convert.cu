// src/quant/convert.cu: elementwise device conversions (see convert.h).
#include "quant/convert.h"

#include <cuda_fp8.h>

#include "common/cuda_check.h"
#include "common/numerics.h"

namespace sageattn::quant {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint8_t encode_e4m3(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  uint16_t pair;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(x));
  return static_cast<uint8_t>(pair & 0xFFu);
#else
  return num::fp8e4m3_from_float(x);
#endif
}

__global__ void __launch_bounds__(kThreads) fp8e4m3_encode_kernel(const float* __restrict__ x,
                                                                uint8_t* __restrict__ codes,
                                                                int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    codes[i] = encode_e4m3(x[i]);
}

__global__ void __launch_bounds__(kThreads) int8_encode_kernel(const float* __restrict__ x,
                                                             float inv_scale,
                                                             int8_t* __restrict__ codes,
                                                             int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float y = __fmul_rn(x[i], inv_scale);  // never contracted into an FMA
    const int r = y != y ? 0 : __float2int_rn(fminf(fmaxf(y, -127.0f), 127.0f));
    codes[i] = static_cast<int8_t>(r);
  }
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

void fp8e4m3_encode(const float* x, uint8_t* codes, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  fp8e4m3_encode_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, codes, n);
  SAGEATTN_CUDA_CHECK_LAUNCH();
}

void int8_encode(const float* x, float inv_scale, int8_t* codes, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  int8_encode_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, inv_scale, codes, n);
  SAGEATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace sageattn::quant
