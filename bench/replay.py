"""Deliberation replays: answers sampled after cuts of real traces, with the prefix read once against
re-read for every answer. Both sides in one run, same model, same cuts.

    THINKSAFE_DATA_DIR=../shared/data python bench/replay.py [--records 4] [--replays 8] [--tokens 32]

The default model writes ``--records`` HarmBench traces (prompted thinking, budget 192); each is cut at
20/40/60/80% of its tokens and ``--replays`` answers are sampled after every cut:

* shared: :func:`thinksafe.deliberation.replay.replay` on the default backend (vLLM, prefix caching):
  one request with ``n`` answers per cut, the cuts of one trace sharing their common blocks;
* re-read: the same cuts as ``n`` separate one-answer requests on a vLLM engine with prefix caching
  off, so every answer reads its whole prefix again.

Then a check that sharing changes nothing: greedy answers after every cut, on both engines, must be
identical.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from thinksafe.data import load_benchmark
from thinksafe.deliberation.replay import Cut, ReplaySettings, replay
from thinksafe.deliberation.states import record_key, trace_span
from thinksafe.generation.cache import GenerationCache
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.generation.vllm_backend import VLLMBackend
from thinksafe.models.loader import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--records", type=int, default=4)
    ap.add_argument("--replays", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()

    loaded = load_model(args.model, dtype="auto")
    shared = VLLMBackend(loaded)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(loaded, GenerationConfig(thinking_budget=192, max_new_tokens=32, temperature=0.6, top_k=20),
                        backend=shared, cache=GenerationCache(Path(tmp)))
        examples = load_benchmark("harmbench", limit=args.records, seed=0)
        records = {record_key(r.to_dict()): r.to_dict() for r in engine.run(examples, progress=False)}
    tok = loaded.tokenizer
    cuts = [Cut(key, int(f * trace_span(tok, rec)), seed=i)
            for i, (key, rec) in enumerate(records.items()) for f in (0.2, 0.4, 0.6, 0.8)]
    sampled = ReplaySettings(max_tokens=args.tokens, min_tokens=args.tokens)
    reread = VLLMBackend(loaded, engine_options={"enable_prefix_caching": False})
    replay(reread, tok, records, cuts[:1], 1, sampled)  # build the second engine before timing

    t = time.perf_counter()
    a = replay(shared, tok, records, cuts, args.replays, sampled)
    shared_s = time.perf_counter() - t
    apart = [Cut(c.key, c.k, c.seed * 1000 + j) for c in cuts for j in range(args.replays)]
    t = time.perf_counter()
    b = replay(reread, tok, records, apart, 1, sampled)
    reread_s = time.perf_counter() - t
    answers = sum(len(x) for x in a)
    assert answers == sum(len(x) for x in b) == len(cuts) * args.replays

    greedy = ReplaySettings(max_tokens=args.tokens, temperature=0.0)
    same = replay(shared, tok, records, cuts, 1, greedy) == replay(reread, tok, records, cuts, 1, greedy)
    prefix = sum(len(records[c.key]["prompt_token_ids"]) + c.k for c in cuts) / len(cuts)
    print(f"{len(cuts)} cuts of {len(records)} traces (mean prefix {prefix:.0f} tokens) x {args.replays} answers "
          f"of {args.tokens} tokens ({loaded.name}, {shared.version}, {loaded.dtype}):\n")
    print("| side | answers | seconds | answers/s | speed-up |")
    print("|---|---|---|---|---|")
    print(f"| re-read (one request per answer, no prefix caching) | {answers} | {reread_s:.1f} | {answers / reread_s:.2f} | - |")
    print(f"| shared (n answers per cut, prefix caching) | {answers} | {shared_s:.1f} | {answers / shared_s:.2f} | "
          f"**{reread_s / shared_s:.2f}x** |")
    print(f"\ngreedy answers after every cut identical on both sides: {same}")


if __name__ == "__main__":
    main()
