// src/api/gpu_stub.cpp: the GPU seam of the CPU-only library (sageattn_cpu): no devices, no
// kernels. GPU tensors passed to a CPU-only build get an Error that says so.
#include "api/gpu_backend.h"
#include "common/check.h"

namespace sageattn::detail {

bool gpu_backend_compiled() noexcept { return false; }

int gpu_device_count() noexcept { return 0; }

int gpu_compute_capability(int device) {
  throw Error(ErrorCode::kUnsupported,
              concat("device ", device, ": this is the CPU-only build of sageattn (no CUDA)"));
}

bool gpu_backend_supports(Backend, int) noexcept { return false; }

bool gpu_backend_serves(const AttentionParams&, const char** why) {
  if (why) *why = "this is the CPU-only build of sageattn (no CUDA)";
  return false;
}

bool gpu_auto_prefers_sm90(const AttentionParams&) { return false; }

bool gpu_kernel_image(int) noexcept { return false; }

void gpu_require_kernel_image(int device) {
  throw Error(ErrorCode::kUnsupported,
              concat("device ", device, ": this is the CPU-only build of sageattn (no CUDA)"));
}

void run_gpu_attention(const AttentionParams&, Workspace, Stream) {
  throw Error(ErrorCode::kUnsupported, "this is the CPU-only build of sageattn (no CUDA)");
}

std::size_t gpu_workspace_size(const AttentionParams&) { return 0; }

}  // namespace sageattn::detail
