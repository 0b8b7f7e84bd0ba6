// python/src/sageattn_ext.cpp: the nanobind module sageattn._C, a thin binding over
// include/sageattn/attention.h.
//
// DLPack arrays (numpy, torch, JAX, CuPy, ...) become sageattn::TensorViews: data pointer, dtype,
// shape, strides in elements, CUDA ordinal or kHostDevice. Nothing is copied or allocated here:
// the caller (the Python package) provides the output, the optional LSE, the optional workspace
// (pointer + bytes) and the stream (a cudaStream_t as an integer). The GIL is released around
// every library call. sageattn::Error becomes a Python exception (see translate_error below).
// Tile sizes and constants of include/sageattn/layout.h are exported, so Python never repeats
// them. No torch and no device code here (STYLE.md 1).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sageattn/attention.h"
#include "sageattn/error.h"
#include "sageattn/layout.h"
#include "sageattn/types.h"

#if SAGEATTN_PY_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace nb = nanobind;
using namespace nb::literals;

namespace sa = sageattn;

namespace {

// Read-only inputs (q, k, v, cu_seqlens) and writable outputs (out, lse).
using InArray = nb::ndarray<nb::ro>;
using OutArray = nb::ndarray<>;

// ---- enum names: the C++ to_string() names are the Python spellings ----
template <typename E>
E parse_enum(const std::string& text, std::initializer_list<E> values, const char* what) {
  std::string allowed;
  for (E v : values) {
    if (text == sa::to_string(v)) return v;
    allowed += (allowed.empty() ? "" : ", ") + std::string(sa::to_string(v));
  }
  throw nb::value_error((std::string(what) + " must be one of " + allowed + "; got '" + text + "'").c_str());
}

sa::Layout parse_layout(const std::string& s) {
  return parse_enum(s, {sa::Layout::kHND, sa::Layout::kNHD}, "tensor_layout");
}
sa::PvMode parse_pv_mode(const std::string& s) {
  return parse_enum(s, {sa::PvMode::kAuto, sa::PvMode::kFp16, sa::PvMode::kFp8, sa::PvMode::kFp8Fp16Acc},
                    "pv_mode");
}
sa::Granularity parse_granularity(const std::string& s) {
  return parse_enum(s, {sa::Granularity::kPerBlock, sa::Granularity::kPerWarp, sa::Granularity::kPerThread},
                    "granularity");
}
sa::Backend parse_backend(const std::string& s) {
  return parse_enum(s, {sa::Backend::kAuto, sa::Backend::kCpu, sa::Backend::kSm80, sa::Backend::kSm90},
                    "backend");
}

// ---- DLPack array -> TensorView ----
std::string dlpack_dtype_name(const nb::dlpack::dtype& d) {
  using C = nb::dlpack::dtype_code;
  std::string base;
  switch (static_cast<C>(d.code)) {
    case C::Int: base = "int"; break;
    case C::UInt: base = "uint"; break;
    case C::Float: base = "float"; break;
    case C::Bfloat: base = "bfloat"; break;
    case C::Complex: base = "complex"; break;
    case C::Bool: return "bool";
    default: return "dlpack dtype code " + std::to_string(d.code) + " (" + std::to_string(d.bits) + " bits)";
  }
  std::string name = base + std::to_string(d.bits);
  if (d.lanes != 1) name += "x" + std::to_string(d.lanes);
  return name;
}

// DLPack's kDLFloat8_e4m3fn (dlpack.h >= 1.1), spelled as a number: older nanobind releases
// (2.x, which some machines have) do not name it.
constexpr uint8_t kDLFloat8E4M3FN = 10;

// The library's dtype of a DLPack dtype. numpy has no bfloat16 that DLPack can carry, so the
// Python package passes bf16 numpy arrays as uint16 views with u16_as_bf16 = true.
sa::DType to_dtype(const nb::dlpack::dtype& d, const char* name, bool u16_as_bf16) {
  using C = nb::dlpack::dtype_code;
  if (d.lanes == 1) {
    const auto code = static_cast<C>(d.code);
    if (code == C::Float && d.bits == 16) return sa::DType::kF16;
    if (code == C::Bfloat && d.bits == 16) return sa::DType::kBF16;
    if (code == C::Float && d.bits == 32) return sa::DType::kF32;
    if (code == C::Int && d.bits == 8) return sa::DType::kI8;
    if (code == C::Int && d.bits == 32) return sa::DType::kI32;
    if (d.code == kDLFloat8E4M3FN && d.bits == 8) return sa::DType::kFp8E4M3;
    if (code == C::UInt && d.bits == 16 && u16_as_bf16) return sa::DType::kBF16;
  }
  throw nb::type_error((std::string(name) + " has dtype " + dlpack_dtype_name(d) +
                        ", which sageattn does not take (q, k, v and out: float16 or bfloat16; "
                        "lse: float32; cu_seqlens: int32)").c_str());
}

int to_device(int32_t device_type, int32_t device_id, const char* name) {
  switch (device_type) {
    case nb::device::cpu::value:
    case nb::device::cuda_host::value: return sa::kHostDevice;  // pinned host memory is host memory
    case nb::device::cuda::value:
    case nb::device::cuda_managed::value: return device_id;
    default:
      throw nb::value_error((std::string(name) + " is on DLPack device type " + std::to_string(device_type) +
                             " (id " + std::to_string(device_id) +
                             "); sageattn takes host (CPU) or CUDA memory").c_str());
  }
}

template <typename Array>
sa::TensorView to_view(const Array& a, const char* name, bool u16_as_bf16 = false) {
  sa::TensorView t;
  if (a.ndim() > static_cast<size_t>(sa::kMaxDims))
    throw nb::value_error((std::string(name) + " has " + std::to_string(a.ndim()) +
                           " dims; sageattn tensors have at most " + std::to_string(sa::kMaxDims)).c_str());
  t.data = const_cast<void*>(static_cast<const void*>(a.data()));
  t.dtype = to_dtype(a.dtype(), name, u16_as_bf16);
  t.ndim = static_cast<int>(a.ndim());
  for (int i = 0; i < t.ndim; ++i) {
    t.shape[i] = static_cast<int64_t>(a.shape(i));
    t.stride[i] = static_cast<int64_t>(a.stride(i));
  }
  // An array without elements has no meaningful strides (producers may report 0): give it
  // row-major ones, so that only its shape is checked.
  if (a.size() == 0) {
    int64_t stride = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      t.stride[i] = stride;
      stride *= t.shape[i] > 0 ? t.shape[i] : 1;
    }
  }
  t.device = to_device(a.device_type(), a.device_id(), name);
  return t;
}

