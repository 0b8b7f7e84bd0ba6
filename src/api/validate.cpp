// src/api/validate.cpp: argument validation and Params filling (see validate.h).
#include "api/validate.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "api/gpu_backend.h"
#include "common/check.h"

namespace sageattn::detail {
namespace {

std::string shape_str(const TensorView& t) {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < t.ndim; ++i) os << (i ? ", " : "") << t.shape[i];
  os << "]";
  return os.str();
}

bool is_given(const TensorView& t) { return t.data != nullptr || t.ndim != 0; }

// A dtype's name, or its raw value when it is not a DType at all.
std::string dtype_name(DType d) {
  const std::string name = to_string(d);
  return name == "invalid_dtype" ? concat("invalid dtype value ", static_cast<int>(d)) : name;
}

template <typename E>
void check_enum(E value, E last, const char* name) {
  const int v = static_cast<int>(value);
  SAGEATTN_CHECK(v >= 0 && v <= static_cast<int>(last), "options.", name,
                 " has an invalid value ", v);
}

void check_options(const AttentionOptions& o) {
  check_enum(o.layout, Layout::kNHD, "layout");
  check_enum(o.mask, MaskMode::kCausal, "mask");
  check_enum(o.pv_mode, PvMode::kFp8Fp16Acc, "pv_mode");
  check_enum(o.granularity, Granularity::kPerThread, "granularity");
  check_enum(o.smooth_k, Smoothing::kOn, "smooth_k");
  check_enum(o.smooth_v, Smoothing::kOn, "smooth_v");
  check_enum(o.backend, Backend::kSm90, "backend");
  if (o.scale) {
    SAGEATTN_CHECK(std::isfinite(*o.scale), "options.scale must be finite, got ", *o.scale);
    // The kernels fold scale * log2(e) into fp32 dequantization factors.
    SAGEATTN_CHECK(std::isfinite(static_cast<float>(static_cast<double>(*o.scale) * kLog2e)),
                   "options.scale=", *o.scale, " is too large: scale * log2(e) overflows fp32");
  }
}

// Common checks of one tensor argument: rank, non-negative shape whose element count fits in
// int64, data present, unit stride on the last dim (unless `unit_last` is false).
void check_tensor(const TensorView& t, const char* name, int ndim, bool unit_last = true) {
  SAGEATTN_CHECK(t.ndim == ndim, name, " must have ", ndim, " dims, got ndim=", t.ndim);
  int64_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    SAGEATTN_CHECK(t.shape[i] >= 0, name, " has a negative size ", t.shape[i], " in dim ", i);
    SAGEATTN_CHECK(!__builtin_mul_overflow(count, t.shape[i], &count), name, " shape ",
                   shape_str(t), " has more elements than int64 can count");
  }
  SAGEATTN_CHECK(count == 0 || t.data != nullptr, name, " has null data but shape ", shape_str(t));
  if (unit_last && t.shape[ndim - 1] > 1)
    SAGEATTN_CHECK(t.stride[ndim - 1] == 1, name, " must have unit stride on its last dim, got ",
                   t.stride[ndim - 1]);
}

void check_qkv_dtypes(const TensorView& q, const TensorView& k, const TensorView& v,
                      const TensorView& out) {
  SAGEATTN_CHECK(q.dtype == DType::kF16 || q.dtype == DType::kBF16,
                 "q dtype must be f16 or bf16, got ", dtype_name(q.dtype));
  SAGEATTN_CHECK(k.dtype == q.dtype, "k dtype ", dtype_name(k.dtype), " does not match q dtype ",
                 dtype_name(q.dtype));
  SAGEATTN_CHECK(v.dtype == q.dtype, "v dtype ", dtype_name(v.dtype), " does not match q dtype ",
                 dtype_name(q.dtype));
  SAGEATTN_CHECK(out.dtype == q.dtype, "out dtype ", dtype_name(out.dtype),
                 " does not match q dtype ", dtype_name(q.dtype));
}

void check_devices(const TensorView& q, std::initializer_list<std::pair<const TensorView*, const char*>> others) {
  for (const auto& [t, name] : others)
    SAGEATTN_CHECK(t->device == q.device, name, " is on device ", t->device,
                   " but q is on device ", q.device, " (-1 = host)");
}

