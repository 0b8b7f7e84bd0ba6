#!/usr/bin/env bash
# The standard grid of DESIGN.md §3 on the device: sageattn (automatic dispatch, end to end and
# kernel-only) and the torch SDPA peers in the same run, all rows in one CSV.
# Usage: bench/run_grid.sh SAGEATTN_BINARY CSV_FILE [modes]   (modes default: fp16,fp8)
set -euo pipefail
bin="$1"; csv="$2"; modes="${3:-fp16,fp8}"
for hd in 64 128; do
  for causal in 0 1; do
    for n in 1024 2048 4096 8192 16384 32768; do
      flag=""; [ "$causal" = 1 ] && flag="--causal"
      "$bin" bench --batch $((32768 / n)) --heads 32 --seqlen "$n" --head-dim "$hd" $flag \
        --modes "$modes" --warmup 3 --iters 10 --csv "$csv" | grep -E "^(fp|family)" | sed "s/^/hd$hd causal=$causal N=$n  /"
    done
  done
done
python3 "$(dirname "$0")/peers.py" --csv "$csv"
