// tests/cpu/test_reference.cpp: the two-tier CPU reference and the public API's CPU backend.
//
//  - exact_attention against a naive long-double attention written here (explicit score and mask
//    matrices), causal bottom-right alignment with Nq != Nk, fully masked rows, K smoothing
//    invariance and the LSE correction scale * q.km.
//  - the quantized path against exact attention on the three input families of DESIGN.md §3, with
//    the thresholds of tests/cpu/tolerances.h (measured values are printed as "[ measured ]").
//  - the public API (host tensors -> CPU backend) bit for bit against the quantized reference,
//    and against itself across GQA/MQA, varlen, layouts, strided views and odd lengths, with
//    outputs poisoned with NaN bit patterns so that every element must be written and nothing
//    outside the view may be; power-of-two equivariance for huge and tiny magnitudes.
// Deterministic seeds; sizes small enough for a Release run of a few seconds on two cores.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "common/numerics.h"
#include "cpu/inputs.h"
#include "cpu/metrics.h"
#include "cpu/reference.h"
#include "cpu/test_support.h"
#include "cpu/tolerances.h"
#include "sageattn/attention.h"

namespace sageattn {
namespace {

using cpu::InputFamily;
using test::f32_bits;
using test::Padding;
using test::Tensor16;
using test::TensorF32;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr PvMode kModes[] = {PvMode::kFp16, PvMode::kFp8, PvMode::kFp8Fp16Acc};
constexpr Granularity kGranularities[] = {Granularity::kPerBlock, Granularity::kPerWarp,
                                          Granularity::kPerThread};

float default_scale(int64_t d) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
}

// ======================================================================== oracles and helpers

// Naive attention in long double: explicit score matrix S = scale * Q K^T, explicit mask matrix
// (causal, bottom-right aligned: M[i][j] = j <= i + Nk - Nq), softmax by rows, P V.
// q: [Hq, Nq, D], k and v: [Hkv, Nk, D] (row-major floats); out [Hq, Nq, D]; lse [Hq, Nq].
struct Naive {
  std::vector<long double> out, lse;
};
Naive naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                      const std::vector<float>& v, int64_t hq, int64_t hkv, int64_t nq, int64_t nk,
                      int64_t d, bool causal, long double scale) {
  Naive r;
  r.out.assign(hq * nq * d, 0.0L);
  r.lse.assign(hq * nq, 0.0L);
  for (int64_t h = 0; h < hq; ++h) {
    const int64_t hk = h / (hq / hkv);
    std::vector<std::vector<long double>> s(nq, std::vector<long double>(nk));
    std::vector<std::vector<bool>> mask(nq, std::vector<bool>(nk));
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t j = 0; j < nk; ++j) {
        long double dot = 0.0L;
        for (int64_t c = 0; c < d; ++c)
          dot += static_cast<long double>(q[(h * nq + i) * d + c]) * k[(hk * nk + j) * d + c];
        s[i][j] = scale * dot;
        mask[i][j] = !causal || j <= i + nk - nq;
      }
    for (int64_t i = 0; i < nq; ++i) {
      long double m = -std::numeric_limits<long double>::infinity();
      for (int64_t j = 0; j < nk; ++j)
        if (mask[i][j]) m = std::max(m, s[i][j]);
      if (m == -std::numeric_limits<long double>::infinity()) {
        r.lse[h * nq + i] = m;  // fully masked: output stays 0
        continue;
      }
      long double l = 0.0L;
      std::vector<long double> o(d, 0.0L);
      for (int64_t j = 0; j < nk; ++j) {
        if (!mask[i][j]) continue;
        const long double p = std::exp(s[i][j] - m);
        l += p;
        for (int64_t c = 0; c < d; ++c) o[c] += p * v[(hk * nk + j) * d + c];
      }
      for (int64_t c = 0; c < d; ++c) r.out[(h * nq + i) * d + c] = o[c] / l;
      r.lse[h * nq + i] = m + std::log(l);
    }
  }
  return r;
}

// A contiguous f32 [H, N, D] array as the reference's SeqView.
cpu::SeqView f32_seq(const std::vector<float>& x, int64_t h, int64_t n, int64_t d) {
  cpu::SeqView s;
  s.data = const_cast<float*>(x.data());
  s.dtype = DType::kF32;
  s.heads = h, s.tokens = n, s.dim = d;
  s.stride_n = d;
  s.stride_h = n * d;
  return s;
}

// Q, K, V as 16-bit host tensors of one input family.
struct Qkv {
  Tensor16 q, k, v;
};
Qkv make_qkv(InputFamily family, DType dtype, Layout layout, int64_t b, int64_t hq, int64_t hkv,
             int64_t nq, int64_t nk, int64_t d, uint64_t seed, Padding pq = {}, Padding pk = {},
             Padding pv = {}) {
  const cpu::QkvData x = cpu::make_inputs(family, b, hq, hkv, nq, nk, d, seed);
  return {test::tensor16_from(x.q, dtype, layout, b, hq, nq, d, pq),
          test::tensor16_from(x.k, dtype, layout, b, hkv, nk, d, pk),
          test::tensor16_from(x.v, dtype, layout, b, hkv, nk, d, pv)};
}

// float64 exact attention of every batch of a dense problem: out [B, Hq, Nq, D], lse [B, Hq, Nq].
struct Exact {
  std::vector<double> out, lse;
};
Exact exact_dense(const Qkv& t, MaskMode mask, float scale) {
  const int64_t b = t.q.b, hq = t.q.h, nq = t.q.n, d = t.q.d;
  Exact r;
  r.out.assign(b * hq * nq * d, 0.0);
  r.lse.assign(b * hq * nq, 0.0);
  cpu::ExactConfig cfg;
  cfg.mask = mask;
  cfg.scale = scale;
  for (int64_t ib = 0; ib < b; ++ib)
    cpu::exact_attention(t.q.seq(ib), t.k.seq(ib), t.v.seq(ib), cfg,
                         r.out.data() + ib * hq * nq * d, r.lse.data() + ib * hq * nq);
  return r;
}