template <typename Array>
sa::TensorView to_view(const std::optional<Array>& a, const char* name) {
  return a ? to_view(*a, name) : sa::TensorView{};
}

sa::AttentionOptions make_options(const std::string& layout, bool causal, std::optional<double> scale,
                                  const std::string& pv_mode, const std::string& granularity,
                                  bool smooth_k, bool smooth_v, const std::string& backend) {
  sa::AttentionOptions o;
  o.layout = parse_layout(layout);
  o.mask = causal ? sa::MaskMode::kCausal : sa::MaskMode::kNone;
  if (scale) o.scale = static_cast<float>(*scale);
  o.pv_mode = parse_pv_mode(pv_mode);
  o.granularity = parse_granularity(granularity);
  o.smooth_k = smooth_k ? sa::Smoothing::kOn : sa::Smoothing::kOff;
  o.smooth_v = smooth_v ? sa::Smoothing::kOn : sa::Smoothing::kOff;
  o.backend = parse_backend(backend);
  return o;
}

sa::Workspace make_workspace(uintptr_t ptr, size_t bytes) {
  return sa::Workspace{reinterpret_cast<void*>(ptr), bytes};
}

sa::Stream to_stream(uintptr_t stream) { return reinterpret_cast<sa::Stream>(stream); }

// sageattn::Error -> Python. invalid_argument is a ValueError, except the dtype checks (every
// dtype message of the library names "<tensor> dtype ..."), which are a TypeError; unsupported
// (valid, but not by this build or device) is a NotImplementedError; out_of_memory a MemoryError;
// the rest (cuda_error, internal, io_error) a RuntimeError. The message is the library's, which
// names the bad value.
void translate_error(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const sa::Error& e) {
    PyObject* type = PyExc_RuntimeError;
    const std::string msg = e.what();
    switch (e.code()) {
      case sa::ErrorCode::kInvalidArgument:
        type = msg.find("dtype") != std::string::npos ? PyExc_TypeError : PyExc_ValueError;
        break;
      case sa::ErrorCode::kUnsupported: type = PyExc_NotImplementedError; break;
      case sa::ErrorCode::kOutOfMemory: type = PyExc_MemoryError; break;
      case sa::ErrorCode::kCudaError:
      case sa::ErrorCode::kIoError:
      case sa::ErrorCode::kInternal: type = PyExc_RuntimeError; break;
    }
    PyErr_SetString(type, msg.c_str());
  }
}

