// tools/gpu_run.h: the GPU run path of `sageattn bench` (CUDA builds only).
//
// Inputs are uploaded once; each timed call is sageattn::attention on device tensors, on a
// non-default stream, timed with CUDA events: end to end (bf16/fp16 in, out, every quantization
// step included). Kernel-only time comes from the same calls through their backend (sm80 or sm90) with an
// event recorded between quantization and the attention kernel; the quantization kernels' own
// time is measured in those same runs (an event before them). The split runs alternate with the
// end-to-end runs, so that drift (clocks, temperature) hits both alike. Accuracy is measured on the
// first query heads of batch 0 against exact float64 attention on the CPU (a full float64
// reference of a GPU-sized problem would take minutes).
#pragma once

#include <string>
#include <vector>

#include "cli.h"

namespace sageattn::cli {

// "NVIDIA H200, sm_90, 132 SMs, CUDA runtime 13000" of device 0.
std::string gpu_description();

// Exact float64 attention of batch 0, query heads [0, heads) and the LAST `rows` query rows
// (with bottom-right causal masks, those rows see exactly what they see in the full problem):
// logical [1, heads, rows, D].
struct SubsetReference {
  int64_t heads = 0, row0 = 0, rows = 0;
  std::vector<double> values;
};
SubsetReference exact_reference_subset(const Problem& p, const Tensors& t, int64_t max_heads,
                                       int64_t max_rows);

struct GpuModeResult {
  ModeResult result;       // metrics on the subset; median_ms end to end
  double kernel_ms = 0.0;  // median attention-kernel time (quantization excluded)
  double quant_ms = 0.0;   // median time of the quantization kernels, in the same runs as kernel_ms
};

GpuModeResult run_mode_gpu(const Problem& p, const Tensors& t, PvMode mode, int64_t warmup,
                           int64_t iters, const SubsetReference& ref);

}  // namespace sageattn::cli
