// src/quant/kv_quant.cu: the two-pass K/V quantizer (see kv_quant.h for the contract).
#include "quant/kv_quant.h"

#include <cuda_fp16.h>

#include "common/check.h"
#include "common/cuda_check.h"
#include "common/device_numerics.cuh"

namespace sageattn::quant {
namespace {

constexpr int kStatsThreads = 256;  // one thread per channel (dp <= 256)
constexpr int kQuantThreads = 256;
constexpr int kPartialFields = 4;   // k sum, v sum, v min, v max

struct SeqInfo {
  int64_t begin, len;  // first token (in the user's tensor) and token count of sequence b
};

__device__ __forceinline__ SeqInfo seq_info(const KvQuantParams& p, int64_t b) {
  if (p.cu_seqlens_k) return {p.cu_seqlens_k[b], int64_t(p.cu_seqlens_k[b + 1]) - p.cu_seqlens_k[b]};
  return {0, p.seqlen_k};
}

// Element (b, h, token, d) of K or V.
template <bool kBf16>
__device__ __forceinline__ float load_elem(const void* base, int64_t off) {
  const uint16_t raw = static_cast<const uint16_t*>(base)[off];
  if constexpr (kBf16) return __uint_as_float(uint32_t(raw) << 16);
  else return __half2float(__ushort_as_half(raw));
}

// ------------------------------------------------------------------------------- pass 1: stats
// grid (ceil(chunks / chunks_per_block), h_kv, b). A thread owns 8 consecutive channels of one
// 64-token chunk and adds that chunk's tokens in order (the order the reference defines), with
// 16-byte loads when rows are aligned; a block covers kStatsThreads / (dp / 8) chunks.
__host__ __device__ constexpr int stats_chunks_per_block(int64_t dp) {
  return static_cast<int>(kStatsThreads / (dp / 8));
}

template <bool kBf16>
__global__ void __launch_bounds__(kStatsThreads)
    kv_stats_kernel(const __grid_constant__ KvQuantParams p, bool aligned) {
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const SeqInfo s = seq_info(p, b);
  const int64_t n_chunks = (s.len + kMeanChunkTokens - 1) / kMeanChunkTokens;
  const int64_t dp = p.head_dim_padded, bh = b * p.heads_kv + h;
  const int per_block = stats_chunks_per_block(dp);
  const int64_t n_blocks = (n_chunks + per_block - 1) / per_block;
  if (int64_t(blockIdx.x) >= n_blocks) return;  // uniform per block
  const int vecs = static_cast<int>(dp / 8);
  const int64_t chunk = int64_t(blockIdx.x) * per_block + threadIdx.x / vecs;
  const int c0 = (threadIdx.x % vecs) * 8;

  if (chunk < n_chunks && c0 < p.head_dim) {
    const int64_t t0 = chunk * kMeanChunkTokens;
    const int64_t t1 = min(s.len, t0 + kMeanChunkTokens);
    const int64_t kb = (p.cu_seqlens_k ? 0 : b * p.k_stride_b) + h * p.k_stride_h + c0;
    const int64_t vb = (p.cu_seqlens_k ? 0 : b * p.v_stride_b) + h * p.v_stride_h + c0;
    float ks[8], vs[8], vmin[8], vmax[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) ks[j] = 0.0f, vs[j] = 0.0f, vmin[j] = INFINITY, vmax[j] = -INFINITY;
    // Unrolled so that several loads are in flight; each channel's adds still run in token order.
#pragma unroll 4
    for (int64_t t = t0; t < t1; ++t) {
      float kx[8], vx[8];
      const int64_t ko = kb + (s.begin + t) * p.k_stride_n, vo = vb + (s.begin + t) * p.v_stride_n;
      if (aligned) {
        dev::load8<kBf16>(static_cast<const uint16_t*>(p.k) + ko, kx);
        dev::load8<kBf16>(static_cast<const uint16_t*>(p.v) + vo, vx);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) kx[j] = load_elem<kBf16>(p.k, ko + j), vx[j] = load_elem<kBf16>(p.v, vo + j);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        ks[j] = __fadd_rn(ks[j], kx[j]);
        vs[j] = __fadd_rn(vs[j], vx[j]);
        vmin[j] = fminf(vmin[j], vx[j]);
        vmax[j] = fmaxf(vmax[j], vx[j]);
      }
    }
    float* part = p.partials + (bh * (p.seqlen_k_padded / kMeanChunkTokens) + chunk) * kPartialFields * dp + c0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      part[0 * dp + j] = ks[j];
      part[1 * dp + j] = vs[j];
      part[2 * dp + j] = vmin[j];
      part[3 * dp + j] = vmax[j];
    }
  }

