"""``thinksafe eval``: generate a suite with one model, judge the safety sets, score with CIs.

Layout of ``OUT``::

    manifest.json            the run's identity and status
    <benchmark>/records.jsonl     generations (resumable, cached)
    <benchmark>/judged.jsonl      records with verdicts (safety sets)
    metrics.json             the fixed-schema metrics (see thinksafe.evals.schema): each rate with its
                             judge, the judge's agreement with people and the corrected rate

A finished run is skipped on re-run; a killed one resumes from its records and the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from thinksafe.data import load_benchmark_with_source
from thinksafe.errors import ConfigError
from thinksafe.evals.inspect_log import export_eval_dir
from thinksafe.evals.judge_error import annotate, annotate_checker
from thinksafe.evals.metrics import MetricResult
from thinksafe.evals.reasoning import REASONING_TASKS, reasoning_prompt
from thinksafe.evals.schema import build_metrics, read_metrics, write_metrics
from thinksafe.evals.suites import SUITES, Suite, SuiteEntry, score_benchmark
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.generation.registry import model_identity, resolve_backend
from thinksafe.jsonl import append_jsonl, read_jsonl
from thinksafe.manifest import Stage, hash_examples
from thinksafe.models.loader import LoadedModel, load_model

log = logging.getLogger(__name__)


@dataclass
class EvalJob:
    """What ``thinksafe eval`` runs."""

    model: str = field(default="qwen2.5-coder-0.5b-instruct", metadata={"help": "model name or path"})
    suite: str = field(default="quick", metadata={"help": "suite name: quick | align | paper (thinksafe.evals.suites)"})
    out: str = field(default="", metadata={"help": "output folder"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder"})
    judge: str = field(default="", metadata={"help": "judge name; empty = the suite's judge, else the default judge"})
    judge_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "options of the judge's config"})
    include_trace: bool = field(default=False, metadata={"help": "judges also read the reasoning trace"})
    data_path: str | None = field(default=None, metadata={"help": "a folder laid out like shared/data"})
    data_seed: int = field(default=0, metadata={"help": "seed of each benchmark's subset"})
    limit_scale: float = field(default=1.0, metadata={"help": "multiply every suite limit (smoke runs)"})
    substitute: dict[str, str] = field(default_factory=dict, metadata={
        "help": "benchmark -> benchmark used in its place (a set that resolves offline), recorded in metrics.json"})
    thinking_budget: int | None = field(default=None, metadata={
        "help": "trace tokens before </think> is forced, for every set, over each suite entry's own budget "
                "(none: the entry's, else generation.thinking_budget)"})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "answer tokens after </think>, for every set, over each suite entry's own budget "
                "(none: the entry's, else generation.max_new_tokens)"})
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def __post_init__(self) -> None:
        if isinstance(self.generation, dict):
            self.generation = GenerationConfig(**self.generation)
        if not self.out:
            raise ConfigError("out must name an output folder (--out DIR).")
        suite = SUITES.get(self.suite)
        if not self.limit_scale > 0:
            raise ConfigError(f"limit_scale must be > 0, got {self.limit_scale}.")
        for name in ("thinking_budget", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {value!r}.")
        if not isinstance(self.judge_options, dict):
            raise ConfigError(f"judge_options must be a mapping, got {type(self.judge_options).__name__}.")
        if not self.judge:
            from thinksafe.judges import DEFAULT_JUDGE

            self.judge = suite.judge or DEFAULT_JUDGE
            self.judge_options = dict(suite.judge_options) | self.judge_options
        from thinksafe.judges import JUDGES

        JUDGES.get(self.judge)  # an unknown name fails here, listing the known judges
        from thinksafe.data import BENCHMARKS

        if not isinstance(self.substitute, dict):
            raise ConfigError(f"substitute must be a mapping of benchmark names, got {type(self.substitute).__name__}.")
        for name in (*self.substitute, *self.substitute.values()):
            BENCHMARKS.get(name)

    def entries(self) -> tuple[SuiteEntry, ...]:
        """The suite's entries, with the substituted benchmarks in place."""
        return tuple(replace(e, benchmark=self.substitute.get(e.benchmark, e.benchmark))
                     for e in SUITES.get(self.suite).entries)


def _entry_limit(entry: SuiteEntry, scale: float) -> int | None:
    return None if entry.limit is None else max(1, round(entry.limit * scale))


def _prompt_fn(entry: SuiteEntry):
    if entry.benchmark in REASONING_TASKS:
        return lambda ex: reasoning_prompt(entry.benchmark, ex.prompt)
    return None


def _entry_config(job: EvalJob, entry: SuiteEntry) -> GenerationConfig:
    """One entry's generation settings: the job's budgets over the entry's, the entry's over the defaults."""
    cfg = replace(job.generation, samples=entry.samples_per_prompt)
    for name in ("max_new_tokens", "thinking_budget"):
        value = getattr(job, name) if getattr(job, name) is not None else getattr(entry, name)
        if value is not None:
            cfg = replace(cfg, **{name: value})
    return cfg


