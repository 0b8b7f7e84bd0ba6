// tests/gpu/test_gpu_quant.cu: the GPU K/V quantizer (src/quant/kv_quant.h) is bit-identical to
// the CPU reference's quantization steps (src/cpu/reference.h): K mean, int8 K codes and group
// scales, V mean, V scales and fp8/fp16 V codes (at their permuted / padded positions), for
// both layouts, both dtypes, every granularity, smoothing on and off, every P.V mode, odd lengths
// and head dims that need padding, dense and varlen. The padding must hold zeros. Each case runs
// on both kernels: the ticket kernel (any GPU) and the cluster kernel (sm_90 and newer, heads that
// fit one cluster; skipped with the reason elsewhere).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "gpu_support.h"
#include "quant/kv_quant.h"

namespace sageattn::test {
namespace {

struct QuantCase {
  std::string name;
  int64_t b, h, n, d;
  DType dtype;
  Layout layout;
  Granularity gran;
  Smoothing smooth_k, smooth_v;
  PvMode mode;
  cpu::InputFamily family;
  std::vector<int32_t> varlen;  // sequence lengths (b sequences packed); empty = dense
  bool large = false;           // skipped in quick mode
  // >= 0: in this KV head, V channel 5 is multiplied by 2^-16 and (bf16 only) channel 3 by 2^17,
  // so that their amax leaves the fp16 mode's keep range (layout.h) and the head's V is scaled.
  int v_scaled_head = -1;
};

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t kernel_hd(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }

void check_case(const QuantCase& c, quant::KvQuantPath path) {
  const bool varlen = !c.varlen.empty();
  const int64_t batch = varlen ? int64_t(c.varlen.size()) : c.b;
  std::vector<int32_t> cu(batch + 1, 0);
  int64_t max_len = c.n;
  if (varlen) {
    for (int64_t i = 0; i < batch; ++i) cu[i + 1] = cu[i] + c.varlen[i];
    max_len = *std::max_element(c.varlen.begin(), c.varlen.end());
  }
  // Dense: [b, h, n, d] in the layout. Varlen: one packed "batch" of total tokens, NHD.
  const int64_t total = varlen ? cu[batch] : c.n;
  HostQkv in = HostQkv::make(c.family, varlen ? 1 : c.b, c.h, c.h, 1, total, c.d, c.dtype,
                             varlen ? Layout::kNHD : c.layout, 1234 + c.d);
  if (c.v_scaled_head >= 0) {
    for (int64_t bi = 0; bi < (varlen ? 1 : c.b); ++bi)
      for (int64_t t = 0; t < total; ++t)
        for (const int di : {3, 5}) {
          const float gain = di == 5 ? 0x1.0p-16f : c.dtype == DType::kBF16 ? 0x1.0p17f : 1.0f;
          uint16_t& x = in.v[in.offset(c.h, total, bi, c.v_scaled_head, t, di)];
          x = HostQkv::encode(c.dtype, HostQkv::decode(c.dtype, x) * gain);
        }
  }
  DeviceBuffer k_dev = DeviceBuffer::from(in.k), v_dev = DeviceBuffer::from(in.v);
  DeviceBuffer cu_dev = DeviceBuffer::from(cu);

  quant::KvQuantParams p;
  p.k = k_dev.get(), p.v = v_dev.get();
  const bool nhd = in.layout == Layout::kNHD;
  const int64_t sb = total * c.h * c.d, sh = nhd ? c.d : total * c.d, sn = nhd ? c.h * c.d : c.d;
  p.k_stride_b = p.v_stride_b = sb, p.k_stride_h = p.v_stride_h = sh, p.k_stride_n = p.v_stride_n = sn;
  p.cu_seqlens_k = varlen ? static_cast<const int32_t*>(cu_dev.get()) : nullptr;
  p.dtype = c.dtype;
  p.batch = batch, p.heads_kv = c.h, p.seqlen_k = max_len, p.head_dim = c.d;
  p.head_dim_padded = kernel_hd(c.d), p.seqlen_k_padded = round_up(max_len, kSm80Tiles.block_k);
  p.granularity = c.gran, p.smooth_k = c.smooth_k, p.smooth_v = c.smooth_v, p.pv_mode = c.mode;
  p.path = path;
  if (path == quant::KvQuantPath::kCluster) {
    if (const char* why = quant::kv_quant_cluster_unfit(p))
      GTEST_SKIP() << "cluster kernel: " << why;
  }
  DeviceBuffer ws(quant::kv_quant_workspace_bytes(p));
  // Poison: padding must be written by the quantizer, and the counters (poisoned too) must be
  // zeroed by kv_quantize itself.
  ws.fill(0xA5);
  quant::kv_quant_bind_workspace(p, ws.get());
  quant::kv_quantize(p, nullptr);
  SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());

