"""How often the default model closes its trace by itself at each thinking budget, and what the
budget does to GSM8K accuracy (the measurement behind the default thinking budget).

    THINKSAFE_DATA_DIR=../shared/data python bench/thinking_budget.py [--budgets 128 256 512] [--gsm8k 48] [--harmful 32]

Greedy, prompted thinking, the default backend; GSM8K test problems with the suite's reasoning
instruction, and HarmBench + XSTest (safe) prompts for the closure rate on safety prompts.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from thinksafe.data import load_benchmark
from thinksafe.evals.runner import _prompt_fn
from thinksafe.evals.suites import SuiteEntry, score_benchmark
from thinksafe.generation.cache import GenerationCache
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.models.loader import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--budgets", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--gsm8k", type=int, default=48)
    ap.add_argument("--harmful", type=int, default=32)
    args = ap.parse_args()

    gsm = load_benchmark("gsm8k", split="test", limit=args.gsm8k, seed=0)
    safety = load_benchmark("harmbench", limit=args.harmful, seed=0) + load_benchmark("xstest_safe", limit=args.harmful, seed=0)
    entry = SuiteEntry("gsm8k", limit=args.gsm8k, metric="accuracy", split="test")
    loaded = load_model(args.model)
    print("| budget | GSM8K closed by model | GSM8K accuracy [95% CI] | safety prompts closed by model | answer empty |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for budget in args.budgets:
            cfg = GenerationConfig(thinking="prompted", thinking_budget=budget, max_new_tokens=64, temperature=0.0)
            engine = Engine(loaded, cfg, cache=GenerationCache(Path(tmp)))
            g = engine.run(gsm, prompt_fn=_prompt_fn(entry), progress=False)
            m = score_benchmark(entry, [r.to_dict() for r in g])
            s = Engine(loaded, GenerationConfig(thinking="prompted", thinking_budget=budget, max_new_tokens=96,
                                                temperature=0.0), cache=GenerationCache(Path(tmp))).run(safety, progress=False)
            closed_g = sum(r.trace_end == "closed" for r in g)
            closed_s = sum(r.trace_end == "closed" for r in s)
            empty = sum(not r.answer.strip() for r in g + s)
            print(f"| {budget} | {closed_g}/{len(g)} | {m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}] | "
                  f"{closed_s}/{len(s)} | {empty}/{len(g) + len(s)} |", flush=True)
    print(f"\nmodel={args.model} backend={engine.backend.name} ({engine.backend.version}) dtype={loaded.dtype}, greedy")


if __name__ == "__main__":
    main()
