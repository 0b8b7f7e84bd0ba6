// tests/cpu/special_values.h: the special-value cases of docs/NUMERICS.md ("Special values"),
// shared by tests/cpu/test_special_values.cpp (the CPU backend) and tests/gpu/test_gpu_hardening.cu
// (every GPU backend), so that both hold the same contract with the same oracle.
//
//   SpecialCase          a small dense problem (B = 1, 4 query heads on 2 KV heads, D = 128) with
//                        NaN / +-inf poked into single elements of Q, K or V, or all-zero, constant
//                        or near-overflow inputs, and its options.
//   make_special_inputs  its logical [H, N, D] inputs, already rounded to the dtype; with
//                        `poked` false, the same inputs without the pokes (the clean twin).
//   expected_special     the contract: which outputs are NaN (and which LSE values are NaN or -inf)
//                        for a backend's tiles.
//   sdpa_nonfinite       float64 softmax(Q K^T scale) V over each row's visible keys with IEEE
//                        semantics, as torch's math SDPA computes it: which outputs are NaN / inf.
// Nothing here calls the library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "common/numerics.h"
#include "cpu/inputs.h"
#include "sageattn/attention.h"

namespace sageattn::test::special {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
inline constexpr float kInf = std::numeric_limits<float>::infinity();

enum class Fill {
  kFamily,        // the k_channel_bias family (q, k, v ~ N(0,1), k += 6 N(0,1) per channel)
  kZeroAll,       // Q = K = V = 0
  kZeroQ,         // Q = 0 (every logit 0: the output is the mean of the visible V rows)
  kConstKV,       // K and V constant over tokens (per channel and head), Q from the family
  kScaledNearMax, // Q, K, V up to 60000 in magnitude (clamp(N(0,1) / 4, -1, 1) * 60000), with a
                  // softmax scale that keeps the logits O(1)
  kHugeLogits,    // the same values with the default scale: logits ~ 1e10 (a hard argmax)
  kVAtMax,        // V = +-(largest finite value of the dtype), alternating by channel; Q, K family
  kConstVLogits,  // V = 3 everywhere; Q, K family with a softmax scale that puts the largest row
                  // max of the base-2 logits q.k * scale * log2(e) at 2^logit_log2 (huge logits:
                  // any weighting gives 3, so the output shows whether P and l stay consistent)
};

// One element of a logical [H, N, D] tensor set to `value` (tensor 'q', 'k' or 'v').
struct Poke {
  char tensor;
  int64_t h, n, d;
  float value;
};

struct SpecialCase {
  std::string name;
  Fill fill = Fill::kFamily;
  std::vector<Poke> pokes;
  DType dtype = DType::kBF16;
  int64_t hq = 4, hkv = 2, nq = 200, nk = 200, d = 128;
  MaskMode mask = MaskMode::kNone;
  Granularity gran = Granularity::kPerWarp;
  Smoothing smooth_k = Smoothing::kOn, smooth_v = Smoothing::kOff;
  double logit_log2 = 0.0;  // kConstVLogits only
};

// gtest prints a parameter with this (a case's name, not its bytes).
inline void PrintTo(const SpecialCase& c, std::ostream* os) { *os << c.name; }

// Logical [H, N, D] float arrays (row-major), every value exactly representable in the dtype.
struct SpecialInputs {
  std::vector<float> q, k, v;
  float scale = 0.0f;  // the resolved softmax scale
};

inline float dtype_max(DType t) { return t == DType::kBF16 ? num::kBf16Max : kFp16Max; }

inline float round_to_dtype(DType t, float x) {
  return t == DType::kBF16 ? num::bf16_to_float(num::bf16_from_float(x))
                           : num::fp16_to_float(num::fp16_from_float(x));
}

// The scale of kScaledNearMax: logits q.k * scale ~ N(0, 1) for values 60000 * N(0, 1/16).
inline float near_max_scale(int64_t d) {
  return static_cast<float>(1.0 / (std::sqrt(double(d)) * 60000.0 * 60000.0 / 16.0));
}

inline SpecialInputs make_special_inputs(const SpecialCase& c, bool poked = true) {
  const cpu::QkvData f =
      cpu::make_inputs(cpu::InputFamily::kKChannelBias, 1, c.hq, c.hkv, c.nq, c.nk, c.d, 4242);
  SpecialInputs in{f.q, f.k, f.v, static_cast<float>(1.0 / std::sqrt(double(c.d)))};
  auto near_max = [](std::vector<float>& x) {
    for (float& e : x) e = std::min(1.0f, std::max(-1.0f, e / 4.0f)) * 60000.0f;
  };
  switch (c.fill) {
    case Fill::kFamily: break;
    case Fill::kZeroAll:
      std::fill(in.q.begin(), in.q.end(), 0.0f);
      std::fill(in.k.begin(), in.k.end(), 0.0f);
      std::fill(in.v.begin(), in.v.end(), 0.0f);
      break;
    case Fill::kZeroQ: std::fill(in.q.begin(), in.q.end(), 0.0f); break;
    case Fill::kConstKV:
      for (int64_t h = 0; h < c.hkv; ++h)
        for (int64_t n = 0; n < c.nk; ++n)
          for (int64_t d = 0; d < c.d; ++d) {
            in.k[(h * c.nk + n) * c.d + d] = 0.25f * float((d * 7 + h) % 13) - 1.5f;
            in.v[(h * c.nk + n) * c.d + d] = 0.125f * float((d * 5 + 3 * h) % 29) - 1.75f;
          }
      break;
    case Fill::kScaledNearMax:
      near_max(in.q), near_max(in.k), near_max(in.v);
      in.scale = near_max_scale(c.d);
      break;
    case Fill::kHugeLogits: near_max(in.q), near_max(in.k), near_max(in.v); break;
    case Fill::kConstVLogits: {
      std::fill(in.v.begin(), in.v.end(), 3.0f);
      double top = 0.0;  // the largest |q.k| over every head and row
      const int64_t group = c.hq / c.hkv;
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t i = 0; i < c.nq; ++i)
          for (int64_t j = 0; j < c.nk; ++j) {
            double dot = 0.0;
            for (int64_t d = 0; d < c.d; ++d)
              dot += double(in.q[(h * c.nq + i) * c.d + d]) * in.k[((h / group) * c.nk + j) * c.d + d];
            top = std::max(top, std::fabs(dot));
          }
      in.scale = static_cast<float>(std::exp2(c.logit_log2) / (top * 1.4426950408889634));
      break;
    }
    case Fill::kVAtMax:
      for (int64_t i = 0; i < int64_t(in.v.size()); ++i)
        in.v[i] = (i % c.d) % 2 == 0 ? dtype_max(c.dtype) : -dtype_max(c.dtype);
      break;
  }
  for (auto* x : {&in.q, &in.k, &in.v})
    for (float& e : *x) e = round_to_dtype(c.dtype, e);
  if (poked)
    for (const Poke& p : c.pokes) {
      std::vector<float>& x = p.tensor == 'q' ? in.q : p.tensor == 'k' ? in.k : in.v;
      const int64_t n = p.tensor == 'q' ? c.nq : c.nk;
      x[(p.h * n + p.n) * c.d + p.d] = p.value;  // NaN and +-inf exist in both dtypes
    }
  return in;
}