// ---- layout.h exports ----
nb::dict group_spec_dict(const sa::GroupSpec& g) {
  nb::dict d;
  d["block"] = g.block;
  d["stride"] = g.stride;
  d["count"] = g.count;
  return d;
}

nb::dict tile_config_dict(const sa::TileConfig& t) {
  nb::dict d, q, k;
  d["block_q"] = t.block_q;
  d["block_k"] = t.block_k;
  d["warp_q"] = t.warp_q;
  d["k_block"] = t.k_block;
  for (auto g : {sa::Granularity::kPerBlock, sa::Granularity::kPerWarp, sa::Granularity::kPerThread}) {
    q[sa::to_string(g)] = group_spec_dict(t.q_groups(g));
    k[sa::to_string(g)] = group_spec_dict(t.k_groups(g));
  }
  d["q_groups"] = q;
  d["k_groups"] = k;
  d["fp16acc_v_range"] = t.fp16acc_v_range();
  return d;
}

#if SAGEATTN_PY_WITH_CUDA
void cuda_check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    (void)cudaGetLastError();
    throw sa::Error(rc == cudaErrorMemoryAllocation ? sa::ErrorCode::kOutOfMemory : sa::ErrorCode::kCudaError,
                    std::string(what) + ": " + cudaGetErrorString(rc));
  }
}
#endif

// The input fields of VarlenArgs (out and lse are the caller's business).
sa::VarlenArgs varlen_inputs(const InArray& q, const InArray& k, const InArray& v,
                             const InArray& cu_seqlens_q, const InArray& cu_seqlens_k,
                             int64_t max_seqlen_q, int64_t max_seqlen_k, bool u16_as_bf16) {
  sa::VarlenArgs a;
  a.q = to_view(q, "q", u16_as_bf16);
  a.k = to_view(k, "k", u16_as_bf16);
  a.v = to_view(v, "v", u16_as_bf16);
  a.cu_seqlens_q = to_view(cu_seqlens_q, "cu_seqlens_q");
  a.cu_seqlens_k = to_view(cu_seqlens_k, "cu_seqlens_k");
  a.max_seqlen_q = max_seqlen_q;
  a.max_seqlen_k = max_seqlen_k;
  return a;
}

}  // namespace