  // The last CTA of this (b, h) reduces all chunk partials in ascending order.
  __shared__ bool is_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) is_last = atomicAdd(&p.counters[bh], 1u) == n_blocks - 1;
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  const int d = threadIdx.x;
  if (d < dp) {
    float km = 0.0f, vm = 0.0f, scale = 1.0f, inv = 1.0f;
    if (d < p.head_dim) {
      const float* part0 = p.partials + bh * (p.seqlen_k_padded / kMeanChunkTokens) * kPartialFields * dp;
      float ks = 0.0f, vs = 0.0f, vmin = INFINITY, vmax = -INFINITY;
      for (int64_t c = 0; c < n_chunks; ++c) {
        const float* part = part0 + c * kPartialFields * dp;
        ks = __fadd_rn(ks, __ldcg(part + 0 * dp + d));
        vs = __fadd_rn(vs, __ldcg(part + 1 * dp + d));
        vmin = fminf(vmin, __ldcg(part + 2 * dp + d));
        vmax = fmaxf(vmax, __ldcg(part + 3 * dp + d));
      }
      const float n = static_cast<float>(s.len);
      if (p.smooth_k == Smoothing::kOn) km = __fdiv_rn(ks, n);
      if (p.smooth_v == Smoothing::kOn) vm = __fdiv_rn(vs, n);
      // max_t |v_t - vm| = max(vmax - vm, vm - vmin) exactly: fp32 subtraction is monotonic.
      const float amax = fmaxf(__fsub_rn(vmax, vm), __fsub_rn(vm, vmin));
      if (p.pv_mode == PvMode::kFp16) {
        int e = 0;
        if (amax > 0.0f) {
          int x_exp = 0;
          frexpf(amax, &x_exp);
          e = min(max(x_exp - kFp16VTargetExp, -126), 127);
        }
        scale = ldexpf(1.0f, e);
        inv = ldexpf(1.0f, -e);
      } else {
        const float range = p.pv_mode == PvMode::kFp8 ? kFp8E4M3Max : p.tiles.fp16acc_v_range();
        const float a = fmaxf(amax, kMinAmax);
        scale = __fdiv_rn(a, range);
        inv = __fdiv_rn(range, a);
      }
    }
    p.k_mean[bh * dp + d] = km;
    p.v_mean[bh * dp + d] = vm;
    p.v_scales[bh * dp + d] = scale;
    p.v_inv[bh * dp + d] = inv;
  }
  if (threadIdx.x == 0) p.counters[bh] = 0;  // ready for the next call
}

