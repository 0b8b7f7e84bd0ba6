// scripts/probes/mbar_handoff.cu: does compute-sanitizer racecheck understand an mbarrier-ordered
// handoff of ordinary shared memory? The sm90 kernel hands each block's K scales from a producer
// thread to the consumer warps this way, and racecheck reports hazards there (bench/NOTES.md
// section 16). This kernel does only that: one producer thread writes a 2-slot ring (after waiting
// on `empty`, then arrives on `full`), four consumer warps read it (after waiting on `full`, then
// __syncwarp and one arrival per warp on `empty`). Correct under the PTX memory model (arrive has
// release, try_wait acquire semantics). Hazards reported here mean a tool limitation.
//
//   nvcc -std=c++17 -arch=sm_90a -lineinfo -o /tmp/mbar_handoff scripts/probes/mbar_handoff.cu
//   /tmp/mbar_handoff && compute-sanitizer --tool racecheck /tmp/mbar_handoff
#include <cstdint>
#include <cstdio>

#include <cuda/ptx>

__global__ void handoff(float* out, int iters) {
  __shared__ __align__(8) uint64_t full[2], empty[2];
  __shared__ float slot[2][8];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < 2; ++s) {
      cuda::ptx::mbarrier_init(&full[s], 1);
      cuda::ptx::mbarrier_init(&empty[s], 4);
    }
    cuda::ptx::fence_mbarrier_init(cuda::ptx::sem_release, cuda::ptx::scope_cluster);
  }
  __syncthreads();
  float acc = 0.0f;
  for (int j = 0; j < iters; ++j) {
    const int s = j % 2;
    const uint32_t round = uint32_t(j / 2);
    if (warp == 4) {
      if (lane == 0) {
        if (j >= 2)
          while (!cuda::ptx::mbarrier_try_wait_parity(&empty[s], (round - 1) & 1u)) {
          }
        for (int i = 0; i < 8; ++i) slot[s][i] = float(j * 8 + i);
        (void)cuda::ptx::mbarrier_arrive(&full[s]);
      }
    } else {
      while (!cuda::ptx::mbarrier_try_wait_parity(&full[s], round & 1u)) {
      }
      acc += slot[s][lane % 8];
      __syncwarp();
      if (lane == 0) (void)cuda::ptx::mbarrier_arrive(&empty[s]);
    }
  }
  if (warp < 4) out[threadIdx.x] = acc;
}

int main() {
  constexpr int kIters = 16;
  float* d = nullptr;
  cudaMalloc(&d, 128 * sizeof(float));
  handoff<<<1, 160>>>(d, kIters);
  const cudaError_t e = cudaDeviceSynchronize();
  float h[128] = {};
  cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost);
  double want = 0.0;  // lane 3 reads element 3 of every round
  for (int j = 0; j < kIters; ++j) want += j * 8 + 3;
  std::printf("%s: lane 3 got %.0f, want %.0f\n", cudaGetErrorString(e), h[3], want);
  return e == cudaSuccess && h[3] == want ? 0 : 1;
}