inline std::vector<uint16_t> encode_all(DType t, const std::vector<float>& x) {
  std::vector<uint16_t> r(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    r[i] = t == DType::kBF16 ? num::bf16_from_float(x[i]) : num::fp16_from_float(x[i]);
  return r;
}
inline double decode(DType t, uint16_t u) {
  return t == DType::kBF16 ? num::bf16_to_float(u) : num::fp16_to_float(u);
}

// Last key row i sees (inclusive; < 0: none): causal masks are bottom-right aligned.
inline int64_t last_key(const SpecialCase& c, int64_t i) {
  return c.mask == MaskMode::kCausal ? std::min(i + c.nk - c.nq, c.nk - 1) : c.nk - 1;
}

struct ExpectedSpecial {
  std::vector<uint8_t> out_nan;  // [hq, nq, d]: 1 where the output must be NaN
  std::vector<uint8_t> lse_nan;  // [hq, nq]: 1 where the LSE must be NaN
  std::vector<uint8_t> visible;  // [nq]: 1 where the row sees a key (else: 0 output, -inf LSE)
};

// The contract of docs/NUMERICS.md ("Special values") for the tiles of one kernel family: a NaN or
// +-inf element makes
//   - in Q: every row of its Q quantization group (GroupSpec q_groups) NaN;
//   - in K, with K smoothing: its channel's mean non-finite, hence every K group: every row of the
//     query heads reading that KV head NaN; without smoothing, every row that sees a key of its K
//     group (GroupSpec k_groups);
//   - in V: its channel NaN in every row of the query heads reading that KV head;
// rows that see no key stay 0 with LSE -inf; the LSE is NaN where the row is NaN through Q or K.
inline ExpectedSpecial expected_special(const SpecialCase& c, const SpecialInputs& in,
                                        const TileConfig& tiles) {
  ExpectedSpecial e;
  e.out_nan.assign(c.hq * c.nq * c.d, 0);
  e.lse_nan.assign(c.hq * c.nq, 0);
  e.visible.assign(c.nq, 0);
  for (int64_t i = 0; i < c.nq; ++i) e.visible[i] = last_key(c, i) >= 0;
  const GroupSpec qg = tiles.q_groups(c.gran), kg = tiles.k_groups(c.gran);
  const int64_t group = c.hq / c.hkv;
  auto bad = [](float x) { return !std::isfinite(x); };
  for (int64_t h = 0; h < c.hq; ++h) {
    const int64_t hk = h / group;
    std::vector<uint8_t> q_group_bad(qg.num_groups(c.nq), 0), k_group_bad(kg.num_groups(c.nk), 0);
    std::vector<uint8_t> v_bad(c.d, 0);
    bool k_any = false;
    for (int64_t i = 0; i < c.nq; ++i)
      for (int64_t d = 0; d < c.d; ++d)
        if (bad(in.q[(h * c.nq + i) * c.d + d])) q_group_bad[qg.group_of(i)] = 1;
    for (int64_t j = 0; j < c.nk; ++j)
      for (int64_t d = 0; d < c.d; ++d) {
        if (bad(in.k[(hk * c.nk + j) * c.d + d])) k_group_bad[kg.group_of(j)] = 1, k_any = true;
        if (bad(in.v[(hk * c.nk + j) * c.d + d])) v_bad[d] = 1;
      }
    const bool k_all = k_any && c.smooth_k == Smoothing::kOn;
    for (int64_t i = 0; i < c.nq; ++i) {
      if (!e.visible[i]) continue;
      bool row = q_group_bad[qg.group_of(i)] != 0 || k_all;
      for (int64_t j = 0; j <= last_key(c, i) && !row; ++j) row = k_group_bad[kg.group_of(j)] != 0;
      e.lse_nan[h * c.nq + i] = row;
      for (int64_t d = 0; d < c.d; ++d) e.out_nan[(h * c.nq + i) * c.d + d] = row || v_bad[d];
    }
  }
  return e;
}

// float64 SDPA over the visible keys with IEEE semantics (a NaN logit makes the row max NaN, as
// torch.max does; inf - inf = NaN): 1 where an output of a visible row is NaN or +-inf.
inline std::vector<uint8_t> sdpa_nonfinite(const SpecialCase& c, const SpecialInputs& in) {
  std::vector<uint8_t> r(c.hq * c.nq * c.d, 0);
  const int64_t group = c.hq / c.hkv;
  std::vector<double> s(c.nk), o(c.d);
  for (int64_t h = 0; h < c.hq; ++h)
    for (int64_t i = 0; i < c.nq; ++i) {
      const int64_t last = last_key(c, i), hk = h / group;
      if (last < 0) continue;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= last; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < c.d; ++d)
          dot += double(in.q[(h * c.nq + i) * c.d + d]) * double(in.k[(hk * c.nk + j) * c.d + d]);
        s[j] = dot * double(in.scale);
        m = (std::isnan(s[j]) || std::isnan(m)) ? std::nan("") : std::max(m, s[j]);
      }
      double l = 0.0;
      std::fill(o.begin(), o.end(), 0.0);
      for (int64_t j = 0; j <= last; ++j) {
        const double p = std::exp(s[j] - m);
        l += p;
        for (int64_t d = 0; d < c.d; ++d) o[d] += p * double(in.v[(hk * c.nk + j) * c.d + d]);
      }
      for (int64_t d = 0; d < c.d; ++d) r[(h * c.nq + i) * c.d + d] = !std::isfinite(o[d] / l);
    }
  return r;
}

