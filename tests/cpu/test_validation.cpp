// tests/cpu/test_validation.cpp: argument validation of the public API (include/sageattn/*.h,
// DESIGN.md §1), on the CPU-only library.
//
// Proves:
//  - every invalid call of sageattn::attention and sageattn::attention_varlen throws
//    sageattn::Error with the right ErrorCode and a message that names the bad argument and its
//    value, and leaves `out` and `lse` byte-for-byte unwritten (both are filled with a poison
//    byte before the call and compared after);
//  - the valid edge cases run and write exactly the output they own: batch 0, Nq = 0, Nk = 0 and
//    causal rows with no visible key (0 output, -inf LSE), head_dim 8 and 256, default scale ==
//    1/sqrt(D) bit for bit, HND == NHD, GQA/MQA == MHA with K/V copied, padded strides, varlen ==
//    dense per sequence, caller workspace of 0 bytes;
//  - the small public helpers: make_view, make_contiguous_view, to_string, dtype_size,
//    resolve_pv_mode, gpu_available (false here), version;
//  - the valid calls fuzz/fuzz_attention.cpp found failing (FuzzFound.*): no query rows with a
//    batch of 2^40, empty K/V with 2^62 strides, a host allocation failure (an Error, not
//    std::bad_alloc).
// Deterministic: inputs come from fixed seeds. Tests marked "LIBRARY GAP" fail on purpose until
// the library is fixed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "common/numerics.h"
#include "cpu/inputs.h"
#include "sageattn/attention.h"

namespace {

namespace sa = sageattn;
using sa::AttentionOptions;
using sa::Backend;
using sa::DType;
using sa::Error;
using sa::ErrorCode;
using sa::Granularity;
using sa::Layout;
using sa::MaskMode;
using sa::PvMode;
using sa::Smoothing;
using sa::TensorView;
using sa::VarlenArgs;
using sa::Workspace;

// Poison byte for out/lse: 0xA5A5 is a finite bf16 (about -2.9e-16) and 0xA5A5A5A5 a finite f32,
// values the library never writes for these inputs.
constexpr uint8_t kPoisonByte = 0xA5;
constexpr uint16_t kPoison16 = 0xA5A5;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr uint16_t kBf16Zero = 0x0000;

// Every buffer gets this much room past the view it backs (numel extra + a little): a mutation
// that validation wrongly accepts reads or writes into slack instead of out of bounds, and a
// write into the slack of out/lse is caught by the poison comparison.
int64_t padded(int64_t numel) { return 2 * numel + 64; }

bool all_bytes(const void* p, std::size_t bytes, uint8_t value) {
  const auto* b = static_cast<const uint8_t*>(p);
  return std::all_of(b, b + bytes, [&](uint8_t x) { return x == value; });
}

bool bf16_finite(uint16_t x) { return (x & 0x7F80u) != 0x7F80u; }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------- dense calls

struct Dims {
  int64_t b = 2, hq = 4, hkv = 2, nq = 17, nk = 33, d = 64;
};

// Shape of a logical [b, h, n, d] tensor in a layout.
std::vector<int64_t> layout_shape(Layout layout, int64_t b, int64_t h, int64_t n, int64_t d) {
  return layout == Layout::kHND ? std::vector<int64_t>{b, h, n, d}
                                : std::vector<int64_t>{b, n, h, d};
}

TensorView view4(void* data, DType dtype, Layout layout, int64_t b, int64_t h, int64_t n,
                 int64_t d) {
  const auto s = layout_shape(layout, b, h, n, d);
  return sa::make_contiguous_view(data, dtype, {s[0], s[1], s[2], s[3]});
}

// Offset of logical element (b, h, n, d) in a contiguous tensor of that layout.
int64_t offset4(Layout layout, int64_t H, int64_t N, int64_t D, int64_t b, int64_t h, int64_t n,
                int64_t d) {
  return layout == Layout::kHND ? ((b * H + h) * N + n) * D + d : ((b * N + n) * H + h) * D + d;
}

// Logical [B, H, N, D] floats -> bf16 in a layout, into a padded buffer.
std::vector<uint16_t> pack_bf16(const std::vector<float>& x, Layout layout, int64_t B, int64_t H,
                                int64_t N, int64_t D) {
  std::vector<uint16_t> out(padded(B * H * N * D), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d)
          out[offset4(layout, H, N, D, b, h, n, d)] =
              sa::num::bf16_from_float(x[((b * H + h) * N + n) * D + d]);
  return out;
}

// A valid dense call on host bf16 tensors that owns its buffers. Tests mutate the views or the
// options, then run(); out and lse are poisoned so unwritten elements can be told apart.
struct DenseCall {
  explicit DenseCall(Dims dims_ = {}, Layout layout_ = Layout::kHND, bool with_lse = true,
                     uint64_t seed = 7)
      : dims(dims_), layout(layout_) {
    const auto in = sa::cpu::make_inputs(sa::cpu::InputFamily::kKChannelBias, dims.b, dims.hq,
                                         dims.hkv, dims.nq, dims.nk, dims.d, seed);
    q_f = in.q;
    k_f = in.k;
    v_f = in.v;
    out_buf.assign(padded(dims.b * dims.hq * dims.nq * dims.d), kPoison16);
    lse_buf.resize(padded(dims.b * dims.hq * dims.nq));
    options.layout = layout;
    repack();
    out = view4(out_buf.data(), DType::kBF16, layout, dims.b, dims.hq, dims.nq, dims.d);
    if (with_lse) lse = sa::make_contiguous_view(lse_buf.data(), DType::kF32, {dims.b, dims.hq, dims.nq});
    poison();
  }

  // (Re)builds the bf16 q/k/v buffers and views from q_f/k_f/v_f.
  void repack() {
    q_buf = pack_bf16(q_f, layout, dims.b, dims.hq, dims.nq, dims.d);
    k_buf = pack_bf16(k_f, layout, dims.b, dims.hkv, dims.nk, dims.d);
    v_buf = pack_bf16(v_f, layout, dims.b, dims.hkv, dims.nk, dims.d);
    q = view4(q_buf.data(), DType::kBF16, layout, dims.b, dims.hq, dims.nq, dims.d);
    k = view4(k_buf.data(), DType::kBF16, layout, dims.b, dims.hkv, dims.nk, dims.d);
    v = view4(v_buf.data(), DType::kBF16, layout, dims.b, dims.hkv, dims.nk, dims.d);
  }

  void poison() {
    std::memset(out_buf.data(), kPoisonByte, out_buf.size() * sizeof(uint16_t));
    std::memset(lse_buf.data(), kPoisonByte, lse_buf.size() * sizeof(float));
  }
  bool out_untouched() const {
    return all_bytes(out_buf.data(), out_buf.size() * sizeof(uint16_t), kPoisonByte);
  }
  bool lse_untouched() const {
    return all_bytes(lse_buf.data(), lse_buf.size() * sizeof(float), kPoisonByte);
  }
  int64_t out_numel() const { return dims.b * dims.hq * dims.nq * dims.d; }
  int64_t lse_numel() const { return dims.b * dims.hq * dims.nq; }

  void run() const { sa::attention(q, k, v, out, options, lse, workspace); }

  // Output element (b, h, n, d) of a contiguous out in this call's layout.
  uint16_t out_at(int64_t b, int64_t h, int64_t n, int64_t d) const {
    return out_buf[offset4(layout, dims.hq, dims.nq, dims.d, b, h, n, d)];
  }
  // The output in logical [B, Hq, Nq, D] order, whatever the layout.
  std::vector<uint16_t> out_logical() const {
    std::vector<uint16_t> r;
    r.reserve(out_numel());
    for (int64_t b = 0; b < dims.b; ++b)
      for (int64_t h = 0; h < dims.hq; ++h)
        for (int64_t n = 0; n < dims.nq; ++n)
          for (int64_t d = 0; d < dims.d; ++d) r.push_back(out_at(b, h, n, d));
    return r;
  }
  std::vector<float> lse_values() const {
    return std::vector<float>(lse_buf.begin(), lse_buf.begin() + lse_numel());
  }

