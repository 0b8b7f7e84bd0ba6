// tests/gpu/test_gpu_hardening.cu: hardening of the GPU backends (issue #6 items 1-3), on every GPU
// backend the device has (sm80 mma.sync everywhere; sm90 wgmma + TMA on compute capability 9.0).
//
// Huge tensors (skipped under SAGEATTN_TEST_QUICK=1, and with a message when the GPU lacks memory):
//  - HugeHeadsMatchSingleHeadCalls: B*H*N*D = 2.18e9 > 2^31 elements (H = 1040, N = 16411, D = 128,
//    MHA, so Q, K, V, O and the quantized K/V all pass 2^31 elements / bytes), HND and NHD: the
//    output of selected heads, first and last included, is bit-identical to a separate call on that
//    head's data alone (attention and K/V quantization are per (sequence, KV head)); the output is
//    poisoned first and must hold no NaN/inf afterwards (every element written).
//  - HugeVarlenMatchesDenseCalls: the same size packed as [total, H, D] with cu_seqlens, causal:
//    selected (sequence, head) pairs bit-identical to dense calls on that sequence and head.
//  - CausalMillionTokens: B = H = 1, N = 2^20 - 3, causal, fp16 P.V: nothing unwritten or
//    non-finite; 24 sampled rows (first, block edges, last; short and long rows measured apart)
//    against float64 attention within the accuracy budget of tests/gpu/test_gpu_attention.cu,
//    their LSE within 0.025 nats.
//  - ManySequencesBeyondTheGridLimit: 70001 sequences (dense and varlen), more than a grid's z
//    dimension holds (65535): sequences on both sides of the limit bit-identical to calls of their
//    own, on sm80 (which launches in slices) and sm90 (sequences x query tiles in grid x) and
//    automatic dispatch. TooManyQueryHeadsIsAnError: 65536 query heads is an Error naming the limit.
// Concurrency and determinism:
//  - ConcurrentThreadsMatchSerialCalls: 8 host threads, each on its own stream with its own inputs
//    and problem (backends, modes, shapes, causal, dtypes, own or library-allocated workspace mixed),
//    3 rounds at once: bit-identical to the same calls made serially.
//  - RepeatedCallsAreBitIdentical: the same call three times (library workspace, caller workspace,
//    another stream) gives the same bits, output and LSE.
//  - CudaGraphCaptureReplaysLikeDirectCalls: a call captured on a non-default stream in global
//    capture mode (nothing runs during capture), instantiated, launched twice on fresh inputs copied
//    into the captured buffers: bit-identical to direct calls; with the library's workspace
//    (captured as graph memory nodes) and with a caller workspace.
// Special values (tests/cpu/special_values.h, the CPU suite's cases and oracle): NaN exactly where
// docs/NUMERICS.md ("Special values") says for each backend's tiles, never inf, everything else
// bit-identical to the call without the special value; zero, constant and near-overflow inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cpu/metrics.h"
#include "cpu/parallel.h"
#include "cpu/special_values.h"
#include "gpu_support.h"

namespace sageattn::test {
namespace {

// ------------------------------------------------------------------------------ backends, modes
// Every call of these suites has head dim 128 (tests/cpu/special_values.h's SpecialCase too).
constexpr int64_t kHeadDim = 128;
// The device's backends whose head-dim-128 kernels this build compiles (Hd128Test names the others).
std::vector<Backend> gpu_backends() {
  std::vector<Backend> b;
  for (Backend x : device_backends())
    if (kernels_compiled(x, kHeadDim)) b.push_back(x);
  return b;
}
// Automatic dispatch and the backends named: at head dim 128 and pv_mode fp16 auto picks sm90 where
// its kernels are compiled, else sm80, so it runs wherever gpu_backends() is not empty.
std::vector<Backend> auto_and_gpu_backends() {
  std::vector<Backend> b{Backend::kAuto};
  for (Backend x : gpu_backends()) b.push_back(x);
  return b;
}
std::vector<PvMode> gpu_modes() {
  std::vector<PvMode> m{PvMode::kFp16};
  if (device_cc() >= 89) m.push_back(PvMode::kFp8), m.push_back(PvMode::kFp8Fp16Acc);
  return m;
}
// The sm90 kernels run pv_mode fp16 and fp8 (head dims <= 128; every case here has D = 128).
bool served(Backend b, PvMode m) { return b != Backend::kSm90 || m == PvMode::kFp16 || m == PvMode::kFp8; }
const TileConfig& tiles_of(Backend b) { return b == Backend::kSm90 ? kSm90Tiles : kSm80Tiles; }
// fp8 P.V where the device has it (sm89+), else fp16: the one mode of the single-mode tests.
PvMode fp8_or_fp16() { return device_cc() >= 89 ? PvMode::kFp8 : PvMode::kFp16; }
// The modes of the huge dense test: fp16, and fp8 where the device has it.
std::vector<PvMode> huge_modes() {
  std::vector<PvMode> m{PvMode::kFp16};
  if (device_cc() >= 89) m.push_back(PvMode::kFp8);
  return m;
}
std::string label(Backend b, PvMode m) { return std::string("backend ") + to_string(b) + ", pv_mode " + to_string(m); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ------------------------------------------------------------------------------ device helpers
__device__ __forceinline__ uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// N(0, 1) from the element index: Box-Muller over two hashes (deterministic, order-free).
__device__ __forceinline__ float normal_at(uint64_t seed, uint64_t i) {
  const uint64_t h1 = mix64(seed * 0x9E3779B97F4A7C15ull + 2 * i + 1), h2 = mix64(h1 + 0x632BE59BD9B4E019ull);
  const float u1 = (float(h1 >> 40) + 0.5f) * 0x1p-24f, u2 = float(h2 >> 40) * 0x1p-24f;
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}
// x[i] = N(0,1) + bias_std * N(0,1)_{channel i % d}: the k_channel_bias family's K with bias_std 6,
// its Q and V with 0 (a bias shared by every token and head of the tensor).
__global__ void fill_family_kernel(uint16_t* x, int64_t n, int64_t d, uint64_t seed, float bias_std, bool bf16) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float y = normal_at(seed, uint64_t(i));
    if (bias_std != 0.0f) y += bias_std * normal_at(seed ^ 0xB1A5B1A5ull, uint64_t(i % d));
    x[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(y)) : __half_as_ushort(__float2half_rn(y));
  }
}
// Counts 16-bit elements whose exponent field is all ones (NaN or inf; the 0xFF poison included).
__global__ void count_nonfinite16_kernel(const uint16_t* x, int64_t n, uint16_t exp_mask, unsigned long long* count) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  unsigned long long c = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) c += (x[i] & exp_mask) == exp_mask;
  if (c) atomicAdd(count, c);
}
__global__ void count_nonfinite32_kernel(const float* x, int64_t n, unsigned long long* count) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  unsigned long long c = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) c += !isfinite(x[i]);
  if (c) atomicAdd(count, c);
}

constexpr unsigned kFillGrid = 4096, kFillBlock = 256;

void fill_family(void* x, int64_t n, int64_t d, uint64_t seed, float bias_std, DType t) {
  fill_family_kernel<<<kFillGrid, kFillBlock>>>(static_cast<uint16_t*>(x), n, d, seed, bias_std, t == DType::kBF16);
  SAGEATTN_CUDA_CHECK_LAUNCH();
}
int64_t count_nonfinite16(const void* x, int64_t n, DType t) {
  DeviceBuffer c(sizeof(unsigned long long));
  c.fill(0);
  count_nonfinite16_kernel<<<kFillGrid, kFillBlock>>>(static_cast<const uint16_t*>(x), n,
                                                      t == DType::kBF16 ? 0x7F80 : 0x7C00,
                                                      static_cast<unsigned long long*>(c.get()));
  SAGEATTN_CUDA_CHECK_LAUNCH();
  return int64_t(c.download<unsigned long long>(1)[0]);
}
int64_t count_nonfinite32(const float* x, int64_t n) {
  DeviceBuffer c(sizeof(unsigned long long));
  c.fill(0);
  count_nonfinite32_kernel<<<kFillGrid, kFillBlock>>>(x, n, static_cast<unsigned long long*>(c.get()));
  SAGEATTN_CUDA_CHECK_LAUNCH();
  return int64_t(c.download<unsigned long long>(1)[0]);
}

