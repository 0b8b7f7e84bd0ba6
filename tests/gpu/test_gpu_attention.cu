// tests/gpu/test_gpu_attention.cu: GPU attention through the public API, every GPU backend the
// device has (sm80 mma.sync; sm90 wgmma + TMA on compute capability 9.0), against the CPU backend
// running the same quantized algorithm with that backend's tiles (tight), and against float64
// attention (the accuracy budget of docs/NUMERICS.md).
//
// Every case: fresh inputs from the DESIGN.md families, the output and LSE buffers poisoned with
// NaN bytes before the call (an unwritten element shows as NaN), every P.V mode the device has,
// head dims that need in-kernel padding, lengths that are not tile multiples, GQA/MQA, causal
// with Nq != Nk (fully masked rows: 0 and -inf), varlen, NHD and padded-stride views.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "api/validate.h"
#include "cpu/backend.h"
#include "cpu/metrics.h"
#include "cpu/reference.h"
#include "gpu_support.h"

namespace sageattn::test {
namespace {

// GPU vs the CPU quantized reference. They differ by fp32 summation order, ex2.approx and the
// rare P whose fp8/fp16 rounding flips because of those, and (fp8_fp16acc) by the tensor cores'
// internal fp16 accumulation order; outputs are rounded to bf16/f16. Measured on an H200
// (2026-11-22, bench/NOTES.md): fp16 and fp8 rel_l1 < 5e-6 and cos > 0.99999995 in every case;
// fp8_fp16acc rel_l1 <= 3.2e-4, cos >= 0.9999993. Bounds are about 2x those (fp16/fp8: 2e-5).
// sm90 fp8: the wgmma e4m3 accumulator is not a true fp32 one inside a 128-key block (the reason
// for two-level accumulation, DESIGN.md §1.4): H100 2026-11-22, rel_l1 <= 1.55e-4, cos >=
// 0.99999970 over these cases; with every k32 step promoted to fp32 (a diagnostic build) the
// difference falls to the fp16 mode's level (docs/NUMERICS.md §4). Bounds about 2x.
struct TightBudget {
  double min_cos, max_rel_l1;
};
TightBudget tight_budget(PvMode mode, Backend backend) {
  if (mode == PvMode::kFp8Fp16Acc) return {0.9999985, 7e-4};
  if (mode == PvMode::kFp8 && backend == Backend::kSm90) return {0.9999994, 3e-4};
  return {0.9999999, 2e-5};
}
// GPU vs float64 attention: the algorithm's own error (docs/NUMERICS.md §4) with margin.
struct ExactBudget {
  double min_cos, max_rel_l1;
};
ExactBudget exact_budget(PvMode mode, cpu::InputFamily family) {
  const bool fp16 = mode == PvMode::kFp16;
  switch (family) {
    case cpu::InputFamily::kGaussian: return fp16 ? ExactBudget{0.99980, 0.025} : ExactBudget{0.9985, 0.075};
    case cpu::InputFamily::kKChannelBias: return fp16 ? ExactBudget{0.99980, 0.025} : ExactBudget{0.9985, 0.075};
    case cpu::InputFamily::kOutliers: return fp16 ? ExactBudget{0.99980, 0.020} : ExactBudget{0.9990, 0.050};
  }
  return {1.0, 0.0};
}

struct AttnCase {
  std::string name;
  int64_t b, hq, hkv, nq, nk, d;
  DType dtype = DType::kBF16;
  Layout layout = Layout::kHND;
  MaskMode mask = MaskMode::kNone;
  Granularity gran = Granularity::kPerWarp;
  Smoothing smooth_v = Smoothing::kOff;
  cpu::InputFamily family = cpu::InputFamily::kGaussian;
  std::vector<int32_t> varlen_q, varlen_k;  // packed sequence lengths; empty = dense
  bool padded_strides = false;              // q/k/v/out rows padded by 8 elements
  // Out rows padded by this many more elements (NaN-poisoned, must stay untouched): 2 leaves them
  // 4-byte but not 16-byte aligned (the kernels' pairwise stores instead of sm90's 16-byte ones),
  // 1 only 2-byte aligned (the general store path).
  int64_t out_extra = 0;
  bool large = false;                       // skipped in quick mode
  // Keys boost_at .. boost_at + 3 of every KV head multiplied by `boost` (0: none), so that rows'
  // maxima grow late, in unmasked blocks (alpha rescales a full accumulator; the shift moves far).
  // The boosted keys dominate their K groups' int8 scales, so only the reference comparison applies.
  float boost = 0.0f;
  int64_t boost_at = 0;
  // The tight budget's rel_l1 times this. Rows whose max is large but below the exact-shift range
  // compute S * c + shift fused on the GPU and rounded on the CPU (docs/NUMERICS.md §3 step 3):
  // P differs by up to half the fp32 spacing of m, 2^-16 at m ~ 350 against 2^-22 at ordinary
  // logits, and fp8 roundings of P flip more often.
  double tight_scale = 1.0;
};

// Whether the sm90 kernels cover a call (src/attention/sm90/launch.h): head dims up to 128 whose
// kernels this build compiles, P.V fp16 or fp8. Automatic dispatch sends a head dim left out of
// SAGEATTN_SM90_HEAD_DIMS to the sm80 kernels, and pv_mode auto resolves as for them. The rest is
// checked by Sm90RefusesWhatItDoesNotCover.
bool sm90_covers(int64_t d, PvMode mode) {
  const int hd = attn::kernel_head_dim(d);
  return hd <= 128 && sm90_compiled(hd) && (mode == PvMode::kFp16 || mode == PvMode::kFp8);
}
const TileConfig& tiles_of(Backend b) { return b == Backend::kSm90 ? kSm90Tiles : kSm80Tiles; }

std::vector<PvMode> modes_for_device() {
  std::vector<PvMode> m{PvMode::kFp16};
  if (device_cc() >= 89) m.push_back(PvMode::kFp8), m.push_back(PvMode::kFp8Fp16Acc);
  return m;
}

// A [rows, d] row-major block of bits re-laid with a row pitch of d + pad (pad filled with NaN).
std::vector<uint16_t> pad_rows(const std::vector<uint16_t>& x, int64_t d, int64_t pad) {
  const int64_t rows = int64_t(x.size()) / d;
  std::vector<uint16_t> r(rows * (d + pad), 0x7FC1);
  for (int64_t i = 0; i < rows; ++i) std::copy_n(x.begin() + i * d, d, r.begin() + i * (d + pad));
  return r;
}

// Contiguous (or row-padded) 4-D view in the case's layout.
TensorView make_view4(void* data, DType dtype, const HostQkv& in, int64_t heads, int64_t tokens,
                      int64_t pad, int device) {
  const int64_t p = in.d + pad;
  if (in.layout == Layout::kHND)
    return make_view(data, dtype, {in.b, heads, tokens, in.d}, {heads * tokens * p, tokens * p, p, 1}, device);
  return make_view(data, dtype, {in.b, tokens, heads, in.d}, {tokens * heads * p, heads * p, p, 1}, device);
}

struct Outputs {
  std::vector<uint16_t> out;  // unpadded, in the case's layout
  std::vector<float> lse;     // [b, hq, nq] (varlen: [hq, total_q])
};

void run_dense(const AttnCase& c, const HostQkv& in, const AttentionOptions& opt, bool gpu, Outputs& o) {
  const int64_t pad = c.padded_strides ? 8 : 0, out_pad = pad + c.out_extra;
  const int device = gpu ? 0 : kHostDevice;
  std::vector<uint16_t> q = pad ? pad_rows(in.q, in.d, pad) : in.q;
  std::vector<uint16_t> k = pad ? pad_rows(in.k, in.d, pad) : in.k;
  std::vector<uint16_t> v = pad ? pad_rows(in.v, in.d, pad) : in.v;
  const int64_t out_elems = int64_t(in.q.size()) / in.d * (in.d + out_pad);
  std::vector<uint16_t> out(out_elems, 0xFFFF);
  std::vector<float> lse(in.b * in.hq * in.nq, NAN);
  if (gpu) {
    DeviceBuffer qd = DeviceBuffer::from(q), kd = DeviceBuffer::from(k), vd = DeviceBuffer::from(v);
    DeviceBuffer od(out_elems * 2), ld(lse.size() * 4);
    od.fill(0xFF), ld.fill(0xFF);  // NaN poison
    const TensorView lse_v = make_contiguous_view(ld.get(), DType::kF32, {in.b, in.hq, in.nq}, 0);
    attention(make_view4(qd.get(), in.dtype, in, in.hq, in.nq, pad, device),
              make_view4(kd.get(), in.dtype, in, in.hkv, in.nk, pad, device),
              make_view4(vd.get(), in.dtype, in, in.hkv, in.nk, pad, device),
              make_view4(od.get(), in.dtype, in, in.hq, in.nq, out_pad, device), opt, lse_v);
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    out = od.download<uint16_t>(out_elems);
    lse = ld.download<float>(lse.size());
  } else {  // the CPU backend with the tiles of the GPU backend under test
    const TensorView lse_v = make_contiguous_view(lse.data(), DType::kF32, {in.b, in.hq, in.nq});
    AttentionOptions host = opt;
    host.backend = Backend::kAuto;
    cpu::run_attention(detail::make_dense_params(make_view4(q.data(), in.dtype, in, in.hq, in.nq, pad, device),
                                                 make_view4(k.data(), in.dtype, in, in.hkv, in.nk, pad, device),
                                                 make_view4(v.data(), in.dtype, in, in.hkv, in.nk, pad, device),
                                                 make_view4(out.data(), in.dtype, in, in.hq, in.nq, out_pad, device),
                                                 lse_v, host),
                       tiles_of(opt.backend));
  }
  o.out.resize(in.q.size());
  const int64_t rows = int64_t(in.q.size()) / in.d;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < in.d + out_pad; ++d) {
      const uint16_t x = out[r * (in.d + out_pad) + d];
      if (d < in.d) o.out[r * in.d + d] = x;
      else if (gpu) ASSERT_EQ(x, 0xFFFF) << "padding between rows was written (row " << r << ")";
    }
  o.lse = lse;
}

// Varlen inputs are packed NHD: [total, H, D] = a dense NHD tensor with batch 1.
void run_varlen(const AttnCase& c, const HostQkv& in, const AttentionOptions& opt, bool gpu, Outputs& o) {
  std::vector<int32_t> cq(c.varlen_q.size() + 1, 0), ck(c.varlen_k.size() + 1, 0);
  for (size_t i = 0; i < c.varlen_q.size(); ++i) cq[i + 1] = cq[i] + c.varlen_q[i], ck[i + 1] = ck[i] + c.varlen_k[i];
  const int64_t tq = cq.back(), tk = ck.back();
  const int64_t mq = *std::max_element(c.varlen_q.begin(), c.varlen_q.end());
  const int64_t mk = *std::max_element(c.varlen_k.begin(), c.varlen_k.end());
  std::vector<uint16_t> out(in.q.size(), 0xFFFF);
  std::vector<float> lse(in.hq * tq, NAN);
  const int device = gpu ? 0 : kHostDevice;
  VarlenArgs a;
  a.max_seqlen_q = mq, a.max_seqlen_k = mk;
  if (gpu) {
    DeviceBuffer qd = DeviceBuffer::from(in.q), kd = DeviceBuffer::from(in.k), vd = DeviceBuffer::from(in.v);
    DeviceBuffer cqd = DeviceBuffer::from(cq), ckd = DeviceBuffer::from(ck);
    DeviceBuffer od(out.size() * 2), ld(lse.size() * 4);
    od.fill(0xFF), ld.fill(0xFF);
    a.q = make_contiguous_view(qd.get(), in.dtype, {tq, in.hq, in.d}, device);
    a.k = make_contiguous_view(kd.get(), in.dtype, {tk, in.hkv, in.d}, device);
    a.v = make_contiguous_view(vd.get(), in.dtype, {tk, in.hkv, in.d}, device);
    a.out = make_contiguous_view(od.get(), in.dtype, {tq, in.hq, in.d}, device);
    a.lse = make_contiguous_view(ld.get(), DType::kF32, {in.hq, tq}, device);
    a.cu_seqlens_q = make_contiguous_view(cqd.get(), DType::kI32, {int64_t(cq.size())}, device);
    a.cu_seqlens_k = make_contiguous_view(ckd.get(), DType::kI32, {int64_t(ck.size())}, device);
    attention_varlen(a, opt);
    SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
    out = od.download<uint16_t>(out.size());
    lse = ld.download<float>(lse.size());
  } else {
    std::vector<uint16_t> q = in.q, k = in.k, v = in.v;
    a.q = make_contiguous_view(q.data(), in.dtype, {tq, in.hq, in.d});
    a.k = make_contiguous_view(k.data(), in.dtype, {tk, in.hkv, in.d});
    a.v = make_contiguous_view(v.data(), in.dtype, {tk, in.hkv, in.d});
    a.out = make_contiguous_view(out.data(), in.dtype, {tq, in.hq, in.d});
    a.lse = make_contiguous_view(lse.data(), DType::kF32, {in.hq, tq});
    a.cu_seqlens_q = make_contiguous_view(cq.data(), DType::kI32, {int64_t(cq.size())});
    a.cu_seqlens_k = make_contiguous_view(ck.data(), DType::kI32, {int64_t(ck.size())});
    AttentionOptions host = opt;
    host.backend = Backend::kAuto;
    cpu::run_attention(detail::make_varlen_params(a, host), tiles_of(opt.backend));
  }
  o.out = out, o.lse = lse;
}

// float64 attention of the case, in the output's element order.
std::vector<double> exact_of(const AttnCase& c, const HostQkv& in, double scale) {
  std::vector<double> r(in.q.size());
  cpu::ExactConfig ec;
  ec.mask = c.mask, ec.scale = scale;
  const bool varlen = !c.varlen_q.empty();
  const int64_t n_seq = varlen ? int64_t(c.varlen_q.size()) : in.b;
  int64_t q0 = 0, k0 = 0;
  for (int64_t s = 0; s < n_seq; ++s) {
    const int64_t lq = varlen ? c.varlen_q[s] : in.nq, lk = varlen ? c.varlen_k[s] : in.nk;
    const int64_t bi = varlen ? 0 : s;
    auto seq = [&](const std::vector<uint16_t>& x, int64_t heads, int64_t tokens, int64_t t0, int64_t len) {
      cpu::SeqView v;
      v.dtype = in.dtype, v.heads = heads, v.tokens = len, v.dim = in.d;
      const int64_t base = in.offset(heads, tokens, bi, 0, t0, 0);
      v.data = const_cast<uint16_t*>(x.data()) + base;
      v.stride_h = in.offset(heads, tokens, 0, 1, 0, 0), v.stride_n = in.offset(heads, tokens, 0, 0, 1, 0);
      return v;
    };
    std::vector<double> o(in.hq * lq * in.d);
    cpu::exact_attention(seq(in.q, in.hq, in.nq, q0, lq), seq(in.k, in.hkv, in.nk, k0, lk),
                         seq(in.v, in.hkv, in.nk, k0, lk), ec, o.data(), nullptr);
    for (int64_t h = 0; h < in.hq; ++h)
      for (int64_t i = 0; i < lq; ++i)
        for (int64_t d = 0; d < in.d; ++d) r[in.offset(in.hq, in.nq, bi, h, q0 + i, d)] = o[(h * lq + i) * in.d + d];
    if (varlen) q0 += lq, k0 += lk;
  }
  return r;
}

class GpuAttention : public GpuTest, public ::testing::WithParamInterface<AttnCase> {};

TEST_P(GpuAttention, MatchesReferenceAndExact) {
  const AttnCase& c = GetParam();
  if (c.large && quick_mode()) GTEST_SKIP() << "large case skipped in quick mode";
  // A backend whose kernels for this head dim the build left out is skipped with a line; the whole
  // case only when no backend is left. sm90 above 128 is not a build matter (sm90_covers).
  std::vector<Backend> backends;
  std::string missing;
  for (Backend b : device_backends()) {
    if (b == Backend::kSm90 && attn::kernel_head_dim(c.d) > 128) continue;
    if (kernels_compiled(b, c.d)) backends.push_back(b);
    else missing += (missing.empty() ? "" : "; ") + not_compiled(b, c.d);
  }
  if (backends.empty()) GTEST_SKIP() << c.name << ": " << missing;
  if (!missing.empty()) note_skipped(c.name + ": " + missing);
  const bool varlen = !c.varlen_q.empty();
  int64_t tq = c.nq, tk = c.nk;
  if (varlen) {
    tq = tk = 0;
    for (size_t i = 0; i < c.varlen_q.size(); ++i) tq += c.varlen_q[i], tk += c.varlen_k[i];
  }
  HostQkv in = HostQkv::make(c.family, varlen ? 1 : c.b, c.hq, c.hkv, tq, tk, c.d, c.dtype,
                             varlen ? Layout::kNHD : c.layout, 77 + c.nq * 3 + c.d);
  if (c.boost != 0.0f) {
    ASSERT_FALSE(varlen);
    for (int64_t bi = 0; bi < in.b; ++bi)
      for (int64_t h = 0; h < in.hkv; ++h)
        for (int64_t n = c.boost_at; n < c.boost_at + 4; ++n)
          for (int64_t d = 0; d < in.d; ++d) {
            uint16_t& x = in.k[in.offset(in.hkv, in.nk, bi, h, n, d)];
            x = HostQkv::encode(in.dtype, HostQkv::decode(in.dtype, x) * c.boost);
          }
  }
  const double scale = 1.0 / std::sqrt(double(c.d));
  const std::vector<double> exact = exact_of(c, in, double(float(scale)));
  for (Backend backend : backends)
  for (PvMode mode : modes_for_device()) {
    if (backend == Backend::kSm90 && !sm90_covers(c.d, mode)) continue;
    SCOPED_TRACE(std::string("backend ") + to_string(backend) + ", pv_mode " + to_string(mode));
    AttentionOptions opt;
    opt.layout = varlen ? Layout::kHND : c.layout;
    opt.mask = c.mask, opt.pv_mode = mode, opt.granularity = c.gran, opt.smooth_v = c.smooth_v;
    opt.backend = backend;
    Outputs gpu, ref;
    if (varlen) run_varlen(c, in, opt, true, gpu), run_varlen(c, in, opt, false, ref);
    else run_dense(c, in, opt, true, gpu), run_dense(c, in, opt, false, ref);
    ASSERT_EQ(gpu.out.size(), ref.out.size());

    std::vector<double> g(gpu.out.size()), r(ref.out.size());
    int64_t unwritten = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      g[i] = HostQkv::decode(c.dtype, gpu.out[i]);
      r[i] = HostQkv::decode(c.dtype, ref.out[i]);
      if (std::isnan(g[i])) ++unwritten;
    }
    ASSERT_EQ(unwritten, 0) << c.name << ": " << unwritten << " output elements unwritten (NaN)";
    const cpu::ErrorMetrics tight = cpu::error_metrics(r.data(), g.data(), int64_t(g.size()));
    const cpu::ErrorMetrics vs_exact = cpu::error_metrics(exact.data(), g.data(), int64_t(g.size()));
    const cpu::ErrorMetrics ref_exact = cpu::error_metrics(exact.data(), r.data(), int64_t(r.size()));
    std::printf("[ metrics  ] %-34s %-4s %-11s gpu~ref cos %.9f rel_l1 %.3e max %.3g | gpu~exact cos %.6f "
                "rel_l1 %.5f | ref~exact cos %.6f rel_l1 %.5f\n",
                c.name.c_str(), to_string(backend), to_string(mode), tight.cos, tight.rel_l1, tight.max_abs, vs_exact.cos,
                vs_exact.rel_l1, ref_exact.cos, ref_exact.rel_l1);
    const TightBudget tb = tight_budget(mode, backend);
    EXPECT_GE(tight.cos, tb.min_cos) << c.name;
    EXPECT_LE(tight.rel_l1, tb.max_rel_l1 * c.tight_scale) << c.name;
    const ExactBudget eb = exact_budget(mode, c.family);
    if (c.boost == 0.0f) {  // the families' budget; boosted keys ruin their groups' scales
      EXPECT_GE(vs_exact.cos, eb.min_cos) << c.name;
      EXPECT_LE(vs_exact.rel_l1, eb.max_rel_l1) << c.name;
    }

    // LSE: m is bit-identical, l differs only by ex2.approx and order: tight everywhere; fully
    // masked rows are -inf on both.
    ASSERT_EQ(gpu.lse.size(), ref.lse.size());
    int64_t lse_bad = 0;
    for (size_t i = 0; i < gpu.lse.size(); ++i) {
      const float a = gpu.lse[i], e = ref.lse[i];
      const bool ok = std::isinf(e) ? a == e : std::fabs(a - e) <= 2e-4f * std::max(1.0f, std::fabs(e));
      if (!ok && lse_bad++ < 5) ADD_FAILURE() << c.name << ": lse[" << i << "] gpu " << a << " ref " << e;
    }
    EXPECT_EQ(lse_bad, 0);
    // Fully masked rows: exactly zero output.
    for (size_t i = 0; i < gpu.lse.size() && !varlen; ++i)
      if (std::isinf(ref.lse[i])) {
        const int64_t bi = int64_t(i) / (in.hq * in.nq), h = (int64_t(i) / in.nq) % in.hq, n = int64_t(i) % in.nq;
        for (int64_t d = 0; d < in.d; ++d)
          ASSERT_EQ(g[in.offset(in.hq, in.nq, bi, h, n, d)], 0.0) << c.name << ": masked row not zero";
      }
  }
}

