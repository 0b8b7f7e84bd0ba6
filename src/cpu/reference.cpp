// src/cpu/reference.cpp: the two-tier CPU reference (see reference.h for the contract).
//
// Floating-point discipline: this file is compiled with -ffp-contract=off (CMakeLists.txt) so
// that every fp32 multiply and add rounds exactly as written; the quantization steps are the
// bit-exact definitions the GPU quantizers must reproduce.
#include "cpu/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/numerics.h"
#include "cpu/parallel.h"
#include "sageattn/error.h"

namespace sageattn::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Last key index query row i may see (inclusive), for causal bottom-right alignment.
inline int64_t causal_limit(int64_t i, int64_t nq, int64_t nk) { return i + nk - nq; }

bool is_fp8(PvMode mode) { return mode == PvMode::kFp8 || mode == PvMode::kFp8Fp16Acc; }

}  // namespace

float load_float(const SeqView& view, int64_t h, int64_t n, int64_t d) {
  const int64_t off = h * view.stride_h + n * view.stride_n + d;
  switch (view.dtype) {
    case DType::kF16: return num::fp16_to_float(static_cast<const uint16_t*>(view.data)[off]);
    case DType::kBF16: return num::bf16_to_float(static_cast<const uint16_t*>(view.data)[off]);
    case DType::kF32: return static_cast<const float*>(view.data)[off];
    default: break;
  }
  throw Error(ErrorCode::kInternal, detail::concat("load_float: unsupported dtype ",
                                                   to_string(view.dtype)));
}

void gather_head(const SeqView& view, int64_t h, float* dst) {
  for (int64_t n = 0; n < view.tokens; ++n)
    for (int64_t d = 0; d < view.dim; ++d) dst[n * view.dim + d] = load_float(view, h, n, d);
}

// ------------------------------------------------------------------------------ tier 1: exact
void exact_attention(const SeqView& q, const SeqView& k, const SeqView& v, const ExactConfig& cfg,
                     double* out, double* lse) {
  const int64_t hq = q.heads, nq = q.tokens, nk = k.tokens, dim = q.dim;
  const int64_t group = hq / k.heads;
  parallel_for(hq, [&](int64_t h) {
    const int64_t hk = h / group;
    std::vector<float> qf(nq * dim), kf(nk * dim), vf(nk * dim);
    gather_head(q, h, qf.data());
    gather_head(k, hk, kf.data());
    gather_head(v, hk, vf.data());
    std::vector<double> s(nk), o(dim);
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t last = cfg.mask == MaskMode::kCausal ? std::min(causal_limit(i, nq, nk), nk - 1)
                                                         : nk - 1;
      double* orow = out + (h * nq + i) * dim;
      if (last < 0) {  // fully masked row
        std::fill(orow, orow + dim, 0.0);
        if (lse) lse[h * nq + i] = -std::numeric_limits<double>::infinity();
        continue;
      }
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= last; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < dim; ++d)
          dot += static_cast<double>(qf[i * dim + d]) * static_cast<double>(kf[j * dim + d]);
        s[j] = dot * cfg.scale;
        m = std::max(m, s[j]);
      }
      double l = 0.0;
      std::fill(o.begin(), o.end(), 0.0);
      for (int64_t j = 0; j <= last; ++j) {
        const double p = std::exp(s[j] - m);
        l += p;
        for (int64_t d = 0; d < dim; ++d) o[d] += p * static_cast<double>(vf[j * dim + d]);
      }
      for (int64_t d = 0; d < dim; ++d) orow[d] = o[d] / l;
      if (lse) lse[h * nq + i] = m + std::log(l);
    }
  });
}