// Rows [row0, row0 + rows) of `width` bytes at pitch `pitch` bytes from src to a packed dst (device).
void copy_rows(void* dst, const void* src, std::size_t pitch, std::size_t width, int64_t rows) {
  SAGEATTN_CUDA_CHECK(cudaMemcpy2D(dst, width, src, pitch, width, std::size_t(rows), cudaMemcpyDeviceToDevice));
}
template <typename T>
std::vector<T> download_rows(const void* src, std::size_t pitch, int64_t row_elems, int64_t rows) {
  std::vector<T> r(std::size_t(row_elems * rows));
  SAGEATTN_CUDA_CHECK(cudaMemcpy2D(r.data(), row_elems * sizeof(T), src, pitch, row_elems * sizeof(T),
                                   std::size_t(rows), cudaMemcpyDeviceToHost));
  return r;
}

int64_t mismatches(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
  int64_t m = a.size() == b.size() ? 0 : -1;
  for (size_t i = 0; m >= 0 && i < a.size(); ++i) m += a[i] != b[i];
  return m;
}
int64_t mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t m = a.size() == b.size() ? 0 : -1;
  for (size_t i = 0; m >= 0 && i < a.size(); ++i) m += num::float_bits(a[i]) != num::float_bits(b[i]);
  return m;
}

// Whether `bytes` more fit on the device, with 1 GB to spare; otherwise the reason.
bool memory_for(std::size_t bytes, std::string& why) {
  std::size_t free_b = 0, total_b = 0;
  SAGEATTN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (free_b >= bytes + (std::size_t(1) << 30)) return true;
  why = "needs " + std::to_string(bytes >> 20) + " MiB of GPU memory, " + std::to_string(free_b >> 20) + " MiB free";
  return false;
}

// A placeholder device address for workspace-size queries (validated, never dereferenced).
void* placeholder() { return reinterpret_cast<void*>(uintptr_t(1) << 24); }

// A GpuTest whose calls have head dim 128: a backend whose kernels for it the build left out is
// named in the log and left out by gpu_backends(); the test is skipped when none is left.
class Hd128Test : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    std::string missing;
    for (Backend b : device_backends())
      if (!kernels_compiled(b, kHeadDim)) missing += (missing.empty() ? "" : "; ") + not_compiled(b, kHeadDim);
    if (gpu_backends().empty()) GTEST_SKIP() << missing;
    if (!missing.empty()) note_skipped(missing);
  }
};

class GpuHardening : public Hd128Test {};

// =============================================================================== huge tensors
// The dense huge problem: B = 1, H = 1040 heads (MHA), N = 16411 tokens (not a tile multiple),
// D = 128: 2,184,622,080 elements per tensor, 4.4 GB each, ~25 GB with the workspace. 1.4e14 FLOPs
// per call (~0.3 s on an H100).
constexpr int64_t kHugeHeads = 1040, kHugeTokens = 16411, kHugeDim = kHeadDim;
constexpr int64_t kHugeElems = kHugeHeads * kHugeTokens * kHugeDim;
static_assert(kHugeElems > (int64_t(1) << 31), "the huge tests must pass 2^31 elements");

// Q, K, V, O (and LSE) of the huge problem, K/V/Q filled with the k_channel_bias family.
struct HugeBuffers {
  DeviceBuffer q, k, v, o, lse, ws;
  bool ok = false;
  std::string why;
  explicit HugeBuffers(std::size_t ws_bytes) {
    const std::size_t tensor = std::size_t(kHugeElems) * 2, lse_bytes = std::size_t(kHugeHeads * kHugeTokens) * 4;
    if (!memory_for(4 * tensor + lse_bytes + ws_bytes, why)) return;
    q = DeviceBuffer(tensor), k = DeviceBuffer(tensor), v = DeviceBuffer(tensor), o = DeviceBuffer(tensor);
    lse = DeviceBuffer(lse_bytes), ws = DeviceBuffer(ws_bytes);
    fill_family(q.get(), kHugeElems, kHugeDim, 11, 0.0f, DType::kBF16);
    fill_family(k.get(), kHugeElems, kHugeDim, 12, 6.0f, DType::kBF16);
    fill_family(v.get(), kHugeElems, kHugeDim, 13, 0.0f, DType::kBF16);
    ok = true;
  }
};

// The largest workspace size_of(backend, mode) gives over the backends and modes of the huge tests.
template <typename F>
std::size_t max_workspace(F&& size_of) {
  std::size_t m = 0;
  for (Backend b : gpu_backends())
    for (PvMode mode : huge_modes())
      if (served(b, mode)) m = std::max(m, size_of(b, mode));
  return m;
}

TEST_F(GpuHardening, HugeHeadsMatchSingleHeadCalls) {
  if (quick_mode()) GTEST_SKIP() << "huge-tensor test skipped in quick mode (SAGEATTN_TEST_QUICK=1)";
  const int64_t H = kHugeHeads, N = kHugeTokens, D = kHugeDim;
  const std::size_t ws_bytes = max_workspace([&](Backend b, PvMode m) {
    AttentionOptions o;
    o.backend = b, o.pv_mode = m;
    const TensorView t = make_contiguous_view(placeholder(), DType::kBF16, {1, H, N, D}, 0);
    return attention_workspace_size(t, t, t, o);
  });
  HugeBuffers buf(ws_bytes);
  if (!buf.ok) GTEST_SKIP() << "huge-tensor test: " << buf.why;
  const std::vector<int64_t> heads{0, 1, H / 2, H - 2, H - 1};
  for (Backend backend : gpu_backends())
    for (PvMode mode : huge_modes()) {
      if (!served(backend, mode)) continue;
      // fp16 runs HND, fp8 NHD: the same buffers read with the other layout.
      const Layout layout = mode == PvMode::kFp16 ? Layout::kHND : Layout::kNHD;
      SCOPED_TRACE(label(backend, mode) + ", layout " + to_string(layout));
      AttentionOptions opt;
      opt.backend = backend, opt.pv_mode = mode, opt.layout = layout;
      auto view = [&](void* p, int64_t heads, int64_t tokens) {
        return layout == Layout::kHND ? make_contiguous_view(p, DType::kBF16, {1, heads, tokens, D}, 0)
                                      : make_contiguous_view(p, DType::kBF16, {1, tokens, heads, D}, 0);
      };
      buf.o.fill(0xFF), buf.lse.fill(0xFF);  // NaN poison: an unwritten element shows
      const auto t0 = std::chrono::steady_clock::now();
      attention(view(buf.q.get(), H, N), view(buf.k.get(), H, N), view(buf.v.get(), H, N), view(buf.o.get(), H, N), opt,
                make_contiguous_view(buf.lse.get(), DType::kF32, {1, H, N}, 0), Workspace{buf.ws.get(), buf.ws.bytes()});
      SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
      std::printf("[ huge     ] %s %s: %lld elements per tensor, %.3f s\n", to_string(backend), to_string(mode),
                  static_cast<long long>(kHugeElems), seconds_since(t0));
      EXPECT_EQ(count_nonfinite16(buf.o.get(), kHugeElems, DType::kBF16), 0) << "unwritten or non-finite outputs";
      EXPECT_EQ(count_nonfinite32(static_cast<const float*>(buf.lse.get()), H * N), 0) << "unwritten or non-finite LSE";

      // Each selected head alone: its Q, K, V rows copied into packed buffers, one call of its own.
      DeviceBuffer hq(N * D * 2), hk(N * D * 2), hv(N * D * 2), ho(N * D * 2), hl(N * 4);
      for (int64_t h : heads) {
        SCOPED_TRACE("head " + std::to_string(h));
        // HND: head h is one block of N rows; NHD: row n of head h sits at n * H + h.
        const std::size_t row = D * 2, pitch = layout == Layout::kHND ? row : std::size_t(H) * row;
        const std::size_t off = layout == Layout::kHND ? std::size_t(h) * N * row : std::size_t(h) * row;
        auto at = [&](const DeviceBuffer& b) { return static_cast<const uint8_t*>(b.get()) + off; };
        copy_rows(hq.get(), at(buf.q), pitch, row, N);
        copy_rows(hk.get(), at(buf.k), pitch, row, N);
        copy_rows(hv.get(), at(buf.v), pitch, row, N);
        ho.fill(0xFF), hl.fill(0xFF);
        attention(view(hq.get(), 1, N), view(hk.get(), 1, N), view(hv.get(), 1, N), view(ho.get(), 1, N), opt,
                  make_contiguous_view(hl.get(), DType::kF32, {1, 1, N}, 0));
        SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
        const std::vector<uint16_t> big = download_rows<uint16_t>(at(buf.o), pitch, D, N);
        EXPECT_EQ(mismatches(big, ho.download<uint16_t>(N * D)), 0) << "outputs differ from the head's own call";
        const std::vector<float> big_lse =
            download_rows<float>(static_cast<const float*>(buf.lse.get()) + h * N, N * 4, N, 1);
        EXPECT_EQ(mismatches(big_lse, hl.download<float>(N)), 0) << "LSE differs from the head's own call";
      }
    }
}