// ---------------------------------------------------------------------------- pass 2: quantize
// grid (np / block_k, h_kv, b). Thread layout over a [block_k, dp] tile: each thread owns 8
// consecutive channels of one token per step (16-byte loads when rows are 16-byte aligned).
template <bool kBf16, int kBlockK>
__global__ void __launch_bounds__(kQuantThreads)
    kv_quantize_kernel(const __grid_constant__ KvQuantParams p, bool aligned) {
  const int64_t b = blockIdx.z, h = blockIdx.y, blk = blockIdx.x;
  const SeqInfo s = seq_info(p, b);
  const int64_t dp = p.head_dim_padded, d = p.head_dim, np = p.seqlen_k_padded;
  const int64_t bh = b * p.heads_kv + h;
  const int64_t t_base = blk * kBlockK;
  if (t_base >= np) return;

  const GroupSpec kg = p.tiles.k_groups(p.granularity);
  __shared__ float amax_k[kBlockK];  // per group of this block (count <= block_k)
  for (int i = threadIdx.x; i < kg.count; i += blockDim.x) amax_k[i] = 0.0f;
  __syncthreads();

  const float* km = p.k_mean + bh * dp;
  const float* vm = p.v_mean + bh * dp;
  const float* vinv = p.v_inv + bh * dp;
  const int vecs_per_row = static_cast<int>(dp / 8);  // 8, 16 or 32: divides a warp
  const int n_vecs = kBlockK * vecs_per_row;           // a multiple of kQuantThreads
  const bool fp8 = p.pv_mode != PvMode::kFp16;
  static_assert(kBlockK * 8 % kQuantThreads == 0, "every lane runs every iteration for dp >= 64");

  // Pass over the tile: K amax per group (K' values are recomputed below, bit-identically). A
  // token's vectors sit in vecs_per_row consecutive lanes and every lane runs every iteration
  // (n_vecs is a multiple of the block), so each token's amax is reduced with shuffles first and
  // one lane per token updates the group's shared maximum.
  for (int i = threadIdx.x; i < n_vecs; i += blockDim.x) {
    const int tb = i / vecs_per_row, c0 = (i % vecs_per_row) * 8;
    const int64_t t = t_base + tb;
    float a = 0.0f;
    if (t < s.len && c0 < d) {
      const int64_t off = (p.cu_seqlens_k ? 0 : b * p.k_stride_b) + h * p.k_stride_h +
                          (s.begin + t) * p.k_stride_n + c0;
      float x[8];
      if (aligned) dev::load8<kBf16>(static_cast<const uint16_t*>(p.k) + off, x);
      else for (int j = 0; j < 8; ++j) x[j] = load_elem<kBf16>(p.k, off + j);
#pragma unroll
      for (int j = 0; j < 8; ++j) a = fmaxf(a, fabsf(__fsub_rn(x[j], km[c0 + j])));
    }
    for (int o = vecs_per_row / 2; o > 0; o /= 2) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    if (i % vecs_per_row == 0) dev::atomic_max_nonneg(&amax_k[kg.group_of(tb)], a);
  }
  __syncthreads();

  for (int i = threadIdx.x; i < n_vecs; i += blockDim.x) {
    const int tb = i / vecs_per_row, c0 = (i % vecs_per_row) * 8;
    const int64_t t = t_base + tb;
    const bool valid = t < s.len && c0 < d;
    // ---- K ----
    uint32_t kw[2] = {0u, 0u};
    if (valid) {
      const int64_t off = (p.cu_seqlens_k ? 0 : b * p.k_stride_b) + h * p.k_stride_h +
                          (s.begin + t) * p.k_stride_n + c0;
      float x[8];
      if (aligned) dev::load8<kBf16>(static_cast<const uint16_t*>(p.k) + off, x);
      else for (int j = 0; j < 8; ++j) x[j] = load_elem<kBf16>(p.k, off + j);
      const float inv = __fdiv_rn(kInt8Max, fmaxf(amax_k[kg.group_of(tb)], kMinAmax));
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const uint32_t c = static_cast<uint8_t>(dev::int8_code(__fsub_rn(x[j], km[c0 + j]), inv));
        kw[j / 4] |= c << (8 * (j % 4));
      }
    }
    *reinterpret_cast<uint2*>(p.k_codes + (bh * np + t) * dp + c0) = make_uint2(kw[0], kw[1]);

    // ---- V, fp16 mode: same [np][dp] layout as the input ----
    if (fp8) continue;
    float x[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (valid) {
      const int64_t off = (p.cu_seqlens_k ? 0 : b * p.v_stride_b) + h * p.v_stride_h +
                          (s.begin + t) * p.v_stride_n + c0;
      if (aligned) dev::load8<kBf16>(static_cast<const uint16_t*>(p.v) + off, x);
      else for (int j = 0; j < 8; ++j) x[j] = load_elem<kBf16>(p.v, off + j);
    }
    uint32_t vw[4] = {0u, 0u, 0u, 0u};
    if (valid) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const uint32_t c = dev::fp16_code(__fsub_rn(x[j], vm[c0 + j]), vinv[c0 + j]);
        vw[j / 2] |= c << (16 * (j % 2));
      }
    }
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(p.v_codes) + (bh * np + t) * dp + c0) =
        make_uint4(vw[0], vw[1], vw[2], vw[3]);
  }
  if (threadIdx.x < kg.count && t_base < max(s.len, int64_t(1)))
    p.k_scales[bh * (np / kBlockK) * kg.count + blk * kg.count + threadIdx.x] =
        __fdiv_rn(fmaxf(amax_k[threadIdx.x], kMinAmax), kInt8Max);
  if (!fp8) return;
  // fp8 V, transposed: thread = (channel c, 32-token chunk q). It reads the chunk's 32 values of
  // channel c (for each token, consecutive threads read consecutive channels: coalesced) and
  // writes the 32 codes in k-position order (quant::fp8_v_kpos) as two 16-byte stores.
  constexpr int kChunk = 32;
  const int64_t v_base = (p.cu_seqlens_k ? 0 : b * p.v_stride_b) + h * p.v_stride_h;
  auto* vout = static_cast<uint8_t*>(p.v_codes) + bh * dp * np + t_base;
  for (int i = threadIdx.x; i < dp * (kBlockK / kChunk); i += blockDim.x) {
    const int c = static_cast<int>(i % dp), q = static_cast<int>(i / dp);
    uint32_t w[kChunk / 4] = {};
    if (c < d) {
      const float mean = vm[c], inv = vinv[c];
#pragma unroll
      for (int u = 0; u < kChunk; ++u) {
        const int64_t t = t_base + q * kChunk + u;
        if (t < s.len) {
          const float x = load_elem<kBf16>(p.v, v_base + (s.begin + t) * p.v_stride_n + c);
          const uint32_t code = dev::fp8_code(__fsub_rn(x, mean), inv);
          const int kpos = fp8_v_kpos(u);  // compile-time after unrolling
          w[kpos / 4] |= code << (8 * (kpos % 4));
        }
      }
    }
    auto* dst = reinterpret_cast<uint4*>(vout + int64_t(c) * np + q * kChunk);
    dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
    dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
  }
}