  Dims dims;
  Layout layout;
  std::vector<float> q_f, k_f, v_f;  // logical [B, H, N, D]
  std::vector<uint16_t> q_buf, k_buf, v_buf, out_buf;
  std::vector<float> lse_buf;
  TensorView q, k, v, out, lse;
  AttentionOptions options;
  Workspace workspace;
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs `call` expecting an Error with `code` whose message contains every needle, and checks
// that out and lse were not written.
template <typename Call>
void expect_rejected(Call& call, ErrorCode code, const std::vector<std::string>& needles) {
  call.poison();
  try {
    call.run();
    ADD_FAILURE() << "the call was accepted; expected " << sa::to_string(code);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << "got " << sa::to_string(e.code()) << ": " << msg;
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message \"" << msg << "\" lacks \"" << n << "\"";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than sageattn::Error: " << e.what();
  }
  EXPECT_TRUE(call.out_untouched()) << "out was written by a rejected call";
  EXPECT_TRUE(call.lse_untouched()) << "lse was written by a rejected call";
}

template <typename E>
void set_enum(E& field, int value) {
  field = static_cast<E>(value);
}

struct DenseCase {
  std::string name;
  std::function<void(DenseCall&)> mutate;
  ErrorCode code;
  std::vector<std::string> needles;
  Dims dims = {};
};
void PrintTo(const DenseCase& c, std::ostream* os) { *os << c.name; }

constexpr ErrorCode kInvalid = ErrorCode::kInvalidArgument;
constexpr ErrorCode kUnsupported = ErrorCode::kUnsupported;

std::vector<DenseCase> dense_cases() {
  std::vector<DenseCase> t = {
      // ---- rank
      {"q_ndim_3", [](DenseCall& c) { c.q.ndim = 3; }, kInvalid, {"q must have 4 dims", "ndim=3"}},
      {"q_ndim_0", [](DenseCall& c) { c.q.ndim = 0; }, kInvalid, {"q must have 4 dims", "ndim=0"}},
      {"q_ndim_5", [](DenseCall& c) { c.q.ndim = 5; }, kInvalid, {"q must have 4 dims", "ndim=5"}},
      {"k_ndim_3", [](DenseCall& c) { c.k.ndim = 3; }, kInvalid, {"k must have 4 dims", "ndim=3"}},
      {"v_ndim_2", [](DenseCall& c) { c.v.ndim = 2; }, kInvalid, {"v must have 4 dims", "ndim=2"}},
      {"out_ndim_3", [](DenseCall& c) { c.out.ndim = 3; }, kInvalid, {"out must have 4 dims", "ndim=3"}},
      {"lse_ndim_2", [](DenseCall& c) { c.lse.ndim = 2; }, kInvalid, {"lse must have 3 dims", "ndim=2"}},
      {"lse_ndim_4", [](DenseCall& c) { c.lse.ndim = 4; }, kInvalid, {"lse must have 3 dims", "ndim=4"}},
      // data given but ndim 0: not "absent", a malformed lse
      {"lse_ndim_0_with_data", [](DenseCall& c) { c.lse.ndim = 0; }, kInvalid,
       {"lse must have 3 dims", "ndim=0"}},
      // ---- negative sizes
      {"q_negative_tokens", [](DenseCall& c) { c.q.shape[2] = -1; }, kInvalid,
       {"q has a negative size -1 in dim 2"}},
      {"k_negative_batch", [](DenseCall& c) { c.k.shape[0] = -2; }, kInvalid,
       {"k has a negative size -2 in dim 0"}},
      {"v_negative_heads", [](DenseCall& c) { c.v.shape[1] = -3; }, kInvalid,
       {"v has a negative size -3 in dim 1"}},
      {"out_negative_dim", [](DenseCall& c) { c.out.shape[3] = -64; }, kInvalid,
       {"out has a negative size -64 in dim 3"}},
      {"lse_negative_tokens", [](DenseCall& c) { c.lse.shape[2] = -17; }, kInvalid,
       {"lse has a negative size -17 in dim 2"}},
      // ---- null data with a nonzero size
      {"q_null_data", [](DenseCall& c) { c.q.data = nullptr; }, kInvalid,
       {"q has null data", "[2, 4, 17, 64]"}},
      {"k_null_data", [](DenseCall& c) { c.k.data = nullptr; }, kInvalid,
       {"k has null data", "[2, 2, 33, 64]"}},
      {"v_null_data", [](DenseCall& c) { c.v.data = nullptr; }, kInvalid,
       {"v has null data", "[2, 2, 33, 64]"}},
      {"out_null_data", [](DenseCall& c) { c.out.data = nullptr; }, kInvalid,
       {"out has null data", "[2, 4, 17, 64]"}},
      {"lse_null_data", [](DenseCall& c) { c.lse.data = nullptr; }, kInvalid,
       {"lse has null data", "[2, 4, 17]"}},
      // ---- dtypes
      {"q_f32", [](DenseCall& c) { c.q.dtype = c.k.dtype = c.v.dtype = c.out.dtype = DType::kF32; },
       kInvalid, {"q dtype must be f16 or bf16", "got f32"}},
      {"q_i8", [](DenseCall& c) { c.q.dtype = c.k.dtype = c.v.dtype = c.out.dtype = DType::kI8; },
       kInvalid, {"q dtype must be f16 or bf16", "got i8"}},
      {"q_fp8", [](DenseCall& c) { c.q.dtype = c.k.dtype = c.v.dtype = c.out.dtype = DType::kFp8E4M3; },
       kInvalid, {"q dtype must be f16 or bf16", "got fp8_e4m3"}},
      {"q_i32", [](DenseCall& c) { c.q.dtype = c.k.dtype = c.v.dtype = c.out.dtype = DType::kI32; },
       kInvalid, {"q dtype must be f16 or bf16", "got i32"}},
      {"q_f32_alone", [](DenseCall& c) { c.q.dtype = DType::kF32; }, kInvalid,
       {"q dtype must be f16 or bf16", "got f32"}},
      {"k_f16_q_bf16", [](DenseCall& c) { c.k.dtype = DType::kF16; }, kInvalid,
       {"k dtype f16 does not match q dtype bf16"}},
      {"v_f16_q_bf16", [](DenseCall& c) { c.v.dtype = DType::kF16; }, kInvalid,
       {"v dtype f16 does not match q dtype bf16"}},
      {"out_f16_q_bf16", [](DenseCall& c) { c.out.dtype = DType::kF16; }, kInvalid,
       {"out dtype f16 does not match q dtype bf16"}},
      {"out_f32_q_bf16", [](DenseCall& c) { c.out.dtype = DType::kF32; }, kInvalid,
       {"out dtype f32 does not match q dtype bf16"}},
      {"k_bf16_q_f16", [](DenseCall& c) { c.q.dtype = c.v.dtype = c.out.dtype = DType::kF16; },
       kInvalid, {"k dtype bf16 does not match q dtype f16"}},
      {"lse_bf16", [](DenseCall& c) { c.lse.dtype = DType::kBF16; }, kInvalid,
       {"lse dtype must be f32", "got bf16"}},
      {"lse_f16", [](DenseCall& c) { c.lse.dtype = DType::kF16; }, kInvalid,
       {"lse dtype must be f32", "got f16"}},
      {"lse_i32", [](DenseCall& c) { c.lse.dtype = DType::kI32; }, kInvalid,
       {"lse dtype must be f32", "got i32"}},
      // ---- batch
      {"k_batch_3", [](DenseCall& c) { c.k.shape[0] = 3; }, kInvalid, {"batch mismatch: q=2 k=3"}},
      {"v_batch_1", [](DenseCall& c) { c.v.shape[0] = 1; }, kInvalid, {"batch mismatch: q=2 v=1"}},
      // ---- head_dim
      {"k_head_dim_32", [](DenseCall& c) { c.k.shape[3] = 32; }, kInvalid,
       {"head_dim mismatch: q=64 k=32"}},
      {"v_head_dim_32", [](DenseCall& c) { c.v.shape[3] = 32; }, kInvalid,
       {"head_dim mismatch: q=64 v=32"}},
      {"out_head_dim_56", [](DenseCall& c) { c.out.shape[3] = 56; }, kInvalid,
       {"head_dim mismatch: q=64 out=56"}},
      {"head_dim_12", [](DenseCall&) {}, kInvalid, {"head_dim must be a multiple of 8", "got 12"},
       Dims{2, 4, 2, 17, 33, 12}},
      {"head_dim_4", [](DenseCall&) {}, kInvalid, {"head_dim must be a multiple of 8", "got 4"},
       Dims{2, 4, 2, 17, 33, 4}},
      {"head_dim_0", [](DenseCall&) {}, kInvalid, {"head_dim must be a multiple of 8", "got 0"},
       Dims{2, 4, 2, 17, 33, 0}},
      {"head_dim_264", [](DenseCall&) {}, kInvalid, {"[8, 256]", "got 264"},
       Dims{2, 4, 2, 17, 33, 264}},
      // ---- heads
      {"v_heads_1_k_heads_2", [](DenseCall& c) { c.v.shape[1] = 1; }, kInvalid,
       {"heads mismatch: k has 2 heads, v has 1"}},
      {"heads_kv_0", [](DenseCall&) {}, kInvalid, {"at least one head", "heads_kv=0"},
       Dims{2, 4, 0, 17, 33, 64}},
      {"heads_q_4_heads_kv_3", [](DenseCall&) {}, kInvalid,
       {"heads_q=4 is not a multiple of heads_kv=3"}, Dims{2, 4, 3, 17, 33, 64}},
      {"heads_q_2_heads_kv_4", [](DenseCall&) {}, kInvalid,
       {"heads_q=2 is not a multiple of heads_kv=4"}, Dims{2, 2, 4, 17, 33, 64}},
      // ---- tokens
      {"v_tokens_32_k_tokens_33", [](DenseCall& c) { c.v.shape[2] = 32; }, kInvalid,
       {"seqlen mismatch: k has 33 tokens, v has 32"}},
      // ---- out shape
      {"out_tokens_16", [](DenseCall& c) { c.out.shape[2] = 16; }, kInvalid,
       {"out shape [2, 4, 16, 64] does not match q shape [2, 4, 17, 64]"}},
      {"out_heads_2", [](DenseCall& c) { c.out.shape[1] = 2; }, kInvalid,
       {"out shape [2, 2, 17, 64]", "q shape [2, 4, 17, 64]"}},
      {"out_batch_1", [](DenseCall& c) { c.out.shape[0] = 1; }, kInvalid,
       {"out shape [1, 4, 17, 64]", "q shape [2, 4, 17, 64]"}},
      // ---- lse shape
      {"lse_tokens_16", [](DenseCall& c) { c.lse.shape[2] = 16; }, kInvalid,
       {"lse shape [2, 4, 16] must be [batch, heads_q, seqlen_q] = [2, 4, 17]"}},
      {"lse_heads_kv", [](DenseCall& c) { c.lse.shape[1] = 2; }, kInvalid,
       {"lse shape [2, 2, 17]", "= [2, 4, 17]"}},
      {"lse_batch_1", [](DenseCall& c) { c.lse.shape[0] = 1; }, kInvalid,
       {"lse shape [1, 4, 17]", "= [2, 4, 17]"}},
      // ---- unit stride on the last dim
      {"q_last_stride_2", [](DenseCall& c) { c.q.stride[3] = 2; }, kInvalid,
       {"q must have unit stride on its last dim, got 2"}},
      {"k_last_stride_0", [](DenseCall& c) { c.k.stride[3] = 0; }, kInvalid,
       {"k must have unit stride on its last dim, got 0"}},
      {"v_last_stride_minus_1", [](DenseCall& c) { c.v.stride[3] = -1; }, kInvalid,
       {"v must have unit stride on its last dim, got -1"}},
      {"out_last_stride_2", [](DenseCall& c) { c.out.stride[3] = 2; }, kInvalid,
       {"out must have unit stride on its last dim, got 2"}},
      // ---- devices
      {"out_on_device_0", [](DenseCall& c) { c.out.device = 0; }, kInvalid,
       {"out is on device 0 but q is on device -1"}},
      {"k_on_device_1", [](DenseCall& c) { c.k.device = 1; }, kInvalid,
       {"k is on device 1 but q is on device -1"}},
      {"v_on_device_0", [](DenseCall& c) { c.v.device = 0; }, kInvalid,
       {"v is on device 0 but q is on device -1"}},
      {"lse_on_device_0", [](DenseCall& c) { c.lse.device = 0; }, kInvalid,
       {"lse is on device 0 but q is on device -1"}},
      {"q_on_device_0_others_host", [](DenseCall& c) { c.q.device = 0; }, kInvalid,
       {"k is on device -1 but q is on device 0"}},
      // GPU tensors reach a CPU-only build: valid in principle, unsupported by this build.
      {"all_on_device_0",
       [](DenseCall& c) { c.q.device = c.k.device = c.v.device = c.out.device = c.lse.device = 0; },
       kUnsupported, {"tensors are on device 0", "0 CUDA device(s) are usable"}},
      {"all_on_device_3_no_lse",
       [](DenseCall& c) {
         c.q.device = c.k.device = c.v.device = c.out.device = 3;
         c.lse = TensorView();
       },
       kUnsupported, {"tensors are on device 3", "0 CUDA device(s) are usable"}},
      {"all_on_device_0_backend_sm90",
       [](DenseCall& c) {
         c.q.device = c.k.device = c.v.device = c.out.device = c.lse.device = 0;
         c.options.backend = Backend::kSm90;
       },
       kUnsupported, {"tensors are on device 0", "0 CUDA device(s) are usable"}},
      {"all_on_device_0_backend_cpu",
       [](DenseCall& c) {
         c.q.device = c.k.device = c.v.device = c.out.device = c.lse.device = 0;
         c.options.backend = Backend::kCpu;
       },
       kInvalid, {"backend cpu needs host tensors", "device 0"}},
      {"all_on_device_minus_2",
       [](DenseCall& c) { c.q.device = c.k.device = c.v.device = c.out.device = c.lse.device = -2; },
       kInvalid, {"device must be a CUDA ordinal or -1 (host), got -2"}},
      // ---- options
      {"scale_nan", [](DenseCall& c) { c.options.scale = std::numeric_limits<float>::quiet_NaN(); },
       kInvalid, {"options.scale must be finite, got nan"}},
      {"scale_plus_inf", [](DenseCall& c) { c.options.scale = std::numeric_limits<float>::infinity(); },
       kInvalid, {"options.scale must be finite, got inf"}},
      {"scale_minus_inf", [](DenseCall& c) { c.options.scale = -std::numeric_limits<float>::infinity(); },
       kInvalid, {"options.scale must be finite, got -inf"}},
      {"backend_sm80_host", [](DenseCall& c) { c.options.backend = Backend::kSm80; }, kInvalid,
       {"backend sm80 needs GPU tensors", "on the host"}},
      {"backend_sm90_host", [](DenseCall& c) { c.options.backend = Backend::kSm90; }, kInvalid,
       {"backend sm90 needs GPU tensors", "on the host"}},
  };

  // Out-of-range enum values (as a binding casting an int would produce), for every field.
  struct EnumField {
    const char* name;
    int last;
    std::function<void(AttentionOptions&, int)> set;
  };
  const std::vector<EnumField> fields = {
      {"layout", 1, [](AttentionOptions& o, int v) { set_enum(o.layout, v); }},
      {"mask", 1, [](AttentionOptions& o, int v) { set_enum(o.mask, v); }},
      {"pv_mode", 3, [](AttentionOptions& o, int v) { set_enum(o.pv_mode, v); }},
      {"granularity", 2, [](AttentionOptions& o, int v) { set_enum(o.granularity, v); }},
      {"smooth_k", 1, [](AttentionOptions& o, int v) { set_enum(o.smooth_k, v); }},
      {"smooth_v", 1, [](AttentionOptions& o, int v) { set_enum(o.smooth_v, v); }},
      {"backend", 3, [](AttentionOptions& o, int v) { set_enum(o.backend, v); }},
  };
  for (const auto& f : fields)
    for (int bad : {f.last + 1, -1, 127}) {
      const std::string value = std::to_string(bad);
      t.push_back({std::string("options_") + f.name + "_" + (bad < 0 ? "minus_1" : value),
                   [set = f.set, bad](DenseCall& c) { set(c.options, bad); }, kInvalid,
                   {std::string("options.") + f.name + " has an invalid value " + value}});
    }
  return t;
}

class DenseRejects : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseRejects, ThrowsNamedErrorAndWritesNothing) {
  const DenseCase& tc = GetParam();
  DenseCall call(tc.dims);
  tc.mutate(call);
  expect_rejected(call, tc.code, tc.needles);
}

INSTANTIATE_TEST_SUITE_P(Table, DenseRejects, ::testing::ValuesIn(dense_cases()),
                         [](const ::testing::TestParamInfo<DenseCase>& info) { return info.param.name; });

// The same rules in the NHD layout, where heads and tokens trade places (dim 2 is heads).
TEST(DenseRejectsNhd, HeadAndTokenChecksReadTheLayout) {
  {
    DenseCall c(Dims{}, Layout::kNHD);
    c.v.shape[2] = 1;  // heads of v
    expect_rejected(c, kInvalid, {"heads mismatch: k has 2 heads, v has 1"});
  }
  {
    DenseCall c(Dims{}, Layout::kNHD);
    c.v.shape[1] = 32;  // tokens of v
    expect_rejected(c, kInvalid, {"seqlen mismatch: k has 33 tokens, v has 32"});
  }
  {
    DenseCall c(Dims{2, 4, 3, 17, 33, 64}, Layout::kNHD);
    expect_rejected(c, kInvalid, {"heads_q=4 is not a multiple of heads_kv=3"});
  }
  {
    // An HND-shaped lse is what NHD callers must pass too: lse is always [B, Hq, Nq].
    DenseCall c(Dims{}, Layout::kNHD);
    c.lse = sa::make_contiguous_view(c.lse_buf.data(), DType::kF32, {2, 17, 4});
    expect_rejected(c, kInvalid, {"lse shape [2, 17, 4]", "= [2, 4, 17]"});
  }
  {
    // HND data described as NHD: q's "heads" are 17, k's 33.
    DenseCall c;
    c.options.layout = Layout::kNHD;
    expect_rejected(c, kInvalid, {"heads_q=17 is not a multiple of heads_kv=33"});
  }
}

TEST(DenseWorkspaceSize, ValidatesLikeTheCall) {
  DenseCall c;
  c.k.shape[3] = 32;
  try {
    sa::attention_workspace_size(c.q, c.k, c.v, c.options);
    ADD_FAILURE() << "attention_workspace_size accepted a head_dim mismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kInvalid);
    EXPECT_NE(std::string(e.what()).find("head_dim mismatch: q=64 k=32"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- dense: valid edge cases

// Every output element written and finite, every lse finite, the slack past them untouched.
void expect_fully_written(const DenseCall& c) {
  for (int64_t i = 0; i < c.out_numel(); ++i) {
    ASSERT_NE(c.out_buf[i], kPoison16) << "out element " << i << " not written";
    ASSERT_TRUE(bf16_finite(c.out_buf[i])) << "out element " << i;
  }
  EXPECT_TRUE(all_bytes(c.out_buf.data() + c.out_numel(),
                        (c.out_buf.size() - c.out_numel()) * sizeof(uint16_t), kPoisonByte))
      << "a write past the end of out";
  if (!c.lse.empty()) {
    for (int64_t i = 0; i < c.lse_numel(); ++i) ASSERT_TRUE(std::isfinite(c.lse_buf[i])) << i;
    EXPECT_TRUE(all_bytes(c.lse_buf.data() + c.lse_numel(),
                          (c.lse_buf.size() - c.lse_numel()) * sizeof(float), kPoisonByte))
        << "a write past the end of lse";
  } else {
    EXPECT_TRUE(c.lse_untouched());
  }
}

TEST(DenseValid, BaseCallWritesEveryElement) {
  for (bool with_lse : {true, false}) {
    DenseCall c(Dims{}, Layout::kHND, with_lse);
    ASSERT_NO_THROW(c.run());
    expect_fully_written(c);
  }
}

TEST(DenseValid, HeadDimBounds8And256) {
  for (int64_t d : {8, 256}) {
    DenseCall c(Dims{1, 2, 1, 9, 70, d});
    ASSERT_NO_THROW(c.run()) << "head_dim " << d;
    expect_fully_written(c);
  }
}

TEST(DenseValid, BatchZero) {
  DenseCall c(Dims{0, 4, 2, 17, 33, 64});
  ASSERT_NO_THROW(c.run());
  EXPECT_TRUE(c.out_untouched());
  EXPECT_TRUE(c.lse_untouched());
  // Nothing to read or write: null data is fine.
  c.q.data = c.k.data = c.v.data = c.out.data = c.lse.data = nullptr;
  ASSERT_NO_THROW(c.run());
  EXPECT_EQ(sa::attention_workspace_size(c.q, c.k, c.v, c.options), 0u);
}

TEST(DenseValid, NqZero) {
  for (Layout layout : {Layout::kHND, Layout::kNHD}) {
    DenseCall c(Dims{2, 4, 2, 0, 33, 64}, layout);
    c.options.mask = MaskMode::kCausal;
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(c.out_untouched());
    EXPECT_TRUE(c.lse_untouched());
    c.q.data = c.out.data = c.lse.data = nullptr;
    ASSERT_NO_THROW(c.run());
  }
}

// No key at all: every row is fully masked -> output exactly 0, lse -inf, never NaN
// (DESIGN.md §1.6), in every PV mode and with both smoothings (the mean of 0 tokens is 0).
TEST(DenseValid, NkZeroGivesZeroOutputAndMinusInfLse) {
  for (PvMode mode : {PvMode::kAuto, PvMode::kFp16, PvMode::kFp8, PvMode::kFp8Fp16Acc})
    for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal})
      for (bool null_kv : {false, true}) {
        SCOPED_TRACE(std::string(sa::to_string(mode)) + " " + sa::to_string(mask) +
                     (null_kv ? " null k/v" : ""));
        DenseCall c(Dims{2, 4, 2, 17, 0, 64});
        c.options.pv_mode = mode;
        c.options.mask = mask;
        c.options.smooth_v = Smoothing::kOn;
        if (null_kv) c.k.data = c.v.data = nullptr;
        ASSERT_NO_THROW(c.run());
        for (int64_t i = 0; i < c.out_numel(); ++i) ASSERT_EQ(c.out_buf[i], kBf16Zero) << i;
        for (int64_t i = 0; i < c.lse_numel(); ++i) ASSERT_EQ(c.lse_buf[i], kNegInf) << i;
      }
}

// Causal with Nq > Nk: query i sees keys j <= i + Nk - Nq, so the first Nq - Nk rows see none.
TEST(DenseValid, CausalRowsWithNoKeyAreZeroAndMinusInf) {
  const Dims dims{2, 4, 2, 17, 5, 64};
  DenseCall c(dims);
  c.options.mask = MaskMode::kCausal;
  ASSERT_NO_THROW(c.run());
  const int64_t masked = dims.nq - dims.nk;
  for (int64_t b = 0; b < dims.b; ++b)
    for (int64_t h = 0; h < dims.hq; ++h)
      for (int64_t n = 0; n < dims.nq; ++n) {
        const float lse = c.lse_buf[(b * dims.hq + h) * dims.nq + n];
        bool any_nonzero = false;
        for (int64_t d = 0; d < dims.d; ++d) {
          const uint16_t o = c.out_at(b, h, n, d);
          ASSERT_TRUE(bf16_finite(o));
          if (n < masked) {
            ASSERT_EQ(o, kBf16Zero) << "row " << n;
          }
          any_nonzero |= (o & 0x7FFFu) != 0;
        }
        if (n < masked) {
          EXPECT_EQ(lse, kNegInf) << "row " << n;
        } else {
          EXPECT_TRUE(std::isfinite(lse)) << "row " << n;
          EXPECT_TRUE(any_nonzero) << "row " << n;
        }
      }
}

// The default scale is 1/sqrt(D) correctly rounded to f32, bit for bit. D = 72 is one where
// 1.0f / std::sqrt(72.0f) is one ulp away from the correctly rounded value.
TEST(DenseValid, DefaultScaleIsOneOverSqrtHeadDim) {
  for (int64_t d : {40, 64, 72, 128}) {
    SCOPED_TRACE("head_dim " + std::to_string(d));
    const Dims dims{1, 2, 1, 17, 33, d};
    DenseCall def(dims), expl(dims), other(dims);
    expl.options.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    other.options.scale = 2.0f * *expl.options.scale;
    ASSERT_NO_THROW(def.run());
    ASSERT_NO_THROW(expl.run());
    ASSERT_NO_THROW(other.run());
    EXPECT_EQ(def.out_buf, expl.out_buf);
    EXPECT_TRUE(same_bits(def.lse_buf, expl.lse_buf));
    EXPECT_NE(def.out_buf, other.out_buf) << "the scale has no effect";
  }
}

// HND and NHD views of the same logical tensors give the same bits.
TEST(DenseValid, BothLayoutsAgreeBitForBit) {
  for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
    DenseCall hnd(Dims{}, Layout::kHND), nhd(Dims{}, Layout::kNHD);
    hnd.options.mask = nhd.options.mask = mask;
    ASSERT_NO_THROW(hnd.run());
    ASSERT_NO_THROW(nhd.run());
    expect_fully_written(nhd);
    EXPECT_EQ(hnd.out_logical(), nhd.out_logical());
    EXPECT_TRUE(same_bits(hnd.lse_values(), nhd.lse_values()));
  }
}

// GQA (Hkv = 2) and MQA (Hkv = 1) equal MHA with each K/V head copied Hq/Hkv times: query head h
// reads kv head h / (Hq / Hkv).
TEST(DenseValid, GqaAndMqaEqualMhaWithCopiedKv) {
  for (Layout layout : {Layout::kHND, Layout::kNHD})
    for (int64_t hkv : {1, 2, 4}) {
      SCOPED_TRACE("heads_kv " + std::to_string(hkv) + " " + sa::to_string(layout));
      const Dims dims{2, 4, hkv, 17, 33, 64};
      DenseCall gqa(dims, layout);
      DenseCall mha(Dims{2, 4, 4, 17, 33, 64}, layout);
      mha.q_f = gqa.q_f;
      const int64_t group = dims.hq / hkv, per_head = dims.nk * dims.d;
      for (int64_t b = 0; b < dims.b; ++b)
        for (int64_t h = 0; h < dims.hq; ++h) {
          const int64_t src = (b * hkv + h / group) * per_head, dst = (b * dims.hq + h) * per_head;
          std::copy_n(gqa.k_f.begin() + src, per_head, mha.k_f.begin() + dst);
          std::copy_n(gqa.v_f.begin() + src, per_head, mha.v_f.begin() + dst);
        }
      mha.repack();
      ASSERT_NO_THROW(gqa.run());
      ASSERT_NO_THROW(mha.run());
      expect_fully_written(gqa);
      EXPECT_EQ(gqa.out_logical(), mha.out_logical());
      EXPECT_TRUE(same_bits(gqa.lse_values(), mha.lse_values()));
    }
}

// Any strides with unit stride on D: padded rows in q/k/v, a padded and strided out and lse;
// results equal the contiguous call and the padding is never written.
TEST(DenseValid, PaddedStridesMatchContiguous) {
  const Dims dims;
  DenseCall ref(dims), c(dims);
  const int64_t pad_d = dims.d + 8;  // row pitch of every padded tensor
  auto padded_copy = [&](const std::vector<uint16_t>& src, int64_t h, int64_t n) {
    std::vector<uint16_t> dst(dims.b * h * n * pad_d, 0x7FC1);  // NaN in the padding
    for (int64_t r = 0; r < dims.b * h * n; ++r)
      std::copy_n(src.begin() + r * dims.d, dims.d, dst.begin() + r * pad_d);
    return dst;
  };
  auto q_pad = padded_copy(c.q_buf, dims.hq, dims.nq);
  auto k_pad = padded_copy(c.k_buf, dims.hkv, dims.nk);
  auto v_pad = padded_copy(c.v_buf, dims.hkv, dims.nk);
  auto strides = [&](int64_t h, int64_t n) {
    return std::vector<int64_t>{h * n * pad_d, n * pad_d, pad_d, 1};
  };
  const auto sq = strides(dims.hq, dims.nq), sk = strides(dims.hkv, dims.nk);
  c.q = sa::make_view(q_pad.data(), DType::kBF16, {dims.b, dims.hq, dims.nq, dims.d},
                      {sq[0], sq[1], sq[2], sq[3]});
  c.k = sa::make_view(k_pad.data(), DType::kBF16, {dims.b, dims.hkv, dims.nk, dims.d},
                      {sk[0], sk[1], sk[2], sk[3]});
  c.v = sa::make_view(v_pad.data(), DType::kBF16, {dims.b, dims.hkv, dims.nk, dims.d},
                      {sk[0], sk[1], sk[2], sk[3]});
  // out: heads outermost in memory ([H, B, N, pad_d]); lse: [B, H, N] with N strided by 1 but
  // heads padded to 20 entries.
  std::vector<uint16_t> out_mem(dims.hq * dims.b * dims.nq * pad_d, kPoison16);
  c.out = sa::make_view(out_mem.data(), DType::kBF16, {dims.b, dims.hq, dims.nq, dims.d},
                        {dims.nq * pad_d, dims.b * dims.nq * pad_d, pad_d, 1});
  std::vector<float> lse_mem(dims.b * dims.hq * 20);
  std::memset(lse_mem.data(), kPoisonByte, lse_mem.size() * sizeof(float));
  c.lse = sa::make_view(lse_mem.data(), DType::kF32, {dims.b, dims.hq, dims.nq},
                        {dims.hq * 20, 20, 1});
  ASSERT_NO_THROW(ref.run());
  ASSERT_NO_THROW(c.run());
  for (int64_t b = 0; b < dims.b; ++b)
    for (int64_t h = 0; h < dims.hq; ++h)
      for (int64_t n = 0; n < dims.nq; ++n) {
        const int64_t row = (h * dims.b + b) * dims.nq + n;
        for (int64_t d = 0; d < pad_d; ++d) {
          const uint16_t got = out_mem[row * pad_d + d];
          if (d < dims.d) {
            ASSERT_EQ(got, ref.out_at(b, h, n, d)) << b << "," << h << "," << n << "," << d;
          } else {
            ASSERT_EQ(got, kPoison16) << "padding of out written";
          }
        }
        for (int64_t i = 0; i < 20; ++i) {
          const float got = lse_mem[(b * dims.hq + h) * 20 + i];
          const float want = ref.lse_buf[(b * dims.hq + h) * dims.nq + i];
          if (i < dims.nq) {
            ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0) << "lse " << b << "," << h << "," << i;
          } else {
            ASSERT_TRUE(all_bytes(&got, sizeof got, kPoisonByte)) << "padding of lse written";
          }
        }
      }
  EXPECT_TRUE(c.out_untouched()) << "the unused buffer of the call object";
}

// lse may have any strides, including a non-unit one on its last dim (every other float).
TEST(DenseValid, LseWithNonUnitLastStride) {
  const Dims dims;
  DenseCall ref(dims), c(dims);
  std::vector<float> lse_mem(dims.b * dims.hq * dims.nq * 2);
  std::memset(lse_mem.data(), kPoisonByte, lse_mem.size() * sizeof(float));
  c.lse = sa::make_view(lse_mem.data(), DType::kF32, {dims.b, dims.hq, dims.nq},
                        {dims.hq * dims.nq * 2, dims.nq * 2, 2});
  ASSERT_NO_THROW(ref.run());
  ASSERT_NO_THROW(c.run());
  for (int64_t i = 0; i < dims.b * dims.hq * dims.nq; ++i) {
    ASSERT_EQ(std::memcmp(&lse_mem[2 * i], &ref.lse_buf[i], sizeof(float)), 0) << "lse " << i;
    ASSERT_TRUE(all_bytes(&lse_mem[2 * i + 1], sizeof(float), kPoisonByte)) << "gap " << i;
  }
}

// The CPU needs no workspace: its size is 0, so a caller workspace of 0 bytes (data given) is
// enough, and one with bytes but no data means "allocate yourself".
TEST(DenseValid, WorkspaceOfZeroBytesIsAccepted) {
  DenseCall ref;
  ASSERT_NO_THROW(ref.run());
  EXPECT_EQ(sa::attention_workspace_size(ref.q, ref.k, ref.v, ref.options), 0u);
  unsigned char scratch[16];
  std::memset(scratch, 0x5A, sizeof scratch);
  for (Workspace ws : {Workspace{scratch, 0}, Workspace{scratch, sizeof scratch},
                       Workspace{nullptr, 1024}}) {
    DenseCall c;
    c.workspace = ws;
    ASSERT_NO_THROW(c.run()) << "workspace bytes " << ws.bytes;
    EXPECT_EQ(c.out_buf, ref.out_buf);
  }
  EXPECT_TRUE(all_bytes(scratch, sizeof scratch, 0x5A)) << "a 0-byte-needed workspace was written";
}

// ---------------------------------------------------------------- varlen calls

// A valid varlen call: packed host bf16 q [total_q, Hq, D], k/v [total_k, Hkv, D], lse
// [Hq, total_q], cu_seqlens from the lengths. Sequence lengths include 0s.
struct VarlenCall {
  VarlenCall(std::vector<int32_t> len_q_ = {5, 0, 12}, std::vector<int32_t> len_k_ = {7, 3, 23},
             int64_t hq_ = 4, int64_t hkv_ = 2, int64_t d_ = 64, bool with_lse = true,
             uint64_t seed = 11)
      : len_q(std::move(len_q_)), len_k(std::move(len_k_)), hq(hq_), hkv(hkv_), d(d_) {
    cu_q_buf.assign(padded(len_q.size() + 1), 0);
    cu_k_buf.assign(padded(len_k.size() + 1), 0);
    for (std::size_t i = 0; i < len_q.size(); ++i) cu_q_buf[i + 1] = cu_q_buf[i] + len_q[i];
    for (std::size_t i = 0; i < len_k.size(); ++i) cu_k_buf[i + 1] = cu_k_buf[i] + len_k[i];
    total_q = cu_q_buf[len_q.size()];
    total_k = cu_k_buf[len_k.size()];
    // [total, H, D] is [1, total, H, D] in NHD: reuse the dense packer.
    const auto in = sa::cpu::make_inputs(sa::cpu::InputFamily::kKChannelBias, 1, 1, 1,
                                         total_q * hq, total_k * hkv, d, seed);
    q_f = in.q;  // [total_q, Hq, D] row-major
    k_f = in.k;
    v_f = in.v;
    q_buf = pack_bf16(q_f, Layout::kHND, 1, 1, total_q * hq, d);
    k_buf = pack_bf16(k_f, Layout::kHND, 1, 1, total_k * hkv, d);
    v_buf = pack_bf16(v_f, Layout::kHND, 1, 1, total_k * hkv, d);
    out_buf.resize(padded(total_q * hq * d));
    lse_buf.resize(padded(hq * total_q));
    a.q = sa::make_contiguous_view(q_buf.data(), DType::kBF16, {total_q, hq, d});
    a.k = sa::make_contiguous_view(k_buf.data(), DType::kBF16, {total_k, hkv, d});
    a.v = sa::make_contiguous_view(v_buf.data(), DType::kBF16, {total_k, hkv, d});
    a.out = sa::make_contiguous_view(out_buf.data(), DType::kBF16, {total_q, hq, d});
    if (with_lse) a.lse = sa::make_contiguous_view(lse_buf.data(), DType::kF32, {hq, total_q});
    a.cu_seqlens_q = sa::make_contiguous_view(cu_q_buf.data(), DType::kI32,
                                              {static_cast<int64_t>(len_q.size()) + 1});
    a.cu_seqlens_k = sa::make_contiguous_view(cu_k_buf.data(), DType::kI32,
                                              {static_cast<int64_t>(len_k.size()) + 1});
    a.max_seqlen_q = len_q.empty() ? 0 : *std::max_element(len_q.begin(), len_q.end());
    a.max_seqlen_k = len_k.empty() ? 0 : *std::max_element(len_k.begin(), len_k.end());
    poison();
  }