TEST_F(GpuHardening, HugeVarlenMatchesDenseCalls) {
  if (quick_mode()) GTEST_SKIP() << "huge-tensor test skipped in quick mode (SAGEATTN_TEST_QUICK=1)";
  const int64_t H = kHugeHeads, D = kHugeDim;
  const std::vector<int32_t> lens{5000, 1, 4097, 7313};  // 16411 tokens: the huge size, packed
  std::vector<int32_t> cu{0};
  for (int32_t l : lens) cu.push_back(cu.back() + l);
  const int64_t T = cu.back();
  ASSERT_EQ(T, kHugeTokens);
  DeviceBuffer cu_d = DeviceBuffer::from(cu);
  auto args = [&](void* q, void* k, void* v, void* o, void* lse) {
    VarlenArgs a;
    a.q = make_contiguous_view(q, DType::kBF16, {T, H, D}, 0);
    a.k = make_contiguous_view(k, DType::kBF16, {T, H, D}, 0);
    a.v = make_contiguous_view(v, DType::kBF16, {T, H, D}, 0);
    a.out = make_contiguous_view(o, DType::kBF16, {T, H, D}, 0);
    a.lse = make_contiguous_view(lse, DType::kF32, {H, T}, 0);
    a.cu_seqlens_q = a.cu_seqlens_k = make_contiguous_view(cu_d.get(), DType::kI32, {int64_t(cu.size())}, 0);
    a.max_seqlen_q = a.max_seqlen_k = *std::max_element(lens.begin(), lens.end());
    return a;
  };
  const std::size_t ws_bytes = max_workspace([&](Backend b, PvMode m) {
    AttentionOptions o;
    o.backend = b, o.pv_mode = m;
    return attention_varlen_workspace_size(args(placeholder(), placeholder(), placeholder(), placeholder(), placeholder()), o);
  });
  HugeBuffers buf(ws_bytes);
  if (!buf.ok) GTEST_SKIP() << "huge-tensor test: " << buf.why;
  // (sequence, head): the last sequence ends at element 2.18e9; the last head's rows lie highest.
  const std::vector<std::pair<int, int64_t>> picks{{0, 0}, {1, H - 1}, {2, 517}, {3, 0}, {3, H - 1}};
  for (Backend backend : gpu_backends()) {
    const PvMode mode = fp8_or_fp16();
    SCOPED_TRACE(label(backend, mode) + ", varlen causal");
    AttentionOptions opt;
    opt.backend = backend, opt.pv_mode = mode, opt.mask = MaskMode::kCausal;
    buf.o.fill(0xFF), buf.lse.fill(0xFF);
    const auto t0 = std::chrono::steady_clock::now();
    attention_varlen(args(buf.q.get(), buf.k.get(), buf.v.get(), buf.o.get(), buf.lse.get()), opt,
                     Workspace{buf.ws.get(), buf.ws.bytes()});
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    std::printf("[ huge     ] varlen %s %s: %.3f s\n", to_string(backend), to_string(mode), seconds_since(t0));
    EXPECT_EQ(count_nonfinite16(buf.o.get(), kHugeElems, DType::kBF16), 0) << "unwritten or non-finite outputs";
    EXPECT_EQ(count_nonfinite32(static_cast<const float*>(buf.lse.get()), H * T), 0) << "unwritten or non-finite LSE";
    for (const auto& [s, h] : picks) {
      SCOPED_TRACE("sequence " + std::to_string(s) + ", head " + std::to_string(h));
      const int64_t len = lens[s];
      const std::size_t row = D * 2, pitch = std::size_t(H) * row, off = (std::size_t(cu[s]) * H + h) * row;
      auto at = [&](const DeviceBuffer& b) { return static_cast<const uint8_t*>(b.get()) + off; };
      DeviceBuffer hq(len * row), hk(len * row), hv(len * row), ho(len * row), hl(len * 4);
      copy_rows(hq.get(), at(buf.q), pitch, row, len);
      copy_rows(hk.get(), at(buf.k), pitch, row, len);
      copy_rows(hv.get(), at(buf.v), pitch, row, len);
      ho.fill(0xFF), hl.fill(0xFF);
      const TensorView tq = make_contiguous_view(hq.get(), DType::kBF16, {1, 1, len, D}, 0);
      const TensorView tk = make_contiguous_view(hk.get(), DType::kBF16, {1, 1, len, D}, 0);
      const TensorView tv = make_contiguous_view(hv.get(), DType::kBF16, {1, 1, len, D}, 0);
      attention(tq, tk, tv, make_contiguous_view(ho.get(), DType::kBF16, {1, 1, len, D}, 0), opt,
                make_contiguous_view(hl.get(), DType::kF32, {1, 1, len}, 0));
      SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_EQ(mismatches(download_rows<uint16_t>(at(buf.o), pitch, D, len), ho.download<uint16_t>(len * D)), 0)
          << "outputs differ from the dense call of this sequence and head";
      const float* lse_row = static_cast<const float*>(buf.lse.get()) + h * T + cu[s];
      EXPECT_EQ(mismatches(download_rows<float>(lse_row, len * 4, len, 1), hl.download<float>(len)), 0)
          << "LSE differs from the dense call of this sequence and head";
    }
  }
}

// float64 attention of query row i of a causal single-head problem (keys 0..i): out[D], lse.
void exact_causal_row(const std::vector<uint16_t>& q, const std::vector<uint16_t>& k, const std::vector<uint16_t>& v,
                      int64_t i, int64_t d, double scale, double* out, double* lse) {
  std::vector<double> s(i + 1), qi(d);
  for (int64_t c = 0; c < d; ++c) qi[c] = num::bf16_to_float(q[i * d + c]);
  double m = -INFINITY;
  for (int64_t j = 0; j <= i; ++j) {
    double dot = 0.0;
    for (int64_t c = 0; c < d; ++c) dot += qi[c] * num::bf16_to_float(k[j * d + c]);
    s[j] = dot * scale;
    m = std::max(m, s[j]);
  }
  double l = 0.0;
  std::fill(out, out + d, 0.0);
  for (int64_t j = 0; j <= i; ++j) {
    const double p = std::exp(s[j] - m);
    l += p;
    for (int64_t c = 0; c < d; ++c) out[c] += p * num::bf16_to_float(v[j * d + c]);
  }
  for (int64_t c = 0; c < d; ++c) out[c] /= l;
  *lse = m + std::log(l);
}