// The public API on host tensors; out in the layout of q, poisoned first; LSE poisoned first.
struct ApiResult {
  Tensor16 out;
  TensorF32 lse;
};
ApiResult run_api(Qkv& t, const AttentionOptions& options, Padding out_pad = {},
                  bool lse_pad = false) {
  ApiResult r;
  r.out = test::make_tensor16(t.q.dtype, options.layout, t.q.b, t.q.h, t.q.n, t.q.d, out_pad);
  r.lse =
      lse_pad ? test::make_lse(t.q.b, t.q.h, t.q.n, 1, 5, 3) : test::make_lse(t.q.b, t.q.h, t.q.n);
  attention(t.q.view(), t.k.view(), t.v.view(), r.out.view(), options, r.lse.view());
  return r;
}

AttentionOptions make_options(PvMode mode, Granularity g = Granularity::kPerWarp,
                              MaskMode mask = MaskMode::kNone, Layout layout = Layout::kHND) {
  AttentionOptions o;
  o.pv_mode = mode;
  o.granularity = g;
  o.mask = mask;
  o.layout = layout;
  return o;
}

void print_measured(const char* what, const cpu::ErrorMetrics& m) {
  std::printf("[ measured ] %-58s cos %.7f  rel_l1 %.5f  rmse %.3e  max_abs %.3e\n", what, m.cos,
              m.rel_l1, m.rmse, m.max_abs);
}

// Checks that out (as doubles) is finite everywhere and within `bound` of the exact output.
void expect_within(const std::vector<double>& exact, const std::vector<double>& got,
                   const test::AccuracyBound& bound, const std::string& what) {
  const cpu::ErrorMetrics m =
      cpu::error_metrics(exact.data(), got.data(), static_cast<int64_t>(exact.size()));
  EXPECT_EQ(m.nonfinite_mismatch, 0) << what;
  EXPECT_GE(m.cos, bound.min_cos) << what;
  EXPECT_LE(m.rel_l1, bound.max_rel_l1) << what;
}

// ================================================================= tier 1: exact attention

TEST(ExactAttentionTest, MatchesNaiveLongDoubleAttention) {
  struct Case {
    int64_t hq, hkv, nq, nk, d;
    bool causal;
    double scale;
  };
  const Case cases[] = {{4, 2, 7, 11, 16, false, 0.25}, {4, 2, 7, 11, 16, true, 0.25},
                        {3, 3, 13, 13, 8, true, 0.9},   {2, 1, 9, 5, 24, false, 0.1},
                        {2, 1, 1, 17, 16, true, 0.5},   {8, 1, 5, 64, 8, false, 1.7}};
  double worst = 0.0;
  for (const Case& c : cases) {
    const std::vector<float> q = test::normal_floats(c.hq * c.nq * c.d, 1 + c.nq);
    const std::vector<float> k = test::normal_floats(c.hkv * c.nk * c.d, 2 + c.nk);
    const std::vector<float> v = test::normal_floats(c.hkv * c.nk * c.d, 3 + c.d);
    const Naive ref = naive_attention(q, k, v, c.hq, c.hkv, c.nq, c.nk, c.d, c.causal, c.scale);
    std::vector<double> out(c.hq * c.nq * c.d, -1.0), lse(c.hq * c.nq, -1.0);
    cpu::ExactConfig cfg;
    cfg.mask = c.causal ? MaskMode::kCausal : MaskMode::kNone;
    cfg.scale = c.scale;
    cpu::exact_attention(f32_seq(q, c.hq, c.nq, c.d), f32_seq(k, c.hkv, c.nk, c.d),
                         f32_seq(v, c.hkv, c.nk, c.d), cfg, out.data(), lse.data());
    long double out_mag = 0.0L;
    for (long double x : ref.out) out_mag = std::max(out_mag, std::fabs(x));
    for (size_t i = 0; i < out.size(); ++i) {
      const double err = static_cast<double>(std::fabs(out[i] - ref.out[i]) / out_mag);
      worst = std::max(worst, err);
      ASSERT_LE(err, test::kExactVsNaiveRel) << "element " << i << " nq " << c.nq << " nk " << c.nk;
    }
    for (size_t i = 0; i < lse.size(); ++i) {
      const double err = static_cast<double>(std::fabs(lse[i] - ref.lse[i]) /
                                             std::max(1.0L, std::fabs(ref.lse[i])));
      worst = std::max(worst, err);
      ASSERT_LE(err, test::kExactVsNaiveRel) << "lse " << i;
    }
  }
  std::printf("[ measured ] exact vs naive: worst relative error %.3e\n", worst);
}

// Causal with Nq != Nk is bottom-right aligned: query i sees keys j <= i + Nk - Nq. For Nq > Nk the
// first Nq - Nk rows see nothing: output exactly 0, LSE -inf, never NaN. Nk = 0 masks every row.
TEST(ExactAttentionTest, CausalRectangularIsBottomRightAligned) {
  struct Case {
    int64_t nq, nk;
  };
  const int64_t hq = 2, hkv = 1, d = 16;
  for (const Case& c : {Case{5, 9}, Case{9, 5}, Case{1, 7}, Case{7, 1}, Case{3, 0}, Case{4, 4}}) {
    SCOPED_TRACE(testing::Message() << "nq " << c.nq << " nk " << c.nk);
    const std::vector<float> q = test::normal_floats(hq * c.nq * d, 11);
    const std::vector<float> k = test::normal_floats(hkv * c.nk * d + 1, 12);
    const std::vector<float> v = test::normal_floats(hkv * c.nk * d + 1, 13);
    const Naive ref = naive_attention(q, k, v, hq, hkv, c.nq, c.nk, d, true, 0.25L);
    std::vector<double> out(hq * c.nq * d, std::nan("")), lse(hq * c.nq, std::nan(""));
    cpu::ExactConfig cfg;
    cfg.mask = MaskMode::kCausal;
    cfg.scale = 0.25;
    cpu::exact_attention(f32_seq(q, hq, c.nq, d), f32_seq(k, hkv, c.nk, d),
                         f32_seq(v, hkv, c.nk, d), cfg, out.data(), lse.data());
    for (int64_t h = 0; h < hq; ++h)
      for (int64_t i = 0; i < c.nq; ++i) {
        const int64_t visible = std::clamp<int64_t>(i + c.nk - c.nq + 1, 0, c.nk);
        const double l = lse[h * c.nq + i];
        if (visible == 0) {
          EXPECT_EQ(l, -kInf) << "row " << i;
          for (int64_t x = 0; x < d; ++x)
            ASSERT_EQ(out[(h * c.nq + i) * d + x], 0.0) << "row " << i;
          continue;
        }
        EXPECT_LE(std::fabs(l - static_cast<double>(ref.lse[h * c.nq + i])), test::kExactVsNaiveRel)
            << "row " << i;
        for (int64_t x = 0; x < d; ++x)
          ASSERT_LE(std::fabs(out[(h * c.nq + i) * d + x] -
                              static_cast<double>(ref.out[(h * c.nq + i) * d + x])),
                    test::kExactVsNaiveRel)
              << "row " << i;
        // One visible key: the output is that key's V row, whatever the scores.
        if (visible == 1) {
          for (int64_t x = 0; x < d; ++x)
            EXPECT_NEAR(out[(h * c.nq + i) * d + x], v[0 * d + x], 1e-15);
        }
      }
  }
}

