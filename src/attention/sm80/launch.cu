// src/attention/sm80/launch.cu: host side of the sm80 backend (see launch.h).
#include "attention/sm80/launch.h"

#include <climits>
#include <cmath>

#include "attention/common/launch_common.h"
#include "attention/sm80/config.h"
#include "common/check.h"
#include "common/cuda_check.h"
#include "quant/kv_quant.h"

namespace sageattn::sm80 {
namespace {

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

}  // namespace

bool supports(int cc) {
  return cc >= 80 && (head_dim_compiled(64) || head_dim_compiled(128) || head_dim_compiled(256));
}

std::size_t workspace_size(const detail::AttentionParams& p) {
  return quant::kv_quant_workspace_bytes(
      attn::make_quant_params(p, kSm80Tiles, attn::kernel_head_dim(p.head_dim)));
}

void run(const detail::AttentionParams& p, Workspace workspace, cudaStream_t stream,
         cudaEvent_t after_quant) {
  const int hd = attn::kernel_head_dim(p.head_dim);
  SAGEATTN_CHECK_CODE(head_dim_compiled(hd), ErrorCode::kUnsupported, "head_dim ", p.head_dim,
                      " needs the sm80 kernels for head dim ", hd,
                      ", which are not compiled in this build (CMake SAGEATTN_SM80_HEAD_DIMS)");
  // The kernel keeps token indices of one sequence in 32-bit registers.
  constexpr int64_t kMaxTokens = int64_t(INT32_MAX) - 2 * kBlockQ;
  SAGEATTN_CHECK_CODE(p.seqlen_q <= kMaxTokens && p.seqlen_k <= kMaxTokens, ErrorCode::kUnsupported,
                      "sequence length ", p.seqlen_q > p.seqlen_k ? p.seqlen_q : p.seqlen_k,
                      " exceeds the sm80 kernels' limit of ", kMaxTokens, " tokens per sequence");
  attn::DeviceGuard guard(p.device);
  const int cc = attn::compute_capability(p.device);
  SAGEATTN_CHECK_CODE(p.pv_mode == PvMode::kFp16 || cc >= 89, ErrorCode::kUnsupported, "pv_mode ",
                      to_string(p.pv_mode), " needs fp8 tensor cores (sm89+); device ", p.device,
                      " is sm", cc);
  if (p.batch == 0 || p.heads_q == 0 || p.seqlen_q == 0) return;

  attn::quantize_and_launch(p, attn::make_quant_params(p, kSm80Tiles, hd), workspace, stream, after_quant,
                            [&](const KernelParams& kp, const quant::KvQuantParams&) {
                              with_head_dim(hd, [&](auto hd_c) {
                                with_pv_mode(p.pv_mode, [&](auto mode_c) {
                                  launch_attention<decltype(hd_c)::value, decltype(mode_c)::value>(kp, stream);
                                });
                              });
                            });
}

}  // namespace sageattn::sm80
