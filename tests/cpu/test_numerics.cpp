// tests/cpu/test_numerics.cpp: the software codecs of src/common/numerics.h.
//
// What it proves:
//  * Against CUDA's own host-side conversions (cuda_fp8.h, cuda_fp16.h, cuda_bf16.h; only when
//    the toolkit headers are found, else skipped with a message): fp8e4m3_from_float,
//    fp16_from_float and bf16_from_float give the same bits on EVERY one of the 2^32 fp32 bit
//    patterns, and the decoders agree on every code (NaN matches NaN).
//  * Without CUDA, from the format definitions alone: decoding is value * 2^exp as the format
//    says; every finite code round-trips; the midpoint of two adjacent codes rounds to the even
//    code and a step either side rounds to the nearer one; saturation, NaN, signed zero and
//    subnormal boundaries of e4m3 (satfinite) and fp16; the encoders are monotonic and pick a
//    nearest code; int8_quantize rounds ties to even, clamps to [-127, 127], maps NaN to 0,
//    equals nearbyint + clamp everywhere sampled, and rounds `x * inv` once in fp32 (never a
//    fused or double-precision product); a group's own amax keeps x * inv inside [-127.5, 127.5]
//    (the GPU Q prologue codes without the clamp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/numerics.h"

#if defined(SAGEATTN_HAVE_CUDA_HEADERS)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#endif

namespace {

using namespace sageattn::num;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool is_fp8_nan(uint8_t c) { return (c & 0x7Fu) == 0x7Fu; }
bool is_fp16_nan(uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }
bool is_bf16_nan(uint16_t b) { return (b & 0x7F80u) == 0x7F80u && (b & 0x7Fu) != 0; }

// Value of an e4m3 code straight from the format definition (bias 7, 3 mantissa bits,
// subnormal step 2^-9, S.1111.111 = NaN), in double.
double fp8_definition(uint8_t c) {
  const int e = (c >> 3) & 0xF, m = c & 7;
  const double mag = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 7 - 3);
  return (c & 0x80) ? -mag : mag;
}
// Same for IEEE binary16 (bias 15, 10 mantissa bits) and bfloat16 (bias 127, 7 mantissa bits),
// finite codes only.
double fp16_definition(uint16_t h) {
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 15 - 10);
  return (h & 0x8000) ? -mag : mag;
}
double bf16_definition(uint16_t b) {
  const int e = (b >> 7) & 0xFF, m = b & 0x7F;
  const double mag = e == 0 ? std::ldexp(m, -133) : std::ldexp(128 + m, e - 127 - 7);
  return (b & 0x8000) ? -mag : mag;
}

std::string hex(uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

// The int8 contract in its plainest form: round half to even (nearbyint in the default rounding
// mode), clamp to [-127, 127], NaN -> 0.
int int8_definition(float y) {
  if (std::isnan(y)) return 0;
  if (y >= 127.0f) return 127;
  if (y <= -127.0f) return -127;
  return static_cast<int>(std::nearbyint(y));
}

// fp32 product, rounded once; volatile keeps the compiler from fusing or widening it.
float fp32_product(float x, float inv) {
  volatile float p = x * inv;
  return p;
}

// ================================================================ exhaustive, vs CUDA
#if defined(SAGEATTN_HAVE_CUDA_HEADERS)

// Runs ours(x) and theirs(x) on all 2^32 fp32 bit patterns, split over two threads, and fails
// listing the first mismatches (bit pattern, both results) if any.
template <typename Ours, typename Theirs>
void expect_equal_on_all_floats(const char* what, Ours ours, Theirs theirs) {
  constexpr int kThreads = 2;
  constexpr size_t kKeep = 8;
  struct Mismatch {
    uint32_t bits, ours, theirs;
  };
  std::vector<std::vector<Mismatch>> found(kThreads);
  std::vector<uint64_t> count(kThreads, 0);
  std::vector<std::thread> pool;
  const uint64_t per = (uint64_t{1} << 32) / kThreads;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t bad = 0;
      for (uint64_t i = per * t; i < per * (t + 1); ++i) {
        const float x = bits_float(static_cast<uint32_t>(i));
        const uint32_t a = ours(x), b = theirs(x);
        if (a != b) {
          if (found[t].size() < kKeep) found[t].push_back({static_cast<uint32_t>(i), a, b});
          ++bad;
        }
      }
      count[t] = bad;
    });
  }
  for (auto& th : pool) th.join();
  uint64_t total = 0;
  std::ostringstream os;
  for (int t = 0; t < kThreads; ++t) {
    total += count[t];
    for (const Mismatch& m : found[t])
      os << "\n  x bits " << hex(m.bits) << " (" << bits_float(m.bits) << "): ours " << hex(m.ours)
         << ", CUDA " << hex(m.theirs);
  }
  EXPECT_EQ(total, 0u) << what << ": " << total << " of 2^32 inputs differ; first ones:"
                       << os.str();
}