// ------------------------------------------------------------------ quantization steps
void channel_mean(const float* x, int64_t tokens, int64_t dim, float* mean) {
  constexpr int64_t kGroupTokens = int64_t{kMeanChunkTokens} * kMeanGroupChunks;
  std::vector<float> total(dim, 0.0f), group(dim), chunk(dim);
  for (int64_t g0 = 0; g0 < tokens; g0 += kGroupTokens) {
    const int64_t g1 = std::min<int64_t>(tokens, g0 + kGroupTokens);
    std::fill(group.begin(), group.end(), 0.0f);
    for (int64_t c0 = g0; c0 < g1; c0 += kMeanChunkTokens) {
      const int64_t c1 = std::min<int64_t>(g1, c0 + kMeanChunkTokens);
      std::fill(chunk.begin(), chunk.end(), 0.0f);
      for (int64_t n = c0; n < c1; ++n)
        for (int64_t d = 0; d < dim; ++d) chunk[d] += x[n * dim + d];
      for (int64_t d = 0; d < dim; ++d) group[d] += chunk[d];
    }
    for (int64_t d = 0; d < dim; ++d) total[d] += group[d];
  }
  for (int64_t d = 0; d < dim; ++d)
    mean[d] = tokens > 0 ? total[d] / static_cast<float>(tokens) : 0.0f;
}

void quantize_int8(const float* x, int64_t tokens, int64_t dim, const GroupSpec& groups,
                   float factor, int8_t* codes, float* scales) {
  const int64_t n_groups = groups.num_groups(tokens);
  std::vector<float> amax(n_groups, 0.0f);
  for (int64_t n = 0; n < tokens; ++n) {
    float& a = amax[groups.group_of(n)];
    for (int64_t d = 0; d < dim; ++d) a = std::max(a, num::amax_abs(x[n * dim + d]));
  }
  std::vector<float> inv(n_groups);
  for (int64_t g = 0; g < n_groups; ++g) {
    // A group holding NaN or inf has amax +inf: inv 0 (every code 0) and scale +inf, so that each
    // logit it takes part in is 0 * inf = NaN (docs/NUMERICS.md, "Special values").
    const float a = std::max(amax[g], kMinAmax);
    inv[g] = kInt8Max / a;
    scales[g] = (a / kInt8Max) * factor;
  }
  for (int64_t n = 0; n < tokens; ++n) {
    const float iv = inv[groups.group_of(n)];
    for (int64_t d = 0; d < dim; ++d) codes[n * dim + d] = num::int8_quantize(x[n * dim + d], iv);
  }
}

void quantize_v(const float* x, int64_t tokens, int64_t dim, PvMode mode, const TileConfig& tiles,
                float* values, float* scales, uint8_t* codes) {
  std::vector<float> amax(dim, 0.0f);
  for (int64_t n = 0; n < tokens; ++n)
    for (int64_t d = 0; d < dim; ++d) amax[d] = std::max(amax[d], num::amax_abs(x[n * dim + d]));
  std::vector<float> inv(dim);
  // A channel holding NaN or inf (amax +inf): scale NaN, so that the channel's output is NaN in
  // every row; its codes are those of multiplier 1 (docs/NUMERICS.md, "Special values").
  auto nonfinite_channel = [&](int64_t d) {
    if (num::amax_is_finite(amax[d])) return false;
    scales[d] = std::numeric_limits<float>::quiet_NaN();
    inv[d] = 1.0f;
    return true;
  };
  if (is_fp8(mode)) {
    const float range = mode == PvMode::kFp8 ? kFp8E4M3Max : tiles.fp16acc_v_range();
    for (int64_t d = 0; d < dim; ++d) {
      if (nonfinite_channel(d)) continue;
      const float a = std::max(amax[d], kMinAmax);
      inv[d] = range / a;
      scales[d] = a / range;
    }
    for (int64_t n = 0; n < tokens; ++n)
      for (int64_t d = 0; d < dim; ++d) {
        const uint8_t c = num::fp8e4m3_from_float(x[n * dim + d] * inv[d]);
        if (codes) codes[n * dim + d] = c;
        values[n * dim + d] = num::fp8e4m3_to_float(c);
      }
  } else if (mode == PvMode::kFp16) {
    for (int64_t d = 0; d < dim; ++d) {
      if (nonfinite_channel(d)) continue;
      const int e = num::fp16_v_exponent(amax[d]);
      scales[d] = std::ldexp(1.0f, e);
      inv[d] = std::ldexp(1.0f, -e);
    }
    for (int64_t n = 0; n < tokens; ++n)
      for (int64_t d = 0; d < dim; ++d)
        values[n * dim + d] = num::fp16_to_float(num::fp16_from_float(x[n * dim + d] * inv[d]));
  } else {
    throw Error(ErrorCode::kInternal, detail::concat("quantize_v: unresolved pv mode ",
                                                     to_string(mode)));
  }
}

