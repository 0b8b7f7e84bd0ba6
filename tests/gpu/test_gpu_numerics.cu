// tests/gpu/test_gpu_numerics.cu: the device conversions of src/quant/convert.h against the
// software definitions of src/common/numerics.h.
//
// What it proves (on a CUDA device; without one every test is skipped with the visible message
// "no CUDA device: GPU test skipped"):
//  * quant::fp8e4m3_encode gives, for ALL 2^32 fp32 bit patterns, the same code as
//    num::fp8e4m3_from_float evaluated on the device: on sm89+ this is the hardware
//    cvt.rn.satfinite.e4m3x2.f32 against the software definition (which tests/cpu/ proves equal
//    to CUDA's host conversion on every input), on older GPUs the software path against itself.
//  * quant::int8_encode equals the int8 contract (fp32 product rounded once, ties to even, clamp
//    to [-127, 127], NaN -> 0) computed on the host, and num::int8_quantize evaluated on the
//    device equals it too, on ties, dense sweeps, huge values, +-inf, NaN, a strided sample of
//    all fp32 bit patterns and inputs where an FMA-contracted product would round differently.
//  * both launchers write exactly n codes (grid-stride loops past the grid cap, a ragged tail,
//    n == 0) and leave the rest of the buffer untouched.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/cuda_check.h"
#include "common/numerics.h"
#include "quant/convert.h"

namespace {

namespace num = sageattn::num;

constexpr int kThreads = 256;
constexpr unsigned kBlocks = 4096;  // grid-stride loops cover any n
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------- RAII over cudaMalloc / streams
// free() is the checked release on the normal path; the destructor only runs cudaFree when a
// failed assertion or exception left the buffer allocated (a destructor cannot throw).
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    SAGEATTN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_) (void)cudaFree(ptr_);
  }
  void free() {
    T* p = ptr_;
    ptr_ = nullptr;
    if (p) SAGEATTN_CUDA_CHECK(cudaFree(p));
  }
  T* get() const { return ptr_; }
  size_t size() const { return n_; }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

class Stream {
 public:
  Stream() { SAGEATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (s_) (void)cudaStreamDestroy(s_);
  }
  void destroy() {
    cudaStream_t s = s_;
    s_ = nullptr;
    if (s) SAGEATTN_CUDA_CHECK(cudaStreamDestroy(s));
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

std::string hex(uint32_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

// ---------------------------------------------------------------- kernels
// x[i] = the float whose bit pattern is first + i.
__global__ void __launch_bounds__(kThreads)
    fill_bits_kernel(float* __restrict__ x, uint32_t first, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] = num::bits_float(first + static_cast<uint32_t>(i));
}

// Compares codes[i] with the software encoder on bit pattern first + i; counts mismatches and
// keeps the smallest mismatching bit pattern (valid when *count > 0).
__global__ void __launch_bounds__(kThreads)
    check_fp8_kernel(const uint8_t* __restrict__ codes, uint32_t first, int64_t n,
                     unsigned long long* count, unsigned int* first_bad) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  unsigned long long bad = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint32_t bits = first + static_cast<uint32_t>(i);
    if (codes[i] != num::fp8e4m3_from_float(num::bits_float(bits))) {
      ++bad;
      atomicMin(first_bad, bits);
    }
  }
  if (bad) atomicAdd(count, bad);
}

// The software int8 quantizer evaluated on the device.
__global__ void __launch_bounds__(kThreads)
    int8_software_kernel(const float* __restrict__ x, float inv_scale, int8_t* __restrict__ codes,
                         int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    codes[i] = num::int8_quantize(x[i], inv_scale);
}

// ---------------------------------------------------------------- host references
// The int8 contract in its plainest form, on the fp32 product rounded once (volatile: never
// fused, never widened).
int int8_definition(float x, float inv) {
  volatile float y = x * inv;
  const float p = y;
  if (std::isnan(p)) return 0;
  if (p >= 127.0f) return 127;
  if (p <= -127.0f) return -127;
  return static_cast<int>(std::nearbyint(p));
}

int int8_of_exact_product(float x, float inv) {
  const double p = static_cast<double>(x) * static_cast<double>(inv);  // exact in double
  if (std::isnan(p)) return 0;
  if (p >= 127.0) return 127;
  if (p <= -127.0) return -127;
  return static_cast<int>(std::nearbyint(p));
}

