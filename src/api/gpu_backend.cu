// src/api/gpu_backend.cu: the GPU seam of the CUDA library (see gpu_backend.h).
//
// Device discovery is real. The attention kernels themselves arrive with the sm80 (mma.sync) and
// sm90 (wgmma + TMA) backends; until a backend is compiled in, gpu_backend_supports() reports
// false and validation turns GPU calls into an Error naming the missing backend, so no call can
// silently fall back to different math.
#include "api/gpu_backend.h"
#include "common/check.h"
#include "common/cuda_check.h"

namespace sageattn::detail {

bool gpu_backend_compiled() noexcept { return true; }

int gpu_device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: clear the sticky error, report none
    return 0;
  }
  return count;
}

int gpu_compute_capability(int device) {
  int major = 0, minor = 0;
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

bool gpu_backend_supports(Backend, int) noexcept { return false; }

void run_gpu_attention(const AttentionParams& p, Workspace, Stream) {
  throw Error(ErrorCode::kUnsupported,
              concat("backend ", to_string(p.backend), " has no attention kernels in this build"));
}

std::size_t gpu_workspace_size(const AttentionParams&) { return 0; }

}  // namespace sageattn::detail