  void poison() {
    std::memset(out_buf.data(), kPoisonByte, out_buf.size() * sizeof(uint16_t));
    std::memset(lse_buf.data(), kPoisonByte, lse_buf.size() * sizeof(float));
  }
  bool out_untouched() const {
    return all_bytes(out_buf.data(), out_buf.size() * sizeof(uint16_t), kPoisonByte);
  }
  bool lse_untouched() const {
    return all_bytes(lse_buf.data(), lse_buf.size() * sizeof(float), kPoisonByte);
  }
  void run() const { sa::attention_varlen(a, options, workspace); }
  void set_all_devices(int device) {
    a.q.device = a.k.device = a.v.device = a.out.device = a.lse.device = device;
    a.cu_seqlens_q.device = a.cu_seqlens_k.device = device;
  }

  std::vector<int32_t> len_q, len_k;
  int64_t hq, hkv, d, total_q = 0, total_k = 0;
  std::vector<float> q_f, k_f, v_f;
  std::vector<uint16_t> q_buf, k_buf, v_buf, out_buf;
  std::vector<float> lse_buf;
  std::vector<int32_t> cu_q_buf, cu_k_buf;
  VarlenArgs a;
  AttentionOptions options;
  Workspace workspace;
};

struct VarlenCase {
  std::string name;
  std::function<void(VarlenCall&)> mutate;
  ErrorCode code;
  std::vector<std::string> needles;
};
void PrintTo(const VarlenCase& c, std::ostream* os) { *os << c.name; }

std::vector<VarlenCase> varlen_cases() {
  // Base: len_q {5, 0, 12} -> cu_q [0, 5, 5, 17], len_k {7, 3, 23} -> cu_k [0, 7, 10, 33],
  // Hq 4, Hkv 2, D 64, max_seqlen_q 12, max_seqlen_k 23.
  return {
      // ---- rank: packed tensors are [total, H, D]
      {"q_ndim_4", [](VarlenCall& c) { c.a.q.ndim = 4; }, kInvalid, {"q must have 3 dims", "ndim=4"}},
      {"q_dense_4d_view",
       [](VarlenCall& c) { c.a.q = sa::make_contiguous_view(c.q_buf.data(), DType::kBF16, {1, 17, 4, 64}); },
       kInvalid, {"q must have 3 dims", "ndim=4"}},
      {"k_ndim_2", [](VarlenCall& c) { c.a.k.ndim = 2; }, kInvalid, {"k must have 3 dims", "ndim=2"}},
      {"v_ndim_4", [](VarlenCall& c) { c.a.v.ndim = 4; }, kInvalid, {"v must have 3 dims", "ndim=4"}},
      {"out_ndim_4", [](VarlenCall& c) { c.a.out.ndim = 4; }, kInvalid, {"out must have 3 dims", "ndim=4"}},
      {"lse_ndim_3_dense_style",
       [](VarlenCall& c) { c.a.lse = sa::make_contiguous_view(c.lse_buf.data(), DType::kF32, {1, 4, 17}); },
       kInvalid, {"lse must have 2 dims", "ndim=3"}},
      // ---- shared tensor rules
      {"q_negative_total", [](VarlenCall& c) { c.a.q.shape[0] = -1; }, kInvalid,
       {"q has a negative size -1 in dim 0"}},
      {"k_null_data", [](VarlenCall& c) { c.a.k.data = nullptr; }, kInvalid,
       {"k has null data", "[33, 2, 64]"}},
      {"out_null_data", [](VarlenCall& c) { c.a.out.data = nullptr; }, kInvalid,
       {"out has null data", "[17, 4, 64]"}},
      {"q_f32", [](VarlenCall& c) { c.a.q.dtype = DType::kF32; }, kInvalid,
       {"q dtype must be f16 or bf16", "got f32"}},
      {"v_f16_q_bf16", [](VarlenCall& c) { c.a.v.dtype = DType::kF16; }, kInvalid,
       {"v dtype f16 does not match q dtype bf16"}},
      {"out_f16_q_bf16", [](VarlenCall& c) { c.a.out.dtype = DType::kF16; }, kInvalid,
       {"out dtype f16 does not match q dtype bf16"}},
      {"lse_bf16", [](VarlenCall& c) { c.a.lse.dtype = DType::kBF16; }, kInvalid,
       {"lse dtype must be f32", "got bf16"}},
      {"k_head_dim_32", [](VarlenCall& c) { c.a.k.shape[2] = 32; }, kInvalid,
       {"head_dim mismatch: q=64 k=32"}},
      {"out_head_dim_32", [](VarlenCall& c) { c.a.out.shape[2] = 32; }, kInvalid,
       {"head_dim mismatch: q=64 out=32"}},
      {"head_dim_12_everywhere",
       [](VarlenCall& c) { c.a.q.shape[2] = c.a.k.shape[2] = c.a.v.shape[2] = c.a.out.shape[2] = 12; },
       kInvalid, {"head_dim must be a multiple of 8", "got 12"}},
      {"v_heads_1", [](VarlenCall& c) { c.a.v.shape[1] = 1; }, kInvalid,
       {"heads mismatch: k has 2 heads, v has 1"}},
      {"heads_q_3",
       [](VarlenCall& c) { c.a.q.shape[1] = c.a.out.shape[1] = c.a.lse.shape[0] = 3; }, kInvalid,
       {"heads_q=3 is not a multiple of heads_kv=2"}},
      {"heads_kv_0", [](VarlenCall& c) { c.a.k.shape[1] = c.a.v.shape[1] = 0; }, kInvalid,
       {"at least one head", "heads_kv=0"}},
      {"v_tokens_32_k_tokens_33", [](VarlenCall& c) { c.a.v.shape[0] = 32; }, kInvalid,
       {"token count mismatch: k has 33 tokens, v has 32"}},
      {"out_tokens_16", [](VarlenCall& c) { c.a.out.shape[0] = 16; }, kInvalid,
       {"out shape [16, 4, 64] does not match q shape [17, 4, 64]"}},
      {"q_last_stride_2", [](VarlenCall& c) { c.a.q.stride[2] = 2; }, kInvalid,
       {"q must have unit stride on its last dim, got 2"}},
      {"out_last_stride_0", [](VarlenCall& c) { c.a.out.stride[2] = 0; }, kInvalid,
       {"out must have unit stride on its last dim, got 0"}},
      {"k_on_device_0", [](VarlenCall& c) { c.a.k.device = 0; }, kInvalid,
       {"k is on device 0 but q is on device -1"}},
      {"lse_on_device_0", [](VarlenCall& c) { c.a.lse.device = 0; }, kInvalid,
       {"lse is on device 0 but q is on device -1"}},
      {"all_on_device_0", [](VarlenCall& c) { c.set_all_devices(0); }, kUnsupported,
       {"tensors are on device 0", "0 CUDA device(s) are usable"}},
      {"scale_nan", [](VarlenCall& c) { c.options.scale = std::numeric_limits<float>::quiet_NaN(); },
       kInvalid, {"options.scale must be finite, got nan"}},
      {"pv_mode_4", [](VarlenCall& c) { set_enum(c.options.pv_mode, 4); }, kInvalid,
       {"options.pv_mode has an invalid value 4"}},
      {"backend_sm80_host", [](VarlenCall& c) { c.options.backend = Backend::kSm80; }, kInvalid,
       {"backend sm80 needs GPU tensors"}},
      // ---- lse shape: [Hq, total_q]
      {"lse_transposed",
       [](VarlenCall& c) { c.a.lse = sa::make_contiguous_view(c.lse_buf.data(), DType::kF32, {17, 4}); },
       kInvalid, {"lse shape [17, 4] must be [heads_q, total_q] = [4, 17]"}},
      {"lse_total_16", [](VarlenCall& c) { c.a.lse.shape[1] = 16; }, kInvalid,
       {"lse shape [4, 16]", "= [4, 17]"}},
      // ---- cu_seqlens tensors
      {"cu_q_f32", [](VarlenCall& c) { c.a.cu_seqlens_q.dtype = DType::kF32; }, kInvalid,
       {"cu_seqlens_q dtype must be i32", "got f32"}},
      {"cu_k_i8", [](VarlenCall& c) { c.a.cu_seqlens_k.dtype = DType::kI8; }, kInvalid,
       {"cu_seqlens_k dtype must be i32", "got i8"}},
      {"cu_q_2d",
       [](VarlenCall& c) { c.a.cu_seqlens_q = sa::make_contiguous_view(c.cu_q_buf.data(), DType::kI32, {1, 4}); },
       kInvalid, {"cu_seqlens_q must have 1 dims", "ndim=2"}},
      {"cu_k_absent", [](VarlenCall& c) { c.a.cu_seqlens_k = TensorView(); }, kInvalid,
       {"cu_seqlens_k must have 1 dims", "ndim=0"}},
      {"cu_q_no_entries",
       [](VarlenCall& c) { c.a.cu_seqlens_q.shape[0] = c.a.cu_seqlens_k.shape[0] = 0; }, kInvalid,
       {"cu_seqlens_q must have batch + 1 >= 1 entries, got 0"}},
      {"cu_q_stride_2", [](VarlenCall& c) { c.a.cu_seqlens_q.stride[0] = 2; }, kInvalid,
       {"cu_seqlens_q must have unit stride on its last dim, got 2"}},
      {"cu_k_null_data", [](VarlenCall& c) { c.a.cu_seqlens_k.data = nullptr; }, kInvalid,
       {"cu_seqlens_k has null data", "[4]"}},
      {"cu_k_on_device_0", [](VarlenCall& c) { c.a.cu_seqlens_k.device = 0; }, kInvalid,
       {"cu_seqlens_k is on device 0 but q is on device -1"}},
      {"cu_lengths_differ", [](VarlenCall& c) { c.a.cu_seqlens_k.shape[0] = 3; }, kInvalid,
       {"cu_seqlens_q has 4 entries but cu_seqlens_k has 3"}},
      // ---- cu_seqlens values (checked on the host)
      {"cu_q_first_1", [](VarlenCall& c) { c.cu_q_buf[0] = 1; }, kInvalid,
       {"cu_seqlens_q[0] must be 0, got 1"}},
      {"cu_k_first_minus_3", [](VarlenCall& c) { c.cu_k_buf[0] = -3; }, kInvalid,
       {"cu_seqlens_k[0] must be 0, got -3"}},
      {"cu_q_decreasing", [](VarlenCall& c) { c.cu_q_buf[2] = 4; }, kInvalid,
       {"cu_seqlens_q[2]=4 is smaller than cu_seqlens_q[1]=5"}},
      {"cu_k_decreasing", [](VarlenCall& c) { c.cu_k_buf[1] = 11; }, kInvalid,
       {"cu_seqlens_k[2]=10 is smaller than cu_seqlens_k[1]=11"}},
      {"cu_q_last_16_total_17", [](VarlenCall& c) { c.cu_q_buf[3] = 16; }, kInvalid,
       {"cu_seqlens_q[3]=16 must equal the packed token count 17"}},
      {"cu_k_last_34_total_33",
       [](VarlenCall& c) {
         c.cu_k_buf[3] = 34;
         c.a.max_seqlen_k = 24;
       },
       kInvalid, {"cu_seqlens_k[3]=34 must equal the packed token count 33"}},
      {"batch_0_with_tokens",
       [](VarlenCall& c) { c.a.cu_seqlens_q.shape[0] = c.a.cu_seqlens_k.shape[0] = 1; }, kInvalid,
       {"cu_seqlens_q[0]=0 must equal the packed token count 17"}},
      {"max_seqlen_q_too_small", [](VarlenCall& c) { c.a.max_seqlen_q = 11; }, kInvalid,
       {"sequence 2 has length 12", "max_seqlen_q=11"}},
      {"max_seqlen_k_too_small", [](VarlenCall& c) { c.a.max_seqlen_k = 7; }, kInvalid,
       {"sequence 2 has length 23", "max_seqlen_k=7"}},
      {"max_seqlen_q_negative", [](VarlenCall& c) { c.a.max_seqlen_q = -1; }, kInvalid,
       {"max_seqlen_q must be >= 0, got -1"}},
      {"max_seqlen_k_negative", [](VarlenCall& c) { c.a.max_seqlen_k = -5; }, kInvalid,
       {"max_seqlen_k must be >= 0, got -5"}},
  };
}

class VarlenRejects : public ::testing::TestWithParam<VarlenCase> {};

TEST_P(VarlenRejects, ThrowsNamedErrorAndWritesNothing) {
  const VarlenCase& tc = GetParam();
  VarlenCall call;
  tc.mutate(call);
  expect_rejected(call, tc.code, tc.needles);
  // The workspace query validates the same way.
  EXPECT_THROW(sa::attention_varlen_workspace_size(call.a, call.options), Error);
}

INSTANTIATE_TEST_SUITE_P(Table, VarlenRejects, ::testing::ValuesIn(varlen_cases()),
                         [](const ::testing::TestParamInfo<VarlenCase>& info) { return info.param.name; });

// The layout option is meaningless for packed tensors: NHD and HND give the same bits.
TEST(VarlenValid, LayoutOptionIsIgnored) {
  VarlenCall hnd, nhd;
  nhd.options.layout = Layout::kNHD;
  ASSERT_NO_THROW(hnd.run());
  ASSERT_NO_THROW(nhd.run());
  EXPECT_EQ(hnd.out_buf, nhd.out_buf);
  EXPECT_TRUE(same_bits(hnd.lse_buf, nhd.lse_buf));
}

// GPU tensors: cu_seqlens contents cannot be read without a sync and are trusted, so even a
// malformed cu_seqlens array reaches the device check (and fails there in this build).
TEST(VarlenRejectsGpu, CuSeqlensValuesAreNotReadOnTheGpu) {
  VarlenCall c;
  c.set_all_devices(0);
  c.cu_q_buf[0] = 99;
  expect_rejected(c, kUnsupported, {"tensors are on device 0"});
}

// ---------------------------------------------------------------- varlen: valid edge cases

// Each sequence of a varlen call equals dense attention on that sequence alone, bit for bit;
// a sequence with no key gives 0 / -inf; Nq = 0 sequences own nothing.
TEST(VarlenValid, EqualsDensePerSequence) {
  for (MaskMode mask : {MaskMode::kNone, MaskMode::kCausal}) {
    SCOPED_TRACE(sa::to_string(mask));
    const std::vector<int32_t> len_q = {5, 0, 12, 3, 9}, len_k = {7, 3, 23, 0, 4};
    VarlenCall c(len_q, len_k);
    c.options.mask = mask;
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(all_bytes(c.out_buf.data() + c.total_q * c.hq * c.d,
                          (c.out_buf.size() - c.total_q * c.hq * c.d) * sizeof(uint16_t), kPoisonByte));
    EXPECT_TRUE(all_bytes(c.lse_buf.data() + c.hq * c.total_q,
                          (c.lse_buf.size() - c.hq * c.total_q) * sizeof(float), kPoisonByte));
    for (std::size_t s = 0; s < len_q.size(); ++s) {
      SCOPED_TRACE("sequence " + std::to_string(s));
      const int64_t q0 = c.cu_q_buf[s], k0 = c.cu_k_buf[s], nq = len_q[s], nk = len_k[s];
      DenseCall dense(Dims{1, c.hq, c.hkv, nq, nk, c.d});
      dense.options.mask = mask;
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t n = 0; n < nq; ++n)
          std::copy_n(c.q_f.begin() + ((q0 + n) * c.hq + h) * c.d, c.d,
                      dense.q_f.begin() + (h * nq + n) * c.d);
      for (int64_t h = 0; h < c.hkv; ++h)
        for (int64_t n = 0; n < nk; ++n) {
          std::copy_n(c.k_f.begin() + ((k0 + n) * c.hkv + h) * c.d, c.d,
                      dense.k_f.begin() + (h * nk + n) * c.d);
          std::copy_n(c.v_f.begin() + ((k0 + n) * c.hkv + h) * c.d, c.d,
                      dense.v_f.begin() + (h * nk + n) * c.d);
        }
      dense.repack();
      ASSERT_NO_THROW(dense.run());
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t n = 0; n < nq; ++n) {
          for (int64_t d = 0; d < c.d; ++d) {
            const uint16_t got = c.out_buf[((q0 + n) * c.hq + h) * c.d + d];
            ASSERT_EQ(got, dense.out_at(0, h, n, d)) << "h " << h << " n " << n << " d " << d;
            if (nk == 0) {
              ASSERT_EQ(got, kBf16Zero);
            }
          }
          const float got = c.lse_buf[h * c.total_q + q0 + n];
          const float want = dense.lse_buf[h * nq + n];
          ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0) << "lse h " << h << " n " << n;
          if (nk == 0) {
            ASSERT_EQ(got, kNegInf);
          }
        }
    }
  }
}

