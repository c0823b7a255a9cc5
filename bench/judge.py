"""What judging an item costs against generating 128 answer tokens for it, in one run on one machine.

    THINKSAFE_DATA_DIR=../shared/data python bench/judge.py [--judge qwen-cls] [--n 32] [--new-tokens 128]

The items are the first ``--n`` held-out rows of the default model's labelled responses (``qwen05``,
sorted by id): their prompt and answer go to the judge, their prompt to the generator. The judge runs
``judge_batch`` over all of them (its batch size, warm-up excluded, fastest of ``--reps``). Generation
makes exactly ``--new-tokens`` answer tokens per prompt (greedy, thinking off, no early stop), one batch
of all prompts, on the judge's backend (transformers ``generate``, bf16) and on the runs' default
backend (the engine's ``auto``: vLLM where installed; start-up excluded). The issue's budget: judging
may cost up to generating 128 answer tokens, on the same backend.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


def fastest(run: Callable[[], object], reps: int) -> float:
    """Seconds of the fastest of ``reps`` calls (other processes on a shared CPU only ever add time)."""
    seconds = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t)
    return min(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", default="qwen-cls")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--no-vllm", action="store_true", help="skip the vLLM side")
    args = ap.parse_args()

    import torch

    from thinksafe.generation.backend import GenerateRequest, Sampling
    from thinksafe.generation.registry import make_backend
    from thinksafe.judges import LABELLED_SETS, make_judge
    from thinksafe.judges.base import JudgeInput
    from thinksafe.models.formats import render_prompt
    from thinksafe.models.loader import load_model
    from thinksafe.models.registry import DEFAULT_MODEL

    rows = sorted(LABELLED_SETS.get("qwen05").rows("heldout"), key=lambda r: r.id)[: args.n]
    items = [JudgeInput(r.prompt, r.response) for r in rows]
    ref = load_model(DEFAULT_MODEL, dtype="bfloat16")
    tok, model = ref.tokenizer, ref.model

    judge = make_judge(args.judge, **({"loaded": ref} if args.judge == "qwen-cls" else {}))
    judge.warmup()
    judge_ms = 1000 * fastest(lambda: judge.judge_batch(items), args.reps) / len(items)
    lengths = []
    if hasattr(judge, "features"):
        llm = judge.features.llm
        lengths = [len(tok.encode(llm.render(it)[0], add_special_tokens=False)) for it in items]

    rendered = [render_prompt(tok, r.prompt, thinking="off") for r in rows]
    batch = tok(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        hf_ms = 1000 * fastest(lambda: model.generate(**batch, max_new_tokens=args.new_tokens,
                                                      min_new_tokens=args.new_tokens, do_sample=False,
                                                      pad_token_id=tok.pad_token_id), args.reps) / len(rows)

    vllm_ms = None
    if not args.no_vllm:
        loaded = load_model(DEFAULT_MODEL, dtype="auto")
        backend = make_backend("auto", loaded, batch_size=len(rows))
        backend.generate([GenerateRequest(tok("Hello", add_special_tokens=False).input_ids, 2, Sampling(0.0))])
        reqs = [GenerateRequest(tok(x, add_special_tokens=False).input_ids, args.new_tokens, Sampling(0.0),
                                min_tokens=args.new_tokens) for x in rendered]
        vllm_ms = 1000 * fastest(lambda: backend.generate(reqs), args.reps) / len(rows)
        vname = f"{backend.name} ({backend.version})"

    print(f"{len(items)} items (qwen05 held-out), torch threads {torch.get_num_threads()}; judge {args.judge} "
          f"batch {getattr(getattr(judge, 'config', None), 'batch_size', '?')}"
          + (f", judge input {sum(lengths) / len(lengths):.0f} tokens on average (max {max(lengths)})" if lengths else ""))
    print()
    print("| side | ms/item | judge / side |")
    print("|---|---|---|")
    print(f"| judge `{args.judge}` (transformers, bf16) | {judge_ms:.0f} | 1.00 |")
    print(f"| generate {args.new_tokens} answer tokens, transformers bf16, one batch | {hf_ms:.0f} | {judge_ms / hf_ms:.2f} |")
    if vllm_ms is not None:
        print(f"| generate {args.new_tokens} answer tokens, {vname}, one batch | {vllm_ms:.0f} | {judge_ms / vllm_ms:.2f} |")


if __name__ == "__main__":
    main()
