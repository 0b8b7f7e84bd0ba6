// src/cpu/inputs.cpp: input families (see inputs.h). A private Box-Muller over splitmix64 keeps
// the values identical across standard libraries; every (tensor, batch-head) block has its own
// stream, so large inputs are generated in parallel with values independent of the thread count.
#include "cpu/inputs.h"

#include <cmath>

#include "common/check.h"
#include "cpu/parallel.h"

namespace sageattn::cpu {
namespace {

class Normal {
 public:
  explicit Normal(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(next() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double t = 6.283185307179586 * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

 private:
  uint64_t next() {  // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

constexpr int kOutlierChannels = 4;
constexpr float kOutlierScale = 10.0f;
constexpr float kKBiasStd = 6.0f;
constexpr float kVBiasStd = 3.0f;

// An independent stream per (stream id, block): blocks fill in parallel and the values do not
// depend on the thread count.
uint64_t stream_seed(uint64_t seed, uint64_t id, uint64_t block) {
  return seed * 0xD1B54A32D192ED03ull + id * 0x8CB92BA72F3D8DD7ull + block;
}

// x[i, :, :] ~ N(0, 1) for each of the `blocks` [n, dim] blocks.
void fill(std::vector<float>& x, int64_t blocks, uint64_t seed, uint64_t id) {
  const int64_t block_size = blocks ? static_cast<int64_t>(x.size()) / blocks : 0;
  parallel_for(blocks, [&](int64_t i) {
    Normal rng(stream_seed(seed, id, static_cast<uint64_t>(i)));
    for (int64_t e = 0; e < block_size; ++e) x[i * block_size + e] = static_cast<float>(rng());
  });
}

// x[b, h, n, d] += std * N(0,1) drawn once per (b, h, d).
void add_channel_bias(std::vector<float>& x, int64_t bh, int64_t n, int64_t dim, float std_dev,
                      uint64_t seed, uint64_t id) {
  parallel_for(bh, [&](int64_t i) {
    Normal rng(stream_seed(seed, id, static_cast<uint64_t>(i)));
    for (int64_t d = 0; d < dim; ++d) {
      const float bias = std_dev * static_cast<float>(rng());
      for (int64_t t = 0; t < n; ++t) x[(i * n + t) * dim + d] += bias;
    }
  });
}

// The same kOutlierChannels evenly spaced channels of every head (so that q's and k's outliers
// meet in the dot product), scaled x10.
void scale_outlier_channels(std::vector<float>& x, int64_t bh, int64_t n, int64_t dim) {
  for (int64_t i = 0; i < bh; ++i)
    for (int c = 0; c < kOutlierChannels; ++c) {
      const int64_t d = c * dim / kOutlierChannels + 1;
      for (int64_t t = 0; t < n; ++t) x[(i * n + t) * dim + d] *= kOutlierScale;
    }
}

}  // namespace

const char* to_string(InputFamily f) noexcept {
  switch (f) {
    case InputFamily::kGaussian: return "gaussian";
    case InputFamily::kKChannelBias: return "k_channel_bias";
    case InputFamily::kOutliers: return "outliers";
  }
  return "invalid_family";
}

InputFamily parse_input_family(const std::string& name) {
  if (name == "gaussian") return InputFamily::kGaussian;
  if (name == "k_channel_bias") return InputFamily::kKChannelBias;
  if (name == "outliers") return InputFamily::kOutliers;
  SAGEATTN_CHECK(false, "unknown input family '", name,
                 "' (expected gaussian, k_channel_bias or outliers)");
  return InputFamily::kGaussian;
}

QkvData make_inputs(InputFamily family, int64_t batch, int64_t heads_q, int64_t heads_kv,
                    int64_t seqlen_q, int64_t seqlen_k, int64_t head_dim, uint64_t seed) {
  QkvData r;
  r.q.resize(batch * heads_q * seqlen_q * head_dim);
  r.k.resize(batch * heads_kv * seqlen_k * head_dim);
  r.v.resize(batch * heads_kv * seqlen_k * head_dim);
  enum : uint64_t { kQ, kK, kV, kKBias, kVBias };  // stream ids
  fill(r.q, batch * heads_q, seed, kQ);
  fill(r.k, batch * heads_kv, seed, kK);
  fill(r.v, batch * heads_kv, seed, kV);
  if (family == InputFamily::kGaussian) return r;
  add_channel_bias(r.k, batch * heads_kv, seqlen_k, head_dim, kKBiasStd, seed, kKBias);
  if (family == InputFamily::kKChannelBias) return r;
  scale_outlier_channels(r.q, batch * heads_q, seqlen_q, head_dim);
  scale_outlier_channels(r.k, batch * heads_kv, seqlen_k, head_dim);
  add_channel_bias(r.v, batch * heads_kv, seqlen_k, head_dim, kVBiasStd, seed, kVBias);
  return r;
}

}  // namespace sageattn::cpu