// Softmax is invariant to K -> K - mean(K): the logits of a row shift by scale * q.km. The K here
// is on a 2^-8 grid with a power-of-two token count, so the mean and K - mean are exact in fp32
// and the two problems are mathematically identical; LSE moves by exactly scale * q.km.
TEST(ExactAttentionTest, KSmoothingLeavesOutputUnchangedAndShiftsLse) {
  const int64_t h = 2, nq = 40, nk = 128, d = 32;
  const float scale = default_scale(d);
  test::Rng rng(5);
  std::vector<float> k(h * nk * d);
  std::vector<float> bias(h * d);
  for (float& b : bias) b = std::round(static_cast<float>(6.0 * rng.normal()) * 256.0f) / 256.0f;
  for (int64_t hh = 0; hh < h; ++hh)
    for (int64_t n = 0; n < nk; ++n)
      for (int64_t c = 0; c < d; ++c)
        k[(hh * nk + n) * d + c] =
            std::round(static_cast<float>(rng.normal()) * 256.0f) / 256.0f + bias[hh * d + c];
  const std::vector<float> q = test::normal_floats(h * nq * d, 6);
  const std::vector<float> v = test::normal_floats(h * nk * d, 7);
  std::vector<float> ks = k, km(h * d);
  for (int64_t hh = 0; hh < h; ++hh) {
    cpu::channel_mean(&k[hh * nk * d], nk, d, &km[hh * d]);
    for (int64_t n = 0; n < nk; ++n)
      for (int64_t c = 0; c < d; ++c) ks[(hh * nk + n) * d + c] -= km[hh * d + c];
  }
  for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
    cpu::ExactConfig cfg;
    cfg.mask = mask;
    cfg.scale = scale;
    std::vector<double> o1(h * nq * d), o2(h * nq * d), l1(h * nq), l2(h * nq);
    cpu::exact_attention(f32_seq(q, h, nq, d), f32_seq(k, h, nk, d), f32_seq(v, h, nk, d), cfg,
                         o1.data(), l1.data());
    cpu::exact_attention(f32_seq(q, h, nq, d), f32_seq(ks, h, nk, d), f32_seq(v, h, nk, d), cfg,
                         o2.data(), l2.data());
    double worst = 0.0, shift_mag = 0.0;
    for (size_t i = 0; i < o1.size(); ++i) worst = std::max(worst, std::fabs(o1[i] - o2[i]));
    EXPECT_LE(worst, test::kSmoothingInvarianceRel);
    for (int64_t hh = 0; hh < h; ++hh)
      for (int64_t i = 0; i < nq; ++i) {
        double q_km = 0.0;
        for (int64_t c = 0; c < d; ++c)
          q_km += static_cast<double>(q[(hh * nq + i) * d + c]) * km[hh * d + c];
        const double shift = static_cast<double>(scale) * q_km;
        shift_mag = std::max(shift_mag, std::fabs(shift));
        EXPECT_LE(std::fabs(l1[hh * nq + i] - (l2[hh * nq + i] + shift)),
                  test::kSmoothingInvarianceRel * std::max(1.0, std::fabs(l1[hh * nq + i])));
      }
    EXPECT_GT(shift_mag, 5.0) << "the channel bias should move the logits a lot";
    std::printf("[ measured ] smoothing invariance (%s): max |dO| %.3e\n", to_string(mask), worst);
  }
}

// ============================================================= tier 2: quantized vs exact

const char* family_name(InputFamily f) { return cpu::to_string(f); }

// Quantized (public API, bf16/f16 in and out) vs exact on one family, hd 64 and 128, N = 1024,
// all three PV modes, per_warp and per_thread.
void check_family_accuracy(InputFamily family, DType dtype, std::initializer_list<int> head_dims) {
  const int64_t b = 1, h = 2, n = 1024;
  for (int hd : head_dims) {
    Qkv t = make_qkv(family, dtype, Layout::kHND, b, h, h, n, n, hd, 2024 + hd);
    const Exact ex = exact_dense(t, MaskMode::kNone, default_scale(hd));
    for (PvMode mode : kModes) {
      const test::AccuracyBound bound = test::accuracy_bound(family, hd, mode, dtype);
      for (Granularity g : {Granularity::kPerWarp, Granularity::kPerThread}) {
        const ApiResult r = run_api(t, make_options(mode, g));
        const std::vector<double> got = r.out.logical_doubles();
        const cpu::ErrorMetrics m =
            cpu::error_metrics(ex.out.data(), got.data(), static_cast<int64_t>(got.size()));
        char what[128];
        std::snprintf(what, sizeof what, "%s %s hd%d %s %s", family_name(family), to_string(dtype),
                      hd, to_string(mode), to_string(g));
        print_measured(what, m);
        EXPECT_EQ(m.nonfinite_mismatch, 0) << what;
        EXPECT_GE(m.cos, bound.min_cos) << what;
        EXPECT_LE(m.rel_l1, bound.max_rel_l1) << what;
      }
    }
  }
}

TEST(QuantizedAccuracyTest, Gaussian) {
  check_family_accuracy(InputFamily::kGaussian, DType::kBF16, {64, 128});
}
TEST(QuantizedAccuracyTest, KChannelBias) {
  check_family_accuracy(InputFamily::kKChannelBias, DType::kBF16, {64, 128});
}
TEST(QuantizedAccuracyTest, Outliers) {
  check_family_accuracy(InputFamily::kOutliers, DType::kBF16, {64, 128});
}
TEST(QuantizedAccuracyTest, GaussianF16Inputs) {
  check_family_accuracy(InputFamily::kGaussian, DType::kF16, {128});
}

