// src/quant/convert.h: elementwise device conversions, the building blocks of the quantizers.
//
// Host-callable launchers on the caller's stream. Each matches the bit-exact software definition
// in src/common/numerics.h (tests/gpu/test_gpu_numerics.cu checks every fp32 input).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace sageattn::quant {

// codes[i] = e4m3(x[i]), round-to-nearest-even, saturating to +-448, NaN -> 0x7F. On sm89+ this
// is the hardware cvt.rn.satfinite.e4m3x2.f32; on sm80 the software definition.
void fp8e4m3_encode(const float* x, uint8_t* codes, int64_t n, cudaStream_t stream);

// codes[i] = int8 code of x[i] * inv_scale: round-to-nearest-even, clamped to [-127, 127].
void int8_encode(const float* x, float inv_scale, int8_t* codes, int64_t n, cudaStream_t stream);

}  // namespace sageattn::quant