// ---------------------------------------------------------------- fixture
class GpuNumerics : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      (void)cudaGetLastError();  // clear the sticky error so nothing later trips on it
      GTEST_SKIP() << "no CUDA device: GPU test skipped ("
                   << (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices") << ")";
    }
    SAGEATTN_CUDA_CHECK(cudaGetDevice(&device_));
    cudaDeviceProp prop{};
    SAGEATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    sm_ = prop.major * 10 + prop.minor;
    std::cout << "[ device   ] " << prop.name << ", compute capability " << prop.major << "."
              << prop.minor << "; fp8 encoder path: "
              << (sm_ >= 89 ? "hardware cvt.rn.satfinite.e4m3x2.f32"
                            : "software (sm < 89 has no fp8 cvt; device code of numerics.h)")
              << std::endl;
  }

  int device_ = 0;
  int sm_ = 0;
};

// ---------------------------------------------------------------- fp8: every fp32 input
TEST_F(GpuNumerics, Fp8E4M3EncodeMatchesSoftwareOnAllFloats) {
  constexpr int64_t kChunk = int64_t{1} << 26;  // 256 MiB of floats, 64 chunks
  constexpr int64_t kTotal = int64_t{1} << 32;
  Stream stream;
  DeviceBuffer<float> x(kChunk);
  DeviceBuffer<uint8_t> codes(kChunk);
  DeviceBuffer<unsigned long long> count(1);
  DeviceBuffer<unsigned int> first_bad(1);
  SAGEATTN_CUDA_CHECK(cudaMemsetAsync(count.get(), 0, sizeof(unsigned long long), stream.get()));
  SAGEATTN_CUDA_CHECK(cudaMemsetAsync(first_bad.get(), 0xFF, sizeof(unsigned int), stream.get()));

  cudaEvent_t start, stop;
  SAGEATTN_CUDA_CHECK(cudaEventCreate(&start));
  SAGEATTN_CUDA_CHECK(cudaEventCreate(&stop));
  SAGEATTN_CUDA_CHECK(cudaEventRecord(start, stream.get()));
  for (int64_t base = 0; base < kTotal; base += kChunk) {
    const uint32_t first = static_cast<uint32_t>(base);
    fill_bits_kernel<<<kBlocks, kThreads, 0, stream.get()>>>(x.get(), first, kChunk);
    SAGEATTN_CUDA_CHECK_LAUNCH();
    sageattn::quant::fp8e4m3_encode(x.get(), codes.get(), kChunk, stream.get());
    check_fp8_kernel<<<kBlocks, kThreads, 0, stream.get()>>>(codes.get(), first, kChunk,
                                                             count.get(), first_bad.get());
    SAGEATTN_CUDA_CHECK_LAUNCH();
  }
  SAGEATTN_CUDA_CHECK(cudaEventRecord(stop, stream.get()));
  unsigned long long bad = 0;
  unsigned int bad_bits = 0;
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(&bad, count.get(), sizeof bad, cudaMemcpyDeviceToHost,
                                      stream.get()));
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(&bad_bits, first_bad.get(), sizeof bad_bits,
                                      cudaMemcpyDeviceToHost, stream.get()));
  SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  float ms = 0;
  SAGEATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  SAGEATTN_CUDA_CHECK(cudaEventDestroy(start));
  SAGEATTN_CUDA_CHECK(cudaEventDestroy(stop));
  std::cout << "[ timing   ] 2^32 fp8 encodes + checks: " << ms << " ms" << std::endl;

  std::string detail;
  if (bad) {
    // Encode the first mismatching input alone to show both codes.
    const float xb = num::bits_float(bad_bits);
    SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(x.get(), &xb, sizeof xb, cudaMemcpyHostToDevice,
                                        stream.get()));
    sageattn::quant::fp8e4m3_encode(x.get(), codes.get(), 1, stream.get());
    uint8_t got = 0;
    SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(&got, codes.get(), 1, cudaMemcpyDeviceToHost,
                                        stream.get()));
    SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
    detail = "first mismatch at x bits " + hex(bad_bits) + " (" + std::to_string(xb) +
             "): device " + hex(got) + ", software " + hex(num::fp8e4m3_from_float(xb));
  }
  EXPECT_EQ(bad, 0u) << bad << " of 2^32 inputs differ (sm_" << sm_ << "); " << detail;

  first_bad.free();
  count.free();
  codes.free();
  x.free();
  stream.destroy();
}

