"""Inspect AI eval logs of an evaluation folder: an export beside our records, for ``inspect view``.

Each judged set of an eval folder (``thinksafe eval``, a main job's ``before/eval`` and
``after/RECIPE/eval``) gets ``<benchmark>/inspect.eval`` in Inspect's ``.eval`` format
(``inspect_ai.log.write_eval_log``): one sample per record (id, epoch = sample index + 1), the prompt
as the model saw it, the trace as reasoning and the answer as text, the judge's verdict as the score
(value 1 where the record counts toward the headline rate, its outcome as the answer, the rationale
as the explanation, the whole verdict in the metadata), the sampling settings, the model and adapter
identity, and the set's rates with their intervals as the log's metrics. ``inspect view --log-dir
RUN`` lists them all.

``metrics.json`` stays the source of truth: the log is written from it and from the records, after
them, and ``thinksafe report`` writes any that are missing. ``inspect-ai`` is optional (``make
setup`` installs it): without it nothing is written and a note says so once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from thinksafe.evals.metrics import record_outcome
from thinksafe.jsonl import read_jsonl

log = logging.getLogger(__name__)

LOG_NAME = "inspect.eval"
SCORER_PREFIX = "thinksafe/"
_WARNED: list[bool] = []


def inspect_available() -> bool:
    import importlib.util

    ok = importlib.util.find_spec("inspect_ai") is not None
    if not ok and not _WARNED:
        _WARNED.append(True)
        log.warning("inspect-ai is not installed: no Inspect eval logs are written (pip install inspect-ai)")
    return ok


def _judge(entry: dict[str, Any]) -> dict[str, Any]:
    """The judge behind a set's headline rate (empty for a reasoning set's answer checker)."""
    return (entry.get(entry.get("metric")) or {}).get("judge") or {}


def scorer_name(entry: dict[str, Any]) -> str:
    """The score's name in a log: the judge (``thinksafe/objective``) or the answer checker."""
    name = _judge(entry).get("name")
    return f"{SCORER_PREFIX}{name}" if name else f"{SCORER_PREFIX}checker"


def export_eval_dir(eval_dir: str | Path, *, missing_only: bool = False) -> list[Path]:
    """Write ``inspect.eval`` for every set of a finished eval folder (its ``metrics.json``); with
    ``missing_only`` only those not yet there. Returns the logs written."""
    from thinksafe.evals.schema import read_metrics

    eval_dir = Path(eval_dir)
    metrics_path = eval_dir / "metrics.json"
    if not metrics_path.exists() or not inspect_available():
        return []
    metrics = read_metrics(metrics_path)
    manifest = _manifest(eval_dir)
    written = []
    for benchmark, entry in metrics.get("benchmarks", {}).items():
        bdir = eval_dir / benchmark
        path = bdir / LOG_NAME
        if missing_only and path.exists():
            continue
        source = bdir / "judged.jsonl" if (bdir / "judged.jsonl").exists() else bdir / "records.jsonl"
        if not source.exists():
            continue
        records = list(read_jsonl(source))
        _write(path, records, benchmark, entry, metrics, manifest)
        written.append(path)
    return written


