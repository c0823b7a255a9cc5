"""vLLM decode speed with and without a LoRA adapter, same engine, same prompts.

    python bench/vllm_lora.py [--rank 32] [--prompts 32] [--tokens 64]

A random (non-zero) LoRA adapter of ``--rank`` on every linear layer of the default model (the
alignment recipe's shape), ``--prompts`` prompts x exactly ``--tokens`` greedy tokens, base and
adapter alternating twice (the first base pass carries warm-up).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from thinksafe.generation.backend import GenerateRequest, Sampling
from thinksafe.generation.vllm_backend import VLLMBackend
from thinksafe.models.formats import render_prompt
from thinksafe.models.loader import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    loaded = load_model(args.model, dtype="auto")
    with tempfile.TemporaryDirectory() as adapter:
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(loaded.checkpoint, dtype=torch.float32)
        cfg = LoraConfig(r=args.rank, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        get_peft_model(base, cfg).save_pretrained(adapter)
        del base
        backend = VLLMBackend(loaded, enable_lora=True)
        tok = loaded.tokenizer
        ids = [tok(render_prompt(tok, f"Tell me a story about animal number {i}.", thinking="off"),
                   add_special_tokens=False).input_ids for i in range(args.prompts)]
        for name, path in (("base", None), ("adapter", adapter), ("base", None), ("adapter", adapter)):
            reqs = [GenerateRequest(p, args.tokens, Sampling(0.0), min_tokens=args.tokens, adapter=path) for p in ids]
            t = time.perf_counter()
            out = backend.generate(reqs)
            seconds = time.perf_counter() - t
            print(f"| {name} | {sum(len(c[0].token_ids) for c in out)} | {seconds:.1f} | "
                  f"{sum(len(c[0].token_ids) for c in out) / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