// ---------------------------------------------------------------- int8: sweeps and hard cases
std::vector<float> int8_inputs(float inv) {
  std::vector<float> v;
  // Ties and integers of the product (for inv == 1 exactly; near them otherwise), both signs.
  for (int k = -135; k <= 135; ++k) {
    v.push_back(static_cast<float>(k));
    v.push_back(k + 0.5f);
    v.push_back(std::nextafter(k + 0.5f, kInf));
    v.push_back(std::nextafter(k + 0.5f, -kInf));
  }
  // Dense sweep: every multiple of 2^-8 in [-140, 140].
  for (int i = -140 * 256; i <= 140 * 256; ++i) v.push_back(static_cast<float>(i) / 256.0f);
  // Huge, tiny and non-finite values.
  const float big[] = {127.0f, 127.4f, 127.5f, 128.0f, 1e3f, 1e30f,
                       std::numeric_limits<float>::max(), kInf,
                       std::numeric_limits<float>::denorm_min(), 1e-30f, 0.0f};
  for (const float b : big) {
    v.push_back(b);
    v.push_back(-b);
  }
  for (const uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFFC00000u, 0xFFFFFFFFu})
    v.push_back(num::bits_float(nan));
  // A strided sample of all fp32 bit patterns.
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 4099) v.push_back(num::bits_float(uint32_t(b)));
  // Products within half an fp32 ulp of a tie: rounding the product first (as the contract says)
  // and rounding the exact product (an FMA-contracted `x * inv + magic`) give different codes.
  for (int k = -128; k <= 127; ++k) {
    float x = static_cast<float>((k + 0.5) / inv);
    for (int s = 0; s < 64; ++s) x = std::nextafter(x, -kInf);
    for (int s = 0; s < 128; ++s, x = std::nextafter(x, kInf))
      if (int8_definition(x, inv) != int8_of_exact_product(x, inv)) v.push_back(x);
  }
  return v;
}

TEST_F(GpuNumerics, Int8EncodeMatchesSoftware) {
  Stream stream;
  std::mt19937 rng(7u);
  std::uniform_real_distribution<float> log_amax(-20.0f, 20.0f);
  std::vector<float> scales = {1.0f, 2.0f, 127.0f / 3.7f, 1e-3f, 3e5f};
  for (int i = 0; i < 3; ++i) scales.push_back(127.0f / std::exp2(log_amax(rng)));

  for (const float inv : scales) {
    const std::vector<float> in = int8_inputs(inv);
    const int64_t n = static_cast<int64_t>(in.size());
    int sensitive = 0;
    for (const float x : in) sensitive += int8_definition(x, inv) != int8_of_exact_product(x, inv);

    DeviceBuffer<float> x(in.size());
    DeviceBuffer<int8_t> hw(in.size()), sw(in.size());
    SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(x.get(), in.data(), in.size() * sizeof(float),
                                        cudaMemcpyHostToDevice, stream.get()));
    sageattn::quant::int8_encode(x.get(), inv, hw.get(), n, stream.get());
    int8_software_kernel<<<kBlocks, kThreads, 0, stream.get()>>>(x.get(), inv, sw.get(), n);
    SAGEATTN_CUDA_CHECK_LAUNCH();
    std::vector<int8_t> got_hw(in.size()), got_sw(in.size());
    SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(got_hw.data(), hw.get(), in.size(),
                                        cudaMemcpyDeviceToHost, stream.get()));
    SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(got_sw.data(), sw.get(), in.size(),
                                        cudaMemcpyDeviceToHost, stream.get()));
    SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream.get()));

    int bad_hw = 0, bad_sw = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      const int want = int8_definition(in[i], inv);
      if (got_hw[i] != want && bad_hw++ < 5)
        ADD_FAILURE() << "int8_encode(" << in[i] << " [" << hex(num::float_bits(in[i]))
                      << "], inv " << inv << ") = " << int(got_hw[i]) << ", want " << want;
      if (got_sw[i] != want && bad_sw++ < 5)
        ADD_FAILURE() << "device num::int8_quantize(" << in[i] << " ["
                      << hex(num::float_bits(in[i])) << "], inv " << inv
                      << ") = " << int(got_sw[i]) << ", want " << want
                      << (int8_of_exact_product(in[i], inv) == int(got_sw[i])
                              ? " (the exact product's code: x * inv was contracted into an FMA)"
                              : "");
    }
    EXPECT_EQ(bad_hw, 0) << "quant::int8_encode mismatches at inv " << inv;
    EXPECT_EQ(bad_sw, 0) << "device num::int8_quantize mismatches at inv " << inv;
    if (inv == 127.0f / 3.7f) EXPECT_GE(sensitive, 50) << "too few FMA-sensitive inputs";

    sw.free();
    hw.free();
    x.free();
  }
  stream.destroy();
}