TEST_F(GpuHardening, CausalMillionTokens) {
  if (quick_mode()) GTEST_SKIP() << "huge-tensor test skipped in quick mode (SAGEATTN_TEST_QUICK=1)";
  const int64_t N = (int64_t(1) << 20) - 3, D = kHeadDim, elems = N * D;
  std::string why;
  if (!memory_for(std::size_t(elems) * 2 * 8, why)) GTEST_SKIP() << "1M-token test: " << why;
  DeviceBuffer q(elems * 2), k(elems * 2), v(elems * 2), o(elems * 2), lse(N * 4);
  fill_family(q.get(), elems, D, 21, 0.0f, DType::kBF16);
  fill_family(k.get(), elems, D, 22, 6.0f, DType::kBF16);  // the k_channel_bias family
  fill_family(v.get(), elems, D, 23, 0.0f, DType::kBF16);
  const std::vector<uint16_t> hq = q.download<uint16_t>(elems), hk = k.download<uint16_t>(elems),
                              hv = v.download<uint16_t>(elems);
  // First rows, tile and K-block edges of both kernel families, powers of two, the last rows.
  // Short rows (< 4097 keys) first, then long ones (>= 100000 keys): measured apart below.
  const std::vector<int64_t> rows{0,      1,      2,      63,     64,     127,    128,    129,
                                  191,    192,    4095,   4096,   100000, 262143, 262144, 524287,
                                  524288, 786431, N - 193, N - 129, N - 128, N - 65, N - 2, N - 1};
  const double scale = double(float(1.0 / std::sqrt(double(D))));
  std::vector<double> exact(rows.size() * D), exact_lse(rows.size());
  cpu::parallel_for(int64_t(rows.size()), [&](int64_t r) {
    exact_causal_row(hq, hk, hv, rows[r], D, scale, &exact[r * D], &exact_lse[r]);
  });
  const TensorView tq = make_contiguous_view(q.get(), DType::kBF16, {1, 1, N, D}, 0);
  const TensorView tk = make_contiguous_view(k.get(), DType::kBF16, {1, 1, N, D}, 0);
  const TensorView tv = make_contiguous_view(v.get(), DType::kBF16, {1, 1, N, D}, 0);
  for (Backend backend : gpu_backends()) {
    // fp16 P.V (automatic dispatch's mode on sm90 and sm80/86): the mode whose budget leaves room
    // for the error's slow growth with length (the fp8 V layout's long-row indexing is covered by
    // HugeHeadsMatchSingleHeadCalls).
    const PvMode mode = PvMode::kFp16;
    SCOPED_TRACE(label(backend, mode));
    AttentionOptions opt;
    opt.backend = backend, opt.pv_mode = mode, opt.mask = MaskMode::kCausal;
    o.fill(0xFF), lse.fill(0xFF);
    const auto t0 = std::chrono::steady_clock::now();
    attention(tq, tk, tv, make_contiguous_view(o.get(), DType::kBF16, {1, 1, N, D}, 0), opt,
              make_contiguous_view(lse.get(), DType::kF32, {1, 1, N}, 0));
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    std::printf("[ 1M causal] %s %s: %.3f s\n", to_string(backend), to_string(mode), seconds_since(t0));
    EXPECT_EQ(count_nonfinite16(o.get(), elems, DType::kBF16), 0) << "unwritten or non-finite outputs";
    EXPECT_EQ(count_nonfinite32(static_cast<const float*>(lse.get()), N), 0) << "unwritten or non-finite LSE";
    std::vector<double> got(rows.size() * D);
    std::vector<float> got_lse(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      const std::vector<uint16_t> row =
          download_rows<uint16_t>(static_cast<const uint16_t*>(o.get()) + rows[r] * D, D * 2, D, 1);
      for (int64_t c = 0; c < D; ++c) got[r * D + c] = num::bf16_to_float(row[c]);
      got_lse[r] = download_rows<float>(static_cast<const float*>(lse.get()) + rows[r], 4, 1, 1)[0];
    }
    // The budget of test_gpu_attention.cu's exact_budget for k_channel_bias (the CPU reference's
    // own error at 1K-8K keys grows by ~0.001 per doubling in fp8: rel_l1 0.036 -> 0.039), over
    // the short rows (< 4097 keys) and the long ones (>= 100000 keys) apart: an output over 1M keys
    // is ~30x smaller than one over a few keys, so the long rows would hardly count in one sum.
    const bool fp16 = mode == PvMode::kFp16;
    const size_t n_short = size_t(std::count_if(rows.begin(), rows.end(), [](int64_t r) { return r < 4097; }));
    for (const bool long_rows : {false, true}) {
      const size_t r0 = long_rows ? n_short : 0, r1 = long_rows ? rows.size() : n_short;
      const cpu::ErrorMetrics m = cpu::error_metrics(exact.data() + r0 * D, got.data() + r0 * D, int64_t((r1 - r0) * D));
      std::printf("[ 1M causal] %s %s: %zu %s rows vs float64: cos %.6f rel_l1 %.5f max %.3g\n", to_string(backend),
                  to_string(mode), r1 - r0, long_rows ? "long" : "short", m.cos, m.rel_l1, m.max_abs);
      EXPECT_EQ(m.nonfinite_mismatch, 0);
      EXPECT_GE(m.cos, fp16 ? 0.99980 : 0.9985) << (long_rows ? "long rows" : "short rows");
      EXPECT_LE(m.rel_l1, fp16 ? 0.025 : 0.075) << (long_rows ? "long rows" : "short rows");
    }
    // LSE: 2x the CPU reference's worst over every row of causal k_channel_bias problems of 1K-8K
    // keys (0.0122 nats, the early rows; long rows ~0.0025).
    for (size_t r = 0; r < rows.size(); ++r)
      EXPECT_LE(std::fabs(got_lse[r] - exact_lse[r]), 0.025) << "row " << rows[r] << ": lse " << got_lse[r]
                                                              << " exact " << exact_lse[r];
  }
}