std::size_t align256(std::size_t x) { return (x + 255) / 256 * 256; }

struct Sizes {
  std::size_t k_codes, k_scales, k_mean, v_codes, v_scales, v_inv, v_mean, partials, counters;
};

Sizes sizes(const KvQuantParams& p) {
  const std::size_t bh = std::size_t(p.batch * p.heads_kv);
  const std::size_t np = std::size_t(p.seqlen_k_padded), dp = std::size_t(p.head_dim_padded);
  const GroupSpec kg = p.tiles.k_groups(p.granularity);
  const std::size_t v_elem = p.pv_mode == PvMode::kFp16 ? 2 : 1;
  return {align256(bh * np * dp),
          align256(bh * (np / p.tiles.block_k) * kg.count * sizeof(float)),
          align256(bh * dp * sizeof(float)),
          align256(bh * np * dp * v_elem),
          align256(bh * dp * sizeof(float)),
          align256(bh * dp * sizeof(float)),
          align256(bh * dp * sizeof(float)),
          align256(bh * (np / kMeanChunkTokens) * kPartialFields * dp * sizeof(float)),
          align256(bh * sizeof(uint32_t))};
}

}  // namespace

std::size_t kv_quant_workspace_bytes(const KvQuantParams& p) {
  const Sizes s = sizes(p);
  return s.k_codes + s.k_scales + s.k_mean + s.v_codes + s.v_scales + s.v_inv + s.v_mean +
         s.partials + s.counters;
}

