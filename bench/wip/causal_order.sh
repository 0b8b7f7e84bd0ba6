#!/usr/bin/env bash
# bench/NOTES.md section 31: the sm90 kernel's causal tiles launched longest first, in groups of
# pairs that keep ~24 MB of K/V codes in flight (-DSAGEATTN_SM90_CAUSAL_ORDER=1; tile_order.h),
# against main's natural order. Device call from the repository root (no carry; ~120 s):
#   bash bench/wip/causal_order.sh
# Prints: test_gpu_attention and test_gpu_hardening of the variant (every tile written: poisoned
# outputs), then e2e (kernel) TFLOPS of both builds, causal hd128 16K / 4K / 1K and hd64 16K, and
# non-causal hd128 16K (must not move: the order applies to causal calls only).
export AB_OLD=0 AB_TESTS=1 AB_TIMEOUT=120 AB_BENCH_TIMEOUT=30 AB_MODES=fp8,fp16
export AB_VARIANTS="-DSAGEATTN_SM90_CAUSAL_ORDER=1|"
export AB_PROBS="128:16384:1 128:4096:1 128:1024:1 64:16384:1 128:16384:0"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,driver_version --format=csv,noheader
bash scripts/ab_probe.sh
