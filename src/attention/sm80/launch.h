// src/attention/sm80/launch.h: host side of the sm80 (mma.sync) backend.
//
// run() quantizes K/V (src/quant/kv_quant.h) into the workspace and launches the attention kernel
// instantiated for the smallest head dim in {64, 128, 256} that holds d (the kernel zero-pads
// the rest in registers / the quantized buffers; the user's tensors are never copied).
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "api/params.h"
#include "attention/common/params.h"
#include "sageattn/attention.h"

namespace sageattn::sm80 {

using attn::KernelParams;

// Whether this build has sm80 kernels (any head dim) that run on compute capability `cc`.
bool supports(int cc);
std::size_t workspace_size(const detail::AttentionParams& p);
// `after_quant`, when not null, is recorded on `stream` between the K/V quantization and the
// attention kernel, so benchmarks can report kernel-only time beside end-to-end time.
void run(const detail::AttentionParams& p, Workspace workspace, cudaStream_t stream,
         cudaEvent_t after_quant = nullptr);

// One explicit instantiation per (head dim, mode), in inst_hd*.cu.
template <int kHeadDim, PvMode kMode>
void launch_attention(const KernelParams& kp, cudaStream_t stream);

}  // namespace sageattn::sm80
