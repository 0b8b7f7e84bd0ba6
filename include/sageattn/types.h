// sageattn/types.h: the tensor view every entry point takes.
//
// A TensorView borrows memory; it never owns or copies it. Shapes and strides are int64 and
// strides count elements, not bytes. `device` is a CUDA device ordinal, or kHostDevice (-1) for
// ordinary host memory. Plain C++: no CUDA or torch types appear here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace sageattn {

enum class DType : int8_t {
  kF16,       // IEEE binary16
  kBF16,      // bfloat16
  kF32,       // IEEE binary32
  kI8,        // int8 (quantized Q, K)
  kFp8E4M3,   // fp8 e4m3, the "fn" variant: no infinities, one NaN code per sign, max 448
  kI32,       // int32 (cu_seqlens)
};

// Size of one element in bytes.
std::size_t dtype_size(DType dtype) noexcept;
// Short name, e.g. "bf16".
const char* to_string(DType dtype) noexcept;

// Memory layout of a dense Q/K/V/O tensor. D always has unit stride.
enum class Layout : int8_t {
  kHND,  // [batch, heads, tokens, head_dim]
  kNHD,  // [batch, tokens, heads, head_dim]
};

enum class MaskMode : int8_t {
  kNone,
  kCausal,  // bottom-right aligned: query i sees keys j <= i + Nk - Nq
};

// How P·V is computed (DESIGN.md §1.4, docs/NUMERICS.md).
enum class PvMode : int8_t {
  kAuto,        // fp8 on sm89, sm90, sm100+ and on the CPU; fp16 on sm80/sm86, and on sm90 for the
                // calls the sm80 kernels run there (head dims above 128), whose fp8 is emulated
                // (resolve_pv_mode)
  kFp16,        // P and V in fp16, fp32 accumulation (SageAttention1; most accurate)
  kFp8,         // P and V in fp8 e4m3, two-level fp32 accumulation (SageAttention2)
  kFp8Fp16Acc,  // fp8 MMA with fp16 accumulation, flushed to fp32 every K block (SageAttention2++)
};

// Size of the groups that share one int8 dequantization factor (include/sageattn/layout.h).
enum class Granularity : int8_t {
  kPerBlock,   // Q: a CTA's rows; K: one K block
  kPerWarp,    // Q: one warp's rows; K: one K block (default)
  kPerThread,  // Q: rows one MMA thread holds; K: the token columns one MMA thread holds
};

enum class Smoothing : int8_t {
  kOff,
  kOn,  // subtract the per-channel mean over tokens before quantizing (undone exactly after)
};

// Which implementation runs. kAuto picks by where the tensors live: host -> kCpu; GPU -> the
// fastest GPU backend for that device. Forcing a backend that cannot run the call is an Error.
enum class Backend : int8_t { kAuto, kCpu, kSm80, kSm90 };

const char* to_string(Layout v) noexcept;
const char* to_string(MaskMode v) noexcept;
const char* to_string(PvMode v) noexcept;
const char* to_string(Granularity v) noexcept;
const char* to_string(Smoothing v) noexcept;
const char* to_string(Backend v) noexcept;

inline constexpr int kHostDevice = -1;
inline constexpr int kMaxDims = 4;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF16;
  int ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0};
  int64_t stride[kMaxDims] = {0, 0, 0, 0};  // in elements
  int device = kHostDevice;                 // CUDA ordinal, or kHostDevice

  // Number of elements (product of the shape; 1 for ndim == 0).
  int64_t numel() const noexcept {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  bool empty() const noexcept { return ndim == 0 && data == nullptr; }
};

// A view with the given shape and row-major contiguous strides.
TensorView make_contiguous_view(void* data, DType dtype, std::initializer_list<int64_t> shape,
                                int device = kHostDevice);

// A view with explicit shape and strides (both must have the same length, at most kMaxDims).
TensorView make_view(void* data, DType dtype, std::initializer_list<int64_t> shape,
                     std::initializer_list<int64_t> stride, int device = kHostDevice);

}  // namespace sageattn
