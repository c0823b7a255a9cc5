"""Generation throughput, every side in one run on the same machine and prompts.

    python bench/generation.py [--model NAME] [--prompts 32] [--new-tokens 128] [--naive-prompts 8]

Table 1 (32 standard HarmBench prompts x up to 128 new tokens, greedy, thinking off, same stop
rule; the contextual behaviours of 1,000-3,700 characters are left out, because one left-padded
``generate`` batch would spend most of its time on their padding, which flatters the default path):

* thinksafe's default path: the engine with ``--backend auto`` (vLLM where installed) and
  ``--dtype auto``, start-up excluded (timed on its own line: it is paid once per process);
* batched ``model.generate`` on one left-padded batch of all prompts;
* the engine on the ``transformers`` backend (the same model): must keep up with the line above;
* the naive loop: ``model.generate`` one prompt at a time, on the first ``--naive-prompts``.

Every side runs in the precision ``--dtype auto`` picks on this machine (bf16 where the hardware computes it,
float32 elsewhere: bf16 emulated on an AVX2-only CPU would flatter the default path).

Table 2 (shared prefixes): ``--samples`` sampled continuations of ``--continuation`` tokens from
one ``--prefix-tokens``-token prefix (every continuation exactly ``--continuation`` tokens), as ``n`` samples of one request with prefix caching (shared)
against as many separate requests with prefix caching off (not shared). vLLM only.
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
from thinksafe.models.formats import render_prompt
from thinksafe.models.loader import load_model, resolve_dtype


def _row(name: str, tokens: int, seconds: float, base: float | None) -> str:
    tps = tokens / seconds
    ratio = f"{tps / base:.2f}x" if base else "-"
    return f"| {name} | {tokens:,} | {seconds:.1f} | {tps:.1f} | {ratio} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--naive-prompts", type=int, default=8)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--prefix-tokens", type=int, default=200)
    ap.add_argument("--continuation", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    import torch

    pool = load_benchmark("harmbench", limit=4 * args.prompts, seed=0)
    examples = [e for e in pool if e.metadata.get("functional_category", "standard") == "standard"][: args.prompts]
    cfg = GenerationConfig(thinking="off", max_new_tokens=args.new_tokens, temperature=0.0, backend=args.backend)

    # the transformers references first (an in-process vLLM pins its threads), the same precision and prompts
    ref_dtype = resolve_dtype(cfg.dtype)
    ref = load_model(args.model, dtype=ref_dtype)
    tok, model = ref.tokenizer, ref.model
    from thinksafe.generation.backend import eos_token_ids

    eos = sorted(eos_token_ids(model, tok))
    rendered = [render_prompt(tok, ex.prompt, thinking="off") for ex in examples]

    def run_generate(texts: list[str]) -> tuple[int, float]:
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=args.new_tokens, do_sample=False, eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id)
        seconds = time.perf_counter() - t
        tokens = 0
        for row in out[:, batch.input_ids.shape[1]:].tolist():
            tokens += next((k for k, x in enumerate(row) if x in eos), len(row))
        return tokens, seconds

    batched_tokens, batched_s = run_generate(rendered)
    naive_tokens, naive_s = 0, 0.0
    for text in rendered[: args.naive_prompts]:
        n, s = run_generate([text])
        naive_tokens, naive_s = naive_tokens + n, naive_s + s
    with tempfile.TemporaryDirectory() as tmp:  # the reference backend on the same model
        hf_engine = Engine(ref, GenerationConfig(**(cfg.to_dict() | {"backend": "transformers", "dtype": ref_dtype,
                                                                     "batch_size": args.prompts})),
                           cache=GenerationCache(Path(tmp)))
        t0 = time.perf_counter()
        hf_records = hf_engine.run(examples, progress=False)
        hf_s = time.perf_counter() - t0
    hf_tokens = sum(r.n_completion_tokens for r in hf_records)
    del ref, model, hf_engine

    t0 = time.perf_counter()
    loaded = load_model(args.model, dtype=cfg.dtype)
    backend = make_backend(cfg.backend, loaded, batch_size=args.prompts)
    warm = GenerateRequest(loaded.tokenizer("Hello", add_special_tokens=False).input_ids, 2, Sampling(0.0))
    backend.generate([warm])  # start-up (vLLM builds its engine on first use)
    startup_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(loaded, cfg, backend=backend, cache=GenerationCache(Path(tmp)))  # nothing reused
        t0 = time.perf_counter()
        records = engine.run(examples, progress=False)
        default_s = time.perf_counter() - t0
    default_tokens = sum(r.n_completion_tokens for r in records)

    batched_tps = batched_tokens / batched_s
    print(f"model={args.model} prompts={len(examples)} new_tokens<={args.new_tokens} greedy, thinking off, "
          f"torch threads={torch.get_num_threads()}")
    print(f"default path: backend {backend.name} ({backend.version}), dtype {loaded.dtype}; "
          f"start-up {startup_s:.1f}s (model load + engine build, once per process)")
    print()
    print("| side | tokens | seconds | tokens/s | vs batched generate |")
    print("|---|---|---|---|---|")
    print(_row(f"thinksafe default ({backend.name}, {loaded.dtype})", default_tokens, default_s, batched_tps))
    print(_row(f"batched model.generate ({ref_dtype}, one batch)", batched_tokens, batched_s, batched_tps))
    print(_row(f"thinksafe --backend transformers ({ref_dtype})", hf_tokens, hf_s, batched_tps))
    print(_row(f"naive loop ({ref_dtype}, first {min(args.naive_prompts, len(rendered))} prompts)", naive_tokens, naive_s,
               batched_tps))
    print()
    print(f"default path / batched generate: {default_tokens / default_s / batched_tps:.2f}x; "
          f"default / naive: {(default_tokens / default_s) / (naive_tokens / naive_s):.2f}x")

    if backend.name != "vllm":
        print("\n(shared-prefix table: vLLM only)")
        return
    _shared_prefix_table(loaded, backend, args)


def _shared_prefix_table(loaded, backend, args) -> None:  # type: ignore[no-untyped-def]
    """n samples from one prefix: one request with prefix caching vs separate requests without it.

    Each of ``--reps`` rounds uses a new prefix (its first tokens differ), so no round reads KV
    blocks cached by an earlier one; each side's fastest round is reported.
    """
    from thinksafe.generation.vllm_backend import _prepare_env

    _prepare_env()  # in-process engine core, bounded KV cache: the same settings as the backend's
    from vllm import LLM
    from vllm.inputs import TokensPrompt

    tok = loaded.tokenizer
    text = ("Explain, step by step and with care, how the water cycle moves water between the oceans, the air "
            "and the land, and what changes it. ") * 20
    sampling = Sampling(temperature=0.8, top_p=0.95)
    plain = LLM(model=backend.checkpoint, tokenizer=backend.checkpoint, dtype=loaded.dtype, seed=0,
                enforce_eager=backend.enforce_eager, enable_prefix_caching=False, generation_config="vllm",
                max_model_len=2048)
    plain.generate([TokensPrompt(prompt_token_ids=[1, 2, 3])], backend._params(GenerateRequest([1], 2)), use_tqdm=False)
    shared_best = apart_best = (0, float("inf"))
    for rep in range(args.reps):
        prefix = tok(render_prompt(tok, f"Round {rep}. {text}", thinking="prompted"),
                     add_special_tokens=False).input_ids[: args.prefix_tokens]
        t = time.perf_counter()
        out = backend.generate([GenerateRequest(prefix, args.continuation, sampling, seed=rep, n=args.samples,
                                               min_tokens=args.continuation)])
        seconds = time.perf_counter() - t
        if seconds < shared_best[1]:
            shared_best = (sum(len(c.token_ids) for c in out[0]), seconds)
        apart = [GenerateRequest(prefix, args.continuation, sampling, seed=rep * 1000 + i, min_tokens=args.continuation)
                 for i in range(args.samples)]
        t = time.perf_counter()
        outs = plain.generate([TokensPrompt(prompt_token_ids=list(r.prompt_ids)) for r in apart],
                              [backend._params(r) for r in apart], use_tqdm=False)
        seconds = time.perf_counter() - t
        if seconds < apart_best[1]:
            apart_best = (sum(len(o.outputs[0].token_ids) for o in outs), seconds)
    print()
    print(f"{args.samples} sampled continuations (<= {args.continuation} tokens) of one {args.prefix_tokens}-token "
          f"prefix, fastest of {args.reps} rounds:")
    print()
    print("| side | tokens | seconds | tokens/s | speed-up |")
    print("|---|---|---|---|---|")
    print(_row("not shared (separate requests, no prefix caching)", *apart_best, None))
    print(_row("shared (n samples of one request, prefix caching)", *shared_best, apart_best[0] / apart_best[1]))


if __name__ == "__main__":
    main()
