"""The perplexity diagnostic on the default model: self-generated (steered) responses against
STAR-1 teacher responses, both scored by the base model after the original prompt.

    THINKSAFE_DATA_DIR=../shared/data python bench/align_perplexity.py [--n 32] [--out DIR]

Self-generation: advbench prompts under the paper's steering template, one sample each at the
paper's temperature 0.6 / top-p 0.95, prompted thinking with the default budget; scored all, and
the subset the judges keep (refusal, not harmful compliance). Teacher: the same number of STAR-1 rows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from thinksafe.align.filter import filter_candidates
from thinksafe.align.generate import Pool, generate_candidates
from thinksafe.align.perplexity import response_perplexity
from thinksafe.data import load_benchmark
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.registry import make_backend
from thinksafe.judges import DEFAULT_JUDGE, REFUSAL_JUDGE, make_judge
from thinksafe.models.loader import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    loaded = load_model(args.model, dtype="auto")
    backend = make_backend("auto", loaded)
    harmful = load_benchmark("advbench", limit=args.n, seed=0)
    teacher = load_benchmark("star1", limit=args.n, seed=0)
    cfg = GenerationConfig(thinking="prompted")
    with tempfile.TemporaryDirectory() as tmp:
        cands = generate_candidates(loaded, [Pool("advbench", harmful, True)], cfg, Path(args.out or tmp),
                                    template="prefix", progress=False)
    report = filter_candidates(cands, asr_judge=make_judge(DEFAULT_JUDGE), refusal_judge=make_judge(REFUSAL_JUDGE),
                               keep_forced=True)
    rows = [
        ("self-generated, steered (all)", [(c["source_prompt"], c["text"]) for c in cands]),
        ("self-generated, kept by the judges", [(c["source_prompt"], c["text"]) for c in report.kept]),
        ("STAR-1 teacher (DeepSeek-R1)", [(e.prompt, e.metadata["teacher_response"]) for e in teacher]),
    ]
    print(f"model={args.model} backend={backend.name} ({backend.version}) dtype={loaded.dtype}; "
          f"filter: {report.summary()['dropped_by_reason']}")
    print("| responses | n | response tokens | perplexity | median per response |")
    print("|---|---|---|---|---|")
    for name, pairs in rows:
        if not pairs:
            print(f"| {name} | 0 | - | - | - |")
            continue
        r = response_perplexity(backend, loaded.tokenizer, pairs)
        print(f"| {name} | {r['n']} | {r['tokens']:,} | {r['perplexity']:.2f} | {r['median_response_perplexity']:.2f} |")


if __name__ == "__main__":
    main()