void check_head_dim(int64_t dq, int64_t dk, int64_t dv, int64_t dout) {
  SAGEATTN_CHECK(dk == dq, "head_dim mismatch: q=", dq, " k=", dk);
  SAGEATTN_CHECK(dv == dq, "head_dim mismatch: q=", dq, " v=", dv);
  SAGEATTN_CHECK(dout == dq, "head_dim mismatch: q=", dq, " out=", dout);
  SAGEATTN_CHECK(dq >= kMinHeadDim && dq <= kMaxHeadDim && dq % kHeadDimMultiple == 0,
                 "head_dim must be a multiple of ", kHeadDimMultiple, " in [", kMinHeadDim, ", ",
                 kMaxHeadDim, "], got ", dq);
}

void check_heads(int64_t hq, int64_t hk, int64_t hv) {
  SAGEATTN_CHECK(hk == hv, "heads mismatch: k has ", hk, " heads, v has ", hv);
  SAGEATTN_CHECK(hk >= 1, "k and v need at least one head, got heads_kv=", hk);
  SAGEATTN_CHECK(hq % hk == 0, "heads_q=", hq, " is not a multiple of heads_kv=", hk,
                 " (GQA/MQA needs heads_q % heads_kv == 0)");
}

// Chooses the backend and PV mode, checking that the pair can run where the tensors live.
void resolve_backend(AttentionParams& p, const AttentionOptions& o) {
  if (p.device == kHostDevice) {
    SAGEATTN_CHECK(o.backend == Backend::kAuto || o.backend == Backend::kCpu, "backend ",
                   to_string(o.backend), " needs GPU tensors, but the tensors are on the host");
    p.backend = Backend::kCpu;
  } else {
    SAGEATTN_CHECK(p.device >= 0, "device must be a CUDA ordinal or -1 (host), got ", p.device);
    SAGEATTN_CHECK(o.backend != Backend::kCpu, "backend cpu needs host tensors, but the tensors ",
                   "are on device ", p.device);
    const int count = gpu_device_count();
    SAGEATTN_CHECK_CODE(p.device < count, ErrorCode::kUnsupported, "tensors are on device ",
                        p.device, " but ", count, " CUDA device(s) are usable by this build",
                        gpu_backend_compiled() ? "" : " (the CPU-only library sageattn_cpu: link "
                                                      "sageattn for the GPU backends)");
    const int cc = gpu_compute_capability(p.device);
    p.pv_mode = resolve_pv_mode(o.pv_mode, p.device);  // kAuto: the sm90 answer, until b is known
    Backend b = o.backend;
    if (b == Backend::kAuto) {
      // sm90 where it serves the call (its kernels cover a subset) and is the faster one, else
      // the sm80 kernels, which compute the same contract (README.md, "Status").
      b = gpu_backend_supports(Backend::kSm90, cc) && gpu_auto_prefers_sm90(p) ? Backend::kSm90 : Backend::kSm80;
    }
    if (o.pv_mode == PvMode::kAuto) p.pv_mode = gpu_auto_pv_mode(cc, b == Backend::kSm90);
    SAGEATTN_CHECK_CODE(gpu_backend_supports(b, cc), ErrorCode::kUnsupported, "backend ",
                        to_string(b), " has no kernels in this build for device ", p.device,
                        " (compute capability ", cc / 10, ".", cc % 10, ")");
    p.backend = b;
    const char* why = nullptr;
    SAGEATTN_CHECK_CODE(gpu_backend_serves(p, &why), ErrorCode::kUnsupported, "backend ", to_string(b),
                        " cannot run this call: ", why, " (head_dim ", p.head_dim, ", pv_mode ",
                        to_string(p.pv_mode), ")");
    gpu_require_kernel_image(p.device);
    return;
  }
  p.pv_mode = resolve_pv_mode(o.pv_mode, p.device);
}

void fill_numerics(AttentionParams& p, const AttentionOptions& o) {
  p.mask = o.mask;
  p.scale = o.scale ? *o.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  p.granularity = o.granularity;
  p.smooth_k = o.smooth_k;
  p.smooth_v = o.smooth_v;
  resolve_backend(p, o);
}

}  // namespace

