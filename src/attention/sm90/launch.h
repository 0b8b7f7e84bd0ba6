// src/attention/sm90/launch.h: host side of the sm90 (warp-specialized wgmma + TMA) backend.
//
// run() quantizes K/V with the shared quantizer (src/quant/kv_quant.h, K groups of kSm90Tiles),
// builds the TMA descriptors of the quantized K and V and launches the kernel instantiated for the
// smallest head dim in {64, 128} that holds d (the kernel zero-pads the rest). What it covers:
// compute capability 9.0 with an sm_90a image, head dims up to 128, P.V modes fp16 and fp8.
// Anything else is an Error from run(); the automatic dispatch (src/api) sends such calls to the
// sm80 backend instead (README.md, "Status").
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "api/params.h"
#include "attention/common/params.h"
#include "sageattn/attention.h"

namespace sageattn::sm90 {

// Whether this build has sm90 kernels and the device (compute capability `cc`) can run them.
bool supports(int cc);
// Whether the sm90 backend serves these (validated, resolved) params; when not, `why` (if not
// null) receives the reason.
bool serves(const detail::AttentionParams& p, const char** why = nullptr);
// Whether automatic dispatch should prefer these (served) params over the sm80 kernels: every head
// dim the sm90 kernels hold (64 and 128, smaller dims padded), which measured faster than sm80 at
// every length of the standard grid (hd128 since 2026-11-22; hd64 since 2026-12-06, 4ef0ec3:
// bench/RESULTS.md, sixteenth session).
bool preferred(const detail::AttentionParams& p);
std::size_t workspace_size(const detail::AttentionParams& p);
// `after_quant`, when not null, is recorded on `stream` between the K/V quantization and the
// attention kernel (kernel-only timing in benchmarks).
void run(const detail::AttentionParams& p, Workspace workspace, cudaStream_t stream,
         cudaEvent_t after_quant = nullptr);

// The TMA descriptor of one operand: a CUtensorMap (128 opaque bytes, 128-byte aligned) that this
// header can name without cuda.h.
struct alignas(128) TmaMap {
  unsigned char bytes[128];
};

// One explicit instantiation per (head dim, mode), in inst_hd*.cu.
template <int kHeadDim, PvMode kMode>
void launch_attention(const attn::KernelParams& kp, const TmaMap& k_map, const TmaMap& v_map,
                      cudaStream_t stream);

}  // namespace sageattn::sm90
