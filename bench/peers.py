#!/usr/bin/env python3
"""Times the peers of DESIGN.md §3 on the standard grid and appends CSV rows to the results file.

Peers: torch.nn.functional.scaled_dot_product_attention with the FLASH_ATTENTION,
CUDNN_ATTENTION and EFFICIENT_ATTENTION backends, and the original `sageattention` package when
it is importable. bf16 HND inputs ~ N(0, 1) (the `gaussian` family), 32 heads,
batch = 32K / N. Timing: CUDA events around each call (one call per sample, as `sageattn bench`
times), warm-up, median. Accuracy (cos, rel_l1) against float64 attention on the same subset
sageattn bench checks: batch 0, the first 4 heads, the last 512 query rows; every metric also
goes to `accuracy/<csv stem>.csv` beside the results file.

This is `python -m sageattn.bench --sweep` restricted to the peers (bench/run_grid.sh times
sageattn itself with the `sageattn` program). The sweep's code is python/sageattn/bench.py, used
from the installed package, or loaded from this checkout where the package is not installed
(the peers need torch only).

Usage: python3 bench/peers.py --csv FILE [--hd 64 128] [--seqlens 1024 ...] [--causal 0 1]
"""
import argparse
import importlib.util
import sys
from pathlib import Path

BENCH_PY = Path(__file__).resolve().parents[1] / "python" / "sageattn" / "bench.py"


def bench_module():
    """sageattn.bench, from the installed package or else from this checkout's source file."""
    try:
        from sageattn import bench
        return bench
    except ImportError:
        if "sageattn_bench_source" not in sys.modules:
            spec = importlib.util.spec_from_file_location("sageattn_bench_source", BENCH_PY)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        return sys.modules["sageattn_bench_source"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--hd", nargs="+", default=["64", "128"])
    ap.add_argument("--seqlens", nargs="+", default=["1024", "2048", "4096", "8192", "16384", "32768"])
    ap.add_argument("--causal", nargs="+", default=["0", "1"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    bench = bench_module()
    return bench.main(["--sweep", "--no-plots", "--csv", args.csv, "--impls", ",".join(bench.PEERS),
                       "--families", "gaussian", "--reps", "1", "--warmup", str(args.warmup),
                       "--iters", str(args.iters), "--hd", *args.hd, "--seqlens", *args.seqlens,
                       "--causal", *args.causal], prog="bench/peers.py")


if __name__ == "__main__":
    sys.exit(main())