// ------------------------------------------------------------------------------- grid limits
// More sequences than a grid's z dimension holds (65535): the sm80 launcher slices them, the sm90
// one puts them in grid x; every sequence, on both sides of each slice boundary, equals a call of
// its own, bit for bit.
TEST_F(GpuHardening, ManySequencesBeyondTheGridLimit) {
  if (quick_mode()) GTEST_SKIP() << "140k-CTA launches skipped in quick mode (SAGEATTN_TEST_QUICK=1)";
  const int64_t B = 70001, Hq = 2, Hkv = 1, N = 3, D = kHeadDim;
  const int64_t q_elems = B * Hq * N * D, kv_elems = B * Hkv * N * D;
  DeviceBuffer q(q_elems * 2), k(kv_elems * 2), v(kv_elems * 2), o(q_elems * 2), lse(B * Hq * N * 4);
  fill_family(q.get(), q_elems, D, 31, 0.0f, DType::kF16);
  fill_family(k.get(), kv_elems, D, 32, 6.0f, DType::kF16);
  fill_family(v.get(), kv_elems, D, 33, 0.0f, DType::kF16);
  const std::vector<int64_t> picks{0, 65534, 65535, 65536, B - 1};
  auto v4 = [&](void* p, int64_t b, int64_t h) { return make_contiguous_view(p, DType::kF16, {b, h, N, D}, 0); };
  // sm80 launches in slices, sm90 puts sequences x tiles in grid x.
  const std::vector<Backend> backends = auto_and_gpu_backends();
  for (Backend backend : backends) {
    SCOPED_TRACE(std::string("backend ") + to_string(backend));
    AttentionOptions opt;
    opt.backend = backend, opt.pv_mode = PvMode::kFp16, opt.mask = MaskMode::kCausal;
    o.fill(0xFF), lse.fill(0xFF);
    attention(v4(q.get(), B, Hq), v4(k.get(), B, Hkv), v4(v.get(), B, Hkv), v4(o.get(), B, Hq), opt,
              make_contiguous_view(lse.get(), DType::kF32, {B, Hq, N}, 0));
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_EQ(count_nonfinite16(o.get(), q_elems, DType::kF16), 0) << "unwritten or non-finite outputs";
    for (int64_t b : picks) {
      SCOPED_TRACE("sequence " + std::to_string(b));
      auto at = [&](const DeviceBuffer& buf, int64_t per_seq) {
        return static_cast<uint16_t*>(buf.get()) + b * per_seq;
      };
      DeviceBuffer so(Hq * N * D * 2), sl(Hq * N * 4);
      so.fill(0xFF);
      attention(v4(at(q, Hq * N * D), 1, Hq), v4(at(k, Hkv * N * D), 1, Hkv), v4(at(v, Hkv * N * D), 1, Hkv),
                v4(so.get(), 1, Hq), opt, make_contiguous_view(sl.get(), DType::kF32, {1, Hq, N}, 0));
      SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_EQ(mismatches(download_rows<uint16_t>(at(o, Hq * N * D), Hq * N * D * 2, Hq * N * D, 1),
                           so.download<uint16_t>(Hq * N * D)), 0);
      EXPECT_EQ(mismatches(download_rows<float>(static_cast<const float*>(lse.get()) + b * Hq * N, Hq * N * 4, Hq * N, 1),
                           sl.download<float>(Hq * N)), 0);
    }
  }
  // Varlen: 70001 sequences of 1-3 tokens (cu_seqlens offset per slice).
  std::vector<int32_t> cu{0};
  for (int64_t b = 0; b < B; ++b) cu.push_back(cu.back() + int32_t(1 + b % 3));
  const int64_t T = cu.back();
  ASSERT_LE(T, B * N);
  DeviceBuffer cu_d = DeviceBuffer::from(cu);
  VarlenArgs a;
  a.q = make_contiguous_view(q.get(), DType::kF16, {T, Hq, D}, 0);
  a.k = make_contiguous_view(k.get(), DType::kF16, {T, Hkv, D}, 0);
  a.v = make_contiguous_view(v.get(), DType::kF16, {T, Hkv, D}, 0);
  a.out = make_contiguous_view(o.get(), DType::kF16, {T, Hq, D}, 0);
  a.cu_seqlens_q = a.cu_seqlens_k = make_contiguous_view(cu_d.get(), DType::kI32, {B + 1}, 0);
  a.max_seqlen_q = a.max_seqlen_k = 3;
  for (Backend backend : backends) {
    SCOPED_TRACE(std::string("varlen, backend ") + to_string(backend));
    AttentionOptions opt;
    opt.backend = backend, opt.pv_mode = PvMode::kFp16;
    o.fill(0xFF);
    attention_varlen(a, opt);
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_EQ(count_nonfinite16(o.get(), T * Hq * D, DType::kF16), 0) << "varlen: unwritten or non-finite outputs";
    for (int64_t b : picks) {
      SCOPED_TRACE("varlen sequence " + std::to_string(b));
      const int64_t len = cu[b + 1] - cu[b];
      auto at = [&](const DeviceBuffer& buf, int64_t heads) { return static_cast<uint16_t*>(buf.get()) + cu[b] * heads * D; };
      DeviceBuffer so(len * Hq * D * 2);
      so.fill(0xFF);
      auto nhd = [&](void* p, int64_t h) { return make_contiguous_view(p, DType::kF16, {1, len, h, D}, 0); };
      AttentionOptions dense = opt;
      dense.layout = Layout::kNHD;
      attention(nhd(at(q, Hq), Hq), nhd(at(k, Hkv), Hkv), nhd(at(v, Hkv), Hkv), nhd(so.get(), Hq), dense);
      SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_EQ(mismatches(download_rows<uint16_t>(at(o, Hq), len * Hq * D * 2, len * Hq * D, 1),
                           so.download<uint16_t>(len * Hq * D)), 0);
    }
  }
}

