// src/attention/sm90/launch_kernel.cuh: the launcher template the inst_hd*.cu files instantiate.
#pragma once

#include <cstdio>
#include <cstring>

#include <cuda.h>

#include "attention/sm90/kernel.cuh"
#include "attention/sm90/launch.h"
#include "common/cuda_check.h"

namespace sageattn::sm90 {

static_assert(sizeof(TmaMap) == sizeof(CUtensorMap) && alignof(TmaMap) >= alignof(CUtensorMap),
              "TmaMap mirrors CUtensorMap");

template <int kHeadDim, PvMode kMode>
void launch_attention(const attn::KernelParams& kp, const TmaMap& k_map, const TmaMap& v_map,
                      cudaStream_t stream) {
  using Cfg = KernelConfig<kHeadDim, kMode>;
  const auto kernel = attention_kernel<kHeadDim, kMode>;
  SAGEATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           int(Cfg::kSmemBytes)));
  CUtensorMap km, vm;
  std::memcpy(&km, &k_map, sizeof(km));
  std::memcpy(&vm, &v_map, sizeof(vm));
  // x: (sequence, query tile) with the tiles of one sequence adjacent (no 65535 limit on
  // sequences: launch.cu checks that tiles x sequences fits x); y: query heads.
  const dim3 grid(unsigned(query_tiles(kp.seqlen_q) * kp.batch), unsigned(kp.heads_q), 1u);
#if SAGEATTN_SM90_CTA_TRACE
  void* trace = nullptr;
  SAGEATTN_CUDA_CHECK(cudaGetSymbolAddress(&trace, g_cta_trace));
  unsigned long long t[kCtaTraceFields] = {};
  t[kCtaTraceFirstEntry] = ~0ull;
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(trace, t, sizeof(t), cudaMemcpyHostToDevice, stream));
#endif
  kernel<<<grid, kThreads, Cfg::kSmemBytes, stream>>>(kp, km, vm);
  SAGEATTN_CUDA_CHECK_LAUNCH();
#if SAGEATTN_SM90_CTA_TRACE
  SAGEATTN_CUDA_CHECK(cudaMemcpyAsync(t, trace, sizeof(t), cudaMemcpyDeviceToHost, stream));
  SAGEATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
  auto us = [](unsigned long long ns, unsigned long long n) { return n ? 1e-3 * double(ns) / double(n) : 0.0; };
  std::fprintf(stderr,
               "sm90 cta trace: hd %d %s grid %u x %u | ctas %llu, span %.1f us | per CTA (us): setup"
               " %.2f, prologue %.2f, first K after it %.2f | per warpgroup (us): loop %.2f,"
               " epilogue %.2f | gap between CTAs on an SM %.2f us (%llu gaps)\n",
               kHeadDim, Cfg::kFp8 ? "fp8" : "fp16", grid.x, grid.y, t[kCtaTraceCtas],
               t[kCtaTraceLastEnd] > t[kCtaTraceFirstEntry] ? 1e-3 * double(t[kCtaTraceLastEnd] - t[kCtaTraceFirstEntry]) : 0.0,
               us(t[kCtaTraceSetupNs], t[kCtaTraceCtas]), us(t[kCtaTracePrologueNs], t[kCtaTraceCtas]),
               us(t[kCtaTraceFirstKNs], t[kCtaTraceCtas]), us(t[kCtaTraceLoopNs], t[kCtaTraceWgs]),
               us(t[kCtaTraceEpilogueNs], t[kCtaTraceWgs]), us(t[kCtaTraceGapNs], t[kCtaTraceGaps]),
               t[kCtaTraceGaps]);
#endif
}

}  // namespace sageattn::sm90

// Instantiates the two P·V modes of one head dim.
#define SAGEATTN_SM90_INSTANTIATE(HD)                                                            \
  template void sageattn::sm90::launch_attention<HD, sageattn::PvMode::kFp16>(                   \
      const sageattn::attn::KernelParams&, const sageattn::sm90::TmaMap&,                        \
      const sageattn::sm90::TmaMap&, cudaStream_t);                                              \
  template void sageattn::sm90::launch_attention<HD, sageattn::PvMode::kFp8>(                    \
      const sageattn::attn::KernelParams&, const sageattn::sm90::TmaMap&,                        \
      const sageattn::sm90::TmaMap&, cudaStream_t)
