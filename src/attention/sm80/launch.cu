// src/attention/sm80/launch.cu: host side of the sm80 backend (see launch.h).
#include "attention/sm80/launch.h"

#include <climits>
#include <cmath>

#include "attention/sm80/config.h"
#include "common/check.h"
#include "common/cuda_check.h"
#include "quant/kv_quant.h"

namespace sageattn::sm80 {
namespace {

// The kernel head dim that holds d: 64, 128 or 256.
int kernel_head_dim(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }

bool head_dim_compiled(int hd) {
  switch (hd) {
#ifdef SAGEATTN_SM80_HD64
    case 64: return true;
#endif
#ifdef SAGEATTN_SM80_HD128
    case 128: return true;
#endif
#ifdef SAGEATTN_SM80_HD256
    case 256: return true;
#endif
    default: return false;
  }
}

// Calls f(std::integral_constant<int, HD>) for the runtime head dim hd.
template <typename F>
void with_head_dim(int hd, F&& f) {
  switch (hd) {
#ifdef SAGEATTN_SM80_HD64
    case 64: return f(std::integral_constant<int, 64>{});
#endif
#ifdef SAGEATTN_SM80_HD128
    case 128: return f(std::integral_constant<int, 128>{});
#endif
#ifdef SAGEATTN_SM80_HD256
    case 256: return f(std::integral_constant<int, 256>{});
#endif
    default: break;
  }
  throw Error(ErrorCode::kUnsupported,
              detail::concat("the sm80 kernels for head dim ", hd,
                             " are not compiled in this build (CMake SAGEATTN_SM80_HEAD_DIMS)"));
}

template <typename F>
void with_pv_mode(PvMode mode, F&& f) {
  switch (mode) {
    case PvMode::kFp16: return f(std::integral_constant<PvMode, PvMode::kFp16>{});
    case PvMode::kFp8: return f(std::integral_constant<PvMode, PvMode::kFp8>{});
    case PvMode::kFp8Fp16Acc: return f(std::integral_constant<PvMode, PvMode::kFp8Fp16Acc>{});
    case PvMode::kAuto: break;
  }
  throw Error(ErrorCode::kInternal, "sm80: pv_mode was not resolved");
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

quant::KvQuantParams make_quant_params(const detail::AttentionParams& p) {
  quant::KvQuantParams q;
  q.k = p.k, q.v = p.v;
  q.k_stride_b = p.k_stride_b, q.k_stride_h = p.k_stride_h, q.k_stride_n = p.k_stride_n;
  q.v_stride_b = p.v_stride_b, q.v_stride_h = p.v_stride_h, q.v_stride_n = p.v_stride_n;
  q.cu_seqlens_k = p.cu_seqlens_k;
  q.dtype = p.dtype;
  q.batch = p.batch, q.heads_kv = p.heads_kv;
  q.seqlen_k = p.seqlen_k;
  q.head_dim = p.head_dim;
  q.head_dim_padded = kernel_head_dim(p.head_dim);
  q.seqlen_k_padded = round_up(p.seqlen_k, kBlockK);
  q.tiles = kSm80Tiles;
  q.granularity = p.granularity;
  q.smooth_k = p.smooth_k, q.smooth_v = p.smooth_v;
  q.pv_mode = p.pv_mode;
  return q;
}

bool aligned(const void* ptr, int64_t bytes, std::initializer_list<int64_t> strides,
             int64_t elem_multiple) {
  if (reinterpret_cast<uintptr_t>(ptr) % bytes != 0) return false;
  for (int64_t s : strides)
    if (s % elem_multiple != 0) return false;
  return true;
}

// Makes `device` current for the lifetime of the guard.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    SAGEATTN_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) SAGEATTN_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace

bool supports(int cc) {
  return cc >= 80 && (head_dim_compiled(64) || head_dim_compiled(128) || head_dim_compiled(256));
}

std::size_t workspace_size(const detail::AttentionParams& p) {
  return quant::kv_quant_workspace_bytes(make_quant_params(p));
}

void run(const detail::AttentionParams& p, Workspace workspace, cudaStream_t stream,
         cudaEvent_t after_quant) {
  const int hd = kernel_head_dim(p.head_dim);
  SAGEATTN_CHECK_CODE(head_dim_compiled(hd), ErrorCode::kUnsupported, "head_dim ", p.head_dim,
                      " needs the sm80 kernels for head dim ", hd,
                      ", which are not compiled in this build (CMake SAGEATTN_SM80_HEAD_DIMS)");
  // The kernel keeps token indices of one sequence in 32-bit registers.
  constexpr int64_t kMaxTokens = int64_t(INT32_MAX) - 2 * kBlockQ;
  SAGEATTN_CHECK_CODE(p.seqlen_q <= kMaxTokens && p.seqlen_k <= kMaxTokens, ErrorCode::kUnsupported,
                      "sequence length ", p.seqlen_q > p.seqlen_k ? p.seqlen_q : p.seqlen_k,
                      " exceeds the sm80 kernels' limit of ", kMaxTokens, " tokens per sequence");
  DeviceGuard guard(p.device);
  int major = 0, minor = 0;
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, p.device));
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, p.device));
  const int cc = major * 10 + minor;
  SAGEATTN_CHECK_CODE(p.pv_mode == PvMode::kFp16 || cc >= 89, ErrorCode::kUnsupported, "pv_mode ",
                      to_string(p.pv_mode), " needs fp8 tensor cores (sm89+); device ", p.device,
                      " is sm", cc);
  if (p.batch == 0 || p.heads_q == 0 || p.seqlen_q == 0) return;

  quant::KvQuantParams qp = make_quant_params(p);
  const std::size_t need = quant::kv_quant_workspace_bytes(qp);
  void* ws = workspace.data;
  const bool own = ws == nullptr && need > 0;
  if (own) SAGEATTN_CUDA_CHECK(cudaMallocAsync(&ws, need, stream));
  try {
    quant::kv_quant_bind_workspace(qp, ws);
    quant::kv_quantize(qp, stream);
    if (after_quant) SAGEATTN_CUDA_CHECK(cudaEventRecord(after_quant, stream));

    KernelParams kp;
    kp.q = p.q, kp.out = p.out, kp.lse = p.lse;
    kp.q_stride_b = p.q_stride_b, kp.q_stride_h = p.q_stride_h, kp.q_stride_n = p.q_stride_n;
    kp.o_stride_b = p.o_stride_b, kp.o_stride_h = p.o_stride_h, kp.o_stride_n = p.o_stride_n;
    kp.lse_stride_b = p.lse_stride_b, kp.lse_stride_h = p.lse_stride_h;
    kp.lse_stride_n = p.lse_stride_n;
    kp.cu_seqlens_q = p.cu_seqlens_q, kp.cu_seqlens_k = p.cu_seqlens_k;
    kp.k_codes = qp.k_codes, kp.k_scales = qp.k_scales, kp.k_mean = qp.k_mean;
    kp.v_codes = qp.v_codes, kp.v_scales = qp.v_scales, kp.v_mean = qp.v_mean;
    kp.batch = p.batch, kp.heads_q = p.heads_q, kp.heads_kv = p.heads_kv;
    kp.seqlen_q = p.seqlen_q, kp.seqlen_k = p.seqlen_k;
    kp.seqlen_k_padded = qp.seqlen_k_padded;
    kp.head_dim = static_cast<int>(p.head_dim);
    kp.bf16 = p.dtype == DType::kBF16;
    kp.q_aligned = aligned(p.q, 16, {p.q_stride_b, p.q_stride_h, p.q_stride_n}, 8);
    kp.o_aligned = aligned(p.out, 4, {p.o_stride_b, p.o_stride_h, p.o_stride_n}, 2);
    kp.mask = p.mask;
    kp.granularity = p.granularity;
    kp.smooth_k = p.smooth_k == Smoothing::kOn;
    kp.scale = p.scale;
    kp.scale_log2 = static_cast<float>(static_cast<double>(p.scale) * kLog2e);
    with_head_dim(hd, [&](auto hd_c) {
      with_pv_mode(p.pv_mode, [&](auto mode_c) {
        launch_attention<decltype(hd_c)::value, decltype(mode_c)::value>(kp, stream);
      });
    });
  } catch (...) {
    if (own) cudaFreeAsync(ws, stream);
    throw;
  }
  if (own) SAGEATTN_CUDA_CHECK(cudaFreeAsync(ws, stream));
}

}  // namespace sageattn::sm80
