"""``metrics.json``: one fixed schema for every evaluation run, its writer, validator and table.

::

    {"schema_version": 2, "model": str, "adapter": str|null, "suite": str, "thinking": str|null,
     "judge": str|null, "meta": {...} (optional, free-form: seeds, n_resamples, ...),
     "benchmarks": {name: {"metric": str, "value": float, "ci_low": float, "ci_high": float,
                           "n": int, "n_samples": int, "extra": {...},
                           "secondary": [{"metric", "value", "ci_low", "ci_high", "n",
                                          "n_samples", "extra"}, ...]}}}

Unknown keys are errors, so a typo cannot produce a file that downstream reports misread.

Versions: 2 names the harmful sets' headline ``non_refusal_rate`` when the judge is refusal-only
(version 1 called it ``asr`` whatever the judge). Readers open both; a file without
``schema_version`` reads as version 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thinksafe.errors import ThinksafeError
from thinksafe.evals.metrics import MetricResult
from thinksafe.jsonl import write_json_atomic

if TYPE_CHECKING:
    from rich.table import Table

SCHEMA_VERSION = 2
"""What :func:`build_metrics` writes."""
READABLE_VERSIONS: tuple[int, ...] = (1, 2)
"""What :func:`validate_metrics` and :func:`read_metrics` accept (files of earlier runs included)."""

_TOP_REQUIRED = ("schema_version", "model", "adapter", "suite", "thinking", "judge", "benchmarks")
_TOP_OPTIONAL = ("meta",)
_ENTRY_REQUIRED = ("metric", "value", "ci_low", "ci_high", "n", "n_samples", "extra")
_ENTRY_OPTIONAL = ("secondary",)


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
    if secondary_allowed and "secondary" in d:
        if not isinstance(d["secondary"], list):
            _fail(f"{where}.secondary", f"expected a list, got {type(d['secondary']).__name__}")
        for i, s in enumerate(d["secondary"]):
            _check_result(s, f"{where}.secondary[{i}]", secondary_allowed=False)


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
    return obj


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


def render_table(metrics: Mapping[str, Any]) -> Table:
    """A ``rich`` table of a ``metrics.json`` object: one row per rate, secondaries indented."""
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
    table.add_column("prompts", justify="right")
    table.add_column("samples", justify="right")
    table.add_column("notes", style="dim")
    for name, entry in metrics["benchmarks"].items():
        rows = [(name, entry, "bold")] + [("", s, "dim") for s in entry.get("secondary") or []]
        for label, d, style in rows:
            notes = ", ".join(
                f"{k.removeprefix('n_').replace('_', ' ')} {d['extra'][k]}"
                for k in _NOTE_KEYS
                if d["extra"].get(k)
            )
            table.add_row(
                label,
                d["metric"] if style == "bold" else f"  {d['metric']}",
                _pct(d["value"]),
                f"[{_pct(d['ci_low'])}, {_pct(d['ci_high'])}]",
                str(d["n"]),
                str(d["n_samples"]),
                notes,
                style=None if style == "bold" else style,
            )
    return table