// ------------------------------------------------------------------------- tier 2: quantized
namespace {

// Everything derived from one KV head of one sequence.
struct QuantizedKv {
  std::vector<float> k_mean;     // [D]
  std::vector<int8_t> k_codes;   // [Nk, D]
  std::vector<float> k_scales;   // [groups]
  std::vector<float> v_mean;     // [D] (zeros when V is not smoothed)
  std::vector<float> v_values;   // [Nk, D] decoded fp8 / fp16 values
  std::vector<float> v_scales;   // [D]
};

QuantizedKv quantize_kv(const SeqView& k, const SeqView& v, int64_t hk, const QuantConfig& cfg) {
  const int64_t nk = k.tokens, dim = k.dim;
  QuantizedKv r;
  std::vector<float> x(nk * dim);
  gather_head(k, hk, x.data());
  r.k_mean.assign(dim, 0.0f);
  if (cfg.smooth_k == Smoothing::kOn) {
    channel_mean(x.data(), nk, dim, r.k_mean.data());
    for (int64_t n = 0; n < nk; ++n)
      for (int64_t d = 0; d < dim; ++d) x[n * dim + d] -= r.k_mean[d];
  }
  const GroupSpec kg = cfg.tiles.k_groups(cfg.granularity);
  r.k_codes.resize(nk * dim);
  r.k_scales.resize(kg.num_groups(nk));
  quantize_int8(x.data(), nk, dim, kg, 1.0f, r.k_codes.data(), r.k_scales.data());

  gather_head(v, hk, x.data());
  r.v_mean.assign(dim, 0.0f);
  if (cfg.smooth_v == Smoothing::kOn) {
    channel_mean(x.data(), nk, dim, r.v_mean.data());
    for (int64_t n = 0; n < nk; ++n)
      for (int64_t d = 0; d < dim; ++d) x[n * dim + d] -= r.v_mean[d];
  }
  r.v_values.resize(nk * dim);
  r.v_scales.resize(dim);
  quantize_v(x.data(), nk, dim, cfg.pv_mode, cfg.tiles, r.v_values.data(), r.v_scales.data());
  return r;
}

// One query head of one sequence against its quantized KV head.
void attend_head(const SeqView& q, int64_t h, const QuantizedKv& kv, int64_t nk,
                 const QuantConfig& cfg, float* out, float* lse) {
  const int64_t nq = q.tokens, dim = q.dim;
  const bool fp8 = is_fp8(cfg.pv_mode);
  // P is scaled to [0, 448] in the fp8 modes: the running max is lowered by log2(448).
  const float p_offset = fp8 ? kLog2Fp8E4M3Max : 0.0f;
  const float scale_log2 = static_cast<float>(static_cast<double>(cfg.scale) * kLog2e);

  std::vector<float> qf(nq * dim);
  gather_head(q, h, qf.data());
  const GroupSpec qg = cfg.tiles.q_groups(cfg.granularity);
  const GroupSpec kg = cfg.tiles.k_groups(cfg.granularity);
  std::vector<int8_t> q_codes(nq * dim);
  std::vector<float> q_scales(qg.num_groups(nq));
  quantize_int8(qf.data(), nq, dim, qg, scale_log2, q_codes.data(), q_scales.data());

  const int64_t bk = cfg.tiles.block_k;
  std::vector<float> s(bk), p(bk), acc(dim), partial(dim), step(dim);
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t last = cfg.mask == MaskMode::kCausal ? std::min(causal_limit(i, nq, nk), nk - 1)
                                                       : nk - 1;
    const int8_t* qi = &q_codes[i * dim];
    const float sq = q_scales[qg.group_of(i)];
    float m = kNegInf, l = 0.0f;
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t j0 = 0; j0 <= last; j0 += bk) {
      const int64_t j1 = std::min(j0 + bk, last + 1);  // keys past `last` are masked
      float m_blk = kNegInf;
      for (int64_t j = j0; j < j1; ++j) {
        const int8_t* kj = &kv.k_codes[j * dim];
        int32_t dot = 0;
        for (int64_t d = 0; d < dim; ++d) dot += int32_t(qi[d]) * int32_t(kj[d]);
        s[j - j0] = static_cast<float>(dot) * (sq * kv.k_scales[kg.group_of(j)]);
        m_blk = std::max(m_blk, s[j - j0]);
      }
      const float m_new = std::max(m, m_blk);
      const float alpha = m == kNegInf ? 0.0f : std::exp2(m - m_new);
      const float shift = num::p_shift(p_offset, m_new);  // rounded down: P never exceeds 2^p_offset
      float p_sum = 0.0f;
      for (int64_t j = j0; j < j1; ++j) {
        p[j - j0] = std::exp2(s[j - j0] + shift);
        p_sum += p[j - j0];
      }
      l = l * alpha + p_sum;
      std::fill(partial.begin(), partial.end(), 0.0f);
      if (cfg.pv_mode == PvMode::kFp8Fp16Acc) {
        // fp16 accumulator rounded after every kFp8MmaK-token MMA step, flushed to fp32 per block
        for (int64_t t0 = j0; t0 < j1; t0 += kFp8MmaK) {
          std::fill(step.begin(), step.end(), 0.0f);
          for (int64_t j = t0; j < std::min<int64_t>(j1, t0 + kFp8MmaK); ++j) {
            const float pj = num::fp8e4m3_to_float(num::fp8e4m3_from_float(p[j - j0]));
            for (int64_t d = 0; d < dim; ++d) step[d] += pj * kv.v_values[j * dim + d];
          }
          for (int64_t d = 0; d < dim; ++d)
            partial[d] = num::fp16_to_float(num::fp16_from_float(partial[d] + step[d]));
        }
      } else {
        for (int64_t j = j0; j < j1; ++j) {
          const float pj = fp8 ? num::fp8e4m3_to_float(num::fp8e4m3_from_float(p[j - j0]))
                               : num::fp16_to_float(num::fp16_from_float(p[j - j0]));
          for (int64_t d = 0; d < dim; ++d) partial[d] += pj * kv.v_values[j * dim + d];
        }
      }
      // two-level accumulation: the block's partial product joins a separate fp32 accumulator
      for (int64_t d = 0; d < dim; ++d) acc[d] = acc[d] * alpha + partial[d];
      m = m_new;
    }
    float* orow = out + (h * nq + i) * dim;
    // l is 0 exactly when the row sees no key (every visible key adds P >= 1 at the row max); a
    // NaN l (a NaN logit) is not "nothing visible": it yields NaN, like SDPA.
    const bool nothing_visible = l == 0.0f;
    if (!nothing_visible) {
      for (int64_t d = 0; d < dim; ++d) orow[d] = acc[d] / l * kv.v_scales[d] + kv.v_mean[d];
    } else {
      std::fill(orow, orow + dim, 0.0f);
    }
    if (lse) {
      if (!nothing_visible) {
        double q_km = 0.0;  // undoes K smoothing: logits of K = logits of K' + q . km
        for (int64_t d = 0; d < dim; ++d)
          q_km += static_cast<double>(qf[i * dim + d]) * static_cast<double>(kv.k_mean[d]);
        const double lse2 = static_cast<double>(m) + std::log2(static_cast<double>(l)) - p_offset;
        lse[h * nq + i] = static_cast<float>(lse2 * kLn2 + static_cast<double>(cfg.scale) * q_km);
      } else {
        lse[h * nq + i] = kNegInf;
      }
    }
  }
}

}  // namespace

void quantized_attention(const SeqView& q, const SeqView& k, const SeqView& v,
                         const QuantConfig& cfg, float* out, float* lse) {
  if (cfg.pv_mode == PvMode::kAuto)
    throw Error(ErrorCode::kInternal, "quantized_attention: pv_mode must be resolved");
  const int64_t hkv = k.heads, group = q.heads / k.heads;
  std::vector<QuantizedKv> kv(hkv);
  parallel_for(hkv, [&](int64_t hk) { kv[hk] = quantize_kv(k, v, hk, cfg); });
  parallel_for(q.heads, [&](int64_t h) {
    attend_head(q, h, kv[h / group], k.tokens, cfg, out, lse);
  });
}

}  // namespace sageattn::cpu