NB_MODULE(_C, m) {
  m.doc() = "sageattn._C: thin binding over the sageattn C++ API (use the sageattn package)";
  nb::register_exception_translator(translate_error);

  m.attr("__version__") = sa::version();
#if SAGEATTN_PY_WITH_CUDA
  m.attr("CUDA_BUILD") = true;
#else
  m.attr("CUDA_BUILD") = false;
#endif

  // ---- constants of include/sageattn/layout.h and types.h ----
  m.attr("LOG2E") = sa::kLog2e;
  m.attr("LN2") = sa::kLn2;
  m.attr("INT8_MAX") = sa::kInt8Max;
  m.attr("FP8_E4M3_MAX") = sa::kFp8E4M3Max;
  m.attr("LOG2_FP8_E4M3_MAX") = sa::kLog2Fp8E4M3Max;
  m.attr("FP16_MAX") = sa::kFp16Max;
  m.attr("MIN_AMAX") = sa::kMinAmax;
  m.attr("MEAN_CHUNK_TOKENS") = sa::kMeanChunkTokens;
  m.attr("MEAN_GROUP_CHUNKS") = sa::kMeanGroupChunks;
  m.attr("FP16_V_TARGET_EXP") = sa::kFp16VTargetExp;
  m.attr("FP16_V_KEEP_MIN_EXP") = sa::kFp16VKeepMinExp;
  m.attr("FP16_V_KEEP_MAX_EXP") = sa::kFp16VKeepMaxExp;
  m.attr("FP8_MMA_K") = sa::kFp8MmaK;
  m.attr("MIN_HEAD_DIM") = sa::kMinHeadDim;
  m.attr("MAX_HEAD_DIM") = sa::kMaxHeadDim;
  m.attr("HEAD_DIM_MULTIPLE") = sa::kHeadDimMultiple;
  m.attr("HOST_DEVICE") = sa::kHostDevice;
  m.attr("MAX_DIMS") = sa::kMaxDims;
  nb::dict tiles;
  tiles["sm80"] = tile_config_dict(sa::kSm80Tiles);
  tiles["sm90"] = tile_config_dict(sa::kSm90Tiles);
  m.attr("TILES") = tiles;
  m.def("num_groups", [](int block, int stride, int count, int64_t tokens) {
    return sa::GroupSpec{block, stride, count}.num_groups(tokens);
  }, "block"_a, "stride"_a, "count"_a, "tokens"_a, "Number of quantization groups over `tokens`.");
  m.def("group_of", [](int block, int stride, int count, int64_t token) {
    return sa::GroupSpec{block, stride, count}.group_of(token);
  }, "block"_a, "stride"_a, "count"_a, "token"_a, "Quantization group index of `token`.");

  // ---- attention ----
  m.def(
      "attention",
      [](const InArray& q, const InArray& k, const InArray& v, const OutArray& out,
         const std::optional<OutArray>& lse, const std::string& layout, bool causal,
         std::optional<double> scale, const std::string& pv_mode, const std::string& granularity,
         bool smooth_k, bool smooth_v, const std::string& backend, uintptr_t workspace,
         size_t workspace_bytes, uintptr_t stream, bool u16_as_bf16) {
        const auto o = make_options(layout, causal, scale, pv_mode, granularity, smooth_k, smooth_v, backend);
        const auto qv = to_view(q, "q", u16_as_bf16), kv = to_view(k, "k", u16_as_bf16),
                   vv = to_view(v, "v", u16_as_bf16), ov = to_view(out, "out", u16_as_bf16);
        const auto lv = to_view(lse, "lse");
        nb::gil_scoped_release release;
        sa::attention(qv, kv, vv, ov, o, lv, make_workspace(workspace, workspace_bytes), to_stream(stream));
      },
      "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a = nb::none(), nb::kw_only(), "layout"_a = "HND",
      "causal"_a = false, "scale"_a = nb::none(), "pv_mode"_a = "auto", "granularity"_a = "per_warp",
      "smooth_k"_a = true, "smooth_v"_a = false, "backend"_a = "auto", "workspace"_a = 0,
      "workspace_bytes"_a = 0, "stream"_a = 0, "u16_as_bf16"_a = false,
      "sageattn::attention: writes out (and lse when given). See include/sageattn/attention.h.");

  m.def(
      "attention_workspace_size",
      [](const InArray& q, const InArray& k, const InArray& v, const std::string& layout, bool causal,
         std::optional<double> scale, const std::string& pv_mode, const std::string& granularity,
         bool smooth_k, bool smooth_v, const std::string& backend, bool u16_as_bf16) {
        const auto o = make_options(layout, causal, scale, pv_mode, granularity, smooth_k, smooth_v, backend);
        const auto qv = to_view(q, "q", u16_as_bf16), kv = to_view(k, "k", u16_as_bf16),
                   vv = to_view(v, "v", u16_as_bf16);
        nb::gil_scoped_release release;
        return sa::attention_workspace_size(qv, kv, vv, o);
      },
      "q"_a, "k"_a, "v"_a, nb::kw_only(), "layout"_a = "HND", "causal"_a = false,
      "scale"_a = nb::none(), "pv_mode"_a = "auto", "granularity"_a = "per_warp", "smooth_k"_a = true,
      "smooth_v"_a = false, "backend"_a = "auto", "u16_as_bf16"_a = false,
      "Bytes of workspace attention() needs for these arguments (0 is possible).");

  m.def(
      "attention_varlen",
      [](const InArray& q, const InArray& k, const InArray& v, const InArray& cu_seqlens_q,
         const InArray& cu_seqlens_k, int64_t max_seqlen_q, int64_t max_seqlen_k, const OutArray& out,
         const std::optional<OutArray>& lse, bool causal, std::optional<double> scale,
         const std::string& pv_mode, const std::string& granularity, bool smooth_k, bool smooth_v,
         const std::string& backend, uintptr_t workspace, size_t workspace_bytes, uintptr_t stream,
         bool u16_as_bf16) {
        const auto o = make_options("HND", causal, scale, pv_mode, granularity, smooth_k, smooth_v, backend);
        sa::VarlenArgs a = varlen_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                         max_seqlen_k, u16_as_bf16);
        a.out = to_view(out, "out", u16_as_bf16);
        a.lse = to_view(lse, "lse");
        nb::gil_scoped_release release;
        sa::attention_varlen(a, o, make_workspace(workspace, workspace_bytes), to_stream(stream));
      },
      "q"_a, "k"_a, "v"_a, "cu_seqlens_q"_a, "cu_seqlens_k"_a, "max_seqlen_q"_a, "max_seqlen_k"_a,
      "out"_a, "lse"_a = nb::none(), nb::kw_only(), "causal"_a = false, "scale"_a = nb::none(),
      "pv_mode"_a = "auto", "granularity"_a = "per_warp", "smooth_k"_a = true, "smooth_v"_a = false,
      "backend"_a = "auto", "workspace"_a = 0, "workspace_bytes"_a = 0, "stream"_a = 0,
      "u16_as_bf16"_a = false,
      "sageattn::attention_varlen on packed [total, H, D] tensors.");

  m.def(
      "attention_varlen_workspace_size",
      [](const InArray& q, const InArray& k, const InArray& v, const InArray& cu_seqlens_q,
         const InArray& cu_seqlens_k, int64_t max_seqlen_q, int64_t max_seqlen_k, bool causal,
         std::optional<double> scale, const std::string& pv_mode, const std::string& granularity,
         bool smooth_k, bool smooth_v, const std::string& backend, bool u16_as_bf16) {
        const auto o = make_options("HND", causal, scale, pv_mode, granularity, smooth_k, smooth_v, backend);
        sa::VarlenArgs a = varlen_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                         max_seqlen_k, u16_as_bf16);
        a.out = a.q;  // validation needs an output: one shaped like q, never written
        nb::gil_scoped_release release;
        return sa::attention_varlen_workspace_size(a, o);
      },
      "q"_a, "k"_a, "v"_a, "cu_seqlens_q"_a, "cu_seqlens_k"_a, "max_seqlen_q"_a, "max_seqlen_k"_a,
      nb::kw_only(), "causal"_a = false, "scale"_a = nb::none(), "pv_mode"_a = "auto",
      "granularity"_a = "per_warp", "smooth_k"_a = true, "smooth_v"_a = false, "backend"_a = "auto",
      "u16_as_bf16"_a = false, "Bytes of workspace attention_varlen() needs (0 is possible).");

  m.def("gpu_available", &sa::gpu_available,
        "True when this build has a GPU backend and a usable CUDA device is present.");
  m.def(
      "resolve_pv_mode",
      [](const std::string& pv_mode, int device, int64_t head_dim) {
        return std::string(sa::to_string(sa::resolve_pv_mode(parse_pv_mode(pv_mode), device, head_dim)));
      },
      "pv_mode"_a, "device"_a = sa::kHostDevice, "head_dim"_a = 0,
      "The P·V mode 'auto' resolves to on `device` (-1: the CPU backend) for calls of `head_dim` "
      "(0: not given).");

  // ---- CUDA helpers for frameworks that bring no stream or mutable allocator (JAX, ...) ----
  m.def(
      "stream_synchronize",
      [](uintptr_t stream) {
#if SAGEATTN_PY_WITH_CUDA
        nb::gil_scoped_release release;
        cuda_check(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
#else
        (void)stream;  // a CPU-only build never launches GPU work
#endif
      },
      "stream"_a, "Waits for the work on `stream` (a cudaStream_t as an integer; 0 = default stream).");

  m.def(
      "empty_device",
      [](std::vector<size_t> shape, const std::string& dtype, int device) -> nb::ndarray<nb::array_api> {
#if SAGEATTN_PY_WITH_CUDA
        using C = nb::dlpack::dtype_code;
        nb::dlpack::dtype dt;
        if (dtype == "float16") dt = {uint8_t(C::Float), 16, 1};
        else if (dtype == "bfloat16") dt = {uint8_t(C::Bfloat), 16, 1};
        else if (dtype == "float32") dt = {uint8_t(C::Float), 32, 1};
        else throw nb::type_error(("empty_device: dtype must be float16, bfloat16 or float32; got '" + dtype + "'").c_str());
        size_t bytes = dt.bits / 8;
        for (size_t s : shape) bytes *= s;
        int previous = 0;
        cuda_check(cudaGetDevice(&previous), "cudaGetDevice");
        cuda_check(cudaSetDevice(device), "cudaSetDevice");
        void* ptr = nullptr;
        const cudaError_t rc = cudaMalloc(&ptr, bytes > 0 ? bytes : 1);
        cudaSetDevice(previous);
        cuda_check(rc, "cudaMalloc");
        nb::capsule owner(ptr, [](void* p) noexcept { cudaFree(p); });
        // array_api: an object with __dlpack__/__dlpack_device__ (not a one-shot capsule), so the
        // binding can write it and a framework (jax.numpy.from_dlpack) can then import it.
        return nb::ndarray<nb::array_api>(ptr, shape.size(), shape.data(), owner, nullptr, dt, nb::device::cuda::value,
                                          device);
#else
        (void)shape, (void)dtype, (void)device;
        throw sa::Error(sa::ErrorCode::kUnsupported, "empty_device: this is the CPU-only build of sageattn (no CUDA)");
#endif
      },
      "shape"_a, "dtype"_a, "device"_a,
      "A new C-contiguous CUDA buffer (cudaMalloc, freed with its last reference): an array object with "
      "__dlpack__ and __dlpack_device__, for frameworks whose arrays cannot be written in place.");
}
