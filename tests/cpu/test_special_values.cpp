// tests/cpu/test_special_values.cpp: the special-value contract of docs/NUMERICS.md ("Special
// values") on the CPU backend, with the tiles of both kernel families (the public API's kSm80Tiles
// and kSm90Tiles through cpu::run_attention), in every P.V mode. The GPU suite
// (tests/gpu/test_gpu_hardening.cu) holds the GPU backends to the same cases and oracle
// (tests/cpu/special_values.h).
//
// Proves:
//  - NaN / +-inf in one element of Q, K or V: NaN exactly where the contract says (the Q row's
//    quantization group; every row reading the KV head through a smoothed K channel, or the rows
//    that see the poisoned K group without smoothing; the V channel), never inf, every other output
//    and LSE bit-identical to the call without the special value, rows that see no key still 0 with
//    LSE -inf; and NaN wherever float64 SDPA (torch's math semantics) is NaN or inf;
//  - Q = K = V = 0 gives exactly 0 and LSE ln(visible keys); Q = 0 gives the mean of the visible V
//    rows; K and V constant over tokens give exactly V's constant;
//  - huge logits (row maxima up to 2^34) keep P and the row sum consistent (V = 3 gives 3);
//  - fp16 inputs up to 60000 stay finite and accurate; V at the dtype's largest value (fp16 65504,
//    bf16 3.39e38) saturates instead of overflowing to inf (the regression: inf in 74 of 200 rows
//    before the output rounding saturated);
//  - the helpers num::amax_abs, num::amax_is_finite, num::saturate.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "api/validate.h"
#include "common/numerics.h"
#include "cpu/backend.h"
#include "cpu/metrics.h"
#include "cpu/special_values.h"
#include "sageattn/attention.h"