  const int64_t dp = p.head_dim_padded, np = p.seqlen_k_padded, bh_count = batch * c.h;
  auto dl_f = [&](const float* ptr, int64_t count) {
    std::vector<float> r(count);
    SAGEATTN_CUDA_CHECK(cudaMemcpy(r.data(), ptr, count * sizeof(float), cudaMemcpyDeviceToHost));
    return r;
  };
  std::vector<int8_t> k_codes(bh_count * np * dp);
  SAGEATTN_CUDA_CHECK(cudaMemcpy(k_codes.data(), p.k_codes, k_codes.size(), cudaMemcpyDeviceToHost));
  const GroupSpec kg = kSm80Tiles.k_groups(c.gran);
  const std::vector<float> k_scales = dl_f(p.k_scales, bh_count * (np / kSm80Tiles.block_k) * kg.count);
  const std::vector<float> k_mean = dl_f(p.k_mean, bh_count * dp);
  const std::vector<float> v_scales = dl_f(p.v_scales, bh_count * dp);
  const std::vector<float> v_mean = dl_f(p.v_mean, bh_count * dp);
  const bool fp8 = c.mode != PvMode::kFp16;
  std::vector<uint8_t> v_raw(bh_count * np * dp * (fp8 ? 1 : 2));
  SAGEATTN_CUDA_CHECK(cudaMemcpy(v_raw.data(), p.v_codes, v_raw.size(), cudaMemcpyDeviceToHost));

  auto bits = [](float x) { return num::float_bits(x); };
  int64_t mismatches = 0;
  auto expect_eq = [&](uint32_t got, uint32_t want, const std::string& what) {
    if (got != want && mismatches++ < 8)
      ADD_FAILURE() << c.name << ": " << what << " GPU 0x" << std::hex << got << " CPU 0x" << want;
  };