TEST(VarlenValid, BatchZeroAndEmptyTotals) {
  {
    VarlenCall c({}, {});  // cu = [0], totals 0
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(c.out_untouched());
    EXPECT_TRUE(c.lse_untouched());
    EXPECT_EQ(sa::attention_varlen_workspace_size(c.a, c.options), 0u);
  }
  {
    VarlenCall c({0, 0}, {0, 4});  // total_q 0: nothing to write, null q/out allowed
    c.a.q.data = c.a.out.data = c.a.lse.data = nullptr;
    ASSERT_NO_THROW(c.run());
    EXPECT_TRUE(c.out_untouched());
  }
  {
    VarlenCall c({3, 2}, {0, 0});  // total_k 0: all rows fully masked
    c.a.k.data = c.a.v.data = nullptr;
    ASSERT_NO_THROW(c.run());
    for (int64_t i = 0; i < c.total_q * c.hq * c.d; ++i) ASSERT_EQ(c.out_buf[i], kBf16Zero) << i;
    for (int64_t i = 0; i < c.hq * c.total_q; ++i) ASSERT_EQ(c.lse_buf[i], kNegInf) << i;
  }
}

// max_seqlen may exceed every length (it is an upper bound); MQA and workspace of 0 bytes work.
TEST(VarlenValid, LooseMaxSeqlenMqaAndZeroByteWorkspace) {
  VarlenCall ref({5, 0, 12}, {7, 3, 23}, 4, 1);
  ASSERT_NO_THROW(ref.run());
  VarlenCall c({5, 0, 12}, {7, 3, 23}, 4, 1);
  c.a.max_seqlen_q = 1000;
  c.a.max_seqlen_k = 1 << 30;
  unsigned char scratch[1];
  c.workspace = Workspace{scratch, 0};
  ASSERT_NO_THROW(c.run());
  EXPECT_EQ(c.out_buf, ref.out_buf);
  EXPECT_TRUE(same_bits(c.lse_buf, ref.lse_buf));
}