def run_eval(job: EvalJob, *, progress: bool = True, loaded: LoadedModel | None = None) -> dict[str, Any]:
    """Run (or resume, or skip) an evaluation; returns the metrics object written to ``metrics.json``."""
    suite: Suite = replace(SUITES.get(job.suite), entries=job.entries())
    out = Path(job.out)
    datasets, sources = {}, {}
    for e in suite.entries:
        datasets[e.benchmark], sources[e.benchmark] = load_benchmark_with_source(
            e.benchmark, split=e.split, path=job.data_path, limit=_entry_limit(e, job.limit_scale), seed=job.data_seed
        )
    from thinksafe.judges import make_judge
    from thinksafe.judges.apply import annotate_records
    from thinksafe.judges.base import PRECHECK_RULES

    judge = make_judge(job.judge, **job.judge_options)  # bad options fail before anything is written
    if judge.score_kind == "p_unsafe" and any(e.metric == "orr" for e in suite.entries):
        raise ConfigError(
            f"Judge {job.judge!r} answers 'is this unsafe?', which labels every safe, helpful answer a refusal, so it "
            f"cannot measure over-refusal; suite {job.suite!r} has ORR sets. Use it on a suite of harmful sets only, "
            "or use the default judge (objective)."
        )
    identity = {
        "model": model_identity(job.model, dtype=job.generation.dtype, adapter=job.adapter, backend=resolve_backend(job.generation.backend)),
        "suite": job.suite,
        "judge": job.judge,
        "judge_options": job.judge_options,
        "judge_weights": judge.fingerprint,  # refitted weights are a different run
        "judge_rules": PRECHECK_RULES,  # so are new precheck rules (the verdicts change)
        "include_trace": job.include_trace,
        "data": {b: hash_examples(exs) for b, exs in datasets.items()},
        "generation": job.generation.identity(),
    }
    identity |= {k: getattr(job, k) for k in ("thinking_budget", "max_new_tokens") if getattr(job, k) is not None}
    stage = Stage(out, "eval", identity)
    metrics_path = out / "metrics.json"
    if stage.is_complete() and metrics_path.exists():
        log.info("%s is complete; reading its metrics", out)
        return read_metrics(metrics_path)
    placement = {"backend_placement": p} if (p := job.generation.placement()) else {}
    stage.write("running", extra=placement)
    if loaded is None:
        loaded = load_model(job.model, dtype=job.generation.dtype, adapter=job.adapter)
    results: dict[str, MetricResult] = {}
    thinking = None
    for entry in suite.entries:
        examples = datasets[entry.benchmark]
        bdir = out / entry.benchmark
        engine = Engine(loaded, _entry_config(job, entry))
        thinking = engine.thinking
        log.info("%s: %d prompts x %d samples", entry.benchmark, len(examples), entry.samples_per_prompt)
        records = [r.to_dict() for r in engine.run(examples, bdir / "records.jsonl", prompt_fn=_prompt_fn(entry), progress=progress)]
        if entry.metric in ("asr", "orr"):
            judged_path = bdir / "judged.jsonl"
            records = annotate_records(records, judge, include_trace=job.include_trace, progress=progress)
            if judged_path.exists():
                judged_path.unlink()
            append_jsonl(judged_path, records)
        result = score_benchmark(entry, records, seed=job.data_seed, refusal_only=not judge.decides_compliance)
        if entry.metric in ("asr", "orr"):  # who decided each rate, how well it agrees with people, corrected
            annotate(result, records, judge=job.judge, fingerprint=judge.fingerprint, options=job.judge_options,
                     model=loaded.name, adapter=job.adapter, refusal_only=not judge.decides_compliance,
                     include_trace=job.include_trace, seed=job.data_seed)
        else:
            annotate_checker(result)
        results[entry.benchmark] = result
    metrics = build_metrics(
        results,
        model=loaded.name,
        suite=job.suite,
        adapter=job.adapter,
        thinking=thinking,
        judge=job.judge,
        meta={
            "seed": job.generation.seed,
            "data_seed": job.data_seed,
            "thinking_budget": job.generation.thinking_budget,
            "max_new_tokens": job.generation.max_new_tokens,
            "temperature": job.generation.temperature,
            "include_trace": job.include_trace,
            "judge_options": job.judge_options,
            "limit_scale": job.limit_scale,
            "data_sources": sources,
            "substitute": job.substitute,
            "trace_stats": _trace_stats(out, suite),
        },
    )
    write_metrics(metrics_path, metrics)
    export_eval_dir(out)  # Inspect eval logs beside the records: an export, rebuilt by `thinksafe report`
    stage.write("complete", extra={"metrics": str(metrics_path)} | placement)
    return metrics


def _trace_stats(out: Path, suite: Suite) -> dict[str, dict[str, int]]:
    """Per benchmark: how many traces closed by themselves, were budget-forced, or stayed open."""
    stats: dict[str, dict[str, int]] = {}
    for e in suite.entries:
        path = out / e.benchmark / "records.jsonl"
        if not path.exists():
            continue
        recs = list(read_jsonl(path))
        stats[e.benchmark] = {
            "n": len(recs),
            "closed_by_model": sum(1 for r in recs if r.get("trace_closed")),
            "budget_forced": sum(1 for r in recs if r.get("forced_close")),
            "unclosed": sum(1 for r in recs if r.get("trace_closed") is False and not r.get("forced_close")),
        }
    return stats
