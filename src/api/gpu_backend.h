// src/api/gpu_backend.h: the seam between the host-only API layer and the CUDA backends.
//
// The CPU-only library (sageattn_cpu) links src/api/gpu_stub.cpp, which reports no GPU; the CUDA
// library (sageattn) links src/api/gpu_backend.cu. Nothing in this header needs CUDA.
#pragma once

#include "api/params.h"
#include "sageattn/attention.h"

namespace sageattn::detail {

// Whether this library was built with CUDA (sageattn) or without (sageattn_cpu).
bool gpu_backend_compiled() noexcept;

// Number of CUDA devices visible (0 when none, when the driver is missing, or in a CPU build).
int gpu_device_count() noexcept;

// Compute capability of `device` as major * 10 + minor (e.g. 90). Throws Error on failure.
int gpu_compute_capability(int device);

// Whether this build has attention kernels for `backend` (kSm80 / kSm90) that can run on a device
// of compute capability `cc`.
bool gpu_backend_supports(Backend backend, int cc) noexcept;

// Whether the backend named in params.backend can run these validated params with their resolved
// pv_mode (the sm90 kernels cover a subset: src/attention/sm90/launch.h); when not, `why` (if not
// null) receives the reason. For kSm80, false only past the grid limit of 65535 query heads.
bool gpu_backend_serves(const AttentionParams& params, const char** why = nullptr);

// Automatic dispatch on a device that has both backends: whether sm90 should run these params
// (it serves them and measured faster than sm80 for their head dim; bench/RESULTS.md).
bool gpu_auto_prefers_sm90(const AttentionParams& params);

// pv_mode kAuto on a GPU of compute capability cc, for a call that runs on the sm90 kernels
// (sm90_runs) or not. fp8 MMA exists from sm89 (Ada) on; Ampere gets fp16. On Hopper (9.0) fp8 is
// the default where the sm90 kernels run the call (wgmma e4m3: ~12% faster than their fp16,
// bench/RESULTS.md 2026-12-06); a call on the sm80 kernels there (head dims above 128, backend
// sm80 named) takes fp16, because their fp8 P.V is mma.sync e4m3, which ptxas emulates on sm90:
// fp16 is faster and more accurate there (454 vs 344 TFLOPS at hd128, 2026-11-22). The one place
// this rule lives: resolve_pv_mode and validate.cpp's resolve_backend both ask it.
inline PvMode gpu_auto_pv_mode(int cc, bool sm90_runs) {
  return cc < 89 || (cc == 90 && !sm90_runs) ? PvMode::kFp16 : PvMode::kFp8;
}

// Whether this build holds a kernel image (SASS for the device's architecture, or PTX it can
// JIT) that runs on `device`: false when, e.g., SAGEATTN_CUDA_ARCHS lacks the device's
// architecture. Cached per device.
bool gpu_kernel_image(int device) noexcept;

// Throws Error (kUnsupported) naming the device, its compute capability and the architectures
// this build was compiled for (SAGEATTN_CUDA_ARCHS) when gpu_kernel_image(device) is false.
void gpu_require_kernel_image(int device);

// Runs validated params on the GPU backend named in params.backend.
void run_gpu_attention(const AttentionParams& params, Workspace workspace, Stream stream);

// Workspace bytes the GPU backend needs for params.
std::size_t gpu_workspace_size(const AttentionParams& params);

}  // namespace sageattn::detail