def _manifest(stage_dir: Path) -> dict[str, Any]:
    """The stage's ``manifest.json`` (empty where it has none or it cannot be read)."""
    import json

    try:
        manifest = json.loads((stage_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _times(manifest: dict[str, Any]) -> tuple[str, str]:
    """When the stage started and last wrote its manifest (ISO times; now, where it has none)."""
    try:
        return tuple(datetime.strptime(manifest[k], "%Y-%m-%dT%H:%M:%S%z").isoformat()  # type: ignore[return-value]
                     for k in ("started", "updated"))
    except (ValueError, TypeError, KeyError):
        now = datetime.now(timezone.utc).isoformat()
        return now, now


def _sampling(manifest: dict[str, Any], suite: str | None, benchmark: str) -> dict[str, Any]:
    """The set's sampling settings: the run's as its manifest's identity has them (top-p, top-k, thinking,
    steering, ...), with the token budgets the set ran under (the job's, else the suite entry's)."""
    from thinksafe.evals.suites import SUITES

    try:
        identity = manifest["identity"]
        out = dict(identity["generation"])
    except (KeyError, TypeError, ValueError):
        return {}
    try:
        entry = SUITES.get(suite).entry(benchmark) if suite else None
    except Exception:  # a suite or set this version does not know: the run's own budgets stand
        entry = None
    for name in ("thinking_budget", "max_new_tokens"):
        out[name] = identity.get(name) or (getattr(entry, name, None) if entry else None) or out.get(name)
    return out


def _tags(adapter: str | None) -> list[str]:
    """``base``, or ``adapter`` and the recipe whose run folder trained it (``.../align/RECIPE/train/adapter``)."""
    if not adapter:
        return ["base"]
    parts = Path(adapter).parts
    return ["adapter", parts[-3]] if len(parts) >= 3 and parts[-2] == "train" else ["adapter"]


def _headline_score(rec: dict[str, Any], metric: str) -> Any:
    from inspect_ai.scorer import Score

    value, outcome = record_outcome(rec, metric)
    verdict = rec.get("verdict")
    return Score(value=value, answer=outcome, explanation=(verdict or {}).get("rationale"),
                 metadata={"verdict": verdict} if verdict else {"gold": rec.get("gold")})


def _sample(rec: dict[str, Any], scores: dict[str, Any]) -> Any:
    from inspect_ai.log import EvalSample
    from inspect_ai.model import (
        ChatCompletionChoice,
        ChatMessageAssistant,
        ChatMessageUser,
        ContentReasoning,
        ContentText,
        ModelOutput,
        ModelUsage,
    )
    answer = rec.get("answer") or ""
    content: Any = answer
    if rec.get("trace") is not None:
        content = [ContentReasoning(reasoning=rec["trace"]), ContentText(text=answer)]
    assistant = ChatMessageAssistant(content=content, model=rec.get("model") or None, source="generate")
    stop = {"length": "max_tokens"}.get(str(rec.get("finish_reason")), "stop")
    output = ModelOutput(
        model=rec.get("model") or "", choices=[ChatCompletionChoice(message=assistant, stop_reason=stop)],
        usage=ModelUsage(input_tokens=int(rec.get("n_prompt_tokens") or 0),
                         output_tokens=int(rec.get("n_completion_tokens") or 0),
                         total_tokens=int(rec.get("n_prompt_tokens") or 0) + int(rec.get("n_completion_tokens") or 0)),
    )
    keep = ("benchmark", "split_type", "trace_closed", "forced_close", "trace_end", "finish_reason", "seed",
            "steered", "thinking", "n_trace_tokens", "n_answer_tokens", "backend", "backend_version", "cache_key")
    return EvalSample(
        id=str(rec["id"]), epoch=int(rec.get("sample_index") or 0) + 1,
        input=rec.get("source_prompt") or rec["prompt"], target=str(rec.get("gold") or ""),
        messages=[ChatMessageUser(content=rec["prompt"]), assistant], output=output,
        model_usage={f"thinksafe/{rec.get('model') or 'model'}": output.usage},
        scores=scores, metadata={k: rec.get(k) for k in keep} | {"rendered_prompt": rec.get("rendered_prompt")},
    )


def _write(path: Path, records: list[dict[str, Any]], benchmark: str, entry: dict[str, Any],
           metrics: dict[str, Any], manifest: dict[str, Any]) -> None:
    from inspect_ai.log import EvalMetric

    metric = entry["metric"]
    scorer = scorer_name(entry)
    meta = metrics.get("meta") or {}
    rates = {entry["metric"]: entry, **{s["metric"]: s for s in entry.get("secondary", [])}}
    eval_metrics = {}
    for name, r in rates.items():
        eval_metrics[name] = EvalMetric(name=name, value=float(r["value"]))
        if name == metric:
            eval_metrics["ci_low"] = EvalMetric(name="ci_low", value=float(r["ci_low"]))
            eval_metrics["ci_high"] = EvalMetric(name="ci_high", value=float(r["ci_high"]))
    model = metrics.get("model") or (records[0].get("model") if records else "model")
    generation = {k: meta.get(k) for k in ("seed", "data_seed", "thinking_budget", "max_new_tokens", "temperature",
                                           "include_trace")} | _sampling(manifest, metrics.get("suite"), benchmark)
    judge = _judge(entry)
    metadata = {"suite": metrics.get("suite"), "adapter": metrics.get("adapter"), "thinking": metrics.get("thinking"),
                "judge": judge or None, "judge_agreement": (entry.get(metric) or {}).get("judge_agreement"),
                "generation": generation, "data_source": (meta.get("data_sources") or {}).get(benchmark)}
    write_log(path, records, task=f"{benchmark}_{metric}", dataset=benchmark, model=model, times=_times(manifest),
              scores={scorer: (lambda r: _headline_score(r, metric), eval_metrics)}, generation=generation,
              metadata=metadata, tags=_tags(metrics.get("adapter")),
              task_args={k: v for k, v in (("suite", metrics.get("suite")), ("judge", judge.get("name")))
                         if v is not None})


def write_log(path: Path, records: list[dict[str, Any]], *, task: str, dataset: str, model: str,
              times: tuple[str, str], scores: dict[str, tuple[Any, dict[str, Any]]], generation: dict[str, Any],
              metadata: dict[str, Any], tags: list[str] | None = None, task_args: dict[str, Any] | None = None) -> None:
    """One Inspect log of ``records``: ``scores`` maps each scorer's name to (record -> Score, the
    log's metrics for it); ``times`` are the stage's start and end."""
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalResults, EvalScore, EvalSpec, EvalStats, write_eval_log
    from inspect_ai.model import GenerateConfig, ModelUsage

    started, completed = times
    spec = EvalSpec(
        created=started, task=f"thinksafe/{task}", task_version=0, tags=tags, task_args=task_args or {},
        dataset=EvalDataset(name=dataset, samples=len({str(r["id"]) for r in records})),
        model=f"thinksafe/{model}",
        model_generate_config=GenerateConfig(temperature=generation.get("temperature"), top_p=generation.get("top_p"),
                                             top_k=generation.get("top_k") or None,
                                             max_tokens=generation.get("max_new_tokens"), seed=generation.get("seed")),
        config=EvalConfig(epochs=max((int(r.get("sample_index") or 0) + 1 for r in records), default=1)),
        metadata={"source": "thinksafe export (metrics.json is the source of truth)"} | metadata,
    )
    results = EvalResults(total_samples=len(records), completed_samples=len(records),
                          scores=[EvalScore(name=name, scorer=name, metrics=m, scored_samples=len(records),
                                            unscored_samples=0) for name, (_, m) in scores.items()])
    samples = [_sample(r, {name: fn(r) for name, (fn, _) in scores.items()}) for r in records]
    usage = ModelUsage(input_tokens=sum(s.output.usage.input_tokens for s in samples),
                       output_tokens=sum(s.output.usage.output_tokens for s in samples),
                       total_tokens=sum(s.output.usage.total_tokens for s in samples))
    log_obj = EvalLog(eval=spec, status="success", results=results,
                      stats=EvalStats(started_at=started, completed_at=completed, model_usage={spec.model: usage}),
                      samples=samples)
    tmp = path.with_name(f".{path.name}.tmp")
    write_eval_log(log_obj, str(tmp), format="eval")
    tmp.replace(path)  # a killed export leaves no half-written log under the name that counts


def export_deliberation_generate(stage_dir: str | Path, *, missing_only: bool = False) -> list[Path]:
    """``<pool>.eval`` beside each pool's records of a deliberation's generate stage: one sample per
    record, scored by the label judge (refused) and the ASR judge (carried out), with both rates."""
    from inspect_ai.log import EvalMetric
    from inspect_ai.scorer import Score

    stage_dir = Path(stage_dir)
    labels_path = stage_dir / "labels.jsonl"
    if not labels_path.exists() or not inspect_available():
        return []
    manifest = _manifest(stage_dir)
    labels = {(str(r["id"]), int(r.get("sample_index") or 0), r["pool"]): r for r in read_jsonl(labels_path)}
    pools = sorted({r["pool"] for r in labels.values()})
    written = []
    for pool in pools:
        path = stage_dir / f"{pool}.eval"
        if (missing_only and path.exists()) or not (stage_dir / f"{pool}.jsonl").exists():
            continue
        records = []
        for rec in read_jsonl(stage_dir / f"{pool}.jsonl"):
            lab = labels.get((str(rec["id"]), int(rec.get("sample_index") or 0), pool))
            if lab is not None:
                records.append(rec | {"verdict": lab["verdict"], "asr_verdict": lab["asr_verdict"]})
        if not records:
            continue

        def verdict_score(key: str, event: str) -> Any:
            """Score 1 where the verdict under ``key`` says ``event`` (refused, complied)."""
            def score(r: dict[str, Any]) -> Any:
                v = r[key]
                return Score(value=float(bool(v.get(event))), answer=v.get("label"), explanation=v.get("rationale"),
                             metadata={"verdict": v})
            return score

        scores = {}
        for key, event, fallback, rate_name in (("verdict", "refused", "label", "refusal_rate"),
                                                ("asr_verdict", "complied", "asr", "complied_rate")):
            rate = sum(bool(r[key].get(event)) for r in records) / len(records)
            judge = records[0][key].get("judge") or fallback
            scores[f"{SCORER_PREFIX}{judge}:{event}"] = (verdict_score(key, event),
                                                          {rate_name: EvalMetric(name=rate_name, value=rate)})
        first = records[0]
        generation = {"seed": first.get("seed"), "thinking": first.get("thinking")}
        write_log(path, records, task=f"deliberation_{pool}", dataset=pool, model=first.get("model") or "model",
                  times=_times(manifest), generation=generation, metadata={"stage": "deliberation/generate"},
                  tags=_tags(first.get("adapter")), scores=scores)
        written.append(path)
    return written


def export_missing(run_dir: str | Path) -> list[Path]:
    """Write every Inspect log missing under ``run_dir``: each eval folder's (a ``metrics.json`` with
    ``benchmarks``) and each deliberation generate stage's (``thinksafe report`` calls this)."""
    import json

    written: list[Path] = []
    run_dir = Path(run_dir)
    for metrics_path in sorted(run_dir.rglob("metrics.json")):
        try:
            is_eval = "benchmarks" in json.loads(metrics_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if is_eval:
            written += _tolerant(export_eval_dir, metrics_path.parent)
    for labels in sorted(run_dir.rglob("generate/labels.jsonl")):
        written += _tolerant(export_deliberation_generate, labels.parent)
    return written


def _tolerant(export: Any, folder: Path) -> list[Path]:
    """An export that cannot read its folder (a hand-made or older ``metrics.json``) is a warning: the
    log is an extra, and the report it rides along with goes on."""
    from thinksafe.errors import ThinksafeError

    try:
        return export(folder, missing_only=True)
    except (ThinksafeError, ValueError, KeyError, TypeError) as exc:
        log.warning("no Inspect eval log for %s: %s", folder, exc)
        return []
