// src/attention/common/launch_common.h: host helpers shared by the sm80 and sm90 launchers: the
// kernel head dim, the K/V quantizer's parameters and the kernels' device parameters, each filled
// in one place from the API's AttentionParams.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "api/params.h"
#include "common/cuda_check.h"
#include "sageattn/attention.h"
#include "attention/common/params.h"
#include "quant/kv_quant.h"
#include "sageattn/layout.h"

namespace sageattn::attn {

// The kernel head dim that holds d: 64, 128 or 256 (the kernels zero-pad the rest).
inline int kernel_head_dim(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }

// The quantizer's parameters for a kernel family (its K groups) and kernel head dim. Its buffers
// are bound later (quant::kv_quant_bind_workspace).
quant::KvQuantParams make_quant_params(const detail::AttentionParams& p, const TileConfig& tiles,
                                       int kernel_hd);

// The kernels' device parameters: the user's tensors from p, the quantized K/V from qp (bound).
KernelParams make_kernel_params(const detail::AttentionParams& p, const quant::KvQuantParams& qp);

// The attention kernels' grid is (query tiles, heads_q, batch), and CUDA caps a grid's y and z
// at 65535. The API refuses more query heads (detail::gpu_backend_serves); a launcher with more
// sequences than this launches them in slices (slice_batches).
inline constexpr int64_t kMaxGridYZ = 65535;

// The kernel parameters of sequences [b0, b0 + nb) of kp as a call of its own: the user tensors
// (dense: offset by b0 batch strides; varlen: cu_seqlens offset by b0, token offsets stay absolute)
// and the quantized K/V buffers (offset by b0 * heads_kv heads of the padded layout: kernel_hd
// channels, seqlen_k_padded tokens, the K groups of `tiles`, V elements of v_elem_bytes bytes).
KernelParams slice_batches(const KernelParams& kp, int64_t b0, int64_t nb, int kernel_hd,
                           const TileConfig& tiles, int v_elem_bytes);

// Makes `device` current for the lifetime of the guard.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Compute capability of `device` as 10 * major + minor.
int compute_capability(int device);

// Quantizes K/V with `qp` into the workspace (allocated on the stream when the caller gave none,
// freed after the launch), records `after_quant` (if not null) and calls launch(kernel params,
// bound quantizer params).
template <typename Launch>
void quantize_and_launch(const detail::AttentionParams& p, quant::KvQuantParams qp, Workspace workspace,
                         cudaStream_t stream, cudaEvent_t after_quant, Launch&& launch) {
  const std::size_t need = quant::kv_quant_workspace_bytes(qp);
  void* ws = workspace.data;
  const bool own = ws == nullptr && need > 0;
  if (own) SAGEATTN_CUDA_CHECK(cudaMallocAsync(&ws, need, stream));
  try {
    quant::kv_quant_bind_workspace(qp, ws);
    quant::kv_quantize(qp, stream);
    if (after_quant) SAGEATTN_CUDA_CHECK(cudaEventRecord(after_quant, stream));
    launch(make_kernel_params(p, qp), qp);
  } catch (...) {
    if (own) cudaFreeAsync(ws, stream);
    throw;
  }
  if (own) SAGEATTN_CUDA_CHECK(cudaFreeAsync(ws, stream));
}

}  // namespace sageattn::attn