// K smoothing is what makes INT8 K usable on k_channel_bias. Measured where the int8 Q.K error is
// visible: the output in fp16 PV mode (fp8 P.V error would hide it) and the LSE (which P.V does not
// touch), per_warp, both with smooth_k on and off.
TEST(QuantizedAccuracyTest, KSmoothingHelpsOnChannelBias) {
  const int64_t h = 2, n = 1024, d = 128;
  Qkv t = make_qkv(InputFamily::kKChannelBias, DType::kBF16, Layout::kHND, 1, h, h, n, n, d, 77);
  const Exact ex = exact_dense(t, MaskMode::kNone, default_scale(d));
  AttentionOptions on = make_options(PvMode::kFp16), off = on;
  off.smooth_k = Smoothing::kOff;
  const ApiResult r_on = run_api(t, on), r_off = run_api(t, off);
  const std::vector<double> o_on = r_on.out.logical_doubles(), o_off = r_off.out.logical_doubles();
  const cpu::ErrorMetrics m_on =
      cpu::error_metrics(ex.out.data(), o_on.data(), int64_t(o_on.size()));
  const cpu::ErrorMetrics m_off =
      cpu::error_metrics(ex.out.data(), o_off.data(), int64_t(o_off.size()));
  const std::vector<float> l_on = r_on.lse.logical(), l_off = r_off.lse.logical();
  double lse_on = 0.0, lse_off = 0.0;  // max abs LSE error
  for (size_t i = 0; i < l_on.size(); ++i) {
    lse_on = std::max(lse_on, std::fabs(l_on[i] - ex.lse[i]));
    lse_off = std::max(lse_off, std::fabs(l_off[i] - ex.lse[i]));
  }
  print_measured("k_channel_bias bf16 hd128 fp16 per_warp smooth_k on", m_on);
  print_measured("k_channel_bias bf16 hd128 fp16 per_warp smooth_k off", m_off);
  const double gain_l1 = m_off.rel_l1 / m_on.rel_l1, gain_lse = lse_off / lse_on;
  std::printf(
      "[ measured ] smoothing gain: rel_l1 off/on %.2f, max LSE error off/on %.2f "
      "(%.3e / %.3e)\n",
      gain_l1, gain_lse, lse_off, lse_on);
  EXPECT_GE(gain_l1, test::kSmoothingMinGainRelL1);
  EXPECT_GE(gain_lse, test::kSmoothingMinGainLse);
}

// Powers of two commute with every quantization step (int8 and fp8 scales absorb them exactly):
// Q * 2^40 with scale * 2^-40, K * 2^-30 with scale * 2^30 and V * 2^50 (bf16: far beyond fp16's
// range) give exactly the unscaled output times 2^50 and the same LSE, bit for bit. Catches any
// absolute epsilon or range assumption in the quantized path.
TEST(QuantizedAccuracyTest, HugeAndTinyMagnitudesArePowerOfTwoEquivariant) {
  const int64_t hq = 2, hkv = 1, nq = 100, nk = 200, d = 64;
  const cpu::QkvData x = cpu::make_inputs(InputFamily::kOutliers, 1, hq, hkv, nq, nk, d, 55);
  auto scaled = [](std::vector<float> a, int e) {
    for (float& v : a) v = std::ldexp(v, e);
    return a;
  };
  Qkv base{test::tensor16_from(x.q, DType::kBF16, Layout::kHND, 1, hq, nq, d),
           test::tensor16_from(x.k, DType::kBF16, Layout::kHND, 1, hkv, nk, d),
           test::tensor16_from(x.v, DType::kBF16, Layout::kHND, 1, hkv, nk, d)};
  Qkv big{test::tensor16_from(scaled(x.q, 40), DType::kBF16, Layout::kHND, 1, hq, nq, d),
          test::tensor16_from(scaled(x.k, -30), DType::kBF16, Layout::kHND, 1, hkv, nk, d),
          test::tensor16_from(scaled(x.v, 50), DType::kBF16, Layout::kHND, 1, hkv, nk, d)};
  for (PvMode mode : kModes)
    for (Smoothing sv : {Smoothing::kOff, Smoothing::kOn}) {
      AttentionOptions o = make_options(mode, Granularity::kPerThread, MaskMode::kCausal);
      o.smooth_v = sv;
      o.scale = 0.125f;
      const ApiResult r0 = run_api(base, o);
      o.scale = std::ldexp(0.125f, -10);
      const ApiResult r1 = run_api(big, o);
      std::vector<uint16_t> expect;
      for (uint16_t u : r0.out.logical_bits())
        expect.push_back(num::bf16_from_float(std::ldexp(num::bf16_to_float(u), 50)));
      SCOPED_TRACE(testing::Message() << to_string(mode) << " smooth_v " << to_string(sv));
      EXPECT_EQ(test::count_bit_mismatches(expect, r1.out.logical_bits()), 0);
      EXPECT_EQ(test::count_bit_mismatches(r0.lse.logical(), r1.lse.logical()), 0);
    }
}