// ---------------------------------------------------------------- helpers of the public API

TEST(TensorViewHelpers, MakeContiguousViewStrides) {
  int x = 0;
  const TensorView t = sa::make_contiguous_view(&x, DType::kBF16, {2, 3, 4, 5}, 3);
  EXPECT_EQ(t.data, &x);
  EXPECT_EQ(t.dtype, DType::kBF16);
  EXPECT_EQ(t.device, 3);
  ASSERT_EQ(t.ndim, 4);
  const int64_t shape[] = {2, 3, 4, 5}, stride[] = {60, 20, 5, 1};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(t.shape[i], shape[i]) << i;
    EXPECT_EQ(t.stride[i], stride[i]) << i;
  }
  EXPECT_EQ(t.numel(), 120);
  EXPECT_FALSE(t.empty());

  const TensorView one = sa::make_contiguous_view(nullptr, DType::kI32, {7});
  EXPECT_EQ(one.ndim, 1);
  EXPECT_EQ(one.stride[0], 1);
  EXPECT_EQ(one.device, sa::kHostDevice);

  const TensorView with_zero = sa::make_contiguous_view(nullptr, DType::kF16, {3, 0, 2});
  EXPECT_EQ(with_zero.numel(), 0);
  EXPECT_EQ(with_zero.stride[2], 1);
  EXPECT_EQ(with_zero.stride[1], 2);
  EXPECT_EQ(with_zero.stride[0], 0);

  const TensorView scalar = sa::make_contiguous_view(nullptr, DType::kF32, {});
  EXPECT_EQ(scalar.ndim, 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_TRUE(scalar.empty());
  EXPECT_TRUE(TensorView().empty());
}

