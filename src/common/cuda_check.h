// src/common/cuda_check.h: every CUDA runtime call checked (STYLE.md 7). CUDA translation units only.
//
//   SAGEATTN_CUDA_CHECK(cudaMemsetAsync(...));   // throws sageattn::Error(kCudaError) naming the call
//   SAGEATTN_CUDA_CHECK_LAUNCH();                // cudaGetLastError() after every kernel launch
#pragma once

#include <cuda_runtime.h>

#include "sageattn/error.h"

#define SAGEATTN_CUDA_CHECK(expr)                                                          \
  do {                                                                                     \
    const cudaError_t sageattn_err_ = (expr);                                              \
    if (sageattn_err_ != cudaSuccess)                                                      \
      throw ::sageattn::Error(                                                             \
          sageattn_err_ == cudaErrorMemoryAllocation ? ::sageattn::ErrorCode::kOutOfMemory \
                                                     : ::sageattn::ErrorCode::kCudaError,  \
          ::sageattn::detail::concat(#expr, " failed: ", cudaGetErrorString(sageattn_err_), \
                                     " (", __FILE__, ":", __LINE__, ")"));                 \
  } while (0)

#define SAGEATTN_CUDA_CHECK_LAUNCH() SAGEATTN_CUDA_CHECK(cudaGetLastError())
