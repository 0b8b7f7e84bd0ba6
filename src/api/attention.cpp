// src/api/attention.cpp: the public entry points and the one dispatch function.
//
// binding -> API (validate, fill Params) -> dispatch (this file) -> backend launch -> kernel.
#include "sageattn/attention.h"

#include <cstdint>
#include <new>
#include <stdexcept>

#include "api/gpu_backend.h"
#include "api/validate.h"
#include "common/check.h"
#include "cpu/backend.h"

#ifndef SAGEATTN_VERSION_STRING
#error "SAGEATTN_VERSION_STRING must be defined by the build"
#endif

namespace sageattn {
namespace {

std::size_t workspace_size(const detail::AttentionParams& p) {
  // The CPU backend keeps its scratch in private heap buffers and needs no workspace.
  return p.backend == Backend::kCpu ? 0 : detail::gpu_workspace_size(p);
}

// A backend's host allocation failed (e.g. the CPU backend's scratch for a valid view broadcast
// to 2^50 rows by zero strides): an Error like every other failure. The CPU backend computes
// before it writes, so there out and lse are still untouched.
Error host_out_of_memory(const detail::AttentionParams& p) {
  return Error(ErrorCode::kOutOfMemory,
               detail::concat("out of host memory for this call (batch ", p.batch, ", heads_q ",
                              p.heads_q, ", seqlen_q ", p.seqlen_q, ", seqlen_k ", p.seqlen_k,
                              ", head_dim ", p.head_dim, ")"));
}

// The one dispatch point from resolved params to a backend.
void dispatch(const detail::AttentionParams& p, Workspace workspace, Stream stream) {
  const std::size_t need = workspace_size(p);
  if (workspace.data != nullptr) {
    SAGEATTN_CHECK(workspace.bytes >= need, "workspace has ", workspace.bytes,
                   " bytes but this call needs ", need);
    // The GPU backends carve the workspace into buffers that vector loads and TMA read.
    SAGEATTN_CHECK(need == 0 || reinterpret_cast<std::uintptr_t>(workspace.data) % kWorkspaceAlignment == 0,
                   "workspace.data (", workspace.data, ") is not ", kWorkspaceAlignment,
                   "-byte aligned (cudaMalloc and cudaMallocAsync pointers are)");
  }
  try {
    switch (p.backend) {
      case Backend::kCpu: cpu::run_attention(p); return;
      case Backend::kSm80:
      case Backend::kSm90: detail::run_gpu_attention(p, workspace, stream); return;
      case Backend::kAuto: break;
    }
  } catch (const std::bad_alloc&) {
    throw host_out_of_memory(p);
  } catch (const std::length_error&) {  // a std::vector longer than max_size(): the same
    throw host_out_of_memory(p);
  }
  throw Error(ErrorCode::kInternal, "dispatch: backend was not resolved");
}

}  // namespace

void attention(const TensorView& q, const TensorView& k, const TensorView& v,
               const TensorView& out, const AttentionOptions& options, const TensorView& lse,
               Workspace workspace, Stream stream) {
  dispatch(detail::make_dense_params(q, k, v, out, lse, options), workspace, stream);
}

std::size_t attention_workspace_size(const TensorView& q, const TensorView& k,
                                     const TensorView& v, const AttentionOptions& options) {
  // Validation needs an output: describe one shaped like q (it is never written).
  return workspace_size(detail::make_dense_params(q, k, v, q, {}, options));
}

void attention_varlen(const VarlenArgs& args, const AttentionOptions& options,
                      Workspace workspace, Stream stream) {
  dispatch(detail::make_varlen_params(args, options), workspace, stream);
}

std::size_t attention_varlen_workspace_size(const VarlenArgs& args,
                                            const AttentionOptions& options) {
  return workspace_size(detail::make_varlen_params(args, options));
}

bool gpu_available() noexcept {
  const int count = detail::gpu_device_count();
  for (int d = 0; d < count; ++d) {
    try {
      const int cc = detail::gpu_compute_capability(d);
      if ((detail::gpu_backend_supports(Backend::kSm80, cc) ||
           detail::gpu_backend_supports(Backend::kSm90, cc)) &&
          detail::gpu_kernel_image(d))
        return true;
    } catch (const Error&) {
    }
  }
  return false;
}

PvMode resolve_pv_mode(PvMode requested, int device, int64_t head_dim) {
  if (requested != PvMode::kAuto) return requested;
  if (device == kHostDevice) return PvMode::kFp8;
  // The rule: detail::gpu_auto_pv_mode. Without a head dim, the answer for the calls the sm90
  // kernels serve; with one, automatic dispatch of the smallest call of that head dim decides.
  const int cc = detail::gpu_compute_capability(device);
  bool sm90_runs = true;
  if (cc == 90 && head_dim > 0) {
    detail::AttentionParams probe;
    probe.batch = probe.heads_q = probe.heads_kv = probe.seqlen_q = probe.seqlen_k = 1;
    probe.head_dim = head_dim, probe.device = device, probe.pv_mode = PvMode::kFp8;
    sm90_runs = detail::gpu_backend_supports(Backend::kSm90, cc) && detail::gpu_auto_prefers_sm90(probe);
  }
  return detail::gpu_auto_pv_mode(cc, sm90_runs);
}

const char* version() noexcept { return SAGEATTN_VERSION_STRING; }

}  // namespace sageattn