// float64 exact attention of finite inputs (no overflow: the near-max values fit double easily):
// out [hq, nq, d] (0 for rows that see nothing), lse [hq, nq] (-inf there).
struct ExactSpecial {
  std::vector<double> out, lse;
};
inline ExactSpecial exact_special(const SpecialCase& c, const SpecialInputs& in) {
  ExactSpecial r;
  r.out.assign(c.hq * c.nq * c.d, 0.0);
  r.lse.assign(c.hq * c.nq, -std::numeric_limits<double>::infinity());
  const int64_t group = c.hq / c.hkv;
  std::vector<double> s(c.nk);
  for (int64_t h = 0; h < c.hq; ++h)
    for (int64_t i = 0; i < c.nq; ++i) {
      const int64_t last = last_key(c, i), hk = h / group;
      if (last < 0) continue;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= last; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < c.d; ++d)
          dot += double(in.q[(h * c.nq + i) * c.d + d]) * double(in.k[(hk * c.nk + j) * c.d + d]);
        s[j] = dot * double(in.scale);
        m = std::max(m, s[j]);
      }
      double l = 0.0;
      for (int64_t j = 0; j <= last; ++j) {
        const double p = std::exp(s[j] - m);
        l += p;
        for (int64_t d = 0; d < c.d; ++d)
          r.out[(h * c.nq + i) * c.d + d] += p * double(in.v[(hk * c.nk + j) * c.d + d]);
      }
      for (int64_t d = 0; d < c.d; ++d) r.out[(h * c.nq + i) * c.d + d] /= l;
      r.lse[h * c.nq + i] = m + std::log(l);
    }
  return r;
}