TEST(TensorViewHelpers, MakeViewKeepsStrides) {
  float x = 0;
  const TensorView t = sa::make_view(&x, DType::kF32, {2, 3, 8}, {100, -8, 1}, 1);
  ASSERT_EQ(t.ndim, 3);
  EXPECT_EQ(t.stride[0], 100);
  EXPECT_EQ(t.stride[1], -8);
  EXPECT_EQ(t.stride[2], 1);
  EXPECT_EQ(t.shape[2], 8);
  EXPECT_EQ(t.device, 1);
  EXPECT_EQ(t.numel(), 48);
}

TEST(TensorViewHelpers, MakeViewErrorsNameTheCounts) {
  auto expect_error = [](const std::function<void()>& f, const std::vector<std::string>& needles) {
    try {
      f();
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kInvalid);
      for (const auto& n : needles)
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " lacks " << n;
    }
  };
  expect_error([] { sa::make_view(nullptr, DType::kF16, {2, 3, 4}, {12, 4}); },
               {"make_view: 3 sizes but 2 strides"});
  expect_error([] { sa::make_view(nullptr, DType::kF16, {2}, {1, 1}); },
               {"make_view: 1 sizes but 2 strides"});
  expect_error([] { sa::make_view(nullptr, DType::kF16, {1, 2, 3, 4, 5}, {120, 60, 20, 5, 1}); },
               {"make_view: at most 4 dims, got 5"});
  expect_error([] { sa::make_contiguous_view(nullptr, DType::kF16, {1, 2, 3, 4, 5}); },
               {"make_contiguous_view: at most 4 dims, got 5"});
}