// ---------------------------------------------------------------- launch bounds
TEST_F(GpuNumerics, EncodersWriteExactlyNCodes) {
  // 65536 blocks * 256 threads is the launchers' grid cap: n beyond it needs the grid-stride
  // loop; the odd tail checks the bound.
  constexpr int64_t kN = int64_t{65536} * 256 * 2 + 12345;
  constexpr int64_t kGuard = 4096;
  constexpr uint8_t kSentinel = 0xA5;
  Stream stream;
  std::vector<float> in(kN);
  for (int64_t i = 0; i < kN; ++i) in[i] = static_cast<float>(i % 1001) * 0.37f - 185.0f;
  DeviceBuffer<float> x(kN);
  DeviceBuffer<uint8_t> fp8(kN + kGuard);
  DeviceBuffer<int8_t> i8(kN + kGuard);
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(x.get(), in.data(), kN * sizeof(float),
                                      cudaMemcpyHostToDevice, stream.get()));
  SAGEATTN_CUDA_CHECK(cudaMemsetAsync(fp8.get(), kSentinel, kN + kGuard, stream.get()));
  SAGEATTN_CUDA_CHECK(cudaMemsetAsync(i8.get(), kSentinel, kN + kGuard, stream.get()));
  // n == 0 is a no-op: no error, nothing written.
  sageattn::quant::fp8e4m3_encode(x.get(), fp8.get(), 0, stream.get());
  sageattn::quant::int8_encode(x.get(), 0.5f, i8.get(), 0, stream.get());
  uint8_t head[2] = {0, 0};
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(&head[0], fp8.get(), 1, cudaMemcpyDeviceToHost,
                                      stream.get()));
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(&head[1], i8.get(), 1, cudaMemcpyDeviceToHost,
                                      stream.get()));
  SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  EXPECT_EQ(head[0], kSentinel) << "fp8e4m3_encode with n == 0 wrote";
  EXPECT_EQ(head[1], kSentinel) << "int8_encode with n == 0 wrote";
  sageattn::quant::fp8e4m3_encode(x.get(), fp8.get(), kN, stream.get());
  sageattn::quant::int8_encode(x.get(), 0.5f, i8.get(), kN, stream.get());
  std::vector<uint8_t> got_fp8(kN + kGuard);
  std::vector<int8_t> got_i8(kN + kGuard);
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(got_fp8.data(), fp8.get(), kN + kGuard,
                                      cudaMemcpyDeviceToHost, stream.get()));
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(got_i8.data(), i8.get(), kN + kGuard,
                                      cudaMemcpyDeviceToHost, stream.get()));
  SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream.get()));

  int64_t bad = 0;
  for (int64_t i = 0; i < kN; ++i) {
    const bool ok = got_fp8[i] == num::fp8e4m3_from_float(in[i]) &&
                    got_i8[i] == int8_definition(in[i], 0.5f);
    if (!ok && bad++ < 5) ADD_FAILURE() << "wrong code at " << i << " (x = " << in[i] << ")";
  }
  EXPECT_EQ(bad, 0);
  for (int64_t i = kN; i < kN + kGuard; ++i) {
    ASSERT_EQ(got_fp8[i], kSentinel) << "fp8e4m3_encode wrote past n at " << i;
    ASSERT_EQ(static_cast<uint8_t>(got_i8[i]), kSentinel) << "int8_encode wrote past n at " << i;
  }

  i8.free();
  fp8.free();
  x.free();
  stream.destroy();
}

}  // namespace