using cpu::InputFamily;
AttnCase dense(std::string name, int64_t b, int64_t hq, int64_t hkv, int64_t nq, int64_t nk, int64_t d) {
  AttnCase c;
  c.name = std::move(name), c.b = b, c.hq = hq, c.hkv = hkv, c.nq = nq, c.nk = nk, c.d = d;
  return c;
}
template <typename F>
AttnCase with(AttnCase c, F f) {
  f(c);
  return c;
}

std::vector<AttnCase> cases() {
  std::vector<AttnCase> v;
  for (int64_t d : {64, 96, 128, 256})
    for (int64_t n : {1, 17, 127, 129, 1000}) v.push_back(dense("d" + std::to_string(d) + "_n" + std::to_string(n), 1, 2, 2, n, n, d));
  v.push_back(with(dense("d128_n4097_kbias", 1, 2, 2, 4097, 4097, 128), [](AttnCase& c) {
    c.family = InputFamily::kKChannelBias, c.large = true;
  }));
  v.push_back(with(dense("d64_n4097_outliers_causal", 1, 1, 1, 4097, 4097, 64), [](AttnCase& c) {
    c.family = InputFamily::kOutliers, c.mask = MaskMode::kCausal, c.large = true;
  }));
  v.push_back(with(dense("gqa4_d128_kbias", 2, 8, 2, 300, 300, 128), [](AttnCase& c) { c.family = InputFamily::kKChannelBias; }));
  v.push_back(with(dense("gqa8_mqa_d64_outliers", 1, 8, 1, 257, 257, 64), [](AttnCase& c) { c.family = InputFamily::kOutliers; }));
  v.push_back(with(dense("causal_nq_lt_nk", 1, 2, 2, 100, 333, 128), [](AttnCase& c) { c.mask = MaskMode::kCausal; }));
  v.push_back(with(dense("causal_nq_gt_nk", 1, 2, 1, 333, 100, 128), [](AttnCase& c) { c.mask = MaskMode::kCausal; }));
  v.push_back(with(dense("causal_square_d256", 1, 2, 2, 1000, 1000, 256), [](AttnCase& c) { c.mask = MaskMode::kCausal; }));
  v.push_back(with(dense("nhd_f16_thread", 2, 4, 2, 200, 150, 128), [](AttnCase& c) {
    c.layout = Layout::kNHD, c.dtype = DType::kF16, c.gran = Granularity::kPerThread;
  }));
  v.push_back(with(dense("hnd_block_smoothv_outliers", 1, 2, 2, 513, 513, 128), [](AttnCase& c) {
    c.gran = Granularity::kPerBlock, c.smooth_v = Smoothing::kOn, c.family = InputFamily::kOutliers;
  }));
  v.push_back(with(dense("padded_strides_nhd_d40", 1, 3, 1, 77, 91, 40), [](AttnCase& c) {
    c.layout = Layout::kNHD, c.padded_strides = true;
  }));
  v.push_back(with(dense("padded_strides_hnd_causal", 2, 2, 2, 130, 130, 128), [](AttnCase& c) {
    c.padded_strides = true, c.mask = MaskMode::kCausal;
  }));
  v.push_back(with(dense("out_pitch_4byte_d128", 2, 2, 1, 200, 170, 128), [](AttnCase& c) { c.out_extra = 2; }));
  v.push_back(with(dense("out_pitch_2byte_nhd_d64", 1, 4, 2, 150, 150, 64), [](AttnCase& c) {
    c.layout = Layout::kNHD, c.out_extra = 1, c.mask = MaskMode::kCausal;
  }));
  v.push_back(with(dense("varlen_causal", 0, 4, 2, 0, 0, 128), [](AttnCase& c) {
    c.varlen_q = {1, 130, 0, 64, 500}, c.varlen_k = {1, 200, 7, 0, 500}, c.mask = MaskMode::kCausal;
    c.family = InputFamily::kKChannelBias;
  }));
  v.push_back(with(dense("varlen_d64_thread", 0, 2, 2, 0, 0, 64), [](AttnCase& c) {
    c.varlen_q = {17, 129, 1000}, c.varlen_k = {33, 129, 999}, c.gran = Granularity::kPerThread;
  }));
  // Late maxima in unmasked blocks (keys 700..703: block 5 of 128 keys, block 10 of 64; 1000 keys:
  // the last block is masked): logits grow ~8x, ~60x (|m| ~ 350, where the fused shift misses the
  // CPU's by up to 2^-16: tight_scale), ~3000x (into the exact-shift range, |m| >= 4096).
  // Measured (H200, 2026-12-07) sm80 fp8 gpu~ref rel_l1 for x60: 2.3e-5 (ordinary cases 1-3e-6);
  // 1.9e-7 with the exact shift forced for |m| >= 16, which confirms the cause (bench/NOTES.md 27).
  for (const auto& [name, boost, d] : {std::tuple{"late_max_x8", 8.0f, int64_t(128)},
                                       std::tuple{"late_max_x60_d64", 60.0f, int64_t(64)},
                                       std::tuple{"late_max_x3000", 3000.0f, int64_t(128)}}) {
    AttnCase c = dense(name, 1, 2, 2, 1000, 1000, d);
    c.boost = boost, c.boost_at = 700;
    if (boost == 60.0f) c.tight_scale = 4.0;
    v.push_back(c);
  }
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuAttention, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// Calls that this backend cannot serve fail loudly instead of computing something else.
TEST_F(GpuAttention, Fp8ModesNeedSm89) {
  if (device_cc() >= 89) GTEST_SKIP() << "device has fp8 tensor cores";
  // The sm80 launcher refuses a head dim left out of the build first, with the same error code.
  if (!kernels_compiled(Backend::kSm80, 64)) GTEST_SKIP() << not_compiled(Backend::kSm80, 64);
  std::vector<uint16_t> x(64 * 64, 0x3C00);
  DeviceBuffer d = DeviceBuffer::from(x);
  const TensorView t = make_contiguous_view(d.get(), DType::kF16, {1, 1, 64, 64}, 0);
  AttentionOptions o;
  o.pv_mode = PvMode::kFp8;
  try {
    attention(t, t, t, t, o);
    FAIL() << "fp8 on a pre-sm89 device was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
}

// kAuto picks the mode by device and call: fp16 on sm80/sm86 (no fp8 MMA); on sm90 fp8 where the
// sm90 kernels run the call and fp16 where the sm80 kernels do (their fp8 P.V is emulated mma.sync
// e4m3 there); fp8 elsewhere from sm89 on. A call with kAuto computes exactly what the resolved
// mode computes, and resolve_pv_mode with the head dim names it.
TEST_F(GpuAttention, AutoPvModeFollowsTheDevice) {
  const int cc = device_cc();
  // fp8 from compute capability 8.9 on; on 9.0 only where the sm90 kernels run the call (head
  // dims <= 128 with sm90 compiled for them), fp16 where the sm80 kernels do (above 128, or
  // backend sm80 named), their fp8 P.V being emulated there.
  auto want_for = [&](int64_t d, Backend backend) {
    if (cc < 89) return PvMode::kFp16;
    if (cc != 90) return PvMode::kFp8;
    return backend != Backend::kSm80 && sm90_covers(d, PvMode::kFp8) ? PvMode::kFp8 : PvMode::kFp16;
  };
  EXPECT_EQ(resolve_pv_mode(PvMode::kAuto, 0), cc >= 89 ? PvMode::kFp8 : PvMode::kFp16) << "compute capability " << cc;
  std::string missing;
  int ran = 0;
  struct Case {
    int64_t d;
    Backend backend;
  };
  for (const Case c : {Case{64, Backend::kAuto}, Case{128, Backend::kAuto}, Case{256, Backend::kAuto},
                       Case{64, Backend::kSm80}}) {
    const PvMode want = want_for(c.d, c.backend);
    SCOPED_TRACE("d " + std::to_string(c.d) + ", backend " + to_string(c.backend) + ", want " + to_string(want));
    if (c.backend == Backend::kAuto) EXPECT_EQ(resolve_pv_mode(PvMode::kAuto, 0, c.d), want);
    // The calls need the kernels of the backend that runs them; resolving the mode does not.
    const Backend runs = c.backend == Backend::kAuto && cc == 90 && sm90_covers(c.d, PvMode::kFp8) ? Backend::kSm90
                                                                                                  : Backend::kSm80;
    if (!kernels_compiled(runs, c.d)) {
      missing += (missing.empty() ? "" : "; ") + not_compiled(runs, c.d);
      note_skipped("d " + std::to_string(c.d) + ", backend " + to_string(c.backend) + ": " + not_compiled(runs, c.d));
      continue;
    }
    ++ran;
    std::vector<uint16_t> x(2 * 100 * c.d);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = uint16_t(0x3000 + (i * 2654435761u) % 0x0C00);
    DeviceBuffer q = DeviceBuffer::from(x), o1(x.size() * 2), o2(x.size() * 2);
    o1.fill(0xFF), o2.fill(0xFF);  // NaN: unwritten elements show
    const TensorView tq = make_contiguous_view(q.get(), DType::kF16, {1, 2, 100, c.d}, 0);
    AttentionOptions a, b;
    a.backend = b.backend = c.backend;
    b.pv_mode = want;
    attention(tq, tq, tq, make_contiguous_view(o1.get(), DType::kF16, {1, 2, 100, c.d}, 0), a);
    attention(tq, tq, tq, make_contiguous_view(o2.get(), DType::kF16, {1, 2, 100, c.d}, 0), b);
    const std::vector<uint16_t> r1 = o1.download<uint16_t>(x.size()), r2 = o2.download<uint16_t>(x.size());
    EXPECT_EQ(std::count(r1.begin(), r1.end(), uint16_t(0xFFFF)), 0);
    EXPECT_EQ(r1, r2) << "pv_mode auto did not compute what " << to_string(want) << " computes";
  }
  if (ran == 0) GTEST_SKIP() << missing;
}

// A call the sm90 kernels do not cover (head dim above 128, pv_mode fp8_fp16acc) is an Error when
// sm90 is asked for by name, and leaves the output untouched; on another device the backend itself
// is refused. Whatever head dims the build compiles: a left-out one is refused the same way, before
// any kernel runs.
TEST_F(GpuAttention, Sm90RefusesWhatItDoesNotCover) {
  struct Refused {
    int64_t d;
    PvMode mode;
  };
  const bool hopper = device_cc() == 90;
  std::vector<Refused> calls{{256, PvMode::kFp16}};
  if (hopper) calls.push_back({128, PvMode::kFp8Fp16Acc});
  else calls.push_back({128, PvMode::kFp16});
  for (const Refused& r : calls) {
    SCOPED_TRACE("d " + std::to_string(r.d) + ", pv_mode " + to_string(r.mode));
    std::vector<uint16_t> x(64 * r.d, 0x3C00);
    DeviceBuffer d = DeviceBuffer::from(x), o(x.size() * 2);
    o.fill(0xFF);
    const TensorView t = make_contiguous_view(d.get(), DType::kF16, {1, 1, 64, r.d}, 0);
    const TensorView out = make_contiguous_view(o.get(), DType::kF16, {1, 1, 64, r.d}, 0);
    AttentionOptions opt;
    opt.backend = Backend::kSm90, opt.pv_mode = r.mode;
    try {
      attention(t, t, t, out, opt);
      FAIL() << "the sm90 backend accepted a call it does not cover";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
      EXPECT_NE(std::string(e.what()).find("sm90"), std::string::npos) << e.what();
    }
    const std::vector<uint16_t> after = o.download<uint16_t>(x.size());
    EXPECT_EQ(std::count(after.begin(), after.end(), uint16_t(0xFFFF)), int64_t(x.size())) << "output was written";
  }
}

// Automatic dispatch: on compute capability 9.0 the sm90 kernels run every call they cover (head
// dims <= 128 compiled for sm90, where they are faster), the sm80 kernels the rest; elsewhere sm80
// runs everything. Checked bit for bit against the backend named explicitly.
TEST_F(GpuAttention, AutoDispatchPicksSm90WhereItServes) {
  const bool hopper = device_cc() == 90;
  std::string missing;
  int ran = 0;
  for (int64_t d : {64, 128, 256}) {
    SCOPED_TRACE("d " + std::to_string(d));
    const Backend want = hopper && sm90_covers(d, PvMode::kFp16) ? Backend::kSm90 : Backend::kSm80;
    if (!kernels_compiled(want, d)) {
      missing += (missing.empty() ? "" : "; ") + not_compiled(want, d);
      note_skipped("d " + std::to_string(d) + ": " + not_compiled(want, d));
      continue;
    }
    ++ran;
    std::vector<uint16_t> x(2 * 300 * d);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = uint16_t(0x3000 + (i * 2654435761u) % 0x0C00);
    DeviceBuffer q = DeviceBuffer::from(x), o1(x.size() * 2), o2(x.size() * 2);
    o1.fill(0xFF), o2.fill(0xFF);
    const TensorView tq = make_contiguous_view(q.get(), DType::kF16, {1, 2, 300, d}, 0);
    AttentionOptions a, b;
    a.pv_mode = b.pv_mode = PvMode::kFp16;
    b.backend = want;
    attention(tq, tq, tq, make_contiguous_view(o1.get(), DType::kF16, {1, 2, 300, d}, 0), a);
    attention(tq, tq, tq, make_contiguous_view(o2.get(), DType::kF16, {1, 2, 300, d}, 0), b);
    const std::vector<uint16_t> r1 = o1.download<uint16_t>(x.size()), r2 = o2.download<uint16_t>(x.size());
    EXPECT_EQ(std::count(r1.begin(), r1.end(), uint16_t(0xFFFF)), 0);
    EXPECT_EQ(r1, r2) << "auto did not compute what backend " << to_string(b.backend) << " computes";
  }
  if (ran == 0) GTEST_SKIP() << missing;
}

}  // namespace
}  // namespace sageattn::test