// More query heads than a grid's y dimension holds: an Error naming the limit, for every backend,
// output untouched.
TEST_F(GpuHardening, TooManyQueryHeadsIsAnError) {
  const int64_t H = 65536, D = kHeadDim;
  DeviceBuffer q(H * D * 2), kv(D * 2), o(H * D * 2);
  q.fill(0), kv.fill(0), o.fill(0xFF);
  const std::vector<Backend> backends = auto_and_gpu_backends();
  for (Backend b : backends) {
    SCOPED_TRACE(std::string("backend ") + to_string(b));
    AttentionOptions opt;
    opt.backend = b, opt.pv_mode = PvMode::kFp16;
    try {
      attention(make_contiguous_view(q.get(), DType::kBF16, {1, H, 1, D}, 0),
                make_contiguous_view(kv.get(), DType::kBF16, {1, 1, 1, D}, 0),
                make_contiguous_view(kv.get(), DType::kBF16, {1, 1, 1, D}, 0),
                make_contiguous_view(o.get(), DType::kBF16, {1, H, 1, D}, 0), opt);
      ADD_FAILURE() << "65536 query heads were accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
      EXPECT_NE(std::string(e.what()).find("65535"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(count_nonfinite16(o.get(), H * D, DType::kBF16), H * D) << "output written by a refused call";
}

// A caller workspace that is large enough but not kWorkspaceAlignment-byte aligned: an Error
// naming the alignment, for every GPU backend, output untouched; the same call on the aligned
// pointer runs.
TEST_F(GpuHardening, MisalignedWorkspaceIsAnError) {
  const int64_t H = 2, N = 200, D = kHeadDim;
  DeviceBuffer q(H * N * D * 2), o(H * N * D * 2);
  q.fill(0), o.fill(0xFF);
  const std::vector<Backend> backends = auto_and_gpu_backends();
  for (Backend b : backends) {
    SCOPED_TRACE(std::string("backend ") + to_string(b));
    AttentionOptions opt;
    opt.backend = b, opt.pv_mode = PvMode::kFp16;
    const TensorView qv = make_contiguous_view(q.get(), DType::kBF16, {1, H, N, D}, 0);
    const TensorView ov = make_contiguous_view(o.get(), DType::kBF16, {1, H, N, D}, 0);
    const std::size_t need = attention_workspace_size(qv, qv, qv, opt);
    ASSERT_GT(need, 0u);
    DeviceBuffer ws(need + kWorkspaceAlignment);
    for (std::size_t offset : {std::size_t(16), std::size_t(128)}) {
      try {
        attention(qv, qv, qv, ov, opt, {}, Workspace{static_cast<char*>(ws.get()) + offset, need});
        ADD_FAILURE() << "a workspace at offset " << offset << " was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
        EXPECT_NE(std::string(e.what()).find("256-byte aligned"), std::string::npos) << e.what();
      }
    }
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_EQ(count_nonfinite16(o.get(), H * N * D, DType::kBF16), H * N * D) << "output written by a refused call";
    EXPECT_NO_THROW(attention(qv, qv, qv, ov, opt, {}, Workspace{ws.get(), need}));
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_EQ(count_nonfinite16(o.get(), H * N * D, DType::kBF16), 0);
    o.fill(0xFF);
  }
}

// ============================================================================ concurrency
// One problem with its device inputs, its outputs and, optionally, its own workspace.
struct Job {
  Backend backend = Backend::kSm80;
  PvMode mode = PvMode::kFp16;
  DType dtype = DType::kBF16;
  Layout layout = Layout::kHND;
  MaskMode mask = MaskMode::kNone;
  int64_t b = 1, hq = 4, hkv = 4, n = 300, d = kHeadDim;
  bool own_workspace = false;
  DeviceBuffer q, k, v, o, lse, ws;

  std::vector<int64_t> shape(int64_t h) const {
    return layout == Layout::kHND ? std::vector<int64_t>{b, h, n, d} : std::vector<int64_t>{b, n, h, d};
  }
  int64_t q_elems() const { return b * hq * n * d; }
  AttentionOptions options() const {
    AttentionOptions o;
    o.backend = backend, o.pv_mode = mode, o.layout = layout, o.mask = mask;
    return o;
  }
  void make(uint64_t seed) {
    const int64_t kv_elems = b * hkv * n * d;
    q = DeviceBuffer(q_elems() * 2), k = DeviceBuffer(kv_elems * 2), v = DeviceBuffer(kv_elems * 2);
    o = DeviceBuffer(q_elems() * 2), lse = DeviceBuffer(b * hq * n * 4);
    fill_family(q.get(), q_elems(), d, seed, 0.0f, dtype);
    fill_family(k.get(), kv_elems, d, seed + 1, 6.0f, dtype);
    fill_family(v.get(), kv_elems, d, seed + 2, 0.0f, dtype);
    if (own_workspace) {
      const std::size_t bytes = attention_workspace_size(view(q.get(), hq), view(k.get(), hkv), view(v.get(), hkv), options());
      ws = DeviceBuffer(std::max<std::size_t>(bytes, 1));
    }
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
  }
  TensorView view(void* p, int64_t h) const { return view4(p, dtype, shape(h), 0); }
  // Poisons the outputs and runs the call on `stream` (asynchronously).
  void run(cudaStream_t stream) {
    SAGEATTN_CUDA_CHECK(cudaMemsetAsync(o.get(), 0xFF, o.bytes(), stream));
    SAGEATTN_CUDA_CHECK(cudaMemsetAsync(lse.get(), 0xFF, lse.bytes(), stream));
    attention(view(q.get(), hq), view(k.get(), hkv), view(v.get(), hkv), view(o.get(), hq), options(),
              make_contiguous_view(lse.get(), DType::kF32, {b, hq, n}, 0), Workspace{ws.get(), ws.bytes()}, stream);
  }
  void results(cudaStream_t stream, std::vector<uint16_t>& out, std::vector<float>& l) const {
    out.resize(q_elems()), l.resize(b * hq * n);
    SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(out.data(), o.get(), o.bytes(), cudaMemcpyDeviceToHost, stream));
    SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(l.data(), lse.get(), lse.bytes(), cudaMemcpyDeviceToHost, stream));
    SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
};

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { SAGEATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

TEST_F(GpuHardening, ConcurrentThreadsMatchSerialCalls) {
  constexpr int kThreads = 8;
  const int rounds = quick_mode() ? 1 : 3;
  const std::vector<Backend> backends = gpu_backends();
  const std::vector<PvMode> modes = gpu_modes();
  std::vector<Job> jobs(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    Job& j = jobs[t];
    j.backend = backends[t % backends.size()];
    j.mode = modes[(t / backends.size()) % modes.size()];
    if (!served(j.backend, j.mode)) j.mode = PvMode::kFp16;
    j.dtype = t % 2 ? DType::kF16 : DType::kBF16;
    j.layout = t % 4 == 3 ? Layout::kNHD : Layout::kHND;
    j.mask = t % 3 == 0 ? MaskMode::kCausal : MaskMode::kNone;
    j.b = 1 + t % 2, j.hq = 4, j.hkv = t % 2 ? 2 : 4;
    j.n = (quick_mode() ? 100 : 700) + 97 * t;
    j.own_workspace = t % 2 == 0;
    j.make(100 + 10 * t);
  }
  // Serial reference: one call at a time.
  std::vector<std::vector<uint16_t>> ref_out(kThreads);
  std::vector<std::vector<float>> ref_lse(kThreads);
  {
    Stream s;
    for (int t = 0; t < kThreads; ++t) jobs[t].run(s.s), jobs[t].results(s.s, ref_out[t], ref_lse[t]);
  }
  // All threads at once, each on its own stream, `rounds` calls each.
  std::atomic<int> ready{0};
  std::vector<int64_t> bad(kThreads, 0);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      try {
        SAGEATTN_CUDA_CHECK(cudaSetDevice(0));
        Stream s;
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        std::vector<uint16_t> out;
        std::vector<float> l;
        for (int r = 0; r < rounds; ++r) {
          jobs[t].run(s.s);
          jobs[t].results(s.s, out, l);
          bad[t] += mismatches(out, ref_out[t]) + mismatches(l, ref_lse[t]);
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    SCOPED_TRACE("thread " + std::to_string(t) + ": " + label(jobs[t].backend, jobs[t].mode) + ", n " +
                 std::to_string(jobs[t].n) + (jobs[t].own_workspace ? ", own workspace" : ", library workspace"));
    EXPECT_EQ(errors[t], "");
    EXPECT_EQ(bad[t], 0) << "results differ from the serial call";
    const uint16_t exp_mask = jobs[t].dtype == DType::kBF16 ? 0x7F80 : 0x7C00;
    EXPECT_EQ(std::count_if(ref_out[t].begin(), ref_out[t].end(), [&](uint16_t u) { return (u & exp_mask) == exp_mask; }), 0)
        << "the serial reference itself holds unwritten or non-finite outputs";
  }
}

// The same inputs give the same bits: run to run, with the library's workspace or the caller's,
// on another stream.
TEST_F(GpuHardening, RepeatedCallsAreBitIdentical) {
  for (Backend backend : gpu_backends())
    for (PvMode mode : gpu_modes()) {
      if (!served(backend, mode)) continue;
      SCOPED_TRACE(label(backend, mode));
      Job j;
      j.backend = backend, j.mode = mode, j.mask = MaskMode::kCausal;
      j.b = 2, j.hq = 8, j.hkv = 2, j.n = quick_mode() ? 300 : 2050;
      j.own_workspace = true;
      j.make(7);
      Stream s1, s2;
      std::vector<uint16_t> o1, o2, o3;
      std::vector<float> l1, l2, l3;
      DeviceBuffer ws = std::move(j.ws);
      j.run(s1.s), j.results(s1.s, o1, l1);  // the library's workspace
      j.ws = std::move(ws);
      j.run(s1.s), j.results(s1.s, o2, l2);  // the caller's
      j.run(s2.s), j.results(s2.s, o3, l3);  // another stream
      EXPECT_EQ(mismatches(o1, o2), 0);
      EXPECT_EQ(mismatches(o1, o3), 0);
      EXPECT_EQ(mismatches(l1, l2), 0);
      EXPECT_EQ(mismatches(l1, l3), 0);
      int64_t nonfinite = 0;
      for (float x : l1) nonfinite += !std::isfinite(x);
      EXPECT_EQ(nonfinite, 0);
    }
}

// A call captured into a CUDA graph (global capture mode, a non-default stream), instantiated and
// launched on fresh inputs copied into the captured buffers, computes what direct calls compute.
TEST_F(GpuHardening, CudaGraphCaptureReplaysLikeDirectCalls) {
  for (Backend backend : gpu_backends())
    for (bool own_workspace : {false, true}) {
      const PvMode mode = fp8_or_fp16();
      SCOPED_TRACE(label(backend, mode) + (own_workspace ? ", caller workspace" : ", library workspace (graph memory nodes)"));
      Job j;
      j.backend = backend, j.mode = mode, j.mask = MaskMode::kCausal;
      j.b = 2, j.hq = 4, j.hkv = 2, j.n = 777;
      j.own_workspace = own_workspace;
      j.make(50);
      // Three input sets: direct results of each (the first call also loads the kernels).
      const int64_t kv_elems = j.b * j.hkv * j.n * j.d;
      std::vector<DeviceBuffer> qs, ks, vs;
      std::vector<std::vector<uint16_t>> want_out(3);
      std::vector<std::vector<float>> want_lse(3);
      Stream s;
      // Input set i into the call's buffers, on s (ordered before whatever s runs next).
      auto copy_inputs = [&](int i) {
        SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(j.q.get(), qs[i].get(), j.q.bytes(), cudaMemcpyDeviceToDevice, s.s));
        SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(j.k.get(), ks[i].get(), j.k.bytes(), cudaMemcpyDeviceToDevice, s.s));
        SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(j.v.get(), vs[i].get(), j.v.bytes(), cudaMemcpyDeviceToDevice, s.s));
      };
      for (int i = 0; i < 3; ++i) {
        qs.emplace_back(j.q_elems() * 2), ks.emplace_back(kv_elems * 2), vs.emplace_back(kv_elems * 2);
        fill_family(qs[i].get(), j.q_elems(), j.d, 60 + 3 * i, 0.0f, j.dtype);
        fill_family(ks[i].get(), kv_elems, j.d, 61 + 3 * i, 6.0f, j.dtype);
        fill_family(vs[i].get(), kv_elems, j.d, 62 + 3 * i, 0.0f, j.dtype);
        SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());  // the fills ran on the legacy stream
        copy_inputs(i);
        j.run(s.s), j.results(s.s, want_out[i], want_lse[i]);
      }
      // Capture a call on inputs 0; nothing may run during capture.
      copy_inputs(0);
      SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(s.s));
      j.o.fill(0xFF), j.lse.fill(0xFF);
      SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
      cudaGraph_t graph = nullptr;
      SAGEATTN_CUDA_CHECK(cudaStreamBeginCapture(s.s, cudaStreamCaptureModeGlobal));
      std::string capture_error;
      try {
        attention(j.view(j.q.get(), j.hq), j.view(j.k.get(), j.hkv), j.view(j.v.get(), j.hkv),
                  j.view(j.o.get(), j.hq), j.options(),
                  make_contiguous_view(j.lse.get(), DType::kF32, {j.b, j.hq, j.n}, 0), Workspace{j.ws.get(), j.ws.bytes()},
                  s.s);
      } catch (const std::exception& e) {
        capture_error = e.what();
      }
      const cudaError_t end = cudaStreamEndCapture(s.s, &graph);
      ASSERT_EQ(capture_error, "") << "the call failed under capture";
      ASSERT_EQ(end, cudaSuccess) << "capture was invalidated: " << cudaGetErrorString(end);
      ASSERT_NE(graph, nullptr);
      std::size_t nodes = 0;
      SAGEATTN_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
      EXPECT_GE(nodes, 2u) << "the quantizer and the attention kernel were not captured";
      const std::vector<uint16_t> untouched = j.o.download<uint16_t>(j.q_elems());
      EXPECT_EQ(std::count(untouched.begin(), untouched.end(), uint16_t(0xFFFF)), j.q_elems())
          << "the call ran during capture instead of being recorded";
      cudaGraphExec_t exec = nullptr;
      SAGEATTN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      for (int i : {1, 2, 1}) {
        SCOPED_TRACE("graph launch on inputs " + std::to_string(i));
        copy_inputs(i);
        SAGEATTN_CUDA_CHECK(cudaMemsetAsync(j.o.get(), 0xFF, j.o.bytes(), s.s));
        SAGEATTN_CUDA_CHECK(cudaMemsetAsync(j.lse.get(), 0xFF, j.lse.bytes(), s.s));
        SAGEATTN_CUDA_CHECK(cudaGraphLaunch(exec, s.s));
        std::vector<uint16_t> out;
        std::vector<float> l;
        j.results(s.s, out, l);
        EXPECT_EQ(mismatches(out, want_out[i]), 0);
        EXPECT_EQ(mismatches(l, want_lse[i]), 0);
      }
      SAGEATTN_CUDA_CHECK(cudaGraphExecDestroy(exec));
      SAGEATTN_CUDA_CHECK(cudaGraphDestroy(graph));
    }
}

