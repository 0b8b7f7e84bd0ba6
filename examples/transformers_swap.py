#!/usr/bin/env python3
"""Swap sageattn into a transformers model and compare it with torch's SDPA.

Builds a small, randomly initialised Llama from a config (no download), runs it once with torch's
scaled_dot_product_attention and once with sageattn.sdpa swapped in, and prints how far the
outputs are apart. Needs a CUDA GPU, torch and transformers; without them it says so and exits 0.

    python examples/transformers_swap.py [--layers 4] [--head-dim 128] [--seq 512] [--batch 2]
"""

from __future__ import annotations

import argparse
import sys


def metrics(out, ref):
    """(cosine similarity, relative L1) in float64."""
    o, r = out.double().flatten(), ref.double().flatten()
    cos = float((o @ r) / (o.norm() * r.norm()))
    rel_l1 = float((o - r).abs().sum() / r.abs().sum())
    return cos, rel_l1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--kv-heads", type=int, default=2, help="key/value heads (GQA when fewer than the query heads)")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        print("skipped: torch is not installed")
        return 0
    try:
        import transformers
    except ImportError:
        print("skipped: transformers is not installed (pip install transformers)")
        return 0
    if not torch.cuda.is_available():
        print("skipped: no CUDA GPU (sageattn.sdpa runs CUDA tensors; on the CPU it is torch's SDPA)")
        return 0
    import sageattn
    if not sageattn.CUDA_BUILD:
        print("skipped: this sageattn build has no CUDA backend (reinstall without SAGEATTN_ENABLE_CUDA=OFF)")
        return 0

    torch.manual_seed(0)
    heads = args.hidden // args.head_dim
    config = transformers.LlamaConfig(
        vocab_size=1000, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=heads, num_key_value_heads=args.kv_heads,
        head_dim=args.head_dim, max_position_embeddings=4 * args.seq)
    dtype = getattr(torch, args.dtype)
    model = transformers.LlamaForCausalLM(config).to(device="cuda", dtype=dtype).eval()
    model.config._attn_implementation = "sdpa"  # torch.nn.functional.scaled_dot_product_attention
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device="cuda")

    # Count the attention calls that sageattn computes itself (the others fall back to torch).
    calls = {"sageattn": 0, "torch fallback": 0}
    original = torch.nn.functional.scaled_dot_product_attention

    def counting_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                      enable_gqa=False):
        reason = sageattn.sdpa_fallback_reason(query, key, value, attn_mask, dropout_p, is_causal, scale,
                                               enable_gqa)
        calls["sageattn" if reason is None else "torch fallback"] += 1
        return sageattn.sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)

    with torch.inference_mode():
        ref = model(ids, output_hidden_states=True)
        torch.nn.functional.scaled_dot_product_attention = counting_sdpa  # the one-line swap
        try:
            out = model(ids, output_hidden_states=True)
        finally:
            torch.nn.functional.scaled_dot_product_attention = original

    hid_cos, hid_l1 = metrics(out.hidden_states[-1], ref.hidden_states[-1])
    log_cos, log_l1 = metrics(out.logits, ref.logits)
    same_top1 = float((out.logits.argmax(-1) == ref.logits.argmax(-1)).float().mean())
    print(f"model: Llama, {args.layers} layers, hidden {args.hidden}, {heads} heads of dim {args.head_dim}, "
          f"{args.kv_heads} kv heads, batch {args.batch} x {args.seq} tokens, {args.dtype}, "
          f"{torch.cuda.get_device_name()}, transformers {transformers.__version__}, sageattn {sageattn.__version__} "
          f"(pv_mode {sageattn.resolve_pv_mode('auto', torch.cuda.current_device(), args.head_dim)})")
    print(f"attention calls: {calls['sageattn']} on sageattn, {calls['torch fallback']} on torch's SDPA")
    print(f"last hidden state vs torch SDPA: cos {hid_cos:.6f}, rel-L1 {hid_l1:.5f}")
    print(f"logits vs torch SDPA: cos {log_cos:.6f}, rel-L1 {log_l1:.5f}, same top-1 token {same_top1:.4f}")
    if calls["sageattn"] == 0:
        print("error: sageattn computed no attention call: the swap did not take effect", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
