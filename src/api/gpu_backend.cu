// src/api/gpu_backend.cu: the GPU seam of the CUDA library (see gpu_backend.h).
//
// Backends: sm80 (mma.sync; every device of compute capability 8.0 or newer) and sm90 (warp-
// specialized wgmma + TMA; compute capability 9.0, head dims up to 128, pv_mode fp16 / fp8). kAuto
// picks sm90 where it serves the call and is the faster one (sm90::preferred), sm80 otherwise
// (src/api/validate.cpp). A backend that is
// asked for but cannot serve the call is an Error, never a silent fallback.
#include "api/gpu_backend.h"

#include <atomic>
#include <string>

#include "attention/common/launch_common.h"
#include "attention/sm80/launch.h"
#include "attention/sm90/launch.h"
#include "common/check.h"
#include "common/cuda_check.h"

#ifndef SAGEATTN_CUDA_ARCHS_STRING
#define SAGEATTN_CUDA_ARCHS_STRING "(unknown)"
#endif

namespace sageattn::detail {
namespace {

// Compiled like every kernel of the library (one CUDA architecture list for all): it has an
// image for a device exactly when they do.
__global__ void kernel_image_probe() {}

constexpr int kMaxCachedDevices = 64;
std::atomic<int8_t> g_image_cache[kMaxCachedDevices];  // 0 unknown, 1 present, 2 absent

bool probe_kernel_image(int device) noexcept {
  int current = 0;
  if (cudaGetDevice(&current) != cudaSuccess) current = -1;
  if (current != device && cudaSetDevice(device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  cudaFuncAttributes attr{};
  const bool ok = cudaFuncGetAttributes(&attr, kernel_image_probe) == cudaSuccess;
  if (!ok) (void)cudaGetLastError();  // cudaErrorInvalidDeviceFunction / NoKernelImageForDevice
  if (current >= 0 && current != device) (void)cudaSetDevice(current);
  return ok;
}

}  // namespace

bool gpu_backend_compiled() noexcept { return true; }

bool gpu_kernel_image(int device) noexcept {
  if (device < 0) return false;
  if (device >= kMaxCachedDevices) return probe_kernel_image(device);
  int8_t v = g_image_cache[device].load(std::memory_order_relaxed);
  if (v == 0) {
    v = probe_kernel_image(device) ? 1 : 2;
    g_image_cache[device].store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

void gpu_require_kernel_image(int device) {
  if (gpu_kernel_image(device)) return;
  const int cc = gpu_compute_capability(device);
  throw Error(ErrorCode::kUnsupported,
              concat("this build of sageattn has no kernel image for device ", device,
                     " (compute capability ", cc / 10, ".", cc % 10,
                     "): it was compiled for the CUDA architectures " SAGEATTN_CUDA_ARCHS_STRING
                     "; rebuild with one for this device, e.g. -DSAGEATTN_CUDA_ARCHS=",
                     cc == 90 ? "90a" : std::to_string(cc).c_str(), "-real"));
}

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
  switch (backend) {
    case Backend::kSm80: return sm80::supports(cc);
    case Backend::kSm90: return sm90::supports(cc);
    default: return false;
  }
}

// The grid limit of the kernels (attn::kMaxGridYZ: grid y holds the query heads). Sequences are
// not limited: the sm80 launcher slices more than 65535 into several launches, the sm90 kernels
// put them in grid x with the query tiles.
static const char* grid_limit_reason(const AttentionParams& p) {
  if (p.heads_q > attn::kMaxGridYZ) return "more than 65535 query heads (the kernels' grid y limit)";
  return nullptr;
}

bool gpu_backend_serves(const AttentionParams& p, const char** why) {
  if (const char* reason = grid_limit_reason(p)) {
    if (why) *why = reason;
    return false;
  }
  if (p.backend == Backend::kSm90) return sm90::serves(p, why);
  if (why) *why = nullptr;
  return true;
}

bool gpu_auto_prefers_sm90(const AttentionParams& p) {
  AttentionParams q = p;
  q.backend = Backend::kSm90;
  return grid_limit_reason(q) == nullptr && sm90::serves(q) && sm90::preferred(q);
}

void run_gpu_attention(const AttentionParams& p, Workspace workspace, Stream stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (p.backend == Backend::kSm80) return sm80::run(p, workspace, s);
  if (p.backend == Backend::kSm90) return sm90::run(p, workspace, s);
  throw Error(ErrorCode::kUnsupported,
              concat("backend ", to_string(p.backend), " has no attention kernels in this build"));
}

std::size_t gpu_workspace_size(const AttentionParams& p) {
  switch (p.backend) {
    case Backend::kSm80: return sm80::workspace_size(p);
    case Backend::kSm90: return sm90::workspace_size(p);
    default: return 0;
  }
}

}  // namespace sageattn::detail
