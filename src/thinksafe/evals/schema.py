"""``metrics.json``: one fixed schema for every evaluation run, its writer, validator and table.

::

    {"schema_version": 3, "model": str, "adapter": str|null, "suite": str, "thinking": str|null,
     "judge": str|null, "meta": {...} (optional, free-form: seeds, n_resamples, ...),
     "benchmarks": {name: {"metric": str, "value": float, "ci_low": float, "ci_high": float,
                           "n": int, "n_samples": int, "extra": {...},
                           "secondary": [{"metric", "value", "ci_low", "ci_high", "n",
                                          "n_samples", "extra"}, ...],
                           <rate>: {"value", "ci", "n", "n_samples", "event", "mdd",
                                    "judge", "judge_agreement", "corrected", ...},   (optional)
                           "judge_fit_overlap": {...}}}}                               (optional)

``<rate>`` are the plain-key rates of :data:`thinksafe.evals.metrics.MEASURES`: ``refusal_rate``,
``asr`` (or ``non_refusal_rate``) and ``no_answer`` on harmful sets; ``orr``, ``help_rate`` and
``no_answer`` on benign sets; ``accuracy`` on reasoning sets (``docs/main-job.md`` says what each
key means). Unknown keys are errors, so a typo cannot produce a file that downstream reports misread.

Versions: 2 names the harmful sets' headline ``non_refusal_rate`` when the judge is refusal-only
(version 1 called it ``asr`` whatever the judge). 3 changes what ORR counts: refusals only (before,
refusals and non-answers), with ``help_rate`` and ``no_answer`` beside it, and adds the plain-key
rates. Readers open all three: :func:`read_metrics` relabels an older ORR entry
(:func:`thinksafe.evals.metrics.upgrade_entry`, which says so in the entry's ``extra.relabelled``);
a file without ``schema_version`` reads as version 1.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thinksafe.errors import ThinksafeError
from thinksafe.evals.metrics import MEASURE_KEYS, MetricResult, upgrade_entry
from thinksafe.jsonl import write_json_atomic

if TYPE_CHECKING:
    from rich.table import Table

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
"""What :func:`build_metrics` writes."""
READABLE_VERSIONS: tuple[int, ...] = (1, 2, 3)
"""What :func:`validate_metrics` and :func:`read_metrics` accept (files of earlier runs included)."""

_TOP_REQUIRED = ("schema_version", "model", "adapter", "suite", "thinking", "judge", "benchmarks")
_TOP_OPTIONAL = ("meta",)
_ENTRY_REQUIRED = ("metric", "value", "ci_low", "ci_high", "n", "n_samples", "extra")
_ENTRY_OPTIONAL = ("secondary", *MEASURE_KEYS, "judge_fit_overlap")
_MEASURE_REQUIRED = ("value", "ci", "n")


class MetricsSchemaError(ThinksafeError, ValueError):
    """A ``metrics.json`` object breaks the schema; the message names the field."""


def build_metrics(
    results: Mapping[str, MetricResult] | Iterable[MetricResult],
    *,
    model: str,
    suite: str,
    adapter: str | None = None,
    thinking: str | None = None,
    judge: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` object for ``results`` (validated before it is returned)."""
    items = list(results.values()) if isinstance(results, Mapping) else list(results)
    benchmarks: dict[str, Any] = {}
    for r in items:
        if r.benchmark in benchmarks:
            raise MetricsSchemaError(f"benchmarks.{r.benchmark}: two results for the same benchmark")
        benchmarks[r.benchmark] = r.to_dict()
    obj: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "adapter": adapter,
        "suite": suite,
        "thinking": thinking,
        "judge": judge,
        "benchmarks": benchmarks,
    }
    if meta:
        obj["meta"] = dict(meta)
    validate_metrics(obj)
    return obj


def _fail(where: str, what: str) -> None:
    raise MetricsSchemaError(f"metrics.json: {where}: {what}")


def _check_keys(obj: Mapping[str, Any], where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in obj]
    if missing:
        _fail(where, f"missing field(s) {', '.join(missing)}")
    unknown = sorted(k for k in obj if k not in required and k not in optional)
    if unknown:
        _fail(where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(required + optional)}")


def _check_str(value: Any, where: str, *, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str) or not value:
        allowed = "a non-empty string or null" if nullable else "a non-empty string"
        _fail(where, f"expected {allowed}, got {value!r}")


def _check_number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(where, f"expected a finite number, got {value!r}")


