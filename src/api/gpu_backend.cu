// src/api/gpu_backend.cu: the GPU seam of the CUDA library (see gpu_backend.h).
//
// Backends: sm80 (mma.sync; every device of compute capability 8.0 or newer) is compiled in;
// sm90 (wgmma + TMA) is not yet, so gpu_backend_supports(kSm90) is false and kAuto picks sm80 on
// Hopper too. A backend that is asked for but missing is an Error, never a silent fallback.
#include "api/gpu_backend.h"

#include "attention/sm80/launch.h"
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

bool gpu_backend_supports(Backend backend, int cc) noexcept {
  return backend == Backend::kSm80 && sm80::supports(cc);
}

void run_gpu_attention(const AttentionParams& p, Workspace workspace, Stream stream) {
  if (p.backend == Backend::kSm80) return sm80::run(p, workspace, static_cast<cudaStream_t>(stream));
  throw Error(ErrorCode::kUnsupported,
              concat("backend ", to_string(p.backend), " has no attention kernels in this build"));
}

std::size_t gpu_workspace_size(const AttentionParams& p) {
  return p.backend == Backend::kSm80 ? sm80::workspace_size(p) : 0;
}

}  // namespace sageattn::detail