void kv_quant_bind_workspace(KvQuantParams& p, void* workspace) {
  const Sizes s = sizes(p);
  auto* w = static_cast<uint8_t*>(workspace);
  p.k_codes = reinterpret_cast<int8_t*>(w), w += s.k_codes;
  p.k_scales = reinterpret_cast<float*>(w), w += s.k_scales;
  p.k_mean = reinterpret_cast<float*>(w), w += s.k_mean;
  p.v_codes = w, w += s.v_codes;
  p.v_scales = reinterpret_cast<float*>(w), w += s.v_scales;
  p.v_inv = reinterpret_cast<float*>(w), w += s.v_inv;
  p.v_mean = reinterpret_cast<float*>(w), w += s.v_mean;
  p.partials = reinterpret_cast<float*>(w), w += s.partials;
  p.counters = reinterpret_cast<uint32_t*>(w);
}

void kv_quantize(const KvQuantParams& p, cudaStream_t stream) {
  SAGEATTN_CHECK_CODE(p.head_dim_padded <= kStatsThreads && p.head_dim_padded % 16 == 0,
                      ErrorCode::kInternal, "kv_quantize: head_dim_padded=", p.head_dim_padded);
  SAGEATTN_CHECK_CODE(p.tiles.block_k == kSm80Tiles.block_k, ErrorCode::kInternal,
                      "kv_quantize: block_k=", p.tiles.block_k, " has no instantiation");
  SAGEATTN_CHECK_CODE(p.seqlen_k_padded % p.tiles.block_k == 0 &&
                          p.seqlen_k_padded % kMeanChunkTokens == 0,
                      ErrorCode::kInternal, "kv_quantize: seqlen_k_padded=", p.seqlen_k_padded);
  if (p.batch == 0 || p.heads_kv == 0 || p.seqlen_k_padded == 0) return;
  const bool bf16 = p.dtype == DType::kBF16;
  const bool aligned =
      (reinterpret_cast<uintptr_t>(p.k) % 16 == 0) && (reinterpret_cast<uintptr_t>(p.v) % 16 == 0) &&
      p.k_stride_b % 8 == 0 && p.k_stride_h % 8 == 0 && p.k_stride_n % 8 == 0 &&
      p.v_stride_b % 8 == 0 && p.v_stride_h % 8 == 0 && p.v_stride_n % 8 == 0;
  const int64_t chunks = p.seqlen_k_padded / kMeanChunkTokens;
  const int per_block = stats_chunks_per_block(p.head_dim_padded);
  const dim3 stats_grid(unsigned((chunks + per_block - 1) / per_block), unsigned(p.heads_kv),
                        unsigned(p.batch));
  if (bf16) kv_stats_kernel<true><<<stats_grid, kStatsThreads, 0, stream>>>(p, aligned);
  else kv_stats_kernel<false><<<stats_grid, kStatsThreads, 0, stream>>>(p, aligned);
  SAGEATTN_CUDA_CHECK_LAUNCH();

  constexpr int kBlockK = kSm80Tiles.block_k;
  const dim3 grid(unsigned(p.seqlen_k_padded / kBlockK), unsigned(p.heads_kv), unsigned(p.batch));
  if (bf16) kv_quantize_kernel<true, kBlockK><<<grid, kQuantThreads, 0, stream>>>(p, aligned);
  else kv_quantize_kernel<false, kBlockK><<<grid, kQuantThreads, 0, stream>>>(p, aligned);
  SAGEATTN_CUDA_CHECK_LAUNCH();
}

}  // namespace sageattn::quant