// ============================================================================ special values
using special::SpecialCase;
using special::SpecialInputs;
using special::SpecialResult;

SpecialResult run_gpu(const SpecialCase& c, const SpecialInputs& in, PvMode mode, Backend backend) {
  DeviceBuffer q = DeviceBuffer::from(special::encode_all(c.dtype, in.q));
  DeviceBuffer k = DeviceBuffer::from(special::encode_all(c.dtype, in.k));
  DeviceBuffer v = DeviceBuffer::from(special::encode_all(c.dtype, in.v));
  DeviceBuffer o(c.hq * c.nq * c.d * 2), l(c.hq * c.nq * 4);
  o.fill(0xFF), l.fill(0xFF);
  attention(make_contiguous_view(q.get(), c.dtype, {1, c.hq, c.nq, c.d}, 0),
            make_contiguous_view(k.get(), c.dtype, {1, c.hkv, c.nk, c.d}, 0),
            make_contiguous_view(v.get(), c.dtype, {1, c.hkv, c.nk, c.d}, 0),
            make_contiguous_view(o.get(), c.dtype, {1, c.hq, c.nq, c.d}, 0), special::special_options(c, in, mode, backend),
            make_contiguous_view(l.get(), DType::kF32, {1, c.hq, c.nq}, 0));
  SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
  return {o.download<uint16_t>(c.hq * c.nq * c.d), l.download<float>(c.hq * c.nq)};
}

// The poked cases of the CPU suite (tests/cpu/test_special_values.cpp).
std::vector<SpecialCase> poked_cases() {
  using special::kInf;
  using special::kNaN;
  auto poked = [](std::string name, std::vector<special::Poke> pokes) {
    SpecialCase c;
    c.name = std::move(name);
    c.pokes = std::move(pokes);
    return c;
  };
  std::vector<SpecialCase> v;
  v.push_back(poked("nan_q", {{'q', 1, 37, 5, kNaN}}));
  v.push_back(poked("inf_q_per_thread", {{'q', 0, 199, 127, -kInf}, {'q', 2, 100, 0, kInf}}));
  v.back().gran = Granularity::kPerThread;
  v.push_back(poked("nan_q_per_block", {{'q', 3, 150, 64, kNaN}}));
  v.back().gran = Granularity::kPerBlock;
  v.push_back(poked("nan_k_smoothed", {{'k', 0, 7, 3, kNaN}}));
  v.push_back(poked("inf_k_smoothed", {{'k', 1, 199, 127, kInf}}));
  v.push_back(poked("inf_k_unsmoothed_causal_per_thread", {{'k', 1, 130, 9, kInf}}));
  v.back().smooth_k = Smoothing::kOff, v.back().mask = MaskMode::kCausal, v.back().gran = Granularity::kPerThread;
  v.push_back(poked("ninf_k_unsmoothed_causal_nq_lt_nk", {{'k', 0, 70, 100, -kInf}}));
  v.back().smooth_k = Smoothing::kOff, v.back().mask = MaskMode::kCausal, v.back().nq = 150;
  v.push_back(poked("nan_v", {{'v', 1, 50, 64, kNaN}}));
  v.push_back(poked("ninf_v_fully_masked_rows", {{'v', 0, 199, 10, -kInf}}));
  v.back().mask = MaskMode::kCausal, v.back().nq = 230;
  v.push_back(poked("nan_v_smoothed", {{'v', 0, 3, 0, kNaN}}));
  v.back().smooth_v = Smoothing::kOn;
  v.push_back(poked("inf_v_causal_f16", {{'v', 1, 150, 33, kInf}}));
  v.back().dtype = DType::kF16, v.back().mask = MaskMode::kCausal;
  v.push_back(poked("nan_q_and_inf_v_other_heads", {{'q', 3, 0, 0, kNaN}, {'v', 0, 0, 1, kInf}}));
  return v;
}

class GpuSpecialValues : public Hd128Test, public ::testing::WithParamInterface<SpecialCase> {};