namespace sageattn::test::special {
namespace {

constexpr PvMode kModes[] = {PvMode::kFp16, PvMode::kFp8, PvMode::kFp8Fp16Acc};

struct Tiles {
  const char* name;
  const TileConfig* tiles;
};
const Tiles kTiles[] = {{"sm80 tiles", &kSm80Tiles}, {"sm90 tiles", &kSm90Tiles}};

// The CPU backend with `tiles`: the public API for kSm80Tiles (what host callers get), the internal
// entry point (as the GPU suites use it) for the sm90 family's tiles.
SpecialResult run_cpu(const SpecialCase& c, const SpecialInputs& in, PvMode mode, const TileConfig& tiles) {
  std::vector<uint16_t> q = encode_all(c.dtype, in.q), k = encode_all(c.dtype, in.k), v = encode_all(c.dtype, in.v);
  SpecialResult r;
  r.out.assign(q.size(), 0x7FA5);  // NaN poison: an unwritten element shows
  r.lse.assign(c.hq * c.nq, 1234.5f);
  const TensorView tq = make_contiguous_view(q.data(), c.dtype, {1, c.hq, c.nq, c.d});
  const TensorView tk = make_contiguous_view(k.data(), c.dtype, {1, c.hkv, c.nk, c.d});
  const TensorView tv = make_contiguous_view(v.data(), c.dtype, {1, c.hkv, c.nk, c.d});
  const TensorView to = make_contiguous_view(r.out.data(), c.dtype, {1, c.hq, c.nq, c.d});
  const TensorView tl = make_contiguous_view(r.lse.data(), DType::kF32, {1, c.hq, c.nq});
  const AttentionOptions o = special_options(c, in, mode, Backend::kAuto);
  if (&tiles == &kSm80Tiles) attention(tq, tk, tv, to, o, tl);
  else cpu::run_attention(detail::make_dense_params(tq, tk, tv, to, tl, o), tiles);
  return r;
}

std::string context(const Tiles& t, PvMode mode) {
  return std::string(t.name) + ", pv_mode " + to_string(mode);
}

// ---------------------------------------------------------------------------- poked cases
SpecialCase poked(std::string name, std::vector<Poke> pokes) {
  SpecialCase c;
  c.name = std::move(name);
  c.pokes = std::move(pokes);
  return c;
}
template <typename F>
SpecialCase with(SpecialCase c, F f) {
  f(c);
  return c;
}

std::vector<SpecialCase> poked_cases() {
  std::vector<SpecialCase> v;
  v.push_back(poked("nan_q", {{'q', 1, 37, 5, kNaN}}));
  v.push_back(with(poked("inf_q_per_thread", {{'q', 0, 199, 127, -kInf}, {'q', 2, 100, 0, kInf}}),
                   [](SpecialCase& c) { c.gran = Granularity::kPerThread; }));
  v.push_back(with(poked("nan_q_per_block", {{'q', 3, 150, 64, kNaN}}),
                   [](SpecialCase& c) { c.gran = Granularity::kPerBlock; }));
  v.push_back(poked("nan_k_smoothed", {{'k', 0, 7, 3, kNaN}}));
  v.push_back(poked("inf_k_smoothed", {{'k', 1, 199, 127, kInf}}));
  v.push_back(with(poked("inf_k_unsmoothed_causal_per_thread", {{'k', 1, 130, 9, kInf}}), [](SpecialCase& c) {
    c.smooth_k = Smoothing::kOff, c.mask = MaskMode::kCausal, c.gran = Granularity::kPerThread;
  }));
  v.push_back(with(poked("ninf_k_unsmoothed_causal_nq_lt_nk", {{'k', 0, 70, 100, -kInf}}), [](SpecialCase& c) {
    c.smooth_k = Smoothing::kOff, c.mask = MaskMode::kCausal, c.nq = 150;
  }));
  v.push_back(poked("nan_v", {{'v', 1, 50, 64, kNaN}}));
  v.push_back(with(poked("ninf_v_fully_masked_rows", {{'v', 0, 199, 10, -kInf}}), [](SpecialCase& c) {
    c.mask = MaskMode::kCausal, c.nq = 230;  // rows 0..29 see no key
  }));
  v.push_back(with(poked("nan_v_smoothed", {{'v', 0, 3, 0, kNaN}}), [](SpecialCase& c) { c.smooth_v = Smoothing::kOn; }));
  v.push_back(with(poked("inf_v_causal_f16", {{'v', 1, 150, 33, kInf}}), [](SpecialCase& c) {
    c.dtype = DType::kF16, c.mask = MaskMode::kCausal;
  }));
  v.push_back(poked("nan_q_and_inf_v_other_heads", {{'q', 3, 0, 0, kNaN}, {'v', 0, 0, 1, kInf}}));
  return v;
}

class SpecialValuesPoked : public ::testing::TestWithParam<SpecialCase> {};

TEST_P(SpecialValuesPoked, NanExactlyWhereTheContractSaysElseUnchanged) {
  const SpecialCase& c = GetParam();
  const SpecialInputs in = make_special_inputs(c), clean_in = make_special_inputs(c, false);

  // The contract is at least as strict as SDPA: every output SDPA makes NaN or inf is NaN.
  const std::vector<uint8_t> sdpa = sdpa_nonfinite(c, in);
  for (const Tiles& t : kTiles) {
    const ExpectedSpecial e = expected_special(c, in, *t.tiles);
    int64_t missed = 0, expected_nan = 0;
    for (size_t i = 0; i < sdpa.size(); ++i) {
      missed += sdpa[i] && !e.out_nan[i];
      expected_nan += e.out_nan[i];
    }
    EXPECT_EQ(missed, 0) << c.name << ", " << t.name << ": SDPA non-finite outputs the contract leaves finite";
    EXPECT_GT(expected_nan, 0) << c.name << ": the case poisons nothing";
  }

  for (const Tiles& t : kTiles)
    for (PvMode mode : kModes) {
      SCOPED_TRACE(context(t, mode));
      const ExpectedSpecial e = expected_special(c, in, *t.tiles);
      const SpecialResult clean = run_cpu(c, clean_in, mode, *t.tiles);
      const SpecialResult got = run_cpu(c, in, mode, *t.tiles);
      EXPECT_EQ(check_poked(c, e, got, clean), "");
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, SpecialValuesPoked, ::testing::ValuesIn(poked_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------- value cases
SpecialCase valued(std::string name, Fill fill) {
  SpecialCase c;
  c.name = std::move(name);
  c.fill = fill;
  return c;
}

// Q = K = V = 0: every output exactly 0, LSE = ln(number of visible keys) (every logit is 0).
TEST(SpecialValues, AllZeroInputsGiveZeroAndLogOfVisibleKeys) {
  for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
    SpecialCase c = valued("zero_all", Fill::kZeroAll);
    c.mask = mask, c.nq = 150;
    const SpecialInputs in = make_special_inputs(c);
    for (const Tiles& t : kTiles)
      for (PvMode mode : kModes) {
        SCOPED_TRACE(context(t, mode) + (mask == MaskMode::kCausal ? ", causal" : ""));
        const SpecialResult r = run_cpu(c, in, mode, *t.tiles);
        int64_t nonzero = 0, lse_bad = 0;
        for (uint16_t u : r.out) nonzero += decode(c.dtype, u) != 0.0;
        for (int64_t i = 0; i < int64_t(r.lse.size()); ++i) {
          const double want = std::log(double(last_key(c, i % c.nq) + 1));
          lse_bad += !(std::fabs(r.lse[i] - want) <= 1e-5 * std::max(1.0, want));
        }
        EXPECT_EQ(nonzero, 0);
        EXPECT_EQ(lse_bad, 0);
      }
  }
}

// Q = 0: uniform attention, the output is the mean of the visible V rows (float64 exact is that
// mean), within the accuracy budget of the mode (docs/NUMERICS.md §4, k_channel_bias bounds), and
// LSE = ln(visible keys) + 0.
TEST(SpecialValues, ZeroQueryGivesTheMeanOfVisibleValues) {
  for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
    SpecialCase c = valued("zero_q", Fill::kZeroQ);
    c.mask = mask;
    const SpecialInputs in = make_special_inputs(c);
    const ExactSpecial ex = exact_special(c, in);
    for (const Tiles& t : kTiles)
      for (PvMode mode : kModes) {
        SCOPED_TRACE(context(t, mode) + (mask == MaskMode::kCausal ? ", causal" : ""));
        const SpecialResult r = run_cpu(c, in, mode, *t.tiles);
        std::vector<double> got(r.out.size());
        for (size_t i = 0; i < got.size(); ++i) got[i] = decode(c.dtype, r.out[i]);
        const cpu::ErrorMetrics m = cpu::error_metrics(ex.out.data(), got.data(), int64_t(got.size()));
        const bool fp16 = mode == PvMode::kFp16;
        EXPECT_EQ(m.nonfinite_mismatch, 0);
        EXPECT_GE(m.cos, fp16 ? 0.999841 : 0.998444);
        EXPECT_LE(m.rel_l1, fp16 ? 0.0249 : 0.0791);
        int64_t lse_bad = 0;
        for (size_t i = 0; i < r.lse.size(); ++i)
          lse_bad += !(std::fabs(r.lse[i] - ex.lse[i]) <= 1e-5 * std::max(1.0, std::fabs(ex.lse[i])));
        EXPECT_EQ(lse_bad, 0);
      }
  }
}

// K and V constant over tokens (a different constant per channel and KV head), Q arbitrary: every
// key gets the same logit (smoothed: K' = 0; unsmoothed: identical codes), so every output is
// exactly V's constant, in both dtypes, smoothed or not, causal or not; in fp8_fp16acc within the
// fp16 accumulator's rounding (2^-11 relative per 32-key step; 2^-10 asserted, visible in f16
// output only: a row of 33 keys sums 32256 + 1008 in fp16, 33264 rounding to 33280). Smoothed, every logit is
// exactly 0 and the LSE = ln(visible) + scale * q.kmean within fp32 rounding (unsmoothed, the LSE
// carries the int8 logit's quantization error like any other input).
TEST(SpecialValues, ConstantKeysAndValuesGiveTheConstant) {
  for (DType dtype : {DType::kBF16, DType::kF16})
    for (Smoothing smooth : {Smoothing::kOn, Smoothing::kOff})
      for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
        SpecialCase c = valued("const_kv", Fill::kConstKV);
        c.dtype = dtype, c.smooth_k = smooth, c.smooth_v = smooth, c.mask = mask;
        const SpecialInputs in = make_special_inputs(c);
        const ExactSpecial ex = exact_special(c, in);
        for (const Tiles& t : kTiles)
          for (PvMode mode : kModes) {
            SCOPED_TRACE(context(t, mode) + ", " + to_string(dtype) + ", smoothing " + to_string(smooth) +
                         (mask == MaskMode::kCausal ? ", causal" : ""));
            const SpecialResult r = run_cpu(c, in, mode, *t.tiles);
            int64_t wrong = 0, lse_bad = 0;
            for (int64_t h = 0; h < c.hq; ++h)
              for (int64_t i = 0; i < c.nq; ++i)
                for (int64_t d = 0; d < c.d; ++d) {
                  const double want = in.v[((h / (c.hq / c.hkv)) * c.nk) * c.d + d];
                  const double got = decode(c.dtype, r.out[(h * c.nq + i) * c.d + d]);
                  wrong += mode == PvMode::kFp8Fp16Acc ? !(std::fabs(got - want) <= 0x1p-10 * std::fabs(want))
                                                       : got != want;
                }
            for (size_t i = 0; i < r.lse.size() && smooth == Smoothing::kOn; ++i)
              lse_bad += !(std::fabs(r.lse[i] - ex.lse[i]) <= 1e-4 * std::max(1.0, std::fabs(ex.lse[i])));
            EXPECT_EQ(wrong, 0);
            EXPECT_EQ(lse_bad, 0);
          }
      }
}

// fp16 Q, K, V up to 60000 in magnitude with a scale that keeps the logits O(1): finite and as
// accurate as ordinary inputs (the quantization is relative to each group's amax; bounds of the
// k_channel_bias family, docs/NUMERICS.md §4).
TEST(SpecialValues, Fp16InputsNearMaxAreFiniteAndAccurate) {
  SpecialCase c = valued("f16_near_max", Fill::kScaledNearMax);
  c.dtype = DType::kF16;
  const SpecialInputs in = make_special_inputs(c);
  const ExactSpecial ex = exact_special(c, in);
  for (const Tiles& t : kTiles)
    for (PvMode mode : kModes) {
      SCOPED_TRACE(context(t, mode));
      const SpecialResult r = run_cpu(c, in, mode, *t.tiles);
      EXPECT_EQ(check_finite(c, r), "");
      std::vector<double> got(r.out.size());
      for (size_t i = 0; i < got.size(); ++i) got[i] = decode(c.dtype, r.out[i]);
      const cpu::ErrorMetrics m = cpu::error_metrics(ex.out.data(), got.data(), int64_t(got.size()));
      std::printf("[ measured ] f16 near max, %-26s cos %.7f rel_l1 %.5f\n", context(t, mode).c_str(), m.cos, m.rel_l1);
      const bool fp16 = mode == PvMode::kFp16;
      EXPECT_GE(m.cos, fp16 ? 0.999841 : 0.998444);
      EXPECT_LE(m.rel_l1, fp16 ? 0.0249 : 0.0791);
    }
}

// The same values with the default scale: logits ~ 1e10, a hard argmax. Nothing overflows: every
// output is finite and no larger than (1 + 2^-4) * max |v| of its channel (P and V rounding).
TEST(SpecialValues, Fp16HugeLogitsStayFinite) {
  SpecialCase c = valued("f16_huge_logits", Fill::kHugeLogits);
  c.dtype = DType::kF16;
  const SpecialInputs in = make_special_inputs(c);
  for (const Tiles& t : kTiles)
    for (PvMode mode : kModes) {
      SCOPED_TRACE(context(t, mode));
      const SpecialResult r = run_cpu(c, in, mode, *t.tiles);
      EXPECT_EQ(check_finite(c, r), "");
      int64_t outside = 0;
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t d = 0; d < c.d; ++d) {
          double vmax = 0.0;
          for (int64_t j = 0; j < c.nk; ++j)
            vmax = std::max(vmax, std::fabs(double(in.v[((h / 2) * c.nk + j) * c.d + d])));
          for (int64_t i = 0; i < c.nq; ++i)
            outside += std::fabs(decode(c.dtype, r.out[(h * c.nq + i) * c.d + d])) > vmax * (1.0 + 1.0 / 16);
        }
      EXPECT_EQ(outside, 0);
    }
}

// Huge logits with V = 3 everywhere: any softmax weighting gives 3, so the output shows whether the
// P that multiplies V and the row sum l still describe the same weights (cases and bound:
// const_v_logit_cases in special_values.h).
TEST(SpecialValues, HugeLogitsKeepPAndRowSumConsistent) {
  for (const SpecialCase& c : const_v_logit_cases()) {
    const SpecialInputs in = make_special_inputs(c);
    for (const Tiles& t : kTiles)
      for (PvMode mode : kModes) {
        SCOPED_TRACE(context(t, mode) + ", " + c.name);
        const SpecialResult r = run_cpu(c, in, mode, *t.tiles);
        EXPECT_EQ(check_finite(c, r), "");
        EXPECT_LE(const_v_worst(c, r), const_v_bound(mode));
      }
  }
}

// V = +-(largest finite value of the dtype) per channel: the exact output is that value. P rounded
// up to fp8 / fp16 while the row sum is not can push the result a few percent past it: the output
// rounding saturates (was: inf in fp16, and fp32 overflow to inf at bf16's 3.39e38). Bound: P's
// rounding (2^-4 in the fp8 modes, 2^-11 in fp16) plus the output rounding (2^-8 for bf16, 2^-11
// for fp16), relative.
TEST(SpecialValues, ValuesAtDtypeMaxSaturateInsteadOfOverflowing) {
  for (DType dtype : {DType::kF16, DType::kBF16})
    for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
      SpecialCase c = valued("v_at_max", Fill::kVAtMax);
      c.dtype = dtype, c.mask = mask;
      const SpecialInputs in = make_special_inputs(c);
      const double vmax = dtype_max(dtype);
      for (const Tiles& t : kTiles)
        for (PvMode mode : kModes) {
          SCOPED_TRACE(context(t, mode) + ", " + to_string(dtype) + (mask == MaskMode::kCausal ? ", causal" : ""));
          const SpecialResult r = run_cpu(c, in, mode, *t.tiles);
          EXPECT_EQ(check_finite(c, r), "");
          const double bound = (mode == PvMode::kFp16 ? 0x1p-11 : 0x1p-4) + (dtype == DType::kBF16 ? 0x1p-8 : 0x1p-11);
          double worst = 0.0;
          for (int64_t i = 0; i < int64_t(r.out.size()); ++i) {
            const double want = (i % c.d) % 2 == 0 ? vmax : -vmax, x = decode(dtype, r.out[i]);
            worst = std::max(worst, std::isfinite(x) ? std::fabs(x - want) / vmax : 1e9);
          }
          EXPECT_LE(worst, bound);
        }
    }
}