def _check_count(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _fail(where, f"expected a non-negative integer, got {value!r}")


def _check_result(d: Any, where: str, *, secondary_allowed: bool) -> None:
    if not isinstance(d, Mapping):
        _fail(where, f"expected an object, got {type(d).__name__}")
    _check_keys(d, where, _ENTRY_REQUIRED, _ENTRY_OPTIONAL if secondary_allowed else ())
    _check_str(d["metric"], f"{where}.metric", nullable=False)
    for key in ("value", "ci_low", "ci_high"):
        _check_number(d[key], f"{where}.{key}")
    if d["ci_low"] > d["ci_high"]:
        _fail(f"{where}.ci_low", f"ci_low {d['ci_low']} is above ci_high {d['ci_high']}")
    _check_count(d["n"], f"{where}.n")
    _check_count(d["n_samples"], f"{where}.n_samples")
    if d["n_samples"] < d["n"]:
        _fail(f"{where}.n_samples", f"{d['n_samples']} samples for {d['n']} prompts (need n_samples >= n)")
    if not isinstance(d["extra"], Mapping) or not all(isinstance(k, str) for k in d["extra"]):
        _fail(f"{where}.extra", f"expected an object with string keys, got {d['extra']!r}")
    try:
        json.dumps(d["extra"], allow_nan=False)
    except (TypeError, ValueError) as exc:
        _fail(f"{where}.extra", f"not JSON-serialisable ({exc})")
    for key in MEASURE_KEYS:
        if secondary_allowed and key in d:
            _check_measure(d[key], f"{where}.{key}")
    if secondary_allowed and d.get("judge_fit_overlap") is not None and not isinstance(d["judge_fit_overlap"], Mapping):
        _fail(f"{where}.judge_fit_overlap", f"expected an object or null, got {d['judge_fit_overlap']!r}")
    if secondary_allowed and "secondary" in d:
        if not isinstance(d["secondary"], list):
            _fail(f"{where}.secondary", f"expected a list, got {type(d['secondary']).__name__}")
        for i, s in enumerate(d["secondary"]):
            _check_result(s, f"{where}.secondary[{i}]", secondary_allowed=False)


def _check_measure(m: Any, where: str) -> None:
    """A plain-key rate: an object with ``value`` (a number, or null where nothing was counted), ``ci``
    (two numbers or null) and ``n``; its other keys (``mdd``, ``judge``, ...) are free-form JSON."""
    if not isinstance(m, Mapping):
        _fail(where, f"expected an object, got {type(m).__name__}")
    missing = [k for k in _MEASURE_REQUIRED if k not in m]
    if missing:
        _fail(where, f"missing field(s) {', '.join(missing)}")
    if m["value"] is not None:
        _check_number(m["value"], f"{where}.value")
    ci = m["ci"]
    if ci is not None:
        if not isinstance(ci, (list, tuple)) or len(ci) != 2:
            _fail(f"{where}.ci", f"expected [low, high] or null, got {ci!r}")
        for i, x in enumerate(ci):
            _check_number(x, f"{where}.ci[{i}]")
        if ci[0] > ci[1]:
            _fail(f"{where}.ci", f"low end {ci[0]} is above high end {ci[1]}")
    _check_count(m["n"], f"{where}.n")
    try:
        json.dumps(m, allow_nan=False)
    except (TypeError, ValueError) as exc:
        _fail(where, f"not JSON-serialisable ({exc})")


def validate_metrics(obj: Any) -> None:
    """Raise :class:`MetricsSchemaError` (a ``ValueError``) naming the first field that is wrong."""
    if not isinstance(obj, Mapping):
        _fail("top level", f"expected an object, got {type(obj).__name__}")
    _check_keys(obj, "top level", _TOP_REQUIRED, _TOP_OPTIONAL)
    if obj["schema_version"] not in READABLE_VERSIONS or isinstance(obj["schema_version"], bool):
        _fail("schema_version", f"expected one of {READABLE_VERSIONS}, got {obj['schema_version']!r}")
    _check_str(obj["model"], "model", nullable=False)
    _check_str(obj["suite"], "suite", nullable=False)
    for key in ("adapter", "thinking", "judge"):
        _check_str(obj[key], key, nullable=True)
    if "meta" in obj and not isinstance(obj["meta"], Mapping):
        _fail("meta", f"expected an object, got {type(obj['meta']).__name__}")
    benchmarks = obj["benchmarks"]
    if not isinstance(benchmarks, Mapping):
        _fail("benchmarks", f"expected an object, got {type(benchmarks).__name__}")
    for name, entry in benchmarks.items():
        if not isinstance(name, str) or not name:
            _fail("benchmarks", f"benchmark names must be non-empty strings, got {name!r}")
        _check_result(entry, f"benchmarks.{name}", secondary_allowed=True)


def write_metrics(path: str | Path, obj: Mapping[str, Any]) -> Path:
    """Validate ``obj`` and write it atomically to ``path``; return the path."""
    validate_metrics(obj)
    path = Path(path)
    write_json_atomic(path, obj)
    return path


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Load and validate a ``metrics.json`` (of any readable version; one written before versions were
    stamped reads as version 1); errors name the file and the field."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MetricsSchemaError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise MetricsSchemaError(f"{path}: malformed JSON ({exc.msg}, line {exc.lineno})") from exc
    if isinstance(obj, dict):
        obj.setdefault("schema_version", 1)
    try:
        validate_metrics(obj)
    except MetricsSchemaError as exc:
        raise MetricsSchemaError(f"{path}: {exc}") from exc
    return upgrade_metrics(obj)


def upgrade_metrics(obj: dict[str, Any]) -> dict[str, Any]:
    """A (validated) ``metrics.json`` object as schema 3 reads it: every entry of an older file through
    :func:`thinksafe.evals.metrics.upgrade_entry` (an old ORR relabelled, the plain-key rates filled);
    ``schema_version`` keeps the version the file was written with. A current file comes back as is."""
    if obj.get("schema_version", 1) >= SCHEMA_VERSION:
        return obj
    upgraded = {name: upgrade_entry(e) for name, e in obj["benchmarks"].items()}
    if any("relabelled" in e.get("extra", {}) for e in upgraded.values()):
        log.info("metrics.json of schema %s: ORR counted refusals and non-answers then; relabelled to refusals "
                 "only (help_rate and no_answer beside it)", obj.get("schema_version", 1))
    return dict(obj) | {"benchmarks": upgraded}


def results_from_metrics(obj: Mapping[str, Any]) -> dict[str, MetricResult]:
    """The :class:`MetricResult` of each benchmark in a (validated) ``metrics.json`` object."""
    validate_metrics(obj)
    return {name: MetricResult.from_dict(name, d) for name, d in obj["benchmarks"].items()}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


_NOTE_KEYS = (
    "n_no_answer",
    "n_unclosed",
    "n_empty",
    "n_non_answer",
    "n_complied_unknown",
    "n_refused_unknown",
)


def measure_of_row(entry: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    """The plain-key rate of an entry that a headline or secondary row named ``metric`` shows, if any
    (``asr_refused`` is ``refusal_rate``, ``orr_no_answer`` is ``no_answer``, ...)."""
    head = entry["metric"]
    key = {head: head, f"{head}_refused": "refusal_rate", f"{head}_no_answer": "no_answer"}.get(metric, metric)
    m = entry.get(key)
    return m if isinstance(m, Mapping) else None


def _corrected_cell(m: Mapping[str, Any] | None) -> str:
    c = (m or {}).get("corrected")
    if not c or c.get("value") is None:
        return "-"
    return f"{_pct(c['value'])} [{_pct(c['ci'][0])}, {_pct(c['ci'][1])}]"


def _mdd_cell(m: Mapping[str, Any] | None) -> str:
    mdd = (m or {}).get("mdd")
    if not mdd:
        return ""
    return "-" if mdd.get("value") is None else _pct(mdd["value"])


def _agreement_note(m: Mapping[str, Any] | None) -> str:
    a = (m or {}).get("judge_agreement")
    if not a:
        return ""
    return f"judge sens {a['sensitivity']:.2f} spec {a['specificity']:.2f} on {a['set']} ({a['n_pos']}+{a['n_neg']})"


def render_table(metrics: Mapping[str, Any]) -> Table:
    """A ``rich`` table of a ``metrics.json`` object: one row per rate, secondaries indented; beside a rate
    its value corrected for the judge's measured error, its minimum detectable difference (paired,
    at the assumed discordance), and the judge's agreement with people in the notes."""
    from rich.table import Table

    validate_metrics(metrics)
    parts = [f"model {metrics['model']}"]
    if metrics.get("adapter"):
        parts.append(f"adapter {metrics['adapter']}")
    parts.append(f"suite {metrics['suite']}")
    if metrics.get("thinking"):
        parts.append(f"thinking {metrics['thinking']}")
    if metrics.get("judge"):
        parts.append(f"judge {metrics['judge']}")
    table = Table(title=" · ".join(parts))
    table.add_column("benchmark")
    table.add_column("metric")
    table.add_column("value %", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("corrected % [95% CI]", justify="right")
    table.add_column("MDD %", justify="right")
    table.add_column("prompts", justify="right")
    table.add_column("samples", justify="right")
    table.add_column("notes", style="dim")
    for name, entry in metrics["benchmarks"].items():
        entry = upgrade_entry(entry)
        rows = [(name, entry, "bold")] + [("", s, "dim") for s in entry.get("secondary") or []]
        overlap = entry.get("judge_fit_overlap") or {}
        for label, d, style in rows:
            m = measure_of_row(entry, d["metric"])
            notes = [f"{k.removeprefix('n_').replace('_', ' ')} {d['extra'][k]}" for k in _NOTE_KEYS if d["extra"].get(k)]
            notes.append(_agreement_note(m))
            if style == "bold" and overlap.get("n"):
                notes.append(f"{overlap['n']} prompts in the judge's fit set")
            table.add_row(
                label,
                d["metric"] if style == "bold" else f"  {d['metric']}",
                _pct(d["value"]),
                f"[{_pct(d['ci_low'])}, {_pct(d['ci_high'])}]",
                _corrected_cell(m),
                _mdd_cell(m),
                str(d["n"]),
                str(d["n_samples"]),
                ", ".join(n for n in notes if n),
                style=None if style == "bold" else style,
            )
    return table