  for (int64_t bi = 0; bi < batch; ++bi) {
    const int64_t len = varlen ? c.varlen[bi] : c.n, t0 = varlen ? cu[bi] : 0;
    for (int64_t hi = 0; hi < c.h; ++hi) {
      const int64_t bh = bi * c.h + hi;
      // The reference on this (sequence, head), from the same bits.
      std::vector<float> kx(len * c.d), vx(len * c.d), km(c.d, 0.0f), vm(c.d, 0.0f);
      for (int64_t t = 0; t < len; ++t)
        for (int64_t di = 0; di < c.d; ++di) {
          const int64_t off = in.offset(c.h, total, varlen ? 0 : bi, hi, t0 + t, di);
          kx[t * c.d + di] = HostQkv::decode(c.dtype, in.k[off]);
          vx[t * c.d + di] = HostQkv::decode(c.dtype, in.v[off]);
        }
      if (c.smooth_k == Smoothing::kOn) cpu::channel_mean(kx.data(), len, c.d, km.data());
      if (c.smooth_v == Smoothing::kOn) cpu::channel_mean(vx.data(), len, c.d, vm.data());
      for (int64_t t = 0; t < len; ++t)
        for (int64_t di = 0; di < c.d; ++di) kx[t * c.d + di] -= km[di], vx[t * c.d + di] -= vm[di];
      std::vector<int8_t> kc(len * c.d);
      std::vector<float> ks(kg.num_groups(len)), vvals(len * c.d), vs(c.d);
      std::vector<uint8_t> vc(len * c.d);
      cpu::quantize_int8(kx.data(), len, c.d, kg, 1.0f, kc.data(), ks.data());
      cpu::quantize_v(vx.data(), len, c.d, c.mode, kSm80Tiles, vvals.data(), vs.data(), fp8 ? vc.data() : nullptr);
      if (hi == c.v_scaled_head && len > 0 && c.mode == PvMode::kFp16) {
        // The case must reach the scaled-head path (fp16 codes rewritten after the stats).
        EXPECT_NE(vs[5], 1.0f) << c.name << ": channel 5 of the scaled head kept scale 1";
      }

      for (int64_t di = 0; di < dp; ++di) {
        const bool real = di < c.d;
        if (len > 0) {
          expect_eq(bits(k_mean[bh * dp + di]), bits(real ? km[di] : 0.0f), "k_mean[" + std::to_string(di) + "]");
          expect_eq(bits(v_mean[bh * dp + di]), bits(real ? vm[di] : 0.0f), "v_mean[" + std::to_string(di) + "]");
          expect_eq(bits(v_scales[bh * dp + di]), bits(real ? vs[di] : 1.0f), "v_scale[" + std::to_string(di) + "]");
        }
      }
      for (int64_t g = 0; g < kg.num_groups(len); ++g)
        expect_eq(bits(k_scales[bh * (np / kSm80Tiles.block_k) * kg.count + g]), bits(ks[g]),
                  "k_scale[" + std::to_string(g) + "]");
      for (int64_t t = 0; t < np; ++t)
        for (int64_t di = 0; di < dp; ++di) {
          const bool real = t < len && di < c.d;
          const std::string at = "(b" + std::to_string(bi) + " h" + std::to_string(hi) + " t" +
                                 std::to_string(t) + " d" + std::to_string(di) + ")";
          expect_eq(uint8_t(k_codes[(bh * np + t) * dp + di]), real ? uint8_t(kc[t * c.d + di]) : 0u,
                    "k code " + at);
          if (fp8) {
            const int64_t w = t % 64;
            const int64_t pos = (t / 64) * 64 + (w / 32) * 32 + quant::fp8_v_kpos(int(w % 32));
            expect_eq(v_raw[(bh * dp + di) * np + pos], real ? vc[t * c.d + di] : 0u, "v code " + at);
          } else {
            uint16_t got;
            std::memcpy(&got, &v_raw[((bh * np + t) * dp + di) * 2], 2);
            expect_eq(got, real ? num::fp16_from_float(vvals[t * c.d + di]) : 0u, "v fp16 " + at);
          }
        }
    }
  }
  EXPECT_EQ(mismatches, 0) << c.name << ": " << mismatches << " mismatching values";
}

class GpuQuant : public GpuTest, public ::testing::WithParamInterface<QuantCase> {};

TEST_P(GpuQuant, BitIdenticalToReference) {
  const QuantCase& c = GetParam();
  // (Below sm89 the quantizer encodes fp8 in software: the fp8 cases are checked there too.)
  if (c.large && quick_mode()) GTEST_SKIP() << "large case skipped in quick mode";
  check_case(c, quant::KvQuantPath::kTickets);
}

TEST_P(GpuQuant, ClusterKernelBitIdenticalToReference) {
  const QuantCase& c = GetParam();
  if (c.large && quick_mode()) GTEST_SKIP() << "large case skipped in quick mode";
  check_case(c, quant::KvQuantPath::kCluster);
}

// Forced onto a head longer than one cluster holds (hd128: 16 CTAs x 4 blocks = 4096 tokens), the
// cluster kernel refuses with kUnsupported and writes nothing.
TEST_F(GpuTest, ClusterKernelRefusesAHeadLongerThanACluster) {
  quant::KvQuantParams p;
  DeviceBuffer k(2 * 4097 * 128 * 2), v(2 * 4097 * 128 * 2);
  p.k = k.get(), p.v = v.get();
  p.k_stride_b = p.v_stride_b = 2 * 4097 * 128, p.k_stride_h = p.v_stride_h = 4097 * 128;
  p.k_stride_n = p.v_stride_n = 128;
  p.batch = 1, p.heads_kv = 2, p.seqlen_k = 4097, p.head_dim = 128, p.head_dim_padded = 128;
  p.seqlen_k_padded = 4160;
  p.path = quant::KvQuantPath::kCluster;
  const char* why = quant::kv_quant_cluster_unfit(p);
  ASSERT_NE(why, nullptr);
  DeviceBuffer ws(quant::kv_quant_workspace_bytes(p));
  ws.fill(0xA5);
  quant::kv_quant_bind_workspace(p, ws.get());
  try {
    quant::kv_quantize(p, nullptr);
    FAIL() << "kv_quantize took a 65-block head on the cluster kernel";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
  SAGEATTN_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint8_t> after(quant::kv_quant_workspace_bytes(p));
  SAGEATTN_CUDA_CHECK(cudaMemcpy(after.data(), ws.get(), after.size(), cudaMemcpyDeviceToHost));
  EXPECT_TRUE(std::all_of(after.begin(), after.end(), [](uint8_t b) { return b == 0xA5; }))
      << "the refused call wrote to the workspace";
}

using cpu::InputFamily;
const QuantCase kCases[] = {
    {"hnd_bf16_warp_fp8", 2, 2, 1000, 128, DType::kBF16, Layout::kHND, Granularity::kPerWarp,
     Smoothing::kOn, Smoothing::kOff, PvMode::kFp8, InputFamily::kKChannelBias, {}},
    {"nhd_f16_thread_fp16acc_smoothv", 1, 3, 129, 64, DType::kF16, Layout::kNHD,
     Granularity::kPerThread, Smoothing::kOn, Smoothing::kOn, PvMode::kFp8Fp16Acc,
     InputFamily::kOutliers, {}},
    {"hnd_bf16_block_fp16_nosmooth_d96", 1, 2, 17, 96, DType::kBF16, Layout::kHND,
     Granularity::kPerBlock, Smoothing::kOff, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kGaussian, {}},
    {"nhd_bf16_thread_fp16_smoothv_d256", 1, 1, 127, 256, DType::kBF16, Layout::kNHD,
     Granularity::kPerThread, Smoothing::kOn, Smoothing::kOn, PvMode::kFp16,
     InputFamily::kOutliers, {}},
    {"hnd_f16_len1_d8", 1, 1, 1, 8, DType::kF16, Layout::kHND, Granularity::kPerWarp,
     Smoothing::kOn, Smoothing::kOn, PvMode::kFp8, InputFamily::kGaussian, {}},
    {"varlen_bf16_d256_fp8_smoothv", 0, 2, 0, 256, DType::kBF16, Layout::kNHD,
     Granularity::kPerWarp, Smoothing::kOn, Smoothing::kOn, PvMode::kFp8,
     InputFamily::kKChannelBias, {0, 1, 127, 300}},
    {"varlen_f16_d40_fp16", 0, 2, 0, 40, DType::kF16, Layout::kNHD, Granularity::kPerThread,
     Smoothing::kOn, Smoothing::kOff, PvMode::kFp16, InputFamily::kGaussian, {65, 64, 3}},
    // 32 heads x 32 blocks: 2048 tickets for a grid of a few hundred CTAs, so every CTA runs
    // several items (both kinds, deferred arrivals, spin waits).
    {"hnd_f16_many_items_per_cta_fp16", 4, 8, 2000, 128, DType::kF16, Layout::kHND,
     Granularity::kPerWarp, Smoothing::kOn, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kGaussian, {}},
    {"hnd_bf16_4097_fp8", 1, 2, 4097, 128, DType::kBF16, Layout::kHND, Granularity::kPerThread,
     Smoothing::kOn, Smoothing::kOn, PvMode::kFp8, InputFamily::kOutliers, {}, true},
    // fp16 mode without V smoothing, padded head dim >= 128, heads of at most 32 blocks (early_v;
    // also the d96 and many-items cases above): the stats items write V unscaled and the quantize
    // items fold their own K mean. Head 1 (0) has channels outside the keep range, so its fold
    // rewrites V scaled (both sides of the range in bf16, the low side in fp16), while the other
    // heads keep the early codes.
    {"hnd_bf16_fp16_scaled_head", 2, 3, 1000, 128, DType::kBF16, Layout::kHND,
     Granularity::kPerWarp, Smoothing::kOn, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kGaussian, {}, false, 1},
    {"varlen_f16_d96_fp16_scaled_head", 0, 2, 0, 96, DType::kF16, Layout::kNHD,
     Granularity::kPerThread, Smoothing::kOn, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kOutliers, {300, 0, 129}, false, 0},
    // early_v at padded head dim 256 (2 CTAs per SM), 11 blocks, channels 200-255 masked.
    {"nhd_bf16_d200_fp16_scaled_head", 1, 2, 700, 200, DType::kBF16, Layout::kNHD,
     Granularity::kPerThread, Smoothing::kOn, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kOutliers, {}, false, 1},
    // The same with 40 blocks per head, and at hd64: the two-pass V path, scaled channels included.
    {"hnd_bf16_2500_fp16_scaled_head", 1, 2, 2500, 128, DType::kBF16, Layout::kHND,
     Granularity::kPerWarp, Smoothing::kOn, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kGaussian, {}, false, 0},
    {"nhd_bf16_d64_fp16_scaled_head", 2, 2, 200, 64, DType::kBF16, Layout::kNHD,
     Granularity::kPerThread, Smoothing::kOff, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kKChannelBias, {}, false, 1},
    // The two-level mean order (groups of kMeanGroupChunks = 8 chunks, docs/NUMERICS.md §2) at the
    // group edges: heads of 1, 8, 9 (a group of one), 10 (the first length where the one-level
    // order differs), 17 (groups 8, 8, 1), 32 (four whole groups, a short last chunk), 64 (eight
    // whole groups) and 65 chunks (a ninth group of one chunk of 4 tokens), and an empty one.
    // Group records and counters (the fold by the last chunk of each group, then by the last
    // group), at hd64 (two tile buffers) and hd128; K and V means both.
    {"varlen_bf16_d64_fp8_group_edges", 0, 2, 0, 64, DType::kBF16, Layout::kNHD,
     Granularity::kPerWarp, Smoothing::kOn, Smoothing::kOn, PvMode::kFp8,
     InputFamily::kKChannelBias, {1, 512, 513, 577, 1088, 2000, 0, 4096, 4100}},
    {"varlen_f16_d128_fp16_smoothv_group_edges", 0, 2, 0, 128, DType::kF16, Layout::kNHD,
     Granularity::kPerThread, Smoothing::kOn, Smoothing::kOn, PvMode::kFp16,
     InputFamily::kKChannelBias, {4100, 600, 0, 64, 1088}},
    // The same edges with early_v (fp16, V not smoothed, at most 32 blocks per head): the
    // quantize items fold their K mean from the chunk records, two-level, and the head's quantize
    // item of block 0 folds them for the published stats; head 1 (varlen: the second KV head of
    // every sequence) has scaled V channels, so its fold rewrites V.
    {"varlen_bf16_d128_fp16_early_v_group_edges", 0, 2, 0, 128, DType::kBF16, Layout::kNHD,
     Granularity::kPerWarp, Smoothing::kOn, Smoothing::kOff, PvMode::kFp16,
     InputFamily::kKChannelBias, {1, 512, 513, 577, 1088, 2000, 0}, false, 1},
    // Dense, 65 chunks per head (a short last group), HND, hd256.
    {"hnd_bf16_4100_d256_fp8_smoothv", 1, 2, 4100, 256, DType::kBF16, Layout::kHND,
     Granularity::kPerThread, Smoothing::kOn, Smoothing::kOn, PvMode::kFp8,
     InputFamily::kOutliers, {}, true},
    // The cluster kernel's largest heads (16 CTAs, the non-portable size) at each head dim: 4096
    // tokens at hd128, 8192 at hd64 (varlen, beside a 1-token and a 4100-token sequence), 2048 at
    // hd256; and 1088 tokens at hd128 (5 CTAs, the last with one block and three past np).
    {"hnd_bf16_4096_fp8_cluster16", 1, 2, 4096, 128, DType::kBF16, Layout::kHND,
     Granularity::kPerWarp, Smoothing::kOn, Smoothing::kOff, PvMode::kFp8,
     InputFamily::kKChannelBias, {}},
    {"varlen_f16_d64_fp8_fp16acc_cluster16", 0, 2, 0, 64, DType::kF16, Layout::kNHD,
     Granularity::kPerThread, Smoothing::kOn, Smoothing::kOn, PvMode::kFp8Fp16Acc,
     InputFamily::kOutliers, {8192, 1, 4100}},
    {"nhd_bf16_2048_d256_fp16_cluster16", 1, 2, 2048, 256, DType::kBF16, Layout::kNHD,
     Granularity::kPerBlock, Smoothing::kOn, Smoothing::kOn, PvMode::kFp16,
     InputFamily::kGaussian, {}, false, 1},
    {"hnd_f16_1088_fp8_cluster5", 2, 2, 1088, 128, DType::kF16, Layout::kHND,
     Granularity::kPerThread, Smoothing::kOff, Smoothing::kOff, PvMode::kFp8,
     InputFamily::kOutliers, {}},
};

INSTANTIATE_TEST_SUITE_P(Cases, GpuQuant, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace sageattn::test