// The helpers behind the contract.
TEST(SpecialValues, NumericHelpers) {
  using num::amax_abs;
  EXPECT_EQ(amax_abs(-3.0f), 3.0f);
  EXPECT_EQ(amax_abs(kNaN), kInf);
  EXPECT_EQ(amax_abs(-kNaN), kInf);
  EXPECT_EQ(amax_abs(-kInf), kInf);
  EXPECT_EQ(amax_abs(-0.0f), 0.0f);
  EXPECT_TRUE(num::amax_is_finite(0.0f));
  EXPECT_TRUE(num::amax_is_finite(-kInf));  // an empty sequence's amax: usable
  EXPECT_TRUE(num::amax_is_finite(3.4e38f));
  EXPECT_FALSE(num::amax_is_finite(kInf));
  EXPECT_FALSE(num::amax_is_finite(kNaN));
  EXPECT_EQ(num::saturate(70000.0f, kFp16Max), kFp16Max);
  EXPECT_EQ(num::saturate(-70000.0f, kFp16Max), -kFp16Max);
  EXPECT_EQ(num::saturate(kInf, kFp16Max), kFp16Max);
  EXPECT_EQ(num::saturate(-kInf, num::kBf16Max), -num::kBf16Max);
  EXPECT_EQ(num::saturate(65504.0f, kFp16Max), 65504.0f);
  EXPECT_EQ(num::saturate(-1.5f, kFp16Max), -1.5f);
  EXPECT_TRUE(std::isnan(num::saturate(kNaN, kFp16Max)));
  EXPECT_EQ(num::bf16_from_float(num::kBf16Max), 0x7F7F);  // the largest finite bf16
  EXPECT_EQ(num::bf16_from_float(num::saturate(3.4e38f, num::kBf16Max)), 0x7F7F);
}

}  // namespace
}  // namespace sageattn::test::special
