// sageattn/attention.h: the attention entry points.
//
//   O = softmax(Q K^T * scale [+ causal mask]) V, with Q·K^T in INT8 after K smoothing and P·V in
//   fp8 or fp16 (DESIGN.md §1; docs/NUMERICS.md has the exact contract and measured accuracy).
//
// Every entry point validates all of its arguments before it touches any output: an invalid call
// throws sageattn::Error naming the bad value and leaves `out` and `lse` unwritten. Host tensors
// (device == kHostDevice) run on the CPU backend, which is also the reference implementation;
// GPU tensors run on the stream given, never on the default stream unless that is what is given.
//
// Threads, determinism, CUDA graphs (tests/gpu/test_gpu_hardening.cu):
//  - Every entry point may be called from any number of host threads at once, on any streams. The
//    library keeps no per-call state outside the call's own workspace (its only globals: an atomic
//    per-device cache and a driver entry point looked up once, both thread-safe).
//  - The same inputs and options give bit-identical `out` and `lse` on the same device and build,
//    whatever the stream, the workspace and the calls running beside it: every reduction has a
//    fixed order (docs/NUMERICS.md §2).
//  - A GPU call can be captured into a CUDA graph (any capture mode) on a non-default stream: all of
//    its device work is enqueued on that stream (a memset, the K/V quantizer and the attention
//    kernel; with no caller workspace, also the cudaMallocAsync / cudaFreeAsync of its own, which
//    become graph memory nodes) and nothing waits for the host. The graph keeps the call's pointers, shapes and
//    options: a replay reads whatever its inputs hold then. Drivers older than CUDA 12.3 cannot
//    load a kernel module during capture: there, make one direct call of the same kind first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "sageattn/error.h"
#include "sageattn/layout.h"
#include "sageattn/types.h"

namespace sageattn {

// A CUDA stream (cudaStream_t) passed as an opaque pointer so this header needs no CUDA.
using Stream = void*;

struct AttentionOptions {
  Layout layout = Layout::kHND;                // dense calls only; varlen is always [total, H, D]
  MaskMode mask = MaskMode::kNone;
  // Softmax scale, any finite value whose scale * log2(e) fits fp32. Default: 1 / sqrt(head_dim)
  // computed in double and rounded to float (may differ by one ulp from 1.0f / sqrtf(d)).
  std::optional<float> scale;
  PvMode pv_mode = PvMode::kAuto;
  Granularity granularity = Granularity::kPerWarp;
  Smoothing smooth_k = Smoothing::kOn;         // strongly recommended: see docs/NUMERICS.md
  Smoothing smooth_v = Smoothing::kOff;
  Backend backend = Backend::kAuto;
};

// Caller-supplied scratch memory, on the same device as the tensors. When `data` is null the
// library allocates what it needs itself (host: operator new; GPU: cudaMallocAsync on the
// stream, freed with cudaFreeAsync after the call's kernels: safe with concurrent calls). When
// given, `bytes` must be at least the matching *_workspace_size() (a function of the shapes and
// options only), and the memory is the call's until its work on its stream has finished: calls on
// one stream may share a workspace, calls that may run at the same time (other streams, other
// threads' streams, concurrent graph launches) must not. A captured graph uses it at every launch.
// `data` must be kWorkspaceAlignment-byte aligned when the call needs a workspace (any pointer
// from cudaMalloc or cudaMallocAsync is); an offset into a larger buffer must keep that alignment.
inline constexpr std::size_t kWorkspaceAlignment = 256;
struct Workspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};

// Dense attention.
//   q   : [B, Hq,  Nq, D] (HND) or [B, Nq, Hq,  D] (NHD), f16 or bf16, unit stride on D
//   k, v: [B, Hkv, Nk, D] (HND) or [B, Nk, Hkv, D] (NHD), same dtype as q; Hq % Hkv == 0
//   out : same shape and dtype as q (any strides with unit stride on D)
//   lse : optional (an empty TensorView() means "not wanted"): f32 [B, Hq, Nq], any strides;
//         natural-log log-sum-exp of the scaled logits; -inf for a fully masked row
// Lengths may be 0. D must be a multiple of 8 in [8, 256].
void attention(const TensorView& q, const TensorView& k, const TensorView& v,
               const TensorView& out, const AttentionOptions& options = {},
               const TensorView& lse = {}, Workspace workspace = {}, Stream stream = nullptr);

// Bytes of scratch memory attention() needs for these arguments (0 is possible).
std::size_t attention_workspace_size(const TensorView& q, const TensorView& k,
                                     const TensorView& v, const AttentionOptions& options = {});

// Variable-length (packed) attention: sequence i owns query rows [cu_q[i], cu_q[i+1]) and key rows
// [cu_k[i], cu_k[i+1]). Each sequence is attended independently (masks, K mean and quantization
// groups restart at each sequence), exactly as dense attention on that sequence alone.
struct VarlenArgs {
  TensorView q;             // [total_q, Hq, D]
  TensorView k, v;          // [total_k, Hkv, D]
  TensorView cu_seqlens_q;  // i32 [batch + 1], on the same device as q: 0 = cu[0] <= ... = total_q
  TensorView cu_seqlens_k;  // i32 [batch + 1]: 0 = cu[0] <= ... = total_k
  int64_t max_seqlen_q = 0; // >= every query length
  int64_t max_seqlen_k = 0; // >= every key length
  TensorView out;           // [total_q, Hq, D], dtype of q
  TensorView lse;           // optional f32 [Hq, total_q], any strides
};
// `options.layout` is ignored (packed tensors have one layout). On the GPU the contents of
// cu_seqlens cannot be checked without a host sync and are trusted; on the host they are checked.
void attention_varlen(const VarlenArgs& args, const AttentionOptions& options = {},
                      Workspace workspace = {}, Stream stream = nullptr);

std::size_t attention_varlen_workspace_size(const VarlenArgs& args,
                                            const AttentionOptions& options = {});

// True when this build contains a GPU backend and a CUDA device is present.
bool gpu_available() noexcept;

// The PV mode kAuto resolves to for tensors on `device` (kHostDevice for the CPU backend) and,
// where it matters, `head_dim` (0: not given): fp8 on the CPU and on compute capability 8.9 and
// 9.0+; fp16 below 8.9. On 9.0 a call that runs on the sm80 kernels (head dims above 128, or
// backend sm80 named) takes fp16 instead, since their fp8 P.V is emulated there; with head_dim 0
// the answer is the one for head dims the sm90 kernels serve. Other modes are returned as they are.
PvMode resolve_pv_mode(PvMode requested, int device, int64_t head_dim = 0);

// Library version string, e.g. "0.1.0".
const char* version() noexcept;

}  // namespace sageattn
