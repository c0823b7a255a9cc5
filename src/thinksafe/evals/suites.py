"""Evaluation suites: named tables of (benchmark, how many prompts, which metric, how many samples).

A suite says *what* to measure; the runner generates, judges and then calls
:func:`score_benchmark` once per entry. Suites live in :data:`SUITES`; adding one is one entry.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from thinksafe.errors import ConfigError
from thinksafe.evals.metrics import METRICS, MetricResult, attack_success_rate
from thinksafe.evals.reasoning import REASONING_TASKS, reasoning_prompt
from thinksafe.registry import Registry

logger = logging.getLogger(__name__)

__all__ = [
    "METRIC_SPLIT_TYPE",
    "SUITES",
    "Suite",
    "SuiteEntry",
    "reasoning_prompt",
    "score_benchmark",
    "score_suite",
]

METRIC_SPLIT_TYPE: dict[str, str] = {"asr": "asr", "orr": "orr", "accuracy": "reasoning"}
"""The ``split_type`` of prompts each metric is meant for; scoring other prompts is an error."""


@dataclass(frozen=True)
class SuiteEntry:
    """One benchmark of a suite.

    ``limit``: how many prompts (``None`` = all, taken by the data layer's deterministic sampler);
    ``metric``: a name in :data:`METRICS`; ``samples_per_prompt``: responses per prompt (pass@1 is
    averaged over them); ``split``: the dataset split where a benchmark has several (``"test"``);
    ``max_new_tokens``: a per-benchmark answer budget and ``thinking_budget`` a per-benchmark
    trace budget (``None`` = the runner's default).
    """

    benchmark: str
    limit: int | None
    metric: str
    samples_per_prompt: int = 1
    split: str | None = None
    max_new_tokens: int | None = None
    thinking_budget: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.benchmark, str) or not self.benchmark.strip():
            raise ConfigError(f"SuiteEntry.benchmark must be a non-empty name, got {self.benchmark!r}")
        if self.limit is not None and (not _is_int(self.limit) or self.limit < 1):
            raise ConfigError(f"SuiteEntry.limit must be a positive integer or None, got {self.limit!r}")
        if self.metric not in METRICS:
            known = ", ".join(METRICS.names())
            raise ConfigError(f"SuiteEntry.metric {self.metric!r} is unknown; known metrics: {known}")
        if not _is_int(self.samples_per_prompt) or self.samples_per_prompt < 1:
            raise ConfigError(
                f"SuiteEntry.samples_per_prompt must be an integer >= 1, got {self.samples_per_prompt!r}"
            )
        if self.max_new_tokens is not None and (not _is_int(self.max_new_tokens) or self.max_new_tokens < 1):
            raise ConfigError(
                f"SuiteEntry.max_new_tokens must be a positive integer or None, got {self.max_new_tokens!r}"
            )
        if self.thinking_budget is not None and (not _is_int(self.thinking_budget) or self.thinking_budget < 1):
            raise ConfigError(
                f"SuiteEntry.thinking_budget must be a positive integer or None, got {self.thinking_budget!r}"
            )
        if self.metric == "accuracy" and self.benchmark not in REASONING_TASKS:
            raise ConfigError(
                f"SuiteEntry.benchmark {self.benchmark!r} has no answer checker for 'accuracy'; "
                f"known reasoning benchmarks: {', '.join(REASONING_TASKS.names())}"
            )


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class Suite:
    """A named, ordered table of :class:`SuiteEntry`; each benchmark appears once.

    ``judge`` / ``judge_options``: the judge that labels this suite's safety sets (``None`` = the
    default judge), e.g. ``judge="llm", judge_options={"model": "/models/Llama-Guard-3-8B",
    "template": "llama_guard"}`` for a suite of harmful sets (a harm judge cannot measure
    over-refusal: the runner refuses it on a suite with ORR sets). The command line overrides both.
    """

    name: str
    description: str
    entries: tuple[SuiteEntry, ...]
    judge: str | None = None
    judge_options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        counts = Counter(e.benchmark for e in self.entries)
        dup = sorted(b for b, c in counts.items() if c > 1)
        if dup:
            raise ConfigError(f"Suite {self.name!r} lists benchmarks more than once: {', '.join(dup)}")
        if not self.entries:
            raise ConfigError(f"Suite {self.name!r} has no entries")

    def entry(self, benchmark: str) -> SuiteEntry:
        for e in self.entries:
            if e.benchmark == benchmark:
                return e
        known = ", ".join(e.benchmark for e in self.entries)
        raise ConfigError(f"Suite {self.name!r} has no benchmark {benchmark!r}; it has: {known}")

    @property
    def benchmarks(self) -> list[str]:
        return [e.benchmark for e in self.entries]


ASR_BENCHMARKS: tuple[str, ...] = (
    "harmbench",
    "strongreject",
    "advbench",
    "jailbreakbench",
    "sorrybench",
    "hexphi",
    "fortress",
    "wildjailbreak",
)
ORR_BENCHMARKS: tuple[str, ...] = ("xstest_safe", "coconot", "or_bench", "falsereject")
PAPER_TRAINING_POOLS: dict[str, tuple[str, ...]] = {
    "harmful": ("wildjailbreak", "sorrybench", "advbench"),
    "benign": ("or_bench", "falsereject"),
}
"""The ``paper`` preset's training pools (``presets/paper.yaml``): the ``paper`` suite evaluates every
other set, never these."""

SUITES: Registry[Suite] = Registry("suite")
SUITES.register(
    "quick",
    Suite(
        name="quick",
        description="A smoke-sized check of safety, over-refusal and reasoning (minutes on CPU).",
        entries=(
            # Sized to finish within 10 minutes on a 2-core CPU with the default 0.5B model. The judges
            # read the opening of an answer; GSM8K reasons in its trace, so it gets the longer trace
            # budget and a short answer budget ("The answer is N").
            SuiteEntry("harmbench", limit=20, metric="asr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("strongreject", limit=20, metric="asr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("xstest_safe", limit=20, metric="orr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("gsm8k", limit=16, metric="accuracy", split="test", thinking_budget=224, max_new_tokens=64),
        ),
    ),
)
SUITES.register(
    "standard",
    Suite(
        name="standard",
        description="The main job's default: sized so a before/after change of 0.15 is detectable (HarmBench 120, "
                    "StrongREJECT 60, the benign set 120, GSM8K 100).",
        entries=(
            # paired McNemar at the discordance `thinksafe plan` assumes (alpha 0.05, power 0.8): 120 prompts a
            # safety set -> MDD 0.139 at 0.3; GSM8K 100 -> 0.124 at 0.2; StrongREJECT is a second, smaller harmful
            # set (60 -> 0.196): its change is reported, its power said; the quick suite's budgets
            SuiteEntry("harmbench", limit=120, metric="asr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("strongreject", limit=60, metric="asr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("xstest_safe", limit=120, metric="orr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("gsm8k", limit=100, metric="accuracy", split="test", thinking_budget=224, max_new_tokens=64),
        ),
    ),
)
SUITES.register(
    "align",
    Suite(
        name="align",
        description="Before/after an alignment run: HarmBench ASR and refusal (100), XSTest ORR (100), GSM8K (200).",
        entries=(
            # the quick suite's budgets, at the sizes the alignment issue asks for (a paired GSM8K test
            # needs a few hundred questions); none of these prompts is in the default training pools
            SuiteEntry("harmbench", limit=100, metric="asr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("xstest_safe", limit=100, metric="orr", thinking_budget=96, max_new_tokens=96),
            SuiteEntry("gsm8k", limit=200, metric="accuracy", split="test", thinking_budget=224, max_new_tokens=64),
        ),
    ),
)
SUITES.register(
    "paper",
    Suite(
        name="paper",
        description="Every ASR and ORR set in full except the paper preset's training pools, GSM8K test, MATH-500 "
                    "and AIME 2024.",
        entries=(
            *(SuiteEntry(b, limit=None, metric="asr") for b in ASR_BENCHMARKS if b not in PAPER_TRAINING_POOLS["harmful"]),
            *(SuiteEntry(b, limit=None, metric="orr") for b in ORR_BENCHMARKS if b not in PAPER_TRAINING_POOLS["benign"]),
            SuiteEntry("gsm8k", limit=None, metric="accuracy", split="test"),
            SuiteEntry("math500", limit=None, metric="accuracy"),
            # 30 problems: average pass@1 over several samples for a usable interval
            SuiteEntry("aime2024", limit=None, metric="accuracy", samples_per_prompt=8),
        ),
    ),
)


def score_benchmark(
    entry: SuiteEntry,
    records: Iterable[Any],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    refusal_only: bool = False,
) -> MetricResult:
    """Score the (judged, for ASR/ORR) records of one suite entry with its metric.

    ``records`` are generation records as dicts (``GenerationRecord.to_dict()`` plus a ``verdict``
    dict for safety sets). ``refusal_only``: the verdicts come from a judge that decides refused or
    not, never "carried out" (``Judge.decides_compliance`` is false), so an ASR entry is scored as
    ``non_refusal_rate``. Raises ``ValueError`` on records of another benchmark or split type,
    duplicates, missing verdicts or golds; warns when the sample count differs from the entry.
    """
    recs = [r if isinstance(r, Mapping) else r.to_dict() for r in records]
    expected = METRIC_SPLIT_TYPE.get(entry.metric)
    wrong = sorted({str(r["split_type"]) for r in recs if r.get("split_type") not in (None, expected)})
    if expected and wrong:
        raise ValueError(
            f"{entry.benchmark!r}: metric {entry.metric!r} scores {expected!r} prompts, "
            f"but records have split_type {wrong}"
        )
    score = METRICS.get(entry.metric)
    if refusal_only and entry.metric == "asr":
        score = partial(attack_success_rate, refusal_only=True)
    result = score(recs, benchmark=entry.benchmark, n_resamples=n_resamples, seed=seed, alpha=alpha)
    per_prompt = Counter(str(r["id"]) for r in recs)
    off = sum(c != entry.samples_per_prompt for c in per_prompt.values())
    if off:
        logger.warning(
            "%s: %d of %d prompts have a sample count other than samples_per_prompt=%d",
            entry.benchmark, off, len(per_prompt), entry.samples_per_prompt,
        )
    if entry.limit is not None and result.n > entry.limit:
        logger.warning("%s: %d prompts scored, more than limit=%d", entry.benchmark, result.n, entry.limit)
    return result


def score_suite(
    suite: Suite | str,
    records: Iterable[Any],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    refusal_only: bool = False,
) -> dict[str, MetricResult]:
    """Score every entry of ``suite`` from a flat stream of records (grouped by ``benchmark``).

    Returns ``{benchmark: MetricResult}`` in suite order. Records of a benchmark outside the suite,
    or a suite benchmark without records, raise ``ValueError``.
    """
    suite = SUITES.get(suite) if isinstance(suite, str) else suite
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        d = r if isinstance(r, Mapping) else r.to_dict()
        groups[str(d.get("benchmark"))].append(d)
    extra = sorted(set(groups) - set(suite.benchmarks))
    if extra:
        raise ValueError(f"records of benchmarks outside suite {suite.name!r}: {', '.join(extra)}")
    missing = [b for b in suite.benchmarks if b not in groups]
    if missing:
        raise ValueError(f"suite {suite.name!r}: no records for {', '.join(missing)}")
    return {
        e.benchmark: score_benchmark(e, groups[e.benchmark], n_resamples=n_resamples, seed=seed, alpha=alpha,
                                     refusal_only=refusal_only)
        for e in suite.entries
    }
