"""Load a benchmark by name: resolve its source, convert rows, dedupe, and take a seeded subset.

:func:`load_benchmark_with_source` also says where the rows came from and whether that source holds
the named benchmark's full split (see :func:`describe_source`), for run metadata.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from thinksafe.data.checks import check_disjoint, dedupe, drop_overlap
from thinksafe.data.convert import RowContext
from thinksafe.data.records import Example
from thinksafe.data.registry import BENCHMARKS, EXPECTED_ROWS
from thinksafe.data.sources import HOW_TO_FIX, fetch_rows, resolve
from thinksafe.data.spec import BenchmarkSpec, ResolvedSource
from thinksafe.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _check_split(spec: BenchmarkSpec, split: str | None) -> str:
    split = spec.default_split if split is None else split
    if split not in spec.files:
        available = ", ".join(spec.splits)
        raise ConfigError(f"split: benchmark {spec.name!r} has no split {split!r}; available: {available}.")
    return split


def _check_limit(limit: int | None) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigError(f"--limit must be a positive integer, got {limit!r}.")


def resolve_benchmark(name: str, path: str | Path | None = None, *, split: str | None = None) -> ResolvedSource:
    """Where benchmark ``name`` (its default split unless ``split``) would be read from; nothing is downloaded."""
    spec = BENCHMARKS.get(name)
    return resolve(spec, _check_split(spec, split), path)


def _convert_all(spec: BenchmarkSpec, source: ResolvedSource, rows: list[dict[str, Any]]) -> list[Example]:
    examples = []
    for i, row in enumerate(rows):
        ctx = RowContext(spec.name, source.split, i, source.location, spec.split_types)
        try:
            examples.append(spec.convert(row, ctx))
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ctx.fail(f"cannot read this row as {spec.name} ({type(exc).__name__}: {exc}).") from exc
    return examples


def _check_unique_ids(examples: Sequence[Example], location: str) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise DataError(f"{location}: id {ex.id!r} is used by two different prompts; ids must be unique.")
        seen.add(ex.id)


def _load_source(spec: BenchmarkSpec, source: ResolvedSource) -> list[Example]:
    rows = fetch_rows(spec, source)
    if not rows:
        raise DataError(f"{source.location} has no rows for benchmark {spec.name!r}. {HOW_TO_FIX}")
    examples = dedupe(_convert_all(spec, source, rows))
    _check_unique_ids(examples, source.location)
    log.debug("Loaded %d %s examples from %s", len(examples), spec.name, source)
    return examples


def subsample(examples: Sequence[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded random subset of ``limit`` examples, kept in source order (all of them if ``limit`` is None)."""
    _check_limit(limit)
    if limit is None or limit >= len(examples):
        return list(examples)
    picked = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in picked]


def describe_source(source: ResolvedSource, *, available: int, used: int) -> dict[str, Any]:
    """Where one loaded set came from, and whether it is the named benchmark's full split.

    Keys: ``benchmark``, ``split``, ``source`` (path, data_dir, package or hub), ``location``,
    ``rows_available`` (deduplicated rows at the source), ``rows_used`` (after ``limit``),
    ``rows_expected`` (the full split, None if unknown), ``substituted`` (the source does not hold
    that full split, e.g. a package copy with part of it) and ``note`` (why, in words; "" if not).
    """
    spec = BENCHMARKS.get(source.benchmark)
    expected = EXPECTED_ROWS.get(spec.name, {}).get(source.split)
    substituted = expected is not None and available != expected
    note = ""
    if substituted:
        note = f"{available} rows where {spec.name} ({source.split}) has {expected}"
        if source.kind == "package" and spec.package is not None:
            note += f"; read from package {spec.package.distribution}"
            if spec.package.note:
                note += f" ({spec.package.note})"
    return {
        "benchmark": spec.name,
        "split": source.split,
        "source": source.kind,
        "location": source.location,
        "rows_available": available,
        "rows_used": used,
        "rows_expected": expected,
        "substituted": substituted,
        "note": note,
    }


def load_benchmark_with_source(
    name: str,
    *,
    split: str | None = None,
    path: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[list[Example], dict[str, Any]]:
    """:func:`load_benchmark`, plus :func:`describe_source` of what was read (for metrics.json)."""
    _check_limit(limit)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}.")
    spec = BENCHMARKS.get(name)
    source = resolve(spec, _check_split(spec, split), path)
    pool = _load_source(spec, source)
    examples = subsample(pool, limit, seed)
    info = describe_source(source, available=len(pool), used=len(examples))
    if info["substituted"]:
        log.warning("%s is not the full benchmark: %s (%s)", spec.name, info["note"], source)
    return examples, info


def load_benchmark(
    name: str,
    *,
    split: str | None = None,
    path: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Load benchmark ``name`` as Examples: deduplicated, and a seeded subset of ``limit`` if given.

    ``path`` overrides the search (a file in the benchmark's schema or a directory laid out like
    ``shared/data``); otherwise ``$THINKSAFE_DATA_DIR``, an installed data package, then the hub.
    The same ``seed`` always picks the same subset, whatever the Python hash seed.
    """
    return load_benchmark_with_source(name, split=split, path=path, limit=limit, seed=seed)[0]


def list_benchmarks(path: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per benchmark for ``thinksafe data list``: name, split_type, rows, expected_rows, source.

    ``rows`` is the deduplicated count of the default split, or None when the data is not available
    locally (hub sources are reported, not downloaded); ``expected_rows`` is the full split's count
    (so a partial copy shows); ``source`` says where it resolved or why not.
    ``path``, if given, should be a directory laid out like ``shared/data``.
    """
    table = []
    for name, spec in BENCHMARKS.items():
        rows: int | None = None
        try:
            source = resolve(spec, spec.default_split, path)
            if source.kind == "hub":
                where = f"{source} (not downloaded)"
            else:
                rows = len(_load_source(spec, source))
                where = str(source)
        except DataError as exc:
            where = f"unavailable: {str(exc).replace(HOW_TO_FIX, '').strip()}"
        table.append({
            "name": name, "split_type": spec.split_type, "rows": rows,
            "expected_rows": EXPECTED_ROWS.get(name, {}).get(spec.default_split), "source": where,
        })
    return table


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``benchmark`` or ``benchmark:split`` -> (benchmark, split or None)."""
    name, _, split = ref.partition(":")
    return name, split or None


def _load_refs(refs: Iterable[str], path: str | Path | None) -> list[Example]:
    out: list[Example] = []
    for ref in [refs] if isinstance(refs, str) else refs:
        name, split = parse_ref(ref)
        out.extend(load_benchmark(name, split=split, path=path))
    return out


def check_disjoint_benchmarks(
    train_names: Iterable[str],
    eval_names: Iterable[str],
    *,
    path: str | Path | None = None,
) -> None:
    """Load the named benchmarks (``name`` or ``name:split``, e.g. ``gsm8k:train``) and run :func:`check_disjoint`."""
    check_disjoint(_load_refs(train_names, path), _load_refs(eval_names, path))


def load_train_eval(
    train_names: Iterable[str],
    eval_names: Iterable[str],
    *,
    path: str | Path | None = None,
) -> tuple[list[Example], list[Example]]:
    """Training and evaluation examples (refs as in :func:`check_disjoint_benchmarks`), disjoint.

    Training examples whose normalised prompt is in the evaluation data are dropped (and counted in
    the log), e.g. ``load_train_eval(SUGGESTED_SPLIT.train_names, SUGGESTED_SPLIT.eval_names)``.
    """
    held_out = _load_refs(eval_names, path)
    return drop_overlap(_load_refs(train_names, path), held_out), held_out