AttentionParams make_dense_params(const TensorView& q, const TensorView& k, const TensorView& v,
                                  const TensorView& out, const TensorView& lse,
                                  const AttentionOptions& options) {
  check_options(options);
  check_tensor(q, "q", 4);
  check_tensor(k, "k", 4);
  check_tensor(v, "v", 4);
  check_tensor(out, "out", 4);
  check_qkv_dtypes(q, k, v, out);
  check_devices(q, {{&k, "k"}, {&v, "v"}, {&out, "out"}});

  // Logical [b, h, n, d] from the layout: NHD keeps tokens in dim 1.
  const bool nhd = options.layout == Layout::kNHD;
  const int hd = nhd ? 2 : 1, nd = nhd ? 1 : 2;
  AttentionParams p;
  p.dtype = q.dtype;
  p.device = q.device;
  p.batch = q.shape[0];
  p.heads_q = q.shape[hd];
  p.heads_kv = k.shape[hd];
  p.seqlen_q = q.shape[nd];
  p.seqlen_k = k.shape[nd];
  p.head_dim = q.shape[3];

  SAGEATTN_CHECK(k.shape[0] == p.batch, "batch mismatch: q=", p.batch, " k=", k.shape[0]);
  SAGEATTN_CHECK(v.shape[0] == p.batch, "batch mismatch: q=", p.batch, " v=", v.shape[0]);
  check_head_dim(p.head_dim, k.shape[3], v.shape[3], out.shape[3]);
  check_heads(p.heads_q, p.heads_kv, v.shape[hd]);
  SAGEATTN_CHECK(v.shape[nd] == p.seqlen_k, "seqlen mismatch: k has ", p.seqlen_k,
                 " tokens, v has ", v.shape[nd]);
  for (int i = 0; i < 4; ++i)
    SAGEATTN_CHECK(out.shape[i] == q.shape[i], "out shape ", shape_str(out),
                   " does not match q shape ", shape_str(q));

  if (is_given(lse)) {
    check_tensor(lse, "lse", 3, /*unit_last=*/false);
    SAGEATTN_CHECK(lse.dtype == DType::kF32, "lse dtype must be f32, got ", dtype_name(lse.dtype));
    SAGEATTN_CHECK(lse.shape[0] == p.batch && lse.shape[1] == p.heads_q && lse.shape[2] == p.seqlen_q,
                   "lse shape ", shape_str(lse), " must be [batch, heads_q, seqlen_q] = [", p.batch,
                   ", ", p.heads_q, ", ", p.seqlen_q, "]");
    check_devices(q, {{&lse, "lse"}});
    p.lse = static_cast<float*>(lse.data);
    p.lse_stride_b = lse.stride[0];
    p.lse_stride_h = lse.stride[1];
    p.lse_stride_n = lse.stride[2];
  }

  p.q = q.data;
  p.k = k.data;
  p.v = v.data;
  p.out = out.data;
  p.q_stride_b = q.stride[0], p.q_stride_h = q.stride[hd], p.q_stride_n = q.stride[nd];
  p.k_stride_b = k.stride[0], p.k_stride_h = k.stride[hd], p.k_stride_n = k.stride[nd];
  p.v_stride_b = v.stride[0], p.v_stride_h = v.stride[hd], p.v_stride_n = v.stride[nd];
  p.o_stride_b = out.stride[0], p.o_stride_h = out.stride[hd], p.o_stride_n = out.stride[nd];
  fill_numerics(p, options);
  return p;
}

namespace {

// Host-side check of a cu_seqlens array against the packed total and the stated max length.
void check_cu_seqlens_values(const int32_t* cu, int64_t batch, int64_t total, int64_t max_len,
                             const char* name, const char* max_name) {
  SAGEATTN_CHECK(cu[0] == 0, name, "[0] must be 0, got ", cu[0]);
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t len = static_cast<int64_t>(cu[i + 1]) - cu[i];
    SAGEATTN_CHECK(len >= 0, name, "[", i + 1, "]=", cu[i + 1], " is smaller than ", name, "[", i,
                   "]=", cu[i]);
    SAGEATTN_CHECK(len <= max_len, "sequence ", i, " has length ", len, " (from ", name,
                   ") but ", max_name, "=", max_len);
  }
  SAGEATTN_CHECK(cu[batch] == total, name, "[", batch, "]=", cu[batch],
                 " must equal the packed token count ", total);
}

void check_cu_tensor(const TensorView& cu, const TensorView& q, const char* name) {
  check_tensor(cu, name, 1);
  SAGEATTN_CHECK(cu.dtype == DType::kI32, name, " dtype must be i32, got ", dtype_name(cu.dtype));
  SAGEATTN_CHECK(cu.shape[0] >= 1, name, " must have batch + 1 >= 1 entries, got ", cu.shape[0]);
  SAGEATTN_CHECK(cu.device == q.device, name, " is on device ", cu.device, " but q is on device ",
                 q.device, " (-1 = host)");
}

}  // namespace

