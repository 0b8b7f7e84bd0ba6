#!/usr/bin/env python3
"""Times the peers of DESIGN.md §3 on the standard grid and appends CSV rows to the results file.

Peers: torch.nn.functional.scaled_dot_product_attention with the FLASH_ATTENTION,
CUDNN_ATTENTION and EFFICIENT_ATTENTION backends, and the original `sageattention` package when
it is importable. bf16 HND inputs ~ N(0, 1) (the `gaussian` family), 32 heads,
batch = 32K / N. Timing: CUDA events around each call, warm-up, median. Accuracy (cos, rel_l1)
against float64 attention on the same subset sageattn bench checks: batch 0, the first 4 heads,
the last 512 query rows.

Usage: python3 bench/peers.py --csv FILE [--hd 64 128] [--seqlens 1024 ...] [--causal 0 1]
"""
import argparse
import os
import statistics
import sys

HEADER = "impl,mode,hd,causal,seqlen,batch,heads,e2e_tflops,kernel_tflops,cos,rel_l1"
HEADS = 32
TOKENS = 32768
CHECK_HEADS, CHECK_ROWS = 4, 512


def median_ms(fn, torch, warmup, iters):
    stream = torch.cuda.Stream()
    times = []
    with torch.cuda.stream(stream):
        for i in range(warmup + iters):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            fn()
            stop.record(stream)
            stop.synchronize()
            if i >= warmup:
                times.append(start.elapsed_time(stop))
    return statistics.median(times)


def accuracy(torch, q, k, v, out, causal, scale):
    n_q, n_k = q.shape[2], k.shape[2]
    rows = min(CHECK_ROWS, n_q)
    qs = q[0, :CHECK_HEADS, n_q - rows:].double()
    ks, vs = k[0, :CHECK_HEADS].double(), v[0, :CHECK_HEADS].double()
    s = qs @ ks.transpose(-1, -2) * scale
    if causal:  # bottom-right aligned; these are the last rows of the full problem
        i = torch.arange(n_q - rows, n_q, device=q.device)[:, None]
        j = torch.arange(n_k, device=q.device)[None, :]
        s = s.masked_fill(j > i + n_k - n_q, float("-inf"))
    ref = torch.softmax(s, dim=-1) @ vs
    got = out[0, :CHECK_HEADS, n_q - rows:].double()
    cos = torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0).item()
    rel_l1 = ((got - ref).abs().sum() / ref.abs().sum()).item()
    return cos, rel_l1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--hd", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--seqlens", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384, 32768])
    ap.add_argument("--causal", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    peers = [("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
             ("sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION)]
    try:
        import sageattention  # noqa: F401
        sage = sageattention.sageattn
    except ImportError as e:
        sage = None
        print(f"peers: the original sageattention package is not importable ({e}): skipped")

    new = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
    with open(args.csv, "a") as out:
        if new:
            out.write(HEADER + "\n")
        print(f"peers: {torch.cuda.get_device_name()}, torch {torch.__version__}")
        for hd in args.hd:
            for causal in args.causal:
                for n in args.seqlens:
                    b = TOKENS // n
                    torch.manual_seed(n + hd)
                    q, k, v = (torch.randn(b, HEADS, n, hd, device="cuda", dtype=torch.bfloat16)
                               for _ in range(3))
                    flops = 4.0 * b * HEADS * n * n * hd / (2 if causal else 1)
                    scale = hd ** -0.5
                    impls = [(name, lambda be=be: _sdpa(F, sdpa_kernel, be, q, k, v, causal)) for name, be in peers]
                    if sage is not None:
                        impls.append(("sageattention", lambda: sage(q, k, v, tensor_layout="HND", is_causal=bool(causal))))
                    for name, fn in impls:
                        try:
                            o = fn()
                            ms = median_ms(fn, torch, args.warmup, args.iters)
                        except RuntimeError as e:
                            print(f"peers: {name} hd{hd} causal={causal} N={n}: not run ({str(e).splitlines()[0]})")
                            continue
                        cos, rel = accuracy(torch, q, k, v, o, causal, scale)
                        tf = flops / (ms * 1e-3) / 1e12
                        # sageattention 1.x (the PyPI package): int8 Q.K^T and fp16 P.V, our fp16 mode.
                        mode = "bf16" if name.startswith("sdpa") else "fp16"
                        out.write(f"{name},{mode},{hd},{causal},{n},{b},{HEADS},{tf:.6g},,{cos:.8f},{rel:.6g}\n")
                        out.flush()
                        print(f"peers: {name:15s} hd{hd} causal={causal} N={n:6d}: {ms:8.3f} ms {tf:7.1f} TFLOPS cos {cos:.6f} rel_l1 {rel:.5f}")
                    del q, k, v
                    torch.cuda.empty_cache()


def _sdpa(F, sdpa_kernel, backend, q, k, v, causal):
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))


if __name__ == "__main__":
    sys.exit(main())
