// src/cpu/backend.cpp: CPU backend (see backend.h).
#include "cpu/backend.h"

#include <cstdint>
#include <vector>

#include "common/numerics.h"
#include "cpu/reference.h"
#include "sageattn/error.h"

namespace sageattn::cpu {
namespace {

using detail::AttentionParams;

// Sequence b's [heads, tokens, dim] view of a params tensor.
struct SeqRange {
  int64_t q_begin, q_len, k_begin, k_len;
};

SeqRange seq_range(const AttentionParams& p, int64_t b) {
  if (p.is_varlen())
    return {p.cu_seqlens_q[b], int64_t(p.cu_seqlens_q[b + 1]) - p.cu_seqlens_q[b],
            p.cu_seqlens_k[b], int64_t(p.cu_seqlens_k[b + 1]) - p.cu_seqlens_k[b]};
  return {0, p.seqlen_q, 0, p.seqlen_k};
}

SeqView make_seq(const void* base, DType dtype, int64_t b, int64_t token0, int64_t heads,
                 int64_t tokens, int64_t dim, int64_t sb, int64_t sh, int64_t sn) {
  SeqView s;
  s.data = const_cast<void*>(base);
  // An empty view is never read, and its strides may be anything (2^62, with null data): its
  // offset is neither computed nor applied (int64 overflow, pointer arithmetic on null).
  if (heads > 0 && tokens > 0) {
    const int64_t off = b * sb + token0 * sn;
    s.data = static_cast<char*>(s.data) + off * int64_t(dtype_size(dtype));
  }
  s.dtype = dtype;
  s.heads = heads;
  s.tokens = tokens;
  s.dim = dim;
  s.stride_h = sh;
  s.stride_n = sn;
  return s;
}

// Rounds an output to its dtype, magnitudes beyond the dtype's range (+-inf included) saturated to
// its largest value and NaN kept (num::saturate; the GPU epilogue does the same).
void store(void* base, DType dtype, int64_t off, float x) {
  auto* p = static_cast<uint16_t*>(base) + off;
  *p = dtype == DType::kBF16 ? num::bf16_from_float(num::saturate(x, num::kBf16Max))
                             : num::fp16_from_float(num::saturate(x, kFp16Max));
}

}  // namespace

void run_attention(const AttentionParams& p, const TileConfig& tiles) {
  QuantConfig cfg;
  cfg.tiles = tiles;
  cfg.pv_mode = p.pv_mode;
  cfg.granularity = p.granularity;
  cfg.smooth_k = p.smooth_k;
  cfg.smooth_v = p.smooth_v;
  cfg.mask = p.mask;
  cfg.scale = p.scale;
  const int64_t dim = p.head_dim;
  // No query rows, nothing to write: return before anything per sequence is allocated (empty
  // tensors may carry any batch size, 2^40 included).
  if (p.heads_q == 0 || (p.is_varlen() ? p.cu_seqlens_q[p.batch] == 0 : p.seqlen_q == 0)) return;

  // Compute every sequence first, write after: a failure leaves out/lse untouched.
  struct Result {
    SeqRange r;
    std::vector<float> out, lse;
  };
  std::vector<Result> results(p.batch);
  for (int64_t b = 0; b < p.batch; ++b) {
    const SeqRange r = seq_range(p, b);
    const int64_t bb = p.is_varlen() ? 0 : b;
    const SeqView q = make_seq(p.q, p.dtype, bb, r.q_begin, p.heads_q, r.q_len, dim, p.q_stride_b,
                               p.q_stride_h, p.q_stride_n);
    const SeqView k = make_seq(p.k, p.dtype, bb, r.k_begin, p.heads_kv, r.k_len, dim, p.k_stride_b,
                               p.k_stride_h, p.k_stride_n);
    const SeqView v = make_seq(p.v, p.dtype, bb, r.k_begin, p.heads_kv, r.k_len, dim, p.v_stride_b,
                               p.v_stride_h, p.v_stride_n);
    Result& res = results[b];
    res.r = r;
    res.out.resize(p.heads_q * r.q_len * dim);
    if (p.lse) res.lse.resize(p.heads_q * r.q_len);
    quantized_attention(q, k, v, cfg, res.out.data(), p.lse ? res.lse.data() : nullptr);
  }
  for (int64_t b = 0; b < p.batch; ++b) {
    const Result& res = results[b];
    const int64_t bb = p.is_varlen() ? 0 : b;
    for (int64_t h = 0; h < p.heads_q; ++h)
      for (int64_t i = 0; i < res.r.q_len; ++i) {
        const int64_t n = res.r.q_begin + i;
        const int64_t o = bb * p.o_stride_b + h * p.o_stride_h + n * p.o_stride_n;
        const float* src = &res.out[(h * res.r.q_len + i) * dim];
        for (int64_t d = 0; d < dim; ++d) store(p.out, p.dtype, o + d, src[d]);
        if (p.lse)
          p.lse[bb * p.lse_stride_b + h * p.lse_stride_h + n * p.lse_stride_n] =
              res.lse[h * res.r.q_len + i];
      }
  }
}

}  // namespace sageattn::cpu