TEST(Names, EveryEnumValue) {
  EXPECT_STREQ(sa::to_string(DType::kF16), "f16");
  EXPECT_STREQ(sa::to_string(DType::kBF16), "bf16");
  EXPECT_STREQ(sa::to_string(DType::kF32), "f32");
  EXPECT_STREQ(sa::to_string(DType::kI8), "i8");
  EXPECT_STREQ(sa::to_string(DType::kFp8E4M3), "fp8_e4m3");
  EXPECT_STREQ(sa::to_string(DType::kI32), "i32");
  EXPECT_STREQ(sa::to_string(static_cast<DType>(42)), "invalid_dtype");

  EXPECT_STREQ(sa::to_string(Layout::kHND), "HND");
  EXPECT_STREQ(sa::to_string(Layout::kNHD), "NHD");
  EXPECT_STREQ(sa::to_string(static_cast<Layout>(2)), "invalid_layout");

  EXPECT_STREQ(sa::to_string(MaskMode::kNone), "none");
  EXPECT_STREQ(sa::to_string(MaskMode::kCausal), "causal");
  EXPECT_STREQ(sa::to_string(static_cast<MaskMode>(-1)), "invalid_mask");

  EXPECT_STREQ(sa::to_string(PvMode::kAuto), "auto");
  EXPECT_STREQ(sa::to_string(PvMode::kFp16), "fp16");
  EXPECT_STREQ(sa::to_string(PvMode::kFp8), "fp8");
  EXPECT_STREQ(sa::to_string(PvMode::kFp8Fp16Acc), "fp8_fp16acc");
  EXPECT_STREQ(sa::to_string(static_cast<PvMode>(4)), "invalid_pv_mode");

  EXPECT_STREQ(sa::to_string(Granularity::kPerBlock), "per_block");
  EXPECT_STREQ(sa::to_string(Granularity::kPerWarp), "per_warp");
  EXPECT_STREQ(sa::to_string(Granularity::kPerThread), "per_thread");
  EXPECT_STREQ(sa::to_string(static_cast<Granularity>(3)), "invalid_granularity");

  EXPECT_STREQ(sa::to_string(Smoothing::kOff), "off");
  EXPECT_STREQ(sa::to_string(Smoothing::kOn), "on");
  EXPECT_STREQ(sa::to_string(static_cast<Smoothing>(2)), "invalid_smoothing");

  EXPECT_STREQ(sa::to_string(Backend::kAuto), "auto");
  EXPECT_STREQ(sa::to_string(Backend::kCpu), "cpu");
  EXPECT_STREQ(sa::to_string(Backend::kSm80), "sm80");
  EXPECT_STREQ(sa::to_string(Backend::kSm90), "sm90");
  EXPECT_STREQ(sa::to_string(static_cast<Backend>(4)), "invalid_backend");

  EXPECT_STREQ(sa::to_string(ErrorCode::kInvalidArgument), "invalid_argument");
  EXPECT_STREQ(sa::to_string(ErrorCode::kUnsupported), "unsupported");
  EXPECT_STREQ(sa::to_string(ErrorCode::kCudaError), "cuda_error");
  EXPECT_STREQ(sa::to_string(ErrorCode::kOutOfMemory), "out_of_memory");
  EXPECT_STREQ(sa::to_string(ErrorCode::kIoError), "io_error");
  EXPECT_STREQ(sa::to_string(ErrorCode::kInternal), "internal");
  EXPECT_STREQ(sa::to_string(static_cast<ErrorCode>(99)), "unknown");
}

