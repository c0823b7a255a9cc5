"""How many requests the engine hands vLLM at once, both sides in one run on one engine.

    python bench/engine_chunks.py [--sets xstest_safe:120] [--chunks 256,64]

The standard suite's sampling on its safety sets (temperature 0.6, top-p 0.95, seed 0, two-phase
budget forcing at 96 + 96 tokens, the default model, ``--dtype auto``), each set generated into a
fresh cache once per chunk size: ``requests_at_once`` (the vLLM backend's, 256) against twice the
transformers batch size (64, what the engine handed every backend before). The first side listed runs
first, straight after the engine's warm-up, so any later warmth favours the sides after it. Per-request
seeds make the texts the same whatever the chunk; the script counts them.

``--matmul`` prints instead what one float32 matrix product of the default model's shapes computes a
second on this machine at each number of rows (the tokens of one decoding step): why the chunk matters.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from thinksafe.data import load_benchmark
from thinksafe.generation.backend import GenerateRequest, Sampling
from thinksafe.generation.cache import GenerationCache
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.generation.registry import make_backend
from thinksafe.models.loader import load_model


def _matmul_table() -> None:
    """``F.linear`` in float32 at the default model's shapes (Qwen2.5-0.5B: MLP in and out, the LM head)."""
    import torch

    shapes = {"mlp in (4864 x 896)": (4864, 896), "mlp out (896 x 4864)": (896, 4864), "lm head (151936 x 896)": (151936, 896)}
    rows = (1, 8, 32, 64, 128, 256, 1024)
    print(f"torch threads {torch.get_num_threads()}; GFLOPS a matrix product (float32), by rows")
    print()
    print("| weight | " + " | ".join(str(m) for m in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for name, (n, k) in shapes.items():
        weight, cells = torch.randn(n, k), []
        for m in rows:
            x = torch.randn(m, k)
            torch.nn.functional.linear(x, weight)  # warm
            reps = max(3, int(2e10 / (2 * m * n * k)))
            t = time.perf_counter()
            for _ in range(reps):
                torch.nn.functional.linear(x, weight)
            cells.append(f"{2 * m * n * k * reps / (time.perf_counter() - t) / 1e9:.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--sets", default="xstest_safe:120", help="BENCHMARK:N,... (each generated on its own, as the suite does)")
    ap.add_argument("--chunks", default="256,64", help="requests a backend call, in the order run")
    ap.add_argument("--budget", type=int, default=96)
    ap.add_argument("--matmul", action="store_true", help="GFLOPS of the model's matrix products by rows, then stop")
    args = ap.parse_args()
    if args.matmul:
        _matmul_table()
        return

    sets = [(b, int(n)) for b, n in (s.split(":") for s in args.sets.split(","))]
    data = {b: load_benchmark(b, limit=n, seed=0) for b, n in sets}
    config = GenerationConfig(thinking="auto", thinking_budget=args.budget, max_new_tokens=args.budget,
                              temperature=0.6, top_p=0.95, seed=0)
    loaded = load_model(args.model, dtype=config.dtype)
    backend = make_backend(config.backend, loaded)
    t0 = time.perf_counter()
    backend.generate([GenerateRequest(loaded.tokenizer("Hello", add_special_tokens=False).input_ids, 2, Sampling(0.0))])
    print(f"model={args.model} backend={backend.name} ({backend.version}) dtype={loaded.dtype} "
          f"start-up {time.perf_counter() - t0:.1f}s; sets {args.sets}, budget {args.budget} + {args.budget}")
    print()
    print("| requests a call | tokens | seconds | tokens/s | vs the last row |")
    print("|---|---|---|---|---|")
    rows, texts = [], []
    for chunk in (int(c) for c in args.chunks.split(",")):
        backend.requests_at_once = chunk
        tokens, seconds, run_texts = 0, 0.0, []
        for b, _ in sets:
            with tempfile.TemporaryDirectory() as tmp:
                engine = Engine(loaded, config, backend=backend, cache=GenerationCache(Path(tmp)))
                t = time.perf_counter()
                records = engine.run(data[b], progress=False)
                seconds += time.perf_counter() - t
            tokens += sum(r.n_completion_tokens for r in records)
            run_texts += [r.text for r in records]
        rows.append((chunk, tokens, seconds))
        texts.append(run_texts)
    last = rows[-1][1] / rows[-1][2]
    for chunk, tokens, seconds in rows:
        print(f"| {chunk} | {tokens:,} | {seconds:.1f} | {tokens / seconds:.1f} | {tokens / seconds / last:.2f}x |")
    same = sum(all(t[i] == texts[0][i] for t in texts) for i in range(len(texts[0])))
    print(f"\nthe same text on every side: {same} of {len(texts[0])}")


if __name__ == "__main__":
    main()
