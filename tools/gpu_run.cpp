// tools/gpu_run.cpp: the GPU run path of `sageattn bench` (see gpu_run.h).
#include "gpu_run.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "api/validate.h"
#include "attention/sm80/launch.h"
#include "attention/sm90/launch.h"
#include "common/cuda_check.h"
#include "cpu/reference.h"

namespace sageattn::cli {
namespace {

class DeviceMemory {
 public:
  explicit DeviceMemory(std::size_t bytes) { SAGEATTN_CUDA_CHECK(cudaMalloc(&ptr_, bytes)); }
  ~DeviceMemory() { cudaFree(ptr_); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

class Event {
 public:
  Event() { SAGEATTN_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

float elapsed_ms(const Event& a, const Event& b) {
  float ms = 0.0f;
  SAGEATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, a.get(), b.get()));
  return ms;
}

TensorView device_view(const Problem& p, void* data, int64_t heads, int64_t tokens) {
  const std::vector<int64_t> s = p.shape(heads, tokens);
  return make_contiguous_view(data, p.dtype, {s[0], s[1], s[2], s[3]}, 0);
}

}  // namespace

std::string gpu_description() {
  cudaDeviceProp prop{};
  SAGEATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  int runtime = 0;
  SAGEATTN_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  return format("%s, sm_%d%d, %d SMs, CUDA runtime %d", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, runtime);
}

SubsetReference exact_reference_subset(const Problem& p, const Tensors& t, int64_t max_heads,
                                       int64_t max_rows) {
  SubsetReference r;
  r.rows = std::min(p.seqlen_q, max_rows);
  r.row0 = p.seqlen_q - r.rows;
  // Whole GQA groups (or part of the first one), so query head h still reads KV head h / group.
  const int64_t group = p.heads_q / p.heads_kv;
  r.heads = std::min(p.heads_q, max_heads);
  if (r.heads >= group) r.heads = r.heads / group * group;
  const int64_t kv_heads = r.heads >= group ? r.heads / group : 1;
  // Tokens [t0, n) of the first `heads` heads of batch 0 (which starts at element 0).
  auto seq = [&](const std::vector<uint16_t>& x, int64_t heads_total, int64_t heads, int64_t n,
                 int64_t t0) {
    cpu::SeqView v;
    v.dtype = p.dtype, v.heads = heads, v.tokens = n - t0, v.dim = p.head_dim;
    v.stride_h = p.layout == Layout::kHND ? n * p.head_dim : p.head_dim;
    v.stride_n = p.layout == Layout::kHND ? p.head_dim : heads_total * p.head_dim;
    v.data = const_cast<uint16_t*>(x.data()) + t0 * v.stride_n;
    return v;
  };
  cpu::ExactConfig cfg;
  cfg.mask = p.mask;
  cfg.scale = p.resolved_scale();
  r.values.resize(static_cast<std::size_t>(r.heads * r.rows * p.head_dim));
  const cpu::SeqView q = seq(t.q, p.heads_q, r.heads, p.seqlen_q, r.row0);
  const cpu::SeqView k = seq(t.k, p.heads_kv, kv_heads, p.seqlen_k, 0);
  const cpu::SeqView v = seq(t.v, p.heads_kv, kv_heads, p.seqlen_k, 0);
  cpu::exact_attention(q, k, v, cfg, r.values.data(), nullptr);
  return r;
}

GpuModeResult run_mode_gpu(const Problem& p, const Tensors& t, PvMode mode, int64_t warmup,
                           int64_t iters, const SubsetReference& ref) {
  SAGEATTN_CUDA_CHECK(cudaSetDevice(0));
  const std::size_t qb = t.q.size() * 2, kb = t.k.size() * 2;
  DeviceMemory q(qb), k(kb), v(kb), out(qb);
  SAGEATTN_CUDA_CHECK(cudaMemcpy(q.get(), t.q.data(), qb, cudaMemcpyHostToDevice));
  SAGEATTN_CUDA_CHECK(cudaMemcpy(k.get(), t.k.data(), kb, cudaMemcpyHostToDevice));
  SAGEATTN_CUDA_CHECK(cudaMemcpy(v.get(), t.v.data(), kb, cudaMemcpyHostToDevice));
  SAGEATTN_CUDA_CHECK(cudaMemset(out.get(), 0xFF, qb));  // NaN: unwritten elements show
  cudaStream_t stream = nullptr;
  SAGEATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  struct StreamGuard {
    cudaStream_t s;
    ~StreamGuard() { cudaStreamDestroy(s); }
  } guard{stream};

  const TensorView qv = device_view(p, q.get(), p.heads_q, p.seqlen_q);
  const TensorView kv = device_view(p, k.get(), p.heads_kv, p.seqlen_k);
  const TensorView vv = device_view(p, v.get(), p.heads_kv, p.seqlen_k);
  const TensorView ov = device_view(p, out.get(), p.heads_q, p.seqlen_q);
  const AttentionOptions opts = p.options(mode);
  // A workspace allocated once, as an engine would, so allocation stays out of the timing.
  const std::size_t ws_bytes = attention_workspace_size(qv, kv, vv, opts);
  DeviceMemory ws(std::max<std::size_t>(ws_bytes, 1));
  const Workspace workspace{ws.get(), ws_bytes};

  Event start, mid, stop;
  std::vector<double> e2e, kernel, quant;
  // Each iteration times the call end to end through the public API, then the same call through
  // its backend (sm80 or sm90) with an event between quantization and the attention kernel, so that each split
  // run gives both parts (quantization = start..mid, kernel = mid..stop). The two alternate, so
  // that clock and thermal drift hit both alike.
  const detail::AttentionParams params = detail::make_dense_params(qv, kv, vv, ov, {}, opts);
  const bool split = params.backend == Backend::kSm80 || params.backend == Backend::kSm90;
  for (int64_t i = 0; i < warmup + iters; ++i) {
    SAGEATTN_CUDA_CHECK(cudaEventRecord(start.get(), stream));
    attention(qv, kv, vv, ov, opts, {}, workspace, stream);
    SAGEATTN_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
    SAGEATTN_CUDA_CHECK(cudaEventSynchronize(stop.get()));
    if (i >= warmup) e2e.push_back(elapsed_ms(start, stop));
    if (!split) continue;
    SAGEATTN_CUDA_CHECK(cudaEventRecord(start.get(), stream));
    if (params.backend == Backend::kSm90) sm90::run(params, workspace, stream, mid.get());
    else sm80::run(params, workspace, stream, mid.get());
    SAGEATTN_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
    SAGEATTN_CUDA_CHECK(cudaEventSynchronize(stop.get()));
    if (i >= warmup) {
      quant.push_back(elapsed_ms(start, mid));
      kernel.push_back(elapsed_ms(mid, stop));
    }
  }

  std::vector<uint16_t> host(t.q.size());
  SAGEATTN_CUDA_CHECK(cudaMemcpy(host.data(), out.get(), qb, cudaMemcpyDeviceToHost));
  // Batch 0, heads [0, ref.heads), rows [ref.row0, Nq) in logical order.
  std::vector<double> got(ref.values.size());
  const int64_t n = p.seqlen_q, d = p.head_dim;
  for (int64_t h = 0; h < ref.heads; ++h)
    for (int64_t i = 0; i < ref.rows; ++i) {
      const int64_t tok = ref.row0 + i;
      const int64_t row = p.layout == Layout::kHND ? h * n + tok : tok * p.heads_q + h;
      for (int64_t c = 0; c < d; ++c)
        got[static_cast<std::size_t>((h * ref.rows + i) * d + c)] =
            decode_dtype(host[static_cast<std::size_t>(row * d + c)], p.dtype);
    }
  // Every element of the whole output was written (NaN poison gone).
  int64_t unwritten = 0;
  for (uint16_t x : host) unwritten += (x == 0xFFFF);
  if (unwritten)
    throw Error(ErrorCode::kInternal, format("%lld output elements were not written by the GPU",
                                             static_cast<long long>(unwritten)));

  GpuModeResult r;
  r.result.mode = mode;
  r.result.metrics = cpu::error_metrics(ref.values.data(), got.data(),
                                        static_cast<int64_t>(got.size()));
  r.result.median_ms = median(e2e);
  r.kernel_ms = kernel.empty() ? 0.0 : median(kernel);
  r.quant_ms = quant.empty() ? 0.0 : median(quant);
  return r;
}

}  // namespace sageattn::cli