TEST(NumericsVsCuda, Fp8E4M3EncodeAllFloats) {
  expect_equal_on_all_floats(
      "fp8e4m3_from_float", [](float x) -> uint32_t { return fp8e4m3_from_float(x); },
      [](float x) -> uint32_t { return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3); });
}

TEST(NumericsVsCuda, Fp16EncodeAllFloats) {
  expect_equal_on_all_floats(
      "fp16_from_float", [](float x) -> uint32_t { return fp16_from_float(x); },
      [](float x) -> uint32_t { return static_cast<__half_raw>(__float2half_rn(x)).x; });
}

TEST(NumericsVsCuda, Bf16EncodeAllFloats) {
  expect_equal_on_all_floats(
      "bf16_from_float", [](float x) -> uint32_t { return bf16_from_float(x); },
      [](float x) -> uint32_t {
        return static_cast<__nv_bfloat16_raw>(__float2bfloat16_rn(x)).x;
      });
}

// Same float, or both NaN. Bits are compared so that -0 != +0.
::testing::AssertionResult same_float(float ours, float theirs, uint32_t code) {
  if (std::isnan(ours) && std::isnan(theirs)) return ::testing::AssertionSuccess();
  if (float_bits(ours) == float_bits(theirs)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "code " << hex(code) << ": ours " << ours << " ("
                                       << hex(float_bits(ours)) << "), CUDA " << theirs << " ("
                                       << hex(float_bits(theirs)) << ")";
}

TEST(NumericsVsCuda, Fp8E4M3DecodeAllCodes) {
  for (uint32_t c = 0; c < 256; ++c) {
    __nv_fp8_e4m3 v;
    v.__x = static_cast<__nv_fp8_storage_t>(c);
    EXPECT_TRUE(same_float(fp8e4m3_to_float(static_cast<uint8_t>(c)), static_cast<float>(v), c));
  }
}

TEST(NumericsVsCuda, Fp16DecodeAllCodes) {
  for (uint32_t c = 0; c < 65536; ++c) {
    __half_raw r;
    r.x = static_cast<unsigned short>(c);
    EXPECT_TRUE(same_float(fp16_to_float(static_cast<uint16_t>(c)), __half2float(__half(r)), c));
  }
}

TEST(NumericsVsCuda, Bf16DecodeAllCodes) {
  for (uint32_t c = 0; c < 65536; ++c) {
    __nv_bfloat16_raw r;
    r.x = static_cast<unsigned short>(c);
    EXPECT_TRUE(same_float(bf16_to_float(static_cast<uint16_t>(c)),
                           __bfloat162float(__nv_bfloat16(r)), c));
  }
}

#else  // !SAGEATTN_HAVE_CUDA_HEADERS

TEST(NumericsVsCuda, Skipped) {
  GTEST_SKIP() << "CUDA headers not found: the exhaustive comparison of the fp8/fp16/bf16 codecs "
                  "with cuda_fp8.h / cuda_fp16.h / cuda_bf16.h did not run";
}

#endif

// ================================================================ fp8 e4m3, from the definition

TEST(Fp8E4M3, DecodeMatchesFormatDefinition) {
  for (int c = 0; c < 256; ++c) {
    const float v = fp8e4m3_to_float(static_cast<uint8_t>(c));
    if (is_fp8_nan(static_cast<uint8_t>(c))) {
      EXPECT_TRUE(std::isnan(v)) << "code " << hex(c);
      continue;
    }
    EXPECT_EQ(static_cast<double>(v), fp8_definition(static_cast<uint8_t>(c))) << "code " << hex(c);
    EXPECT_EQ(std::signbit(v), (c & 0x80) != 0) << "code " << hex(c);
  }
  EXPECT_EQ(fp8e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(fp8e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8e4m3_to_float(0x08), std::ldexp(1.0f, -6));  // smallest normal
}

TEST(Fp8E4M3, EveryFiniteCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    if (is_fp8_nan(static_cast<uint8_t>(c))) continue;
    EXPECT_EQ(fp8e4m3_from_float(fp8e4m3_to_float(static_cast<uint8_t>(c))), c) << "code " << hex(c);
  }
}

// Between codes c and c + 1 (adjacent magnitudes, both finite): the exact midpoint goes to the
// code with an even mantissa, one fp32 ulp above it to c + 1, one below to c. The midpoint needs
// 5 significant bits, so it is exact in fp32.
TEST(Fp8E4M3, MidpointsRoundToEvenAndNeighboursToNearest) {
  for (int c = 0; c < 0x7E; ++c) {
    for (const int sign : {0, 0x80}) {
      const uint8_t lo = static_cast<uint8_t>(sign | c), hi = static_cast<uint8_t>(sign | (c + 1));
      const double mid_d = (fp8_definition(lo) + fp8_definition(hi)) / 2;
      const float mid = static_cast<float>(mid_d);
      ASSERT_EQ(static_cast<double>(mid), mid_d);
      const uint8_t even = (c % 2 == 0) ? lo : hi;
      EXPECT_EQ(fp8e4m3_from_float(mid), even) << "midpoint " << mid << " of " << hex(lo) << "/"
                                               << hex(hi);
      const float away = std::nextafter(mid, sign ? -kInf : kInf);  // larger magnitude
      const float toward = std::nextafter(mid, 0.0f);               // smaller magnitude
      EXPECT_EQ(fp8e4m3_from_float(away), hi) << "just beyond midpoint " << mid;
      EXPECT_EQ(fp8e4m3_from_float(toward), lo) << "just inside midpoint " << mid;
    }
  }
}

TEST(Fp8E4M3, SaturatesToMaxFinite) {
  EXPECT_EQ(fp8e4m3_from_float(448.0f), 0x7E);
  EXPECT_EQ(fp8e4m3_from_float(-448.0f), 0xFE);
  // (448, inf]: e4m3fn has no inf; satfinite clamps to +-448, including past the 464 midpoint
  // that would otherwise round to the NaN code's 480.
  for (const float x : {std::nextafter(448.0f, kInf), 449.0f, 463.0f, 464.0f, 465.0f, 479.0f,
                        480.0f, 481.0f, 512.0f, 1e4f, 1e30f, std::numeric_limits<float>::max(),
                        kInf}) {
    EXPECT_EQ(fp8e4m3_from_float(x), 0x7E) << x;
    EXPECT_EQ(fp8e4m3_from_float(-x), 0xFE) << -x;
  }
  // The top binade steps by 32: 416 (0x7D) and 448 (0x7E) are neighbours, 432 is their tie.
  EXPECT_EQ(fp8e4m3_from_float(431.0f), 0x7D);
  EXPECT_EQ(fp8e4m3_from_float(432.0f), 0x7E);  // tie -> even mantissa 6 (448)
  EXPECT_EQ(fp8e4m3_to_float(0x7D), 416.0f);
}

TEST(Fp8E4M3, NaNEncodesToCanonicalNaN) {
  for (const uint32_t bits : {0x7FC00000u, 0x7F800001u, 0x7FFFFFFFu, 0x7FA00000u, 0xFFC00000u,
                              0xFF800001u, 0xFFFFFFFFu}) {
    EXPECT_EQ(fp8e4m3_from_float(bits_float(bits)), kFp8E4M3NaN) << hex(bits);
  }
  EXPECT_EQ(kFp8E4M3NaN, 0x7F);
  EXPECT_TRUE(std::isnan(fp8e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(fp8e4m3_to_float(0xFF)));
}

TEST(Fp8E4M3, SignedZeroAndUnderflow) {
  EXPECT_EQ(fp8e4m3_from_float(0.0f), 0x00);
  EXPECT_EQ(fp8e4m3_from_float(-0.0f), 0x80);
  EXPECT_EQ(fp8e4m3_from_float(1e-30f), 0x00);
  EXPECT_EQ(fp8e4m3_from_float(-1e-30f), 0x80);
  EXPECT_EQ(fp8e4m3_from_float(std::numeric_limits<float>::denorm_min()), 0x00);
  EXPECT_EQ(fp8e4m3_from_float(-std::numeric_limits<float>::denorm_min()), 0x80);
  EXPECT_TRUE(std::signbit(fp8e4m3_to_float(0x80)));
  EXPECT_EQ(fp8e4m3_to_float(0x80), 0.0f);
}

TEST(Fp8E4M3, SubnormalBoundaries) {
  const float step = std::ldexp(1.0f, -9);  // subnormal step = smallest subnormal
  const float half_step = std::ldexp(1.0f, -10);
  EXPECT_EQ(fp8e4m3_to_float(0x01), step);
  EXPECT_EQ(fp8e4m3_from_float(step), 0x01);
  EXPECT_EQ(fp8e4m3_from_float(half_step), 0x00);  // tie between 0 and 2^-9: even is 0
  EXPECT_EQ(fp8e4m3_from_float(-half_step), 0x80);
  EXPECT_EQ(fp8e4m3_from_float(std::nextafter(half_step, 1.0f)), 0x01);
  EXPECT_EQ(fp8e4m3_from_float(-std::nextafter(half_step, 1.0f)), 0x81);
  EXPECT_EQ(fp8e4m3_from_float(std::nextafter(half_step, 0.0f)), 0x00);
  EXPECT_EQ(fp8e4m3_from_float(3 * half_step), 0x02);  // tie 1/2 -> 2
  EXPECT_EQ(fp8e4m3_from_float(5 * half_step), 0x02);  // tie 2/3 -> 2
  EXPECT_EQ(fp8e4m3_from_float(7 * step), 0x07);       // largest subnormal
  EXPECT_EQ(fp8e4m3_from_float(15 * half_step), 0x08);  // tie 7/8 -> 8 (min normal, m = 0)
  EXPECT_EQ(fp8e4m3_from_float(std::ldexp(1.0f, -6)), 0x08);
}

// Over a sweep of all positive floats (every 61st bit pattern, plus every pattern in [0, 1] at a
// finer stride around the subnormal range) the code's value never decreases, is a nearest code
// for |x| <= 448, and the negative input gives the same code with the sign bit set.
TEST(Fp8E4M3, MonotonicNearestAndOddSymmetric) {
  auto check_range = [](uint32_t from, uint32_t to, uint32_t stride) {
    double prev = -1;
    int failures = 0;
    for (uint64_t b = from; b <= to && failures < 10; b += stride) {
      const float x = bits_float(static_cast<uint32_t>(b));
      const uint8_t c = fp8e4m3_from_float(x);
      const double v = fp8_definition(c);
      if (v < prev) {
        ADD_FAILURE() << "not monotonic at x=" << x << " code " << hex(c);
        ++failures;
      }
      prev = v;
      if (fp8e4m3_from_float(-x) != (c | 0x80)) {
        ADD_FAILURE() << "encode(-x) != encode(x) | 0x80 at x=" << x;
        ++failures;
      }
      if (x <= 448.0f) {
        const double err = std::fabs(v - x);
        for (const int n : {int(c) - 1, int(c) + 1}) {
          if (n < 0 || n > 0x7E) continue;
          if (std::fabs(fp8_definition(static_cast<uint8_t>(n)) - x) < err) {
            ADD_FAILURE() << "x=" << x << " encodes to " << hex(c) << " but " << hex(n)
                          << " is nearer";
            ++failures;
          }
        }
      }
    }
  };
  check_range(0u, 0x7F800000u, 61u);             // all magnitudes, inf included
  check_range(0x3A000000u, 0x3F800000u, 7u);     // [2^-11, 1]: subnormals, finely
  check_range(0x43000000u, 0x43F00000u, 3u);     // [128, 480]: the top binades and saturation
}

// ================================================================ fp16, from the definition

TEST(Fp16, DecodeMatchesFormatDefinitionAndRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t c = static_cast<uint16_t>(h);
    const float v = fp16_to_float(c);
    if (is_fp16_nan(c)) {
      EXPECT_TRUE(std::isnan(v)) << hex(h);
      continue;
    }
    if ((c & 0x7FFFu) == 0x7C00u) {
      EXPECT_EQ(v, (c & 0x8000u) ? -kInf : kInf);
    } else {
      EXPECT_EQ(static_cast<double>(v), fp16_definition(c)) << hex(h);
      EXPECT_EQ(std::signbit(v), (c & 0x8000u) != 0) << hex(h);
    }
    EXPECT_EQ(fp16_from_float(v), c) << hex(h);
  }
}

TEST(Fp16, MidpointsRoundToEven) {
  // Adjacent magnitudes h, h + 1, including 0x7BFF and 0x7C00 = inf: IEEE rounds as if the
  // exponent range were unbounded (inf standing for 65536), so 65520 is the overflow tie.
  for (uint32_t h = 0; h < 0x7C00u; ++h) {
    const double mid_d = (fp16_definition(static_cast<uint16_t>(h)) +
                          fp16_definition(static_cast<uint16_t>(h + 1))) / 2;
    const float mid = static_cast<float>(mid_d);
    ASSERT_EQ(static_cast<double>(mid), mid_d);
    const uint32_t even = (h % 2 == 0) ? h : h + 1;
    ASSERT_EQ(fp16_from_float(mid), even) << "midpoint " << mid;
    ASSERT_EQ(fp16_from_float(-mid), even | 0x8000u) << "midpoint " << -mid;
    ASSERT_EQ(fp16_from_float(std::nextafter(mid, kInf)), h + 1) << "above " << mid;
    ASSERT_EQ(fp16_from_float(std::nextafter(mid, 0.0f)), h) << "below " << mid;
  }
  EXPECT_EQ(fp16_from_float(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> 1.0 (even)
  EXPECT_EQ(fp16_from_float(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even above
  EXPECT_EQ(fp16_from_float(2049.0f), 0x6800);  // 2048 | 2050: even is 2048
  EXPECT_EQ(fp16_from_float(2051.0f), 0x6802);  // 2050 | 2052: even is 2052
}

TEST(Fp16, OverflowAndSpecials) {
  EXPECT_EQ(fp16_from_float(65504.0f), 0x7BFF);  // largest finite stays finite
  EXPECT_EQ(fp16_from_float(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(fp16_from_float(65520.0f), 0x7C00);  // tie 65504 / "65536": rounds to inf
  EXPECT_EQ(fp16_from_float(-65520.0f), 0xFC00);
  EXPECT_EQ(fp16_from_float(1e6f), 0x7C00);
  EXPECT_EQ(fp16_from_float(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(fp16_from_float(kInf), 0x7C00);
  EXPECT_EQ(fp16_from_float(-kInf), 0xFC00);
  EXPECT_EQ(fp16_from_float(kNaN), 0x7FFF);
  EXPECT_EQ(fp16_from_float(bits_float(0xFF800001u)), 0x7FFF);
  EXPECT_EQ(fp16_from_float(-0.0f), 0x8000);
  EXPECT_EQ(fp16_from_float(0.0f), 0x0000);
}

TEST(Fp16, SubnormalBoundaries) {
  const float min_sub = std::ldexp(1.0f, -24);
  EXPECT_EQ(fp16_to_float(0x0001), min_sub);
  EXPECT_EQ(fp16_from_float(min_sub), 0x0001);
  EXPECT_EQ(fp16_from_float(min_sub / 2), 0x0000);  // tie 0 / 2^-24 -> 0
  EXPECT_EQ(fp16_from_float(-min_sub / 2), 0x8000);
  EXPECT_EQ(fp16_from_float(std::nextafter(min_sub / 2, 1.0f)), 0x0001);
  EXPECT_EQ(fp16_from_float(std::nextafter(min_sub / 2, 0.0f)), 0x0000);
  EXPECT_EQ(fp16_from_float(3 * min_sub / 2), 0x0002);        // tie 1/2 -> 2
  EXPECT_EQ(fp16_from_float(1023 * min_sub), 0x03FF);         // largest subnormal
  EXPECT_EQ(fp16_from_float(1023.5f * min_sub), 0x0400);      // tie -> min normal (even)
  EXPECT_EQ(fp16_from_float(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(fp16_from_float(std::numeric_limits<float>::denorm_min()), 0x0000);
}

// ================================================================ bf16, from the definition

TEST(Bf16, DecodeRoundTripAndMidpoints) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t c = static_cast<uint16_t>(b);
    const float v = bf16_to_float(c);
    if (is_bf16_nan(c)) {
      EXPECT_TRUE(std::isnan(v)) << hex(b);
      continue;
    }
    if ((c & 0x7FFFu) == 0x7F80u) {
      EXPECT_EQ(v, (c & 0x8000u) ? -kInf : kInf);
    } else {
      EXPECT_EQ(static_cast<double>(v), bf16_definition(c)) << hex(b);
    }
    EXPECT_EQ(bf16_from_float(v), c) << hex(b);
  }
  for (uint32_t b = 0; b < 0x7F80u; ++b) {  // up to max -> inf (as 2^128)
    const double mid_d = (bf16_definition(static_cast<uint16_t>(b)) +
                          bf16_definition(static_cast<uint16_t>(b + 1))) / 2;
    const float mid = static_cast<float>(mid_d);
    ASSERT_EQ(static_cast<double>(mid), mid_d);
    ASSERT_EQ(bf16_from_float(mid), (b % 2 == 0) ? b : b + 1) << "midpoint " << mid;
    ASSERT_EQ(bf16_from_float(std::nextafter(mid, kInf)), b + 1) << "above " << mid;
    ASSERT_EQ(bf16_from_float(std::nextafter(mid, 0.0f)), b) << "below " << mid;
  }
  EXPECT_EQ(bf16_from_float(kNaN), 0x7FFF);
  EXPECT_EQ(bf16_from_float(bits_float(0xFFC00001u)), 0x7FFF);
  EXPECT_EQ(bf16_from_float(kInf), 0x7F80);
  EXPECT_EQ(bf16_from_float(-kInf), 0xFF80);
  EXPECT_EQ(bf16_from_float(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to inf
  EXPECT_EQ(bf16_from_float(-0.0f), 0x8000);
}

// ================================================================ int8

TEST(Int8Quantize, TiesToEven) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  EXPECT_EQ(int8_quantize(0.5f, 1.0f), 0);
  EXPECT_EQ(int8_quantize(1.5f, 1.0f), 2);
  EXPECT_EQ(int8_quantize(2.5f, 1.0f), 2);
  EXPECT_EQ(int8_quantize(3.5f, 1.0f), 4);
  EXPECT_EQ(int8_quantize(-0.5f, 1.0f), 0);
  EXPECT_EQ(int8_quantize(-1.5f, 1.0f), -2);
  EXPECT_EQ(int8_quantize(-2.5f, 1.0f), -2);
  EXPECT_EQ(int8_quantize(125.5f, 1.0f), 126);
  EXPECT_EQ(int8_quantize(126.5f, 1.0f), 126);
  EXPECT_EQ(int8_quantize(-126.5f, 1.0f), -126);
  EXPECT_EQ(int8_quantize(0.25f, 2.0f), 0);   // y = 0.5
  EXPECT_EQ(int8_quantize(0.75f, 2.0f), 2);   // y = 1.5
  EXPECT_EQ(int8_quantize(std::nextafter(0.5f, 1.0f), 1.0f), 1);
  EXPECT_EQ(int8_quantize(std::nextafter(2.5f, 0.0f), 1.0f), 2);
  EXPECT_EQ(int8_quantize(std::nextafter(2.5f, 3.0f), 1.0f), 3);
  EXPECT_EQ(int8_quantize(-0.0f, 1.0f), 0);
}

TEST(Int8Quantize, ClampsAndNaN) {
  for (const float x : {126.9f, 127.0f, 127.4f, 127.5f, 128.0f, 255.0f, 1e30f,
                        std::numeric_limits<float>::max(), kInf}) {
    EXPECT_EQ(int8_quantize(x, 1.0f), 127) << x;
    EXPECT_EQ(int8_quantize(-x, 1.0f), -127) << -x;  // never -128: the range is symmetric
  }
  EXPECT_EQ(int8_quantize(std::numeric_limits<float>::max(), 2.0f), 127);  // product overflows
  EXPECT_EQ(int8_quantize(-1.0f, kInf), -127);
  EXPECT_EQ(int8_quantize(kNaN, 1.0f), 0);
  EXPECT_EQ(int8_quantize(-kNaN, 1.0f), 0);
  EXPECT_EQ(int8_quantize(1.0f, kNaN), 0);
  EXPECT_EQ(int8_quantize(0.0f, kInf), 0);  // 0 * inf = NaN
  EXPECT_EQ(int8_quantize(kInf, 0.0f), 0);  // inf * 0 = NaN
}

TEST(Int8Quantize, EqualsNearbyintAndClampOnSweeps) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  int failures = 0;
  auto check = [&](float x, float inv) {
    const int want = int8_definition(fp32_product(x, inv));
    const int got = int8_quantize(x, inv);
    if (got != want && failures++ < 10)
      ADD_FAILURE() << "int8_quantize(" << x << ", " << inv << ") = " << got << ", want " << want;
  };
  // Dense: every multiple of 2^-8 in [-200, 200] (all ties and both sides of every clamp).
  for (int i = -200 * 256; i <= 200 * 256; ++i) check(static_cast<float>(i) / 256.0f, 1.0f);
  // Every 97th fp32 bit pattern (NaN, inf, subnormals included), at three scales.
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 97 * 1024 + 1) {
    const float x = bits_float(static_cast<uint32_t>(b));
    for (const float inv : {1.0f, 127.0f / 3.7f, 1e-3f}) check(x, inv);
  }
  // Random values and random scales, as a quantizer sees them: inv = 127 / amax.
  std::mt19937 rng(20240611u);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_amax(-20.0f, 20.0f);
  for (int i = 0; i < 200000; ++i) {
    const float amax = std::exp2(log_amax(rng));
    const float x = normal(rng) * amax * 0.5f;
    check(x, 127.0f / amax);
  }
  EXPECT_EQ(failures, 0);
}

// The GPU Q prologue (attention/common/tile_io.cuh) codes x * inv without int8_quantize's clamp and
// NaN test: inv = 127 / max(amax, kMinAmax) with amax >= |x| (the group's own amax) is claimed to
// keep |x * inv| below 127.5, so that rounding alone lands in [-127, 127], equal to
// int8_quantize's code. Checked for x = +-amax and its lower neighbour at every exponent of amax
// (subnormals and amax below kMinAmax included) with 4096 mantissas each.
TEST(Int8Quantize, GroupAmaxBoundsTheProductWithoutClamp) {
  int failures = 0;
  for (uint32_t e = 0; e < 255; ++e) {
    for (uint32_t m = 0; m < (1u << 23); m += 2047) {
      const float amax = bits_float((e << 23) | m);
      const float inv = 127.0f / std::max(amax, sageattn::kMinAmax);
      for (const float x : {amax, std::nextafter(amax, 0.0f)}) {
        const float y = x * inv;  // built with -ffp-contract=off: one fp32 rounding
        const bool ok = std::fabs(y) < 127.5f && int(std::nearbyint(y)) == int8_quantize(x, inv) &&
                        int(std::nearbyint(-y)) == int8_quantize(-x, inv);
        if (!ok && failures++ < 10) ADD_FAILURE() << "amax " << amax << " x " << x << " x * inv " << y;
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

// The GPU Q prologue takes each code as the low byte of the bits of y + kRniMagic (one FADD, no
// conversion instruction), for |y| < 127.5 (GroupAmaxBoundsTheProductWithoutClamp). That must be
// int8_quantize's code: checked on a sweep of every 4093rd float below 127.5 and on every
// half-integer (the ties) and both its neighbours, each with both signs (-0 included).
TEST(Int8Quantize, LowByteOfTheMagicSumIsTheCode) {
  std::vector<float> ys;
  for (uint32_t bits = 0; bits < float_bits(127.5f); bits += 4093) ys.push_back(bits_float(bits));
  for (int k = 0; k < 255; ++k) {
    const float tie = 0.5f * float(k);
    ys.insert(ys.end(), {tie, std::nextafter(tie, 0.0f), std::nextafter(tie, 128.0f)});
  }
  int failures = 0;
  for (const float a : ys) {
    for (const float y : {a, -a}) {
      const float sum = y + kRniMagic;  // built with -ffp-contract=off: one fp32 rounding
      const auto code = static_cast<int8_t>(float_bits(sum) & 0xFFu);
      if (code != int8_quantize(y, 1.0f) && failures++ < 10) ADD_FAILURE() << "y " << y << " code " << int(code);
    }
  }
  EXPECT_EQ(failures, 0);
}

// Inputs where rounding x * inv to fp32 first changes the int8 code compared with rounding the
// exact product (what an FMA-contracted `x * inv + magic`, or a product in double, would do).
// int8_quantize must follow the fp32 product. The exact product of two floats fits a double.
TEST(Int8Quantize, ProductIsRoundedOnceInFp32) {
  const float inv = 127.0f / 3.7f;
  int sensitive = 0;
  for (int k = -128; k <= 127; ++k) {
    const float x0 = static_cast<float>((k + 0.5) / inv);
    float x = x0;
    for (int s = 0; s < 64; ++s) x = std::nextafter(x, -kInf);
    for (int s = 0; s < 128; ++s, x = std::nextafter(x, kInf)) {
      const float f = fp32_product(x, inv);
      const double exact = static_cast<double>(x) * static_cast<double>(inv);
      const int via_fp32 = int8_definition(f);
      const int via_exact = std::isnan(exact)   ? 0
                            : exact >= 127.0    ? 127
                            : exact <= -127.0   ? -127
                                                : static_cast<int>(std::nearbyint(exact));
      if (via_fp32 == via_exact) continue;
      ++sensitive;
      EXPECT_EQ(int8_quantize(x, inv), via_fp32)
          << "x=" << x << " (" << hex(float_bits(x)) << "), exact product " << exact
          << " rounds to " << via_exact << ", fp32 product " << f << " to " << via_fp32;
    }
  }
  EXPECT_GE(sensitive, 50) << "the search should find inputs that tell the two apart";
}

// ---------------------------------------------------------------- fp16-mode V scale exponent
// The rule of layout.h: 0 inside [2^kFp16VKeepMinExp, 2^kFp16VKeepMaxExp) and for amax <= 0 / NaN;
// elsewhere the exponent that puts amax * 2^-e in [2^13, 2^14), clamped to [-126, 127].
TEST(Fp16VExponent, KeepRangeBoundariesAndSpecials) {
  const float kInf = std::numeric_limits<float>::infinity();
  const float lo = std::ldexp(1.0f, sageattn::kFp16VKeepMinExp);
  const float hi = std::ldexp(1.0f, sageattn::kFp16VKeepMaxExp);
  EXPECT_EQ(fp16_v_exponent(lo), 0);
  EXPECT_EQ(fp16_v_exponent(std::nextafter(lo, 0.0f)), -24);  // amax in [2^-11, 2^-10)
  EXPECT_EQ(fp16_v_exponent(std::nextafter(hi, 0.0f)), 0);
  EXPECT_EQ(fp16_v_exponent(hi), 2);  // 2^15 * 2^-2 = 2^13
  EXPECT_EQ(fp16_v_exponent(1.0f), 0);
  EXPECT_EQ(fp16_v_exponent(0.0f), 0);
  EXPECT_EQ(fp16_v_exponent(-0.0f), 0);
  EXPECT_EQ(fp16_v_exponent(-1e9f), 0);
  EXPECT_EQ(fp16_v_exponent(-kInf), 0);  // an empty sequence's amax
  EXPECT_EQ(fp16_v_exponent(std::numeric_limits<float>::quiet_NaN()), 0);
  EXPECT_EQ(fp16_v_exponent(kInf), 129 - 14);  // its exponent field read as 2^128
  EXPECT_EQ(fp16_v_exponent(std::numeric_limits<float>::max()), 128 - 14);
  EXPECT_EQ(fp16_v_exponent(std::numeric_limits<float>::denorm_min()), -126);  // -162 clamped
  EXPECT_EQ(fp16_v_exponent(std::ldexp(1.0f, -112)), -125);  // amax 2^-112: 2^-112 * 2^125 = 2^13
}

// Outside the keep range the exponent is frexp's minus kFp16VTargetExp, for normal and subnormal
// amax alike (the bit arithmetic against the library's frexp).
TEST(Fp16VExponent, EqualsFrexpOutsideTheKeepRange) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<uint32_t> bits(1u, 0x7F7FFFFFu);  // positive finite floats
  int outside = 0;
  for (int i = 0; i < 200000; ++i) {
    const float a = bits_float(bits(gen));
    int x = 0;
    std::frexp(a, &x);
    const bool keep = a >= std::ldexp(1.0f, sageattn::kFp16VKeepMinExp) &&
                      a < std::ldexp(1.0f, sageattn::kFp16VKeepMaxExp);
    const int want = keep ? 0 : std::clamp(x - sageattn::kFp16VTargetExp, -126, 127);
    outside += keep ? 0 : 1;
    ASSERT_EQ(fp16_v_exponent(a), want) << "amax " << a << " (" << hex(float_bits(a)) << ")";
  }
  EXPECT_GT(outside, 100000);
  for (uint32_t u = 1; u < (1u << 23); u = u * 3 + 1) {  // subnormals
    int x = 0;
    std::frexp(bits_float(u), &x);
    ASSERT_EQ(fp16_v_exponent(bits_float(u)), std::clamp(x - 14, -126, 127)) << hex(u);
  }
}

}  // namespace