TEST_P(GpuSpecialValues, NanExactlyWhereTheContractSaysElseUnchanged) {
  const SpecialCase& c = GetParam();
  const SpecialInputs in = special::make_special_inputs(c), clean_in = special::make_special_inputs(c, false);
  for (Backend backend : gpu_backends())
    for (PvMode mode : gpu_modes()) {
      if (!served(backend, mode)) continue;
      SCOPED_TRACE(label(backend, mode));
      const special::ExpectedSpecial e = special::expected_special(c, in, tiles_of(backend));
      const SpecialResult clean = run_gpu(c, clean_in, mode, backend), got = run_gpu(c, in, mode, backend);
      EXPECT_EQ(special::check_poked(c, e, got, clean), "");
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuSpecialValues, ::testing::ValuesIn(poked_cases()),
                         [](const auto& info) { return info.param.name; });

SpecialCase valued(std::string name, special::Fill fill, DType dtype = DType::kBF16) {
  SpecialCase c;
  c.name = std::move(name);
  c.fill = fill;
  c.dtype = dtype;
  return c;
}
std::vector<double> decoded(const SpecialCase& c, const SpecialResult& r) {
  std::vector<double> x(r.out.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = special::decode(c.dtype, r.out[i]);
  return x;
}

// Q = K = V = 0 (every output exactly 0, LSE ln(visible keys)); K and V constant over tokens
// (exactly V's constant; fp8_fp16acc within its fp16 accumulator's 2^-10); Q = 0 (the mean of the
// visible V rows, within the exact budget of the k_channel_bias family).
TEST_F(GpuSpecialValues, ZeroAndConstantInputs) {
  for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
    SpecialCase zero = valued("zero_all", special::Fill::kZeroAll), konst = valued("const_kv", special::Fill::kConstKV, DType::kF16);
    SpecialCase zq = valued("zero_q", special::Fill::kZeroQ);
    zero.mask = konst.mask = zq.mask = mask;
    zero.nq = 150;
    const SpecialInputs zin = special::make_special_inputs(zero), kin = special::make_special_inputs(konst),
                        qin = special::make_special_inputs(zq);
    const special::ExactSpecial zq_exact = special::exact_special(zq, qin);
    for (Backend backend : gpu_backends())
      for (PvMode mode : gpu_modes()) {
        if (!served(backend, mode)) continue;
        SCOPED_TRACE(label(backend, mode) + (mask == MaskMode::kCausal ? ", causal" : ""));
        const SpecialResult z = run_gpu(zero, zin, mode, backend);
        int64_t nonzero = 0, lse_bad = 0;
        for (uint16_t u : z.out) nonzero += special::decode(zero.dtype, u) != 0.0;
        for (int64_t i = 0; i < int64_t(z.lse.size()); ++i) {
          const double want = std::log(double(special::last_key(zero, i % zero.nq) + 1));
          lse_bad += !(std::fabs(z.lse[i] - want) <= 1e-5 * std::max(1.0, want));
        }
        EXPECT_EQ(nonzero, 0) << "all-zero inputs";
        EXPECT_EQ(lse_bad, 0) << "all-zero inputs: LSE";

        const SpecialResult k = run_gpu(konst, kin, mode, backend);
        int64_t wrong = 0;
        for (int64_t h = 0; h < konst.hq; ++h)
          for (int64_t i = 0; i < konst.nq; ++i)
            for (int64_t d = 0; d < konst.d; ++d) {
              const double want = kin.v[((h / 2) * konst.nk) * konst.d + d];
              const double got = special::decode(konst.dtype, k.out[(h * konst.nq + i) * konst.d + d]);
              wrong += mode == PvMode::kFp8Fp16Acc ? !(std::fabs(got - want) <= 0x1p-10 * std::fabs(want)) : got != want;
            }
        EXPECT_EQ(wrong, 0) << "constant K and V";

        const SpecialResult q0 = run_gpu(zq, qin, mode, backend);
        const std::vector<double> got = decoded(zq, q0);
        const cpu::ErrorMetrics m = cpu::error_metrics(zq_exact.out.data(), got.data(), int64_t(got.size()));
        const bool fp16 = mode == PvMode::kFp16;
        EXPECT_EQ(m.nonfinite_mismatch, 0) << "zero Q";
        EXPECT_GE(m.cos, fp16 ? 0.99980 : 0.9985) << "zero Q";
        EXPECT_LE(m.rel_l1, fp16 ? 0.025 : 0.075) << "zero Q";
      }
  }
}

// Huge logits with V = 3 everywhere (tests/cpu/test_special_values.cpp, the same cases): any
// weighting gives 3, so the output shows whether P and the row sum l agree.
TEST_F(GpuSpecialValues, HugeLogitsKeepPAndRowSumConsistent) {
  for (const SpecialCase& c : special::const_v_logit_cases()) {
    const SpecialInputs in = special::make_special_inputs(c);
    for (Backend backend : gpu_backends())
      for (PvMode mode : gpu_modes()) {
        if (!served(backend, mode)) continue;
        SCOPED_TRACE(label(backend, mode) + ", " + c.name);
        const SpecialResult r = run_gpu(c, in, mode, backend);
        EXPECT_EQ(special::check_finite(c, r), "");
        EXPECT_LE(special::const_v_worst(c, r), special::const_v_bound(mode));
      }
  }
}

// fp16 inputs near 65504: finite and accurate with an O(1)-logit scale; finite (and inside the
// values' range) with the default scale's ~1e10 logits; V at the dtype's largest value saturates
// instead of overflowing (fp16 65504, bf16 3.39e38).
TEST_F(GpuSpecialValues, NearOverflowInputs) {
  SpecialCase near = valued("f16_near_max", special::Fill::kScaledNearMax, DType::kF16);
  SpecialCase huge = valued("f16_huge_logits", special::Fill::kHugeLogits, DType::kF16);
  const SpecialInputs nin = special::make_special_inputs(near), hin = special::make_special_inputs(huge);
  const special::ExactSpecial near_exact = special::exact_special(near, nin);
  for (Backend backend : gpu_backends())
    for (PvMode mode : gpu_modes()) {
      if (!served(backend, mode)) continue;
      SCOPED_TRACE(label(backend, mode));
      const bool fp16 = mode == PvMode::kFp16;
      const SpecialResult n = run_gpu(near, nin, mode, backend);
      EXPECT_EQ(special::check_finite(near, n), "");
      const std::vector<double> got = decoded(near, n);
      const cpu::ErrorMetrics m = cpu::error_metrics(near_exact.out.data(), got.data(), int64_t(got.size()));
      EXPECT_GE(m.cos, fp16 ? 0.99980 : 0.9985) << "f16 near max";
      EXPECT_LE(m.rel_l1, fp16 ? 0.025 : 0.075) << "f16 near max";

      const SpecialResult h = run_gpu(huge, hin, mode, backend);
      EXPECT_EQ(special::check_finite(huge, h), "");
      int64_t outside = 0;
      for (int64_t hd = 0; hd < huge.hq; ++hd)
        for (int64_t d = 0; d < huge.d; ++d) {
          double vmax = 0.0;
          for (int64_t j = 0; j < huge.nk; ++j) vmax = std::max(vmax, std::fabs(double(hin.v[((hd / 2) * huge.nk + j) * huge.d + d])));
          for (int64_t i = 0; i < huge.nq; ++i)
            outside += std::fabs(special::decode(huge.dtype, h.out[(hd * huge.nq + i) * huge.d + d])) > vmax * (1.0 + 1.0 / 16);
        }
      EXPECT_EQ(outside, 0) << "huge logits: outputs outside the values' range";

      for (DType dtype : {DType::kF16, DType::kBF16}) {
        SpecialCase at_max = valued("v_at_max", special::Fill::kVAtMax, dtype);
        at_max.mask = MaskMode::kCausal;
        const SpecialInputs ain = special::make_special_inputs(at_max);
        const SpecialResult a = run_gpu(at_max, ain, mode, backend);
        EXPECT_EQ(special::check_finite(at_max, a), "") << to_string(dtype);
        const double vmax = special::dtype_max(dtype);
        const double bound = (fp16 ? 0x1p-11 : 0x1p-4) + (dtype == DType::kBF16 ? 0x1p-8 : 0x1p-11);
        double worst = 0.0;
        for (int64_t i = 0; i < int64_t(a.out.size()); ++i) {
          const double want = (i % at_max.d) % 2 == 0 ? vmax : -vmax, x = special::decode(dtype, a.out[i]);
          worst = std::max(worst, std::isfinite(x) ? std::fabs(x - want) / vmax : 1e9);
        }
        EXPECT_LE(worst, bound) << "V at the largest " << to_string(dtype);
      }
    }
}

}  // namespace
}  // namespace sageattn::test