AttentionParams make_varlen_params(const VarlenArgs& a, const AttentionOptions& options) {
  check_options(options);
  check_tensor(a.q, "q", 3);
  check_tensor(a.k, "k", 3);
  check_tensor(a.v, "v", 3);
  check_tensor(a.out, "out", 3);
  check_qkv_dtypes(a.q, a.k, a.v, a.out);
  check_devices(a.q, {{&a.k, "k"}, {&a.v, "v"}, {&a.out, "out"}});
  check_cu_tensor(a.cu_seqlens_q, a.q, "cu_seqlens_q");
  check_cu_tensor(a.cu_seqlens_k, a.q, "cu_seqlens_k");
  SAGEATTN_CHECK(a.cu_seqlens_q.shape[0] == a.cu_seqlens_k.shape[0],
                 "cu_seqlens_q has ", a.cu_seqlens_q.shape[0], " entries but cu_seqlens_k has ",
                 a.cu_seqlens_k.shape[0]);
  SAGEATTN_CHECK(a.max_seqlen_q >= 0, "max_seqlen_q must be >= 0, got ", a.max_seqlen_q);
  SAGEATTN_CHECK(a.max_seqlen_k >= 0, "max_seqlen_k must be >= 0, got ", a.max_seqlen_k);

  AttentionParams p;
  p.dtype = a.q.dtype;
  p.device = a.q.device;
  p.batch = a.cu_seqlens_q.shape[0] - 1;
  p.heads_q = a.q.shape[1];
  p.heads_kv = a.k.shape[1];
  p.seqlen_q = a.max_seqlen_q;
  p.seqlen_k = a.max_seqlen_k;
  p.head_dim = a.q.shape[2];
  check_head_dim(p.head_dim, a.k.shape[2], a.v.shape[2], a.out.shape[2]);
  check_heads(p.heads_q, p.heads_kv, a.v.shape[1]);
  SAGEATTN_CHECK(a.v.shape[0] == a.k.shape[0], "token count mismatch: k has ", a.k.shape[0],
                 " tokens, v has ", a.v.shape[0]);
  for (int i = 0; i < 3; ++i)
    SAGEATTN_CHECK(a.out.shape[i] == a.q.shape[i], "out shape ", shape_str(a.out),
                   " does not match q shape ", shape_str(a.q));
  constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();
  SAGEATTN_CHECK(a.q.shape[0] <= kI32Max && a.k.shape[0] <= kI32Max,
                 "packed token counts must fit in int32 cu_seqlens, got total_q=", a.q.shape[0],
                 " total_k=", a.k.shape[0]);
  if (p.device == kHostDevice) {
    check_cu_seqlens_values(static_cast<const int32_t*>(a.cu_seqlens_q.data), p.batch,
                            a.q.shape[0], a.max_seqlen_q, "cu_seqlens_q", "max_seqlen_q");
    check_cu_seqlens_values(static_cast<const int32_t*>(a.cu_seqlens_k.data), p.batch,
                            a.k.shape[0], a.max_seqlen_k, "cu_seqlens_k", "max_seqlen_k");
  }

  if (is_given(a.lse)) {
    check_tensor(a.lse, "lse", 2, /*unit_last=*/false);
    SAGEATTN_CHECK(a.lse.dtype == DType::kF32, "lse dtype must be f32, got ",
                   dtype_name(a.lse.dtype));
    SAGEATTN_CHECK(a.lse.shape[0] == p.heads_q && a.lse.shape[1] == a.q.shape[0], "lse shape ",
                   shape_str(a.lse), " must be [heads_q, total_q] = [", p.heads_q, ", ",
                   a.q.shape[0], "]");
    check_devices(a.q, {{&a.lse, "lse"}});
    p.lse = static_cast<float*>(a.lse.data);
    p.lse_stride_h = a.lse.stride[0];
    p.lse_stride_n = a.lse.stride[1];
  }

  p.q = a.q.data;
  p.k = a.k.data;
  p.v = a.v.data;
  p.out = a.out.data;
  p.cu_seqlens_q = static_cast<const int32_t*>(a.cu_seqlens_q.data);
  p.cu_seqlens_k = static_cast<const int32_t*>(a.cu_seqlens_k.data);
  p.q_stride_n = a.q.stride[0], p.q_stride_h = a.q.stride[1];
  p.k_stride_n = a.k.stride[0], p.k_stride_h = a.k.stride[1];
  p.v_stride_n = a.v.stride[0], p.v_stride_h = a.v.stride[1];
  p.o_stride_n = a.out.stride[0], p.o_stride_h = a.out.stride[1];
  fill_numerics(p, options);
  return p;
}

}  // namespace sageattn::detail