TEST(Names, DtypeSize) {
  EXPECT_EQ(sa::dtype_size(DType::kF16), 2u);
  EXPECT_EQ(sa::dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(sa::dtype_size(DType::kF32), 4u);
  EXPECT_EQ(sa::dtype_size(DType::kI8), 1u);
  EXPECT_EQ(sa::dtype_size(DType::kFp8E4M3), 1u);
  EXPECT_EQ(sa::dtype_size(DType::kI32), 4u);
  EXPECT_EQ(sa::dtype_size(static_cast<DType>(42)), 0u);
}

TEST(Api, ResolvePvMode) {
  EXPECT_EQ(sa::resolve_pv_mode(PvMode::kAuto, sa::kHostDevice), PvMode::kFp8);
  for (int64_t d : {8, 64, 128, 256}) EXPECT_EQ(sa::resolve_pv_mode(PvMode::kAuto, sa::kHostDevice, d), PvMode::kFp8) << d;
  for (PvMode m : {PvMode::kFp16, PvMode::kFp8, PvMode::kFp8Fp16Acc}) {
    EXPECT_EQ(sa::resolve_pv_mode(m, 0, 256), m) << sa::to_string(m) << " on device 0, head dim 256";
    EXPECT_EQ(sa::resolve_pv_mode(m, sa::kHostDevice), m) << sa::to_string(m);
    EXPECT_EQ(sa::resolve_pv_mode(m, 0), m) << sa::to_string(m) << " on device 0";
  }
  // kAuto on a GPU needs its compute capability, which a CPU-only build cannot know.
  try {
    sa::resolve_pv_mode(PvMode::kAuto, 0);
    ADD_FAILURE() << "resolve_pv_mode(kAuto, 0) answered in a CPU-only build";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("CPU-only build"), std::string::npos) << e.what();
  }
}

TEST(Api, NoGpuInThisBuildAndVersion) {
  EXPECT_FALSE(sa::gpu_available());
  EXPECT_STREQ(sa::version(), "0.1.0");
}

TEST(Api, ErrorCarriesCodeAndMessage) {
  const Error e(ErrorCode::kIoError, "cannot read x.npy");
  EXPECT_EQ(e.code(), ErrorCode::kIoError);
  EXPECT_STREQ(e.what(), "cannot read x.npy");
  const std::runtime_error& base = e;  // catchable as a std::runtime_error
  EXPECT_STREQ(base.what(), "cannot read x.npy");
}

// ---------------------------------------------------------------- edge values found by review

// An out-of-range dtype value (a binding casting a bad int) is named by its number.
TEST(EdgeValues, OutOfRangeDtypeIsNamedByValue) {
  DenseCall c;
  c.q.dtype = c.k.dtype = c.v.dtype = c.out.dtype = static_cast<DType>(42);
  expect_rejected(c, kInvalid, {"q dtype", "42"});
}

// A shape whose element count passes 2^63 is rejected instead of wrapping (here every product
// would wrap to exactly 0 and four null tensors would pass the null-data rule).
// attention_workspace_size validates without computing, so this test cannot crash.
TEST(EdgeValues, ElementCountOverflowIsRejected) {
  const int64_t big = int64_t{1} << 28;
  const TensorView t =
      sa::make_view(nullptr, DType::kBF16, {big, big, 256, 8}, {big * 256 * 8, 256 * 8, 8, 1});
  const std::string msg = message_of([&] { sa::attention_workspace_size(t, t, t); });
  EXPECT_FALSE(msg.empty()) << "a null tensor of 2^67 elements was accepted";
  EXPECT_NE(msg.find("268435456"), std::string::npos) << msg;
}

// A finite scale above FLT_MAX / log2(e) (about 2.36e38) would overflow when scale * log2(e) is
// folded into the Q dequantization factor, turning every row into a "fully masked" one. It must
// be rejected naming the scale, or computed with a finite LSE.
TEST(EdgeValues, HugeFiniteScaleIsRejectedOrComputed) {
  DenseCall c(Dims{1, 2, 1, 9, 40, 64});
  c.options.scale = 3e38f;
  try {
    c.run();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kInvalid) << e.what();
    EXPECT_NE(std::string(e.what()).find("options.scale"), std::string::npos) << e.what();
    EXPECT_TRUE(c.out_untouched());
    EXPECT_TRUE(c.lse_untouched());
    return;
  }
  for (int64_t i = 0; i < c.lse_numel(); ++i)
    ASSERT_TRUE(std::isfinite(c.lse_buf[i])) << "row " << i << " of an unmasked call has lse "
                                             << c.lse_buf[i];
}

// ---------------------------------------------------------------- edge values found by fuzzing
// fuzz/fuzz_attention.cpp found these; each was a valid call that failed.

// No query rows but a batch of 2^40 (empty tensors may carry any batch; K/V here are one real row
// broadcast by zero strides). The CPU backend allocated a record per batch item before looking:
// std::bad_alloc escaped instead of an immediate, successful return.
TEST(FuzzFound, NoQueryRowsWithHugeBatchReturnsAtOnce) {
  const int64_t b = int64_t{1} << 40;
  std::vector<uint16_t> kv_row(64, 0x3F80);  // bf16 1.0
  const TensorView kv = sa::make_view(kv_row.data(), DType::kBF16, {b, 2, 5, 64}, {0, 0, 0, 1});
  const TensorView q = sa::make_view(nullptr, DType::kBF16, {b, 4, 0, 64}, {0, 0, 64, 1});
  const TensorView lse = sa::make_view(nullptr, DType::kF32, {b, 4, 0}, {0, 0, 1});
  ASSERT_NO_THROW(sa::attention(q, kv, kv, q, AttentionOptions{}, lse));
  const TensorView q_no_heads = sa::make_view(nullptr, DType::kBF16, {b, 0, 7, 64}, {0, 0, 64, 1});
  ASSERT_NO_THROW(sa::attention(q_no_heads, kv, kv, q_no_heads));
}

// K and V with no token, null data and a batch stride of 2^62 (any stride is valid on an empty
// view): the CPU backend computed b * stride * 2 in int64 (signed overflow) and offset a null
// pointer, undefined behaviour that UBSan reports. Every row sees no key: 0 and -inf.
TEST(FuzzFound, EmptyKvWithHugeStridesIsNeverOffset) {
  const int64_t b = 3, h = 2, n = 4, d = 8;
  std::vector<uint16_t> q(b * h * n * d, 0x3F80), out(q.size(), kPoison16);
  std::vector<float> lse(b * h * n, 1.0f);
  const TensorView kv = sa::make_view(nullptr, DType::kBF16, {b, h, 0, d},
                                      {int64_t{1} << 62, -(int64_t{1} << 61), 8, 1});
  ASSERT_NO_THROW(sa::attention(sa::make_contiguous_view(q.data(), DType::kBF16, {b, h, n, d}), kv,
                                kv, sa::make_contiguous_view(out.data(), DType::kBF16, {b, h, n, d}),
                                AttentionOptions{},
                                sa::make_contiguous_view(lse.data(), DType::kF32, {b, h, n})));
  for (uint16_t x : out) ASSERT_EQ(x, kBf16Zero);
  for (float x : lse) ASSERT_EQ(x, kNegInf);
}

// A valid view broadcast to 2^50 query rows by zero strides needs petabytes of host scratch:
// the failed allocation must be an Error (kOutOfMemory, error.h), not std::bad_alloc, and out
// stays untouched.
TEST(FuzzFound, HostAllocationFailureIsAnOutOfMemoryError) {
  const int64_t n = int64_t{1} << 50;
  std::vector<uint16_t> row(8, 0x3F80), out(8, kPoison16);
  const TensorView q = sa::make_view(row.data(), DType::kBF16, {1, 1, n, 8}, {0, 0, 0, 1});
  const TensorView kv = sa::make_contiguous_view(row.data(), DType::kBF16, {1, 1, 1, 8});
  const TensorView o = sa::make_view(out.data(), DType::kBF16, {1, 1, n, 8}, {0, 0, 0, 1});
  try {
    sa::attention(q, kv, kv, o);
    FAIL() << "a call needing 2^55 bytes of scratch succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
    EXPECT_NE(std::string(e.what()).find("1125899906842624"), std::string::npos) << e.what();
  }
  for (uint16_t x : out) EXPECT_EQ(x, kPoison16);
}

}  // namespace
