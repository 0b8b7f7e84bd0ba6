// src/attention/sm90/launch.cu: host side of the sm90 backend (see launch.h).
#include "attention/sm90/launch.h"

#include <climits>
#include <cstring>
#include <type_traits>

#include <cuda.h>
#include <cudaTypedefs.h>

#include "attention/common/launch_common.h"
#include "attention/sm90/config.h"
#include "common/check.h"
#include "common/cuda_check.h"
#include "quant/kv_quant.h"

namespace sageattn::sm90 {
namespace {

bool head_dim_compiled(int hd) {
  switch (hd) {
#ifdef SAGEATTN_SM90_HD64
    case 64: return true;
#endif
#ifdef SAGEATTN_SM90_HD128
    case 128: return true;
#endif
    default: return false;
  }
}

// Calls f(std::integral_constant<int, HD>) for the runtime head dim hd.
template <typename F>
void with_head_dim(int hd, F&& f) {
  switch (hd) {
#ifdef SAGEATTN_SM90_HD64
    case 64: return f(std::integral_constant<int, 64>{});
#endif
#ifdef SAGEATTN_SM90_HD128
    case 128: return f(std::integral_constant<int, 128>{});
#endif
    default: break;
  }
  throw Error(ErrorCode::kUnsupported,
              detail::concat("the sm90 kernels for head dim ", hd,
                             " are not compiled in this build (CMake SAGEATTN_SM90_HEAD_DIMS)"));
}

template <typename F>
void with_pv_mode(PvMode mode, F&& f) {
  switch (mode) {
    case PvMode::kFp16: return f(std::integral_constant<PvMode, PvMode::kFp16>{});
    case PvMode::kFp8: return f(std::integral_constant<PvMode, PvMode::kFp8>{});
    default: break;
  }
  throw Error(ErrorCode::kUnsupported, detail::concat("the sm90 kernels have no pv_mode ", to_string(mode)));
}

// The kernels keep token indices of one sequence in 32-bit registers.
constexpr int64_t kMaxTokens = int64_t(INT32_MAX) - 2 * kBlockQ;

// cuTensorMapEncodeTiled from the driver, without linking libcuda.
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult status{};
    SAGEATTN_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000,
                                                         cudaEnableDefault, &status));
    SAGEATTN_CHECK_CODE(status == cudaDriverEntryPointSuccess && f != nullptr, ErrorCode::kCudaError,
                        "the CUDA driver has no cuTensorMapEncodeTiled (needs a CUDA 12 driver)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// A 3-D tiled TMA map over a dense [d2][d1][d0] tensor of `elem_bytes`-byte elements at `base`.
TmaMap make_map(const void* base, CUtensorMapDataType dtype, int elem_bytes, uint64_t d0, uint64_t d1,
                uint64_t d2, uint32_t box0, uint32_t box1, CUtensorMapSwizzle swizzle) {
  CUtensorMap map;
  const cuuint64_t dims[3] = {d0, d1, d2};
  const cuuint64_t strides[2] = {d0 * elem_bytes, d0 * d1 * elem_bytes};  // bytes, dims 1 and 2
  const cuuint32_t box[3] = {box0, box1, 1};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  const CUresult rc = encode_tiled()(&map, dtype, 3, const_cast<void*>(base), dims, strides, box, elem_strides,
                                     CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  SAGEATTN_CHECK_CODE(rc == CUDA_SUCCESS, ErrorCode::kCudaError, "cuTensorMapEncodeTiled failed (CUresult ", int(rc),
                      ") for a [", d2, ", ", d1, ", ", d0, "] tensor, box [", box1, ", ", box0, "]");
  TmaMap out;
  std::memcpy(&out, &map, sizeof(map));
  return out;
}

}  // namespace

bool supports(int cc) { return cc == 90 && (head_dim_compiled(64) || head_dim_compiled(128)); }

bool serves(const detail::AttentionParams& p, const char** why) {
  const char* reason = nullptr;
  if (attn::kernel_head_dim(p.head_dim) > 128) reason = "head dims above 128 have no sm90 kernel yet";
  else if (!head_dim_compiled(attn::kernel_head_dim(p.head_dim)))
    reason = "its head dim is not compiled in this build (CMake SAGEATTN_SM90_HEAD_DIMS)";
  else if (p.pv_mode != PvMode::kFp16 && p.pv_mode != PvMode::kFp8)
    reason = "the sm90 kernels run pv_mode fp16 and fp8 only (fp8_fp16acc is not faster on Hopper)";
  else if (p.seqlen_q > kMaxTokens || p.seqlen_k > kMaxTokens)
    reason = "a sequence is longer than the kernels' 32-bit token indices allow";
  else if (query_tiles(p.seqlen_q) * p.batch > INT32_MAX)
    reason = "sequences x query tiles exceed the grid's x dimension (2^31 - 1)";
  if (why) *why = reason;
  return reason == nullptr;
}

// Every call the sm90 kernels serve (head dims <= 128, pv_mode fp16 or fp8): at hd64 they beat the
// sm80 kernels too, by 3% at N = 1K and 25-35% (fp16) / 65-80% (fp8) at 4K-16K (H200, bench/RESULTS.md
// 2026-12-06).
bool preferred(const detail::AttentionParams& p) { return attn::kernel_head_dim(p.head_dim) <= 128; }

std::size_t workspace_size(const detail::AttentionParams& p) {
  return quant::kv_quant_workspace_bytes(
      attn::make_quant_params(p, kSm90Tiles, attn::kernel_head_dim(p.head_dim)));
}

void run(const detail::AttentionParams& p, Workspace workspace, cudaStream_t stream,
         cudaEvent_t after_quant) {
  const char* why = nullptr;
  SAGEATTN_CHECK_CODE(serves(p, &why), ErrorCode::kUnsupported, "backend sm90 cannot run this call: ", why,
                      " (head_dim ", p.head_dim, ", pv_mode ", to_string(p.pv_mode), ")");
  attn::DeviceGuard guard(p.device);
  const int cc = attn::compute_capability(p.device);
  SAGEATTN_CHECK_CODE(cc == 90, ErrorCode::kUnsupported, "backend sm90 needs a compute capability 9.0 device; device ",
                      p.device, " is sm", cc);
  if (p.batch == 0 || p.heads_q == 0 || p.seqlen_q == 0) return;

  const int hd = attn::kernel_head_dim(p.head_dim);
  attn::quantize_and_launch(
      p, attn::make_quant_params(p, kSm90Tiles, hd), workspace, stream, after_quant,
      [&](const attn::KernelParams& kp, const quant::KvQuantParams& qp) {
        const uint64_t np = uint64_t(qp.seqlen_k_padded), dp = uint64_t(hd), bh = uint64_t(p.batch * p.heads_kv);
        // K codes [bh][np][dp] int8: boxes of 128 keys x dp bytes (one row = one swizzle span).
        const TmaMap k_map = make_map(qp.k_codes, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, dp, np, bh, uint32_t(dp),
                                      kBlockK, hd >= 128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_64B);
        // V: fp8 [bh][dp][np] (k-positions innermost): boxes of dp channels x 128 k-positions;
        //    fp16 [bh][np][dp]: boxes of 128 tokens x 64 channels (128-byte rows).
        const TmaMap v_map =
            p.pv_mode == PvMode::kFp8
                ? make_map(qp.v_codes, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, np, dp, bh, kBlockK, uint32_t(dp),
                           CU_TENSOR_MAP_SWIZZLE_128B)
                : make_map(qp.v_codes, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, dp, np, bh, 64, kBlockK,
                           CU_TENSOR_MAP_SWIZZLE_128B);
        with_head_dim(hd, [&](auto hd_c) {
          with_pv_mode(p.pv_mode, [&](auto mode_c) {
            launch_attention<decltype(hd_c)::value, decltype(mode_c)::value>(kp, k_map, v_map, stream);
          });
        });
      });
}

}  // namespace sageattn::sm90