// Output of one call: out [hq, nq, d] as 16-bit bits (HND), lse [hq, nq].
struct SpecialResult {
  std::vector<uint16_t> out;
  std::vector<float> lse;
};

// The kConstVLogits cases of both suites: row maxima (base 2) near 2^10 (ordinary), 2^24 (fp32
// spacing 1: a round-to-nearest shift m - log2(448) became m - 9, P = 512 saturated to 448 while l
// kept 512: 2.625 for 3), 2^28 (spacing 16: m - 16, P = 65536) and 2^34 (spacing 2048: a fused
// s * dq + shift on the GPU left the exponent off by up to 1024, P inf or 0). K unsmoothed, so the
// kernels' row maxima are the logits the scale was chosen for.
inline std::vector<SpecialCase> const_v_logit_cases() {
  std::vector<SpecialCase> v;
  for (double e : {10.0, 23.99, 27.99, 33.99}) {
    SpecialCase c;
    c.name = "const_v_logits_2^" + std::to_string(e);
    c.fill = Fill::kConstVLogits, c.smooth_k = Smoothing::kOff, c.logit_log2 = e, c.nq = 96, c.nk = 300;
    v.push_back(c);
  }
  return v;
}
// Largest |out - 3| / 3 of a kConstVLogits result, and its bound: P's rounding (2^-4 in the fp8
// modes, 2^-11 in fp16) plus the bf16 output rounding.
inline double const_v_worst(const SpecialCase& c, const SpecialResult& r) {
  double worst = 0.0;
  for (uint16_t u : r.out) worst = std::max(worst, std::fabs(decode(c.dtype, u) - 3.0) / 3.0);
  return worst;
}
inline double const_v_bound(PvMode mode) { return (mode == PvMode::kFp16 ? 0x1p-11 : 0x1p-4) + 0x1p-8; }

