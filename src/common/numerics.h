// src/common/numerics.h: bit-exact software conversions of the numeric contract.
//
// fp8 e4m3 ("fn": no inf, NaN = S.1111.111, max 448), fp16 and bf16 encode/decode with
// round-to-nearest-even, the symmetric int8 quantizer and the fp16-mode V scale rule. These are
// the CPU reference's definitions of the formats; tests/cpu/test_numerics.cpp proves them equal to
// CUDA's own conversions (cuda_fp8.h / cuda_fp16.h / cuda_bf16.h) on every fp32 input, and
// tests/gpu/ to the hardware cvt instructions. Usable from host and device code; no state.
//
// Invariants: no undefined behaviour for any input (NaN, inf, subnormals included); every
// function is a pure function of its argument's bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "sageattn/layout.h"

#if defined(__CUDACC__)
#define SAGEATTN_HD __host__ __device__ __forceinline__
#else
#define SAGEATTN_HD inline
#endif

namespace sageattn::num {

SAGEATTN_HD uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
SAGEATTN_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// Round the fp32 bit pattern `u` (magnitude only, sign cleared) right by `shift` bits with
// round-to-nearest, ties to even. shift in [1, 31].
SAGEATTN_HD uint32_t rne_shift(uint32_t u, int shift) {
  const uint32_t half = 1u << (shift - 1);
  const uint32_t rest = u & ((1u << shift) - 1u);
  uint32_t q = u >> shift;
  if (rest > half || (rest == half && (q & 1u))) ++q;
  return q;
}

// ---------------------------------------------------------------- fp8 e4m3 (satfinite)
inline constexpr uint8_t kFp8E4M3NaN = 0x7F;

// fp32 -> e4m3, round-to-nearest-even, saturating: |x| beyond 448 (inf included) -> +-448,
// NaN -> 0x7F. Matches cvt.rn.satfinite.e4m3x2.f32 and __nv_cvt_float_to_fp8(x, __NV_SATFINITE,
// __NV_E4M3).
SAGEATTN_HD uint8_t fp8e4m3_from_float(float x) {
  const uint32_t u = float_bits(x);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t mag = u & 0x7FFFFFFFu;
  if (mag > 0x7F800000u) return kFp8E4M3NaN;
  // e4m3: bias 7, 3 mantissa bits, normal exponents 1..15, subnormal step 2^-9.
  const int exp = static_cast<int>(mag >> 23);  // biased fp32 exponent
  uint32_t code;
  if (exp >= 127 - 6) {
    // Result normal in e4m3 (before rounding): keep 3 of 23 mantissa bits.
    const uint32_t m = rne_shift(mag & 0x7FFFFFu, 20);  // may carry into 8
    uint32_t e8 = static_cast<uint32_t>(exp - 127 + 7);
    uint32_t m8 = m;
    if (m8 == 8u) {
      m8 = 0;
      ++e8;
    }
    code = (e8 << 3) | m8;
    if (e8 > 15u || code > 0x7Eu) code = 0x7E;  // satfinite: 448 = 0.1111.110
  } else {
    // Subnormal (or zero) in e4m3: value = m * 2^-9, m in 0..8 (8 rounds up to min normal).
    if (exp < 127 - 6 - 4) {
      // |x| < 2^-10: rounds to 0 unless exactly... 2^-10 is the half step; below it -> 0.
      // exp <= 116 means |x| < 2^-10, strictly below the tie point.
      code = 0;
    } else {
      const uint32_t full = (mag & 0x7FFFFFu) | 0x800000u;  // 24-bit significand
      // value = full * 2^(exp-150); in units of 2^-9: full * 2^(exp-141)
      const int shift = 141 - exp;  // in [21, 24]
      code = rne_shift(full, shift);  // 0..8; 8 == min normal 0.0001.000
    }
  }
  return static_cast<uint8_t>(sign | code);
}

// e4m3 -> fp32 (exact). 0x7F / 0xFF decode to NaN.
SAGEATTN_HD float fp8e4m3_to_float(uint8_t c) {
  const uint32_t sign = static_cast<uint32_t>(c & 0x80u) << 24;
  const uint32_t e = (c >> 3) & 0xFu;
  const uint32_t m = c & 0x7u;
  if (e == 15u && m == 7u) return bits_float(sign | 0x7FC00000u);
  if (e == 0) {
    // m * 2^-9, exact in fp32
    const float v = static_cast<float>(m) * (1.0f / 512.0f);
    return sign ? -v : v;
  }
  return bits_float(sign | ((e - 7u + 127u) << 23) | (m << 20));
}

// ---------------------------------------------------------------- fp16
// fp32 -> binary16, round-to-nearest-even; overflow -> inf; NaN -> canonical NaN 0x7FFF.
// Matches __float2half_rn.
SAGEATTN_HD uint16_t fp16_from_float(float x) {
  const uint32_t u = float_bits(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t mag = u & 0x7FFFFFFFu;
  if (mag > 0x7F800000u) return 0x7FFFu;  // canonical NaN
  if (mag == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
  const int exp = static_cast<int>(mag >> 23);
  uint32_t h;
  if (exp >= 127 - 14) {
    const uint32_t m = rne_shift(mag & 0x7FFFFFu, 13);  // 0..1024
    uint32_t e16 = static_cast<uint32_t>(exp - 127 + 15);
    h = (e16 << 10) + m;  // a mantissa carry rolls into the exponent
    if (h >= 0x7C00u) h = 0x7C00u;  // overflow -> inf
  } else if (exp < 127 - 14 - 11) {
    h = 0;  // below half the smallest subnormal 2^-24
  } else {
    const uint32_t full = (mag & 0x7FFFFFu) | 0x800000u;
    // value in units of 2^-24: full * 2^(exp-150+24) = full * 2^(exp-126)
    const int shift = 126 - exp;  // in [14, 24]
    h = rne_shift(full, shift);
  }
  return static_cast<uint16_t>(sign | h);
}

SAGEATTN_HD float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  if (e == 0x1Fu) return bits_float(sign | 0x7F800000u | (m << 13));
  if (e == 0) {
    const float v = static_cast<float>(m) * (1.0f / 16777216.0f);  // m * 2^-24, exact
    return sign ? -v : v;
  }
  return bits_float(sign | ((e - 15u + 127u) << 23) | (m << 13));
}

// ---------------------------------------------------------------- bf16
// fp32 -> bfloat16, round-to-nearest-even; NaN -> canonical NaN 0x7FFF. Matches
// __float2bfloat16_rn.
SAGEATTN_HD uint16_t bf16_from_float(float x) {
  const uint32_t u = float_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;  // canonical NaN
  const uint32_t rest = u & 0xFFFFu;
  uint32_t hi = u >> 16;
  if (rest > 0x8000u || (rest == 0x8000u && (hi & 1u))) ++hi;  // may roll to inf: correct
  return static_cast<uint16_t>(hi);
}

SAGEATTN_HD float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

// ---------------------------------------------------------------- int8
// 1.5 * 2^23: for |y| < 2^22, y + kRniMagic rounds y to the nearest integer, ties to even (the
// floats in [2^23, 2^24) are the integers, and kRniMagic is even), and its bits are
// 0x4B400000 + rni(y).
inline constexpr float kRniMagic = 12582912.0f;

// Symmetric int8 code of x * inv_scale: round-to-nearest-even, clamped to [-127, 127]. NaN -> 0
// (defined behaviour; NaN inputs are reported elsewhere). Matches
// __float2int_rn(x * inv_scale) followed by a clamp.
SAGEATTN_HD int8_t int8_quantize(float x, float inv_scale) {
#if defined(__CUDA_ARCH__)
  const float y = __fmul_rn(x, inv_scale);  // never fused with the rounding add below
#else
  const float y = x * inv_scale;  // host: built with -ffp-contract=off
#endif
  if (!(y == y)) return 0;
  if (y >= 127.0f) return 127;
  if (y <= -127.0f) return -127;
  // |y| < 127: round half to even through the fp32 magic-number trick (exact for |y| < 2^22).
#if defined(__CUDA_ARCH__)
  const float r = __fsub_rn(__fadd_rn(y, kRniMagic), kRniMagic);
#else
  const float r = (y + kRniMagic) - kRniMagic;
#endif
  return static_cast<int8_t>(static_cast<int>(r));
}

// ---------------------------------------------------------------- special values
// (docs/NUMERICS.md, "Special values".)
inline constexpr uint32_t kF32InfBits = 0x7F800000u;
// The largest finite bf16 (0x7F7F), as float.
inline constexpr float kBf16Max = 3.38953139e38f;

// |x| as it enters an amax (a Q/K group's or a V channel's largest magnitude), with NaN counted as
// +inf. max() would skip a NaN and quantize the rest of its group as if it were not there (the NaN
// itself becoming code 0: a finite, wrong result); counted as +inf it makes the group's amax +inf,
// which the quantization rules turn into NaN logits (Q, K) or a NaN channel scale (V).
SAGEATTN_HD float amax_abs(float x) {
  const uint32_t u = float_bits(x) & 0x7FFFFFFFu;
  return bits_float(u > kF32InfBits ? kF32InfBits : u);
}

// The exponent shift of a row's P for the row max m (base-2 logits): P = exp2(s + shift) with
// shift = off - m rounded toward -inf (off = log2(448) in the fp8 modes, 0 in fp16), so the
// largest P, exp2(m + shift) (computed exactly: Sterbenz), lies in (2^(off - spacing of m), 2^off]
// and never exceeds fp8's 448. Rounded to nearest, the shift could land up to half m's spacing
// above off: at m ~ 2^23 (spacing 1) P_max became 512, at 2^27 65536, saturating P's fp8 code at
// 448 while the row sum l kept the fp32 value (the output shrank, 2.625 for 3). m = -inf gives
// +inf, as off - m does.
SAGEATTN_HD float p_shift(float off, float m) {
#ifdef __CUDA_ARCH__
  return __fsub_rd(off, m);
#else
  const double exact = double(off) - double(m);  // exact while m < 2^33; beyond, -m either way
  float r = static_cast<float>(exact);
  if (double(r) > exact) r = std::nextafter(r, -INFINITY);
  return r;
#endif
}

// Row maxima of at least this magnitude take the exact exponent path in the GPU kernels: s rounded
// to fp32 first, then shifted (as the CPU reference computes it). The fast path, one fused
// multiply-add s_int * dq + shift, keeps the product exact, so its result is off by the rounding
// of m = RN(s_int * dq), up to half m's spacing: 2^-13 at 2^12, 1024 at 2^34 (exp2 then gives
// inf or 0 for the max element).
inline constexpr float kExactShiftLogit = 4096.0f;

// Whether an amax is usable as a quantization range: neither +inf nor NaN (an empty sequence's
// -inf and 0 are usable: they become kMinAmax or the scale of an all-zero channel).
SAGEATTN_HD bool amax_is_finite(float amax) { return amax < bits_float(kF32InfBits); }

// x clamped to [-max, max], NaN unchanged: the output rounding. An attention output is a convex
// combination of V rows, so its exact value never exceeds the output dtype's range; only the
// quantized algorithm's rounding can push a result near the dtype's largest value past it: P
// rounded up to fp8 / fp16 while the row sum l is not (a result a few percent above max |v|), or
// fp32 overflowing to inf on the way (bf16 values near 3.4e38). The nearest finite value is the
// right answer there. Non-finite inputs never reach this as +-inf: they give NaN (docs/NUMERICS.md,
// "Special values").
SAGEATTN_HD float saturate(float x, float max) {
  const uint32_t u = float_bits(x), mag = u & 0x7FFFFFFFu;
  if (mag > float_bits(max) && mag <= kF32InfBits) return bits_float((u & 0x80000000u) | float_bits(max));
  return x;
}

// ---------------------------------------------------------------- fp16 V scale
// The exponent e of the fp16-mode V channel scale 2^e for a channel whose largest |v| is `amax`
// (layout.h, kFp16VKeep* and kFp16VTargetExp): 0 when amax lies in [2^kFp16VKeepMinExp,
// 2^kFp16VKeepMaxExp) or is not positive (an all-zero channel, an empty sequence's -inf, NaN);
// otherwise the e that puts amax * 2^-e in [2^(kFp16VTargetExp - 1), 2^kFp16VTargetExp), clamped to
// [-126, 127] (so that 2^e and 2^-e are normal floats; +inf counts as 2^128 and gives 115).
SAGEATTN_HD int fp16_v_exponent(float amax) {
  if (!(amax > 0.0f)) return 0;
  const uint32_t u = float_bits(amax);  // sign bit 0
  const int biased = static_cast<int>(u >> 23);
  // x: amax in [2^(x-1), 2^x) (frexp's exponent).
  int x = biased - 126;
  if (biased == 0) {  // subnormal: amax = m * 2^-149 with m's highest set bit at position b
    int b = 22;
    while (((u >> b) & 1u) == 0u) --b;
    x = b - 148;
  }
  if (x - 1 >= kFp16VKeepMinExp && x <= kFp16VKeepMaxExp) return 0;
  const int e = x - kFp16VTargetExp;
  return e < -126 ? -126 : e > 127 ? 127 : e;
}

}  // namespace sageattn::num
