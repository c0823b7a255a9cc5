"""vLLM's CPU top-k/top-p against thinksafe's windowed top-p, side by side in one run: seconds per
decode step for a batch of rows over the default model's vocabulary, and whether they keep the
same tokens.

    python bench/vllm_topp.py [--rows 62] [--vocab 151936]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=62)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    from thinksafe.generation.vllm_topp import windowed_top_k_top_p

    original = getattr(apply_top_k_top_p_pytorch, "__wrapped__", apply_top_k_top_p_pytorch)
    fast = windowed_top_k_top_p(original)
    g = torch.Generator().manual_seed(0)
    print("| temperature | top-k | vLLM s/step | windowed s/step | ratio | same kept set |")
    print("|---|---|---|---|---|---|")
    for temperature in (0.6, 1.0):
        logits = torch.randn(args.rows, args.vocab, generator=g) * 4 / temperature
        logits[:, :50] += 8 / temperature  # a peaked head, like a language model's
        p = torch.full((args.rows,), 0.95)
        for k in (None, 20):
            kk = None if k is None else torch.full((args.rows,), k, dtype=torch.int32)
            times = {}
            outs = {}
            for name, fn in (("vllm", original), ("windowed", fast)):
                start = time.perf_counter()
                for _ in range(args.repeats):
                    outs[name] = fn(logits.clone(), None if kk is None else kk.clone(), p, True)
                times[name] = (time.perf_counter() - start) / args.repeats
            same = torch.equal(torch.isinf(outs["vllm"]), torch.isinf(outs["windowed"]))
            print(f"| {temperature} | {k or '-'} | {times['vllm']:.3f} | {times['windowed']:.3f} | "
                  f"{times['vllm'] / times['windowed']:.1f}x | {same} |")


if __name__ == "__main__":
    main()
