// tools/mma_peak.cu: `sageattn_mma_peak`, the ceilings of the instructions the sm80 attention
// kernel is built from, measured on the GPU at hand (bench/NOTES.md, METHOD.md "count first").
//
// Each test runs a loop of independent instructions (no dependency between consecutive ones, so
// the pipe, not latency, limits it) in every warp of 2 CTAs x 256 threads per SM and reports
//   per SM per clock : operations / (SM cycles from clock64), the hardware's native rate
//   per second       : TFLOP/s (or TB/s) from CUDA events, at whatever clock the GPU runs.
// Tests: mma.sync f16 m16n8k16 (fp32 acc), s8 m16n8k32, e4m3 m16n8k32 (fp32 and fp16 acc),
// ldmatrix.x4 (shared-memory read bandwidth), ex2.approx (the XU pipe).
#include <cstdint>
#include <cstdio>
#include <vector>

#include <cuda_runtime.h>

#include "common/ptx/mma.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kChains = 8;  // independent accumulators per warp
constexpr int kIters = 4096;

#define CHECK(x)                                                                 \
  do {                                                                           \
    cudaError_t e_ = (x);                                                        \
    if (e_ != cudaSuccess) {                                                     \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

enum class Op { kF16, kS8, kE4m3F32, kE4m3F16, kLdmatrix, kEx2 };

// Sum of per-CTA cycle counts lands in cycles[blockIdx]; the result is folded into sink so the
// compiler keeps every instruction.
template <Op kOp>
__global__ void __launch_bounds__(kThreads, 2) peak_kernel(uint32_t seed, float* sink, long long* cycles) {
  __shared__ __align__(128) uint8_t smem[kThreads * 16 * 2];
  for (int i = threadIdx.x; i < int(sizeof(smem)); i += kThreads) smem[i] = uint8_t(i * 7 + seed);
  __syncthreads();
  const uint32_t a[4] = {seed, seed * 3u, seed * 5u, seed * 7u};
  const uint32_t b[2] = {seed * 11u, seed * 13u};
  float accf[kChains][4] = {};
  int32_t acci[kChains][4] = {};
  uint32_t acch[kChains][2] = {};
  uint32_t ld[kChains][4] = {};
  float x[kChains];
  for (int c = 0; c < kChains; ++c) x[c] = float(threadIdx.x + c) * 1e-3f;
  const uint32_t base = sageattn::ptx::smem_u32(smem) + (threadIdx.x % 32) * 16 * 2;
  __syncthreads();
  const long long t0 = clock64();
  for (int it = 0; it < kIters; ++it) {
#pragma unroll
    for (int c = 0; c < kChains; ++c) {
      if constexpr (kOp == Op::kF16) sageattn::ptx::mma_f16_16816(accf[c], a, b);
      if constexpr (kOp == Op::kS8) sageattn::ptx::mma_s8_16832(acci[c], a, b);
      if constexpr (kOp == Op::kE4m3F32) sageattn::ptx::mma_e4m3_16832_f32(accf[c], a, b);
      if constexpr (kOp == Op::kE4m3F16) sageattn::ptx::mma_e4m3_16832_f16(acch[c], a, b);
      if constexpr (kOp == Op::kLdmatrix) {
        uint32_t r[4];
        sageattn::ptx::ldmatrix_x4(r, base + ((c + it) % 2) * 16);
        for (int e = 0; e < 4; ++e) ld[c][e] ^= r[e];
      }
      if constexpr (kOp == Op::kEx2) x[c] = sageattn::ptx::exp2_approx(x[c]) - 1.0f;
    }
  }
  const long long t1 = clock64();
  float s = 0.0f;
  for (int c = 0; c < kChains; ++c)
    s += accf[c][0] + float(acci[c][0]) + float(acch[c][0] & 1u) + float(ld[c][0] & 1u) + x[c];
  if (s == 12345.0f) sink[threadIdx.x] = s;
  if (threadIdx.x == 0) cycles[blockIdx.x] = t1 - t0;
}

template <Op kOp>
void run(const char* name, double work_per_instr, const char* unit, int sms) {
  const int blocks = 2 * sms;
  float* sink;
  long long* cycles;
  CHECK(cudaMalloc(&sink, kThreads * sizeof(float)));
  CHECK(cudaMalloc(&cycles, blocks * sizeof(long long)));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  peak_kernel<kOp><<<blocks, kThreads>>>(1u, sink, cycles);  // warm-up (clocks ramp)
  CHECK(cudaGetLastError());
  float best_ms = 1e30f;
  for (int rep = 0; rep < 5; ++rep) {
    CHECK(cudaEventRecord(e0));
    peak_kernel<kOp><<<blocks, kThreads>>>(2u + rep, sink, cycles);
    CHECK(cudaEventRecord(e1));
    CHECK(cudaEventSynchronize(e1));
    float ms = 0.0f;
    CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (ms < best_ms) best_ms = ms;
  }
  std::vector<long long> cyc(blocks);
  CHECK(cudaMemcpy(cyc.data(), cycles, blocks * sizeof(long long), cudaMemcpyDeviceToHost));
  long long max_cyc = 0;
  for (long long c : cyc) max_cyc = c > max_cyc ? c : max_cyc;
  const double warps_per_sm = 2.0 * kThreads / 32;
  const double instr_per_warp = double(kIters) * kChains;
  const double per_sm_clk = warps_per_sm * instr_per_warp * work_per_instr / double(max_cyc);
  const double total = double(blocks) * (kThreads / 32) * instr_per_warp * work_per_instr;
  std::printf("%-24s %10.0f %s/clk/SM %10.1f T%s/s  (%.3f ms, %.2f GHz implied)\n", name,
              per_sm_clk, unit, total / (best_ms * 1e-3) / 1e12, unit, best_ms,
              double(max_cyc) / (best_ms * 1e-3) / 1e9);
  CHECK(cudaFree(sink));
  CHECK(cudaFree(cycles));
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("== %s, %d SMs, sm_%d%d; 2 CTAs x 256 threads per SM, %d independent chains/warp\n",
              prop.name, prop.multiProcessorCount, prop.major, prop.minor, kChains);
  const int sms = prop.multiProcessorCount;
  run<Op::kF16>("mma f16 m16n8k16 f32", 2.0 * 16 * 8 * 16, "FLOP", sms);
  run<Op::kS8>("mma s8 m16n8k32", 2.0 * 16 * 8 * 32, "OP", sms);
  if (prop.major * 10 + prop.minor >= 89) {
    run<Op::kE4m3F32>("mma e4m3 m16n8k32 f32", 2.0 * 16 * 8 * 32, "FLOP", sms);
    run<Op::kE4m3F16>("mma e4m3 m16n8k32 f16", 2.0 * 16 * 8 * 32, "FLOP", sms);
  }
  run<Op::kLdmatrix>("ldmatrix.x4 (bytes)", 512.0, "B", sms);
  run<Op::kEx2>("ex2.approx (per lane)", 32.0, "op", sms);
  return 0;
}
