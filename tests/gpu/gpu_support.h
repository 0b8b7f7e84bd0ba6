// tests/gpu/gpu_support.h: shared helpers of the GPU test suites.
//
// - GpuTest: a fixture that skips, with a message visible in CI logs, when no CUDA device is
//   present, and prints the device once.
// - DeviceBuffer: an owning cudaMalloc'd byte buffer with upload/download.
// - HostQkv: bf16/f16 inputs of a problem laid out HND or NHD, made from the input families.
// - sm80_compiled / sm90_compiled / kernels_compiled: the kernel head dims this build has (CMake
//   SAGEATTN_SM80_HEAD_DIMS / SAGEATTN_SM90_HEAD_DIMS); a case needing another one is skipped with
//   a message (GTEST_SKIP, or note_skipped inside a test that goes on with its other cases).
// SAGEATTN_TEST_QUICK=1 (set by scripts/gpu_check.sh under compute-sanitizer) asks the suites to
// use their small problems only.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "attention/common/launch_common.h"
#include "common/cuda_check.h"
#include "common/numerics.h"
#include "cpu/inputs.h"
#include "sageattn/attention.h"

namespace sageattn::test {

inline bool quick_mode() {
  const char* v = std::getenv("SAGEATTN_TEST_QUICK");
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

inline int device_cc() {
  int major = 0, minor = 0;
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  SAGEATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
  return major * 10 + minor;
}

// The GPU backends of the device: sm80 everywhere, sm90 on compute capability 9.0 (whatever head
// dims this build compiles for them: kernels_compiled below).
inline std::vector<Backend> device_backends() {
  std::vector<Backend> b{Backend::kSm80};
  if (device_cc() == 90) b.push_back(Backend::kSm90);
  return b;
}

// The kernel head dims compiled into this build, one SAGEATTN_TEST_SM80_HD<hd> /
// SAGEATTN_TEST_SM90_HD<hd> definition per entry of the CMake lists (tests/CMakeLists.txt). A call
// whose kernel head dim was left out throws kUnsupported: a build configuration, not a bug.
inline bool sm80_compiled(int64_t kernel_hd) {
  switch (kernel_hd) {
#ifdef SAGEATTN_TEST_SM80_HD64
    case 64: return true;
#endif
#ifdef SAGEATTN_TEST_SM80_HD128
    case 128: return true;
#endif
#ifdef SAGEATTN_TEST_SM80_HD256
    case 256: return true;
#endif
    default: return false;
  }
}
inline bool sm90_compiled(int64_t kernel_hd) {
  switch (kernel_hd) {
#ifdef SAGEATTN_TEST_SM90_HD64
    case 64: return true;
#endif
#ifdef SAGEATTN_TEST_SM90_HD128
    case 128: return true;
#endif
    default: return false;
  }
}
// Whether backend b (kSm80 or kSm90, named) has its kernels for head_dim d in this build. sm90 has
// none above 128 in any build; the suites tell that apart (it is coverage, not configuration).
inline bool kernels_compiled(Backend b, int64_t d) {
  const int hd = attn::kernel_head_dim(d);
  return b == Backend::kSm90 ? sm90_compiled(hd) : sm80_compiled(hd);
}
// The skip message: head dim, kernel head dim and the CMake list that lacks it.
inline std::string not_compiled(Backend b, int64_t d) {
  return std::string("backend ") + to_string(b) + ": head_dim " + std::to_string(d) + " needs its kernels for head dim " +
         std::to_string(attn::kernel_head_dim(d)) + ", not compiled in this build (CMake " +
         (b == Backend::kSm90 ? "SAGEATTN_SM90_HEAD_DIMS" : "SAGEATTN_SM80_HEAD_DIMS") + ")";
}
// A case skipped inside a test that goes on with its others (GTEST_SKIP would end the test): a line
// in the log beside GoogleTest's own. Not "[  SKIPPED ]", which ctest reads as the whole test's.
inline void note_skipped(const std::string& what) { std::printf("[ skipped  ] %s\n", what.c_str()); }

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      GTEST_SKIP() << "no CUDA device: GPU test skipped";
    }
    static bool printed = false;
    if (!printed) {
      cudaDeviceProp prop{};
      SAGEATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
      std::printf("[ device   ] %s, sm_%d%d, %d SMs%s\n", prop.name, prop.major, prop.minor,
                  prop.multiProcessorCount, quick_mode() ? " (quick mode)" : "");
      printed = true;
    }
  }
};

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes_) SAGEATTN_CUDA_CHECK(cudaMalloc(&ptr_, bytes_));
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  template <typename T>
  static DeviceBuffer from(const std::vector<T>& host) {
    DeviceBuffer b(host.size() * sizeof(T));
    if (!host.empty())
      SAGEATTN_CUDA_CHECK(cudaMemcpy(b.ptr_, host.data(), b.bytes_, cudaMemcpyHostToDevice));
    return b;
  }
  template <typename T>
  std::vector<T> download(std::size_t count) const {
    std::vector<T> host(count);
    if (count) SAGEATTN_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, count * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  void fill(uint8_t byte) {
    if (bytes_) SAGEATTN_CUDA_CHECK(cudaMemset(ptr_, byte, bytes_));
  }
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// Inputs of one dense problem as f16/bf16 bits in the chosen layout (logical [B, H, N, D]).
struct HostQkv {
  int64_t b = 0, hq = 0, hkv = 0, nq = 0, nk = 0, d = 0;
  DType dtype = DType::kBF16;
  Layout layout = Layout::kHND;
  std::vector<uint16_t> q, k, v;

  static uint16_t encode(DType t, float x) {
    return t == DType::kBF16 ? num::bf16_from_float(x) : num::fp16_from_float(x);
  }
  static float decode(DType t, uint16_t x) {
    return t == DType::kBF16 ? num::bf16_to_float(x) : num::fp16_to_float(x);
  }
  // Element offset of logical (b, h, n, d) in this layout.
  int64_t offset(int64_t heads, int64_t tokens, int64_t bi, int64_t hi, int64_t ni, int64_t di) const {
    return layout == Layout::kHND ? ((bi * heads + hi) * tokens + ni) * d + di
                                  : ((bi * tokens + ni) * heads + hi) * d + di;
  }
  std::vector<int64_t> shape(int64_t heads, int64_t tokens) const {
    return layout == Layout::kHND ? std::vector<int64_t>{b, heads, tokens, d}
                                  : std::vector<int64_t>{b, tokens, heads, d};
  }

  static HostQkv make(cpu::InputFamily family, int64_t b, int64_t hq, int64_t hkv, int64_t nq,
                      int64_t nk, int64_t d, DType dtype, Layout layout, uint64_t seed) {
    HostQkv r;
    r.b = b, r.hq = hq, r.hkv = hkv, r.nq = nq, r.nk = nk, r.d = d, r.dtype = dtype, r.layout = layout;
    const cpu::QkvData f = cpu::make_inputs(family, b, hq, hkv, nq, nk, d, seed);
    r.q.resize(f.q.size()), r.k.resize(f.k.size()), r.v.resize(f.v.size());
    auto lay = [&](const std::vector<float>& src, std::vector<uint16_t>& dst, int64_t heads, int64_t n) {
      for (int64_t bi = 0; bi < b; ++bi)
        for (int64_t hi = 0; hi < heads; ++hi)
          for (int64_t ni = 0; ni < n; ++ni)
            for (int64_t di = 0; di < d; ++di)
              dst[r.offset(heads, n, bi, hi, ni, di)] = encode(dtype, src[((bi * heads + hi) * n + ni) * d + di]);
    };
    lay(f.q, r.q, hq, nq);
    lay(f.k, r.k, hkv, nk);
    lay(f.v, r.v, hkv, nk);
    return r;
  }
};

inline TensorView view4(void* data, DType dtype, const std::vector<int64_t>& shape, int device) {
  return make_contiguous_view(data, dtype, {shape[0], shape[1], shape[2], shape[3]}, device);
}

}  // namespace sageattn::test
