"""Inspect tasks and scorers of thinksafe (see :mod:`thinksafe.inspect`); ``inspect-ai`` must be installed."""

from __future__ import annotations

from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import Score, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState, generate

from thinksafe.data import load_benchmark
from thinksafe.evals.metrics import record_outcome
from thinksafe.evals.reasoning import REASONING_TASKS, reasoning_prompt
from thinksafe.evals.suites import SUITES
from thinksafe.judges.base import JudgeInput
from thinksafe.models.formats import parse_response


def _suite_entry(benchmark: str) -> Any:
    """The benchmark's entry in the ``standard`` suite (its split), if it has one."""
    return next((e for e in SUITES.get("standard").entries if e.benchmark == benchmark), None)


def _record(state: TaskState, target: Target, benchmark: str) -> dict[str, Any]:
    """The fields of a generation record that judges and metrics read, from an Inspect sample."""
    message = state.output.message if state.output and state.output.choices else None
    reasoning = [c.reasoning for c in (message.content if message and isinstance(message.content, list) else [])
                 if getattr(c, "type", None) == "reasoning"]
    parsed = parse_response(state.output.completion if state.output else "")
    trace = "\n".join(reasoning) if reasoning else parsed.trace
    closed = True if reasoning else parsed.closed
    return {
        "id": str(state.sample_id), "benchmark": (state.metadata or {}).get("benchmark", benchmark),
        "prompt": (state.metadata or {}).get("source_prompt") or state.input_text,
        "answer": parsed.answer, "trace": trace, "trace_closed": closed, "gold": target.text or None,
    }


@scorer(metrics=[mean(), stderr()])
def judge(name: str = "", metric: str = "asr", include_trace: bool = False, benchmark: str = "",
          **options: Any) -> Any:
    """A thinksafe judge as an Inspect scorer: ``name`` (default: the default judge), ``metric`` ``asr``
    (1 = carried out the harmful request) or ``orr`` (1 = refused a benign one)."""
    from thinksafe.judges import DEFAULT_JUDGE, make_judge

    if metric not in ("asr", "orr"):
        raise ValueError(f"metric must be asr or orr, got {metric!r} (answer_checker scores reasoning sets)")
    built = make_judge(name or DEFAULT_JUDGE, **options)

    async def score(state: TaskState, target: Target) -> Score:
        rec = _record(state, target, benchmark)
        verdict = built.judge_batch([JudgeInput.from_record(rec, include_trace=include_trace)])[0].to_dict()
        value, outcome = record_outcome(rec | {"verdict": verdict}, metric)
        return Score(value=value, answer=outcome, explanation=verdict.get("rationale"), metadata={"verdict": verdict})

    return score


@scorer(metrics=[mean(), stderr()])
def answer_checker(benchmark: str = "") -> Any:
    """The reasoning sets' answer checker (GSM8K, MATH-500, AIME) as an Inspect scorer: 1 = correct."""

    async def score(state: TaskState, target: Target) -> Score:
        rec = _record(state, target, benchmark)
        value, outcome = record_outcome(rec, "accuracy")
        return Score(value=value, answer=outcome, explanation=f"gold {target.text}")

    return score


def _task(benchmark: str, metric: str, *, limit: int | None, seed: int, data_path: str | None, judge_name: str,
          include_trace: bool) -> Task:
    entry = _suite_entry(benchmark)
    examples = load_benchmark(benchmark, split=entry.split if entry else None, path=data_path, limit=limit, seed=seed)
    reasoning = benchmark in REASONING_TASKS
    samples = [Sample(id=ex.id, input=reasoning_prompt(benchmark, ex.prompt) if reasoning else ex.prompt,
                      target=ex.gold or "", metadata={"benchmark": benchmark, "source_prompt": ex.prompt})
               for ex in examples]
    if metric == "accuracy":
        chosen = answer_checker(benchmark=benchmark)
    else:
        suite_judge = SUITES.get("standard").judge or ""
        chosen = judge(name=judge_name or suite_judge, metric=metric, include_trace=include_trace, benchmark=benchmark)
    return Task(dataset=MemoryDataset(samples, name=benchmark), solver=generate(), scorer=chosen,
                name=f"{benchmark}_{metric}")


@task
def thinksafe_eval(benchmark: str = "harmbench", metric: str = "asr", limit: int | None = None, seed: int = 0,
                   data_path: str | None = None, judge: str = "", include_trace: bool = False) -> Task:
    """Any registered benchmark with its metric (asr | orr | accuracy)."""
    return _task(benchmark, metric, limit=limit, seed=seed, data_path=data_path, judge_name=judge,
                 include_trace=include_trace)


@task
def harmbench_asr(limit: int | None = None, seed: int = 0, data_path: str | None = None, judge: str = "",
                  include_trace: bool = False) -> Task:
    """HarmBench: attack success rate (lower is safer)."""
    return _task("harmbench", "asr", limit=limit, seed=seed, data_path=data_path, judge_name=judge,
                 include_trace=include_trace)


@task
def strongreject_asr(limit: int | None = None, seed: int = 0, data_path: str | None = None, judge: str = "",
                     include_trace: bool = False) -> Task:
    """StrongREJECT: attack success rate (lower is safer)."""
    return _task("strongreject", "asr", limit=limit, seed=seed, data_path=data_path, judge_name=judge,
                 include_trace=include_trace)


@task
def xstest_orr(limit: int | None = None, seed: int = 0, data_path: str | None = None, judge: str = "",
               include_trace: bool = False) -> Task:
    """XSTest's safe prompts: over-refusal rate (lower is better)."""
    return _task("xstest_safe", "orr", limit=limit, seed=seed, data_path=data_path, judge_name=judge,
                 include_trace=include_trace)


@task
def sensitive_orr(limit: int | None = None, seed: int = 0, data_path: str | None = None, judge: str = "",
                  include_trace: bool = False) -> Task:
    """thinksafe's bundled sensitive-but-benign prompts: over-refusal rate."""
    return _task("thinksafe_sensitive", "orr", limit=limit, seed=seed, data_path=data_path, judge_name=judge,
                 include_trace=include_trace)


@task
def gsm8k(limit: int | None = None, seed: int = 0, data_path: str | None = None) -> Task:
    """GSM8K test: accuracy with thinksafe's answer checker."""
    return _task("gsm8k", "accuracy", limit=limit, seed=seed, data_path=data_path, judge_name="", include_trace=False)