inline AttentionOptions special_options(const SpecialCase& c, const SpecialInputs& in, PvMode mode,
                                        Backend backend) {
  AttentionOptions o;
  o.mask = c.mask;
  o.pv_mode = mode;
  o.granularity = c.gran;
  o.smooth_k = c.smooth_k;
  o.smooth_v = c.smooth_v;
  o.scale = in.scale;
  o.backend = backend;
  return o;
}

// Result checks shared by both suites; each returns a failure description or "" (the callers add
// the context: backend, mode, case).
//
// A poked result against the contract and against its clean twin (the same call without the
// pokes): NaN exactly where expected, never +-inf, every other output and LSE bit-identical to the
// clean twin (quantization groups, V channels and KV heads are independent, so an element the
// special values do not reach is computed exactly as without them), LSE -inf where nothing is
// visible.
inline std::string check_poked(const SpecialCase& c, const ExpectedSpecial& e, const SpecialResult& got,
                               const SpecialResult& clean) {
  int64_t wrong_nan = 0, inf = 0, changed = 0, first = -1;
  for (size_t i = 0; i < got.out.size(); ++i) {
    const double x = decode(c.dtype, got.out[i]);
    const bool nan = std::isnan(x);
    bool bad = false;
    if (std::isinf(x)) ++inf, bad = true;
    if (nan != (e.out_nan[i] != 0)) ++wrong_nan, bad = true;
    if (!nan && got.out[i] != clean.out[i]) ++changed, bad = true;
    if (bad && first < 0) first = int64_t(i);
  }
  int64_t lse_wrong = 0;
  for (size_t i = 0; i < got.lse.size(); ++i) {
    const int64_t row = int64_t(i) % c.nq;
    const float x = got.lse[i];
    bool ok;
    if (!e.visible[row]) ok = x == -kInf;
    else if (e.lse_nan[i]) ok = std::isnan(x);
    else ok = num::float_bits(x) == num::float_bits(clean.lse[i]);
    lse_wrong += !ok;
  }
  if (wrong_nan == 0 && inf == 0 && changed == 0 && lse_wrong == 0) return "";
  std::string msg = c.name + ": " + std::to_string(wrong_nan) + " outputs NaN where not expected or not NaN where " +
                    "expected, " + std::to_string(inf) + " inf, " + std::to_string(changed) +
                    " finite outputs differ from the clean call, " + std::to_string(lse_wrong) + " LSE values wrong";
  if (first >= 0) {
    const int64_t h = first / (c.nq * c.d), n = (first / c.d) % c.nq, d = first % c.d;
    msg += "; first bad output [h " + std::to_string(h) + ", n " + std::to_string(n) + ", d " +
           std::to_string(d) + "] = " + std::to_string(decode(c.dtype, got.out[first])) +
           (e.out_nan[first] ? " (NaN expected)" : "") + ", clean " +
           std::to_string(decode(c.dtype, clean.out[first]));
  }
  return msg;
}

// Every output finite and within [-max, max] of the dtype (no silent overflow), every LSE of a
// visible row finite.
inline std::string check_finite(const SpecialCase& c, const SpecialResult& got) {
  int64_t bad = 0, lse_bad = 0;
  for (uint16_t u : got.out) bad += !std::isfinite(decode(c.dtype, u));
  for (float x : got.lse) lse_bad += !std::isfinite(x);
  if (bad == 0 && lse_bad == 0) return "";
  return c.name + ": " + std::to_string(bad) + " non-finite outputs, " + std::to_string(lse_bad) +
         " non-finite LSE values";
}

}  // namespace sageattn::test::special
