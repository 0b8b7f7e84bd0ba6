// src/api/types.cpp: names of enums and dtypes, and TensorView construction helpers.
#include <cstddef>

#include "common/check.h"
#include "sageattn/attention.h"
#include "sageattn/types.h"

namespace sageattn {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kCudaError: return "cuda_error";
    case ErrorCode::kOutOfMemory: return "out_of_memory";
    case ErrorCode::kIoError: return "io_error";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kF32:
    case DType::kI32: return 4;
    case DType::kI8:
    case DType::kFp8E4M3: return 1;
  }
  return 0;
}

const char* to_string(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kF32: return "f32";
    case DType::kI8: return "i8";
    case DType::kFp8E4M3: return "fp8_e4m3";
    case DType::kI32: return "i32";
  }
  return "invalid_dtype";
}

const char* to_string(Layout v) noexcept { return v == Layout::kHND ? "HND" : v == Layout::kNHD ? "NHD" : "invalid_layout"; }
const char* to_string(MaskMode v) noexcept { return v == MaskMode::kNone ? "none" : v == MaskMode::kCausal ? "causal" : "invalid_mask"; }
const char* to_string(Smoothing v) noexcept { return v == Smoothing::kOff ? "off" : v == Smoothing::kOn ? "on" : "invalid_smoothing"; }

const char* to_string(PvMode v) noexcept {
  switch (v) {
    case PvMode::kAuto: return "auto";
    case PvMode::kFp16: return "fp16";
    case PvMode::kFp8: return "fp8";
    case PvMode::kFp8Fp16Acc: return "fp8_fp16acc";
  }
  return "invalid_pv_mode";
}

const char* to_string(Granularity v) noexcept {
  switch (v) {
    case Granularity::kPerBlock: return "per_block";
    case Granularity::kPerWarp: return "per_warp";
    case Granularity::kPerThread: return "per_thread";
  }
  return "invalid_granularity";
}

const char* to_string(Backend v) noexcept {
  switch (v) {
    case Backend::kAuto: return "auto";
    case Backend::kCpu: return "cpu";
    case Backend::kSm80: return "sm80";
    case Backend::kSm90: return "sm90";
  }
  return "invalid_backend";
}

TensorView make_view(void* data, DType dtype, std::initializer_list<int64_t> shape,
                     std::initializer_list<int64_t> stride, int device) {
  SAGEATTN_CHECK(shape.size() == stride.size(), "make_view: ", shape.size(), " sizes but ",
                 stride.size(), " strides");
  SAGEATTN_CHECK(shape.size() <= static_cast<std::size_t>(kMaxDims), "make_view: at most ",
                 kMaxDims, " dims, got ", shape.size());
  TensorView t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
  i = 0;
  for (int64_t s : stride) t.stride[i++] = s;
  return t;
}

TensorView make_contiguous_view(void* data, DType dtype, std::initializer_list<int64_t> shape,
                                int device) {
  SAGEATTN_CHECK(shape.size() <= static_cast<std::size_t>(kMaxDims),
                 "make_contiguous_view: at most ", kMaxDims, " dims, got ", shape.size());
  TensorView t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
  int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    SAGEATTN_CHECK(t.shape[d] >= 0, "make_contiguous_view: negative size ", t.shape[d], " in dim ", d);
    t.stride[d] = stride;
    SAGEATTN_CHECK(!__builtin_mul_overflow(stride, t.shape[d], &stride),
                   "make_contiguous_view: the shape's element count overflows int64");
  }
  return t;
}

}  // namespace sageattn