// The quantized LSE is (m + log2 l) ln 2 + scale * q.km in every PV mode (the fp8 modes undo the
// log2(448) offset of P): close to the exact LSE on k_channel_bias with smoothing on, and far from
// it without the q.km term. (Fully masked rows: CausalRectangularAndEmptyKeys.)
TEST(QuantizedAccuracyTest, LseMatchesExactAndNeedsTheSmoothingCorrection) {
  const int64_t h = 2, n = 512, d = 128;
  const float scale = default_scale(d);
  Qkv t = make_qkv(InputFamily::kKChannelBias, DType::kBF16, Layout::kHND, 1, h, h, n, n, d, 91);
  const Exact ex = exact_dense(t, MaskMode::kNone, scale);
  // scale * q.km per row, from the library's own mean of K (fp32, fixed order).
  std::vector<double> correction(h * n);
  for (int64_t hh = 0; hh < h; ++hh) {
    std::vector<float> kf(n * d), qf(n * d), km(d);
    cpu::gather_head(t.k.seq(0), hh, kf.data());
    cpu::gather_head(t.q.seq(0), hh, qf.data());
    cpu::channel_mean(kf.data(), n, d, km.data());
    for (int64_t i = 0; i < n; ++i) {
      double q_km = 0.0;
      for (int64_t c = 0; c < d; ++c) q_km += static_cast<double>(qf[i * d + c]) * km[c];
      correction[hh * n + i] = static_cast<double>(scale) * q_km;
    }
  }
  for (PvMode mode : kModes) {
    const ApiResult r = run_api(t, make_options(mode));
    const std::vector<float> lse = r.lse.logical();
    double worst = 0.0, uncorrected = 0.0;
    for (int64_t i = 0; i < h * n; ++i) {
      worst = std::max(worst, std::fabs(lse[i] - ex.lse[i]));
      uncorrected += std::fabs(lse[i] - correction[i] - ex.lse[i]);
    }
    uncorrected /= static_cast<double>(h * n);
    std::printf("[ measured ] LSE %s: max |lse - exact| %.3e; mean error without q.km %.3f\n",
                to_string(mode), worst, uncorrected);
    EXPECT_LE(worst, test::kLseMaxAbsError) << to_string(mode);
    EXPECT_GE(uncorrected, test::kLseUncorrectedMinMeanError) << to_string(mode);
  }
}

// A two-key probe of the P.V contract (DESIGN.md §1.3-1.5), on the quantized reference itself:
// q = e0, K = {e0, 0}, smoothing off, scale = t / log2(e). The int8 codes are exact (127 and 0), so
// the base-2 logits are t and 0 and the only rounding left is the documented one. With key 1's
// probability r = 2^-t and V rows (a0, a1) per channel (a in {0, 1}: exact in every format), the
// P.V sum is, per mode,
//   fp16:        a0 + fp16(r) a1                              (P in fp16, P0 = 1)
//   fp8:         (448 a0 + fp8(448 r) a1) / 448               (P scaled to [0, 448], then e4m3)
//   fp8_fp16acc: fp16(2.25 (448 a0 + fp8(448 r) a1)) / (448 * 2.25)   (V scaled to [-2.25, 2.25],
//                                                    the block's partial sum rounded to fp16)
// and the row sum uses the unrounded P: out = sum / (1 + r). LSE = t ln 2 + ln(1 + r).
// r = 1.1 * 2^-13 needs the 448 scaling (fp8(r) itself is 0) and, with a0 = a1 = 1, loses its
// contribution in the fp16 partial sum (1008 + 0.13 rounds to 1008); r = 1/3 shows the rounding of
// P.
TEST(QuantizedReferenceTest, TwoKeyProbeFollowsThePvModeContract) {
  const int64_t d = 8;
  const float a0[d] = {0, 1, 1, 0, 0, 1, 1, 0}, a1[d] = {1, 1, 0, 1, 1, 1, 0, 1};
  std::vector<float> q(d, 0.0f), k(2 * d, 0.0f), v(2 * d, 0.0f);
  q[0] = 1.0f;
  k[0] = 1.0f;
  for (int64_t c = 0; c < d; ++c) v[c] = a0[c], v[d + c] = a1[c];
  auto fp16 = [](double x) {
    return static_cast<double>(num::fp16_to_float(num::fp16_from_float(static_cast<float>(x))));
  };
  auto fp8 = [](double x) {
    return static_cast<double>(
        num::fp8e4m3_to_float(num::fp8e4m3_from_float(static_cast<float>(x))));
  };
  double worst = 0.0;
  for (double t : {std::log2(3.0), 2.5, 13.0 - std::log2(1.1)}) {
    const double r = std::exp2(-t);
    for (PvMode mode : kModes) {
      cpu::QuantConfig cfg;
      cfg.pv_mode = mode;
      cfg.smooth_k = Smoothing::kOff;
      cfg.scale = static_cast<float>(t / kLog2e);
      std::vector<float> out(d, -1.0f), lse(1, -1.0f);
      cpu::quantized_attention(f32_seq(q, 1, 1, d), f32_seq(k, 1, 2, d), f32_seq(v, 1, 2, d), cfg,
                               out.data(), lse.data());
      SCOPED_TRACE(testing::Message() << to_string(mode) << " t " << t);
      for (int64_t c = 0; c < d; ++c) {
        double sum = 0.0;
        switch (mode) {
          case PvMode::kFp16:
            sum = a0[c] + fp16(r) * a1[c];
            break;
          case PvMode::kFp8:
            sum = (448.0 * a0[c] + fp8(448.0 * r) * a1[c]) / 448.0;
            break;
          default:
            sum = fp16(2.25 * (448.0 * a0[c] + fp8(448.0 * r) * a1[c])) / (448.0 * 2.25);
            break;
        }
        const double expect = sum / (1.0 + r);
        worst = std::max(worst, std::fabs(out[c] - expect) / expect);
        EXPECT_NEAR(out[c], expect, test::kProbeRel * expect) << "channel " << c;
      }
      const double expect_lse = t * kLn2 + std::log1p(r);
      worst = std::max(worst, std::fabs(lse[0] - expect_lse) / expect_lse);
      EXPECT_NEAR(lse[0], expect_lse, test::kProbeRel * expect_lse);
    }
  }
  std::printf("[ measured ] two-key probe: worst relative error %.3e\n", worst);
}

// ============================================================ public API vs the reference

