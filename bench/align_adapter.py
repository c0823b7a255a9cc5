"""Does a trained adapter load back and change greedy outputs? Greedy answers of the base model and
of the model with the adapter on held-out HarmBench prompts, and how many differ.

    THINKSAFE_DATA_DIR=../shared/data python bench/align_adapter.py --adapter RUN/train/adapter [--n 16] [--backend transformers]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from thinksafe.data import load_benchmark
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.models.loader import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1, help="subset seed (the eval suite uses 0)")
    ap.add_argument("--backend", default="auto", help="auto | vllm | transformers (less memory beside a running job)")
    args = ap.parse_args()

    prompts = load_benchmark("harmbench", limit=args.n, seed=args.seed)
    cfg = GenerationConfig(temperature=0.0, thinking_budget=96, max_new_tokens=64, backend=args.backend)
    texts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, adapter in (("base", None), ("adapter", args.adapter)):
            loaded = load_model(args.model, dtype=cfg.dtype, adapter=adapter)
            records = Engine(loaded, cfg).run(prompts, Path(tmp) / f"{name}.jsonl", progress=False)
            texts[name] = [r.text for r in records]
    changed = sum(a != b for a, b in zip(texts["base"], texts["adapter"]))
    print(f"greedy outputs changed by the adapter: {changed} of {len(prompts)}")
    for a, b in list(zip(texts["base"], texts["adapter"]))[:3]:
        print("--- base:", a[-200:].replace("\n", " "))
        print("+++ adapter:", b[-200:].replace("\n", " "))


if __name__ == "__main__":
    main()