// The CPU backend is reference::quantized_attention rounded to the dtype, bit for bit, with the
// sm80 tiles: every mode, granularity, mask and smoothing combination, batch 2, GQA, both dtypes.
TEST(BackendTest, EqualsQuantizedReferenceBitForBit) {
  const int64_t b = 2, hq = 4, hkv = 2, nq = 150, nk = 200, d = 64;
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    Qkv t = make_qkv(InputFamily::kOutliers, dtype, Layout::kHND, b, hq, hkv, nq, nk, d, 3);
    for (PvMode mode : kModes)
      for (Granularity g : kGranularities)
        for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal})
          for (Smoothing sk : {Smoothing::kOn, Smoothing::kOff}) {
            const Smoothing sv = g == Granularity::kPerWarp ? Smoothing::kOn : Smoothing::kOff;
            AttentionOptions o = make_options(mode, g, mask);
            o.smooth_k = sk;
            o.smooth_v = sv;
            if (mode == PvMode::kFp8 && g == Granularity::kPerBlock) o.scale = 0.3f;
            const ApiResult r = run_api(t, o);
            cpu::QuantConfig cfg;
            cfg.tiles = kSm80Tiles;
            cfg.pv_mode = mode;
            cfg.granularity = g;
            cfg.smooth_k = sk;
            cfg.smooth_v = sv;
            cfg.mask = mask;
            cfg.scale = o.scale ? *o.scale : default_scale(d);
            std::vector<uint16_t> expect_out;
            std::vector<float> expect_lse;
            for (int64_t ib = 0; ib < b; ++ib) {
              std::vector<float> out(hq * nq * d), lse(hq * nq);
              cpu::quantized_attention(t.q.seq(ib), t.k.seq(ib), t.v.seq(ib), cfg, out.data(),
                                       lse.data());
              for (float x : out) expect_out.push_back(test::encode16(dtype, x));
              expect_lse.insert(expect_lse.end(), lse.begin(), lse.end());
            }
            SCOPED_TRACE(testing::Message()
                         << to_string(dtype) << " " << to_string(mode) << " " << to_string(g) << " "
                         << to_string(mask) << " smooth_k " << to_string(sk));
            EXPECT_EQ(test::count_bit_mismatches(expect_out, r.out.logical_bits()), 0);
            EXPECT_EQ(test::count_bit_mismatches(expect_lse, r.lse.logical()), 0);
          }
  }
}

// GQA/MQA: query head h reads KV head h / (Hq / Hkv). Equal, bit for bit, to the same call with
// the K/V heads repeated explicitly (Hkv = Hq).
TEST(BackendTest, GqaAndMqaEqualExplicitlyRepeatedHeads) {
  const int64_t b = 2, hq = 8, nq = 100, nk = 150, d = 64;
  for (int64_t hkv : {2, 1}) {
    const cpu::QkvData x =
        cpu::make_inputs(InputFamily::kKChannelBias, b, hq, hkv, nq, nk, d, 40 + hkv);
    std::vector<float> kr, vr;  // [B, Hq, Nk, D]: KV head h / (hq / hkv) for query head h
    for (int64_t ib = 0; ib < b; ++ib)
      for (int64_t h = 0; h < hq; ++h) {
        const int64_t hk = h / (hq / hkv);
        const auto k0 = x.k.begin() + (ib * hkv + hk) * nk * d;
        const auto v0 = x.v.begin() + (ib * hkv + hk) * nk * d;
        kr.insert(kr.end(), k0, k0 + nk * d);
        vr.insert(vr.end(), v0, v0 + nk * d);
      }
    Qkv gqa{test::tensor16_from(x.q, DType::kBF16, Layout::kHND, b, hq, nq, d),
            test::tensor16_from(x.k, DType::kBF16, Layout::kHND, b, hkv, nk, d),
            test::tensor16_from(x.v, DType::kBF16, Layout::kHND, b, hkv, nk, d)};
    Qkv rep{test::tensor16_from(x.q, DType::kBF16, Layout::kHND, b, hq, nq, d),
            test::tensor16_from(kr, DType::kBF16, Layout::kHND, b, hq, nk, d),
            test::tensor16_from(vr, DType::kBF16, Layout::kHND, b, hq, nk, d)};
    for (PvMode mode : kModes)
      for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
        const AttentionOptions o = make_options(mode, Granularity::kPerThread, mask);
        const ApiResult a = run_api(gqa, o), e = run_api(rep, o);
        SCOPED_TRACE(testing::Message()
                     << "hkv " << hkv << " " << to_string(mode) << " " << to_string(mask));
        EXPECT_EQ(test::count_bit_mismatches(e.out.logical_bits(), a.out.logical_bits()), 0);
        EXPECT_EQ(test::count_bit_mismatches(e.lse.logical(), a.lse.logical()), 0);
        EXPECT_EQ(a.out.unwritten(), 0);
      }
  }
}

// Causal with Nq != Nk through the public API: within tolerance of exact attention (which the
// naive test above pins to the bottom-right rule); for Nq > Nk the first Nq - Nk rows are exactly 0
// with LSE -inf; Nk = 0 masks everything, causal or not.
TEST(BackendTest, CausalRectangularAndEmptyKeys) {
  const int64_t hq = 2, hkv = 1, d = 64;
  struct Case {
    int64_t nq, nk;
  };
  double worst_lse = 0.0;
  for (const Case& c : {Case{100, 300}, Case{300, 100}, Case{64, 1000}, Case{1000, 64}}) {
    Qkv t = make_qkv(InputFamily::kGaussian, DType::kBF16, Layout::kHND, 1, hq, hkv, c.nq, c.nk, d,
                     c.nq * 7 + c.nk);
    const Exact ex = exact_dense(t, MaskMode::kCausal, default_scale(d));
    const ApiResult r =
        run_api(t, make_options(PvMode::kFp8, Granularity::kPerWarp, MaskMode::kCausal));
    const std::vector<double> got = r.out.logical_doubles();
    char what[96];
    std::snprintf(what, sizeof what, "causal nq %lld nk %lld fp8 per_warp", (long long)c.nq,
                  (long long)c.nk);
    print_measured(what, cpu::error_metrics(ex.out.data(), got.data(), int64_t(got.size())));
    expect_within(ex.out, got, test::kCausalRectBound, what);
    const std::vector<float> lse = r.lse.logical();
    const int64_t masked = std::max<int64_t>(0, c.nq - c.nk);
    for (int64_t h = 0; h < hq; ++h)
      for (int64_t i = 0; i < c.nq; ++i) {
        const float l = lse[h * c.nq + i];
        if (i < masked) {
          ASSERT_EQ(l, -std::numeric_limits<float>::infinity()) << what << " row " << i;
          for (int64_t x = 0; x < d; ++x)
            ASSERT_EQ(r.out.get(0, h, i, x), 0.0f) << what << " row " << i;
        } else {
          ASSERT_TRUE(std::isfinite(l)) << what << " row " << i;
          worst_lse = std::max(worst_lse, std::fabs(l - ex.lse[h * c.nq + i]));
          ASSERT_LE(std::fabs(l - ex.lse[h * c.nq + i]), test::kCausalRectLseMaxAbsError)
              << what << " row " << i;
        }
      }
  }
  std::printf("[ measured ] causal Nq != Nk: max |lse - exact| %.3e\n", worst_lse);
  for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
    Qkv t = make_qkv(InputFamily::kGaussian, DType::kBF16, Layout::kHND, 2, hq, hkv, 17, 0, d, 5);
    const ApiResult r = run_api(t, make_options(PvMode::kFp8, Granularity::kPerWarp, mask));
    for (uint16_t u : r.out.logical_bits()) ASSERT_EQ(u, 0u) << to_string(mask);
    for (float l : r.lse.logical()) ASSERT_EQ(l, -std::numeric_limits<float>::infinity());
  }
}

// Lengths 0, 1, 17, 127, 129, 1000 for Nq and Nk (every pair), causal and not: every output and LSE
// element written (both buffers poisoned with NaN bit patterns first, padded so that stray writes
// show too) and the output within tolerance of exact attention.
TEST(BackendTest, OddLengthsWriteEveryElementAndStayAccurate) {
  const int64_t lengths[] = {0, 1, 17, 127, 129, 1000};
  const int64_t hq = 2, hkv = 1, d = 64;
  cpu::ErrorMetrics worst;
  worst.cos = 1.0;
  double worst_lse = 0.0;
  for (int64_t nq : lengths)
    for (int64_t nk : lengths)
      for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
        Qkv t = make_qkv(InputFamily::kGaussian, DType::kBF16, Layout::kHND, 1, hq, hkv, nq, nk, d,
                         nq * 1009 + nk);
        const Exact ex = exact_dense(t, mask, default_scale(d));
        AttentionOptions o;  // defaults: kAuto PV mode (fp8 on the CPU), per_warp, smooth_k on
        o.mask = mask;
        const ApiResult r = run_api(t, o, Padding{8, 16, 0, 5}, /*lse_pad=*/true);
        char what[96];
        std::snprintf(what, sizeof what, "nq %lld nk %lld %s", (long long)nq, (long long)nk,
                      to_string(mask));
        ASSERT_EQ(r.out.unwritten(), 0) << what;
        ASSERT_EQ(r.out.touched_padding(), 0) << what;
        ASSERT_EQ(r.lse.unwritten(), 0) << what;
        ASSERT_EQ(r.lse.touched_padding(), 0) << what;
        const std::vector<double> got = r.out.logical_doubles();
        const cpu::ErrorMetrics m =
            cpu::error_metrics(ex.out.data(), got.data(), int64_t(got.size()));
        if (m.cos < worst.cos) worst.cos = m.cos;
        worst.rel_l1 = std::max(worst.rel_l1, m.rel_l1);
        worst.rmse = std::max(worst.rmse, m.rmse);
        worst.max_abs = std::max(worst.max_abs, m.max_abs);
        expect_within(ex.out, got, test::kLengthsBound, what);
        const std::vector<float> lse = r.lse.logical();
        for (size_t i = 0; i < lse.size(); ++i) {
          if (ex.lse[i] == -kInf) {
            ASSERT_EQ(lse[i], -std::numeric_limits<float>::infinity()) << what;
          } else {
            worst_lse = std::max(worst_lse, std::fabs(lse[i] - ex.lse[i]));
            ASSERT_LE(std::fabs(lse[i] - ex.lse[i]), test::kLengthsLseMaxAbsError)
                << what << " row " << i;
          }
        }
      }
  print_measured("lengths sweep, worst of each metric", worst);
  std::printf("[ measured ] lengths sweep: max |lse - exact| %.3e\n", worst_lse);
}

// varlen equals per-sequence dense attention bit for bit: each sequence alone through attention()
// on its own contiguous tensors; LSE [Hq, total_q].
TEST(BackendTest, VarlenEqualsPerSequenceDense) {
  const int64_t hq = 4, hkv = 2, d = 64;
  const std::vector<int32_t> len_q = {37, 0, 130, 64, 5, 1};
  const std::vector<int32_t> len_k = {50, 10, 130, 0, 200, 1};
  const int64_t batch = static_cast<int64_t>(len_q.size());
  std::vector<int32_t> cu_q = {0}, cu_k = {0};
  for (int64_t i = 0; i < batch; ++i) {
    cu_q.push_back(cu_q.back() + len_q[i]);
    cu_k.push_back(cu_k.back() + len_k[i]);
  }
  const int64_t total_q = cu_q.back(), total_k = cu_k.back();
  // Packed [total, H, D] = NHD with B = 1.
  const cpu::QkvData x =
      cpu::make_inputs(InputFamily::kOutliers, 1, hq, hkv, total_q, total_k, d, 8);
  Qkv packed = {test::tensor16_from(x.q, DType::kBF16, Layout::kNHD, 1, hq, total_q, d),
                test::tensor16_from(x.k, DType::kBF16, Layout::kNHD, 1, hkv, total_k, d),
                test::tensor16_from(x.v, DType::kBF16, Layout::kNHD, 1, hkv, total_k, d)};
  auto packed3 = [](Tensor16& t) {
    return make_view(t.storage.data(), t.dtype, {t.n, t.h, t.d}, {t.stride_n, t.stride_h, 1});
  };
  // One sequence's rows of a logical [1, H, N, D] float array.
  auto slice = [d](const std::vector<float>& a, int64_t h, int64_t n, int64_t begin, int64_t len) {
    std::vector<float> r;
    for (int64_t hh = 0; hh < h; ++hh)
      r.insert(r.end(), a.begin() + (hh * n + begin) * d, a.begin() + (hh * n + begin + len) * d);
    return r;
  };
  for (PvMode mode : kModes)
    for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
      const AttentionOptions o = make_options(mode, Granularity::kPerThread, mask);
      Tensor16 out = test::make_tensor16(DType::kBF16, Layout::kNHD, 1, hq, total_q, d);
      // LSE [Hq, total_q] stored token-major with one padding element per token.
      TensorF32 lse;
      lse.b = 1, lse.h = hq, lse.n = total_q;
      lse.stride_h = 1, lse.stride_n = hq + 1, lse.stride_b = 0;
      lse.storage.assign(total_q * (hq + 1) + 1, test::poison_f32());
      VarlenArgs a;
      a.q = packed3(packed.q);
      a.k = packed3(packed.k);
      a.v = packed3(packed.v);
      a.cu_seqlens_q = make_contiguous_view(cu_q.data(), DType::kI32, {batch + 1});
      a.cu_seqlens_k = make_contiguous_view(cu_k.data(), DType::kI32, {batch + 1});
      a.max_seqlen_q = *std::max_element(len_q.begin(), len_q.end());
      a.max_seqlen_k = *std::max_element(len_k.begin(), len_k.end());
      a.out = packed3(out);
      a.lse = make_view(lse.storage.data(), DType::kF32, {hq, total_q}, {1, hq + 1});
      attention_varlen(a, o);
      SCOPED_TRACE(testing::Message() << to_string(mode) << " " << to_string(mask));
      EXPECT_EQ(out.unwritten(), 0);
      EXPECT_EQ(lse.unwritten(), 0);
      EXPECT_EQ(out.touched_padding(), 0);
      EXPECT_EQ(lse.touched_padding(), 0);
      for (int64_t s = 0; s < batch; ++s) {
        Qkv one = {test::tensor16_from(slice(x.q, hq, total_q, cu_q[s], len_q[s]), DType::kBF16,
                                       Layout::kHND, 1, hq, len_q[s], d),
                   test::tensor16_from(slice(x.k, hkv, total_k, cu_k[s], len_k[s]), DType::kBF16,
                                       Layout::kHND, 1, hkv, len_k[s], d),
                   test::tensor16_from(slice(x.v, hkv, total_k, cu_k[s], len_k[s]), DType::kBF16,
                                       Layout::kHND, 1, hkv, len_k[s], d)};
        const ApiResult dense = run_api(one, o);
        int64_t out_mismatch = 0, lse_mismatch = 0;
        for (int64_t h = 0; h < hq; ++h)
          for (int64_t i = 0; i < len_q[s]; ++i) {
            for (int64_t c = 0; c < d; ++c)
              out_mismatch += out.bits(0, h, cu_q[s] + i, c) != dense.out.bits(0, h, i, c);
            lse_mismatch +=
                f32_bits(lse.get(0, h, cu_q[s] + i)) != f32_bits(dense.lse.get(0, h, i));
          }
        EXPECT_EQ(out_mismatch, 0) << "sequence " << s;
        EXPECT_EQ(lse_mismatch, 0) << "sequence " << s;
      }
    }
}

// HND, NHD and strided views (padding between tokens, heads and batches, an offset start, K with
// token-major strides inside an HND-shaped view) give outputs bit-identical to the contiguous HND
// call, and write nothing outside the output's own elements.
TEST(BackendTest, LayoutsAndStridedViewsAreBitIdentical) {
  const int64_t b = 2, hq = 4, hkv = 2, nq = 70, nk = 130, d = 64;
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    const cpu::QkvData x = cpu::make_inputs(InputFamily::kOutliers, b, hq, hkv, nq, nk, d, 12);
    auto build = [&](Layout lq, Layout lk, Layout lv, Padding pq, Padding pk, Padding pv) {
      return Qkv{test::tensor16_from(x.q, dtype, lq, b, hq, nq, d, pq),
                 test::tensor16_from(x.k, dtype, lk, b, hkv, nk, d, pk),
                 test::tensor16_from(x.v, dtype, lv, b, hkv, nk, d, pv)};
    };
    for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
      AttentionOptions o = make_options(PvMode::kFp8, Granularity::kPerThread, mask);
      Qkv base = build(Layout::kHND, Layout::kHND, Layout::kHND, {}, {}, {});
      const ApiResult ref = run_api(base, o);
      const std::vector<uint16_t> ref_out = ref.out.logical_bits();
      const std::vector<float> ref_lse = ref.lse.logical();

      struct Variant {
        const char* name;
        Layout layout;
        Padding pad;
      };
      const Variant variants[] = {{"NHD", Layout::kNHD, {}},
                                  {"HND padded", Layout::kHND, {8, 24, 40, 3}},
                                  {"NHD padded", Layout::kNHD, {16, 8, 32, 5}}};
      for (const Variant& var : variants) {
        Qkv t = build(var.layout, var.layout, var.layout, var.pad,
                      Padding{var.pad.token + 8, var.pad.head, var.pad.batch + 1, 1},
                      Padding{var.pad.token, var.pad.head + 8, var.pad.batch, 7});
        AttentionOptions ov = o;
        ov.layout = var.layout;
        const ApiResult r = run_api(t, ov, var.pad, /*lse_pad=*/true);
        SCOPED_TRACE(testing::Message()
                     << to_string(dtype) << " " << var.name << " " << to_string(mask));
        EXPECT_EQ(test::count_bit_mismatches(ref_out, r.out.logical_bits()), 0);
        EXPECT_EQ(test::count_bit_mismatches(ref_lse, r.lse.logical()), 0);
        EXPECT_EQ(r.out.touched_padding(), 0);
        EXPECT_EQ(r.lse.touched_padding(), 0);
      }
      // Mixed: with options.layout = HND, K and the output live token-major in memory (NHD order)
      // and are passed as HND-shaped views with those strides; Q and V are padded HND.
      {
        Qkv t = build(Layout::kHND, Layout::kNHD, Layout::kHND, Padding{4, 12, 20, 2},
                      Padding{8, 8, 8, 8}, Padding{0, 16, 0, 0});
        Tensor16 out = test::make_tensor16(dtype, Layout::kNHD, b, hq, nq, d, Padding{8, 4, 4, 1});
        TensorF32 lse = test::make_lse(b, hq, nq, 2, 3, 7);
        attention(t.q.hnd_view(), t.k.hnd_view(), t.v.hnd_view(), out.hnd_view(), o, lse.view());
        SCOPED_TRACE(testing::Message() << to_string(dtype) << " mixed " << to_string(mask));
        EXPECT_EQ(test::count_bit_mismatches(ref_out, out.logical_bits()), 0);
        EXPECT_EQ(test::count_bit_mismatches(ref_lse, lse.logical()), 0);
        EXPECT_EQ(out.touched_padding(), 0);
        EXPECT_EQ(lse.touched_padding(), 0);
      }
    }
  }
}

}  // namespace
}  // namespace sageattn
