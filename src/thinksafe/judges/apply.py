"""Apply a judge to generation records: each record gains a ``verdict`` dict; batched, with progress."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thinksafe.errors import ConfigError, DataError
from thinksafe.jsonl import append_jsonl, read_jsonl
from thinksafe.judges.base import Judge, JudgeInput

log = logging.getLogger(__name__)


def annotate_records(
    records: Sequence[dict[str, Any]],
    judge: Judge,
    *,
    include_trace: bool = False,
    batch_size: int = 64,
    progress: bool = True,
    start: int = 0,
    on_batch: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Return copies of ``records[start:]`` with ``verdict`` (label, refused, complied, harmful, score,
    ...). Batches are cut from ``start`` as an uninterrupted run cuts them when ``start`` is a multiple
    of ``batch_size``; ``on_batch`` receives each judged batch as soon as it is done."""
    from thinksafe.progress import bar

    items = [JudgeInput.from_record(r, include_trace=include_trace) for r in records[start:]]
    out: list[dict[str, Any]] = []
    with bar(f"judging ({judge.name})", start + len(items), enabled=progress) as row:
        row.advance(start)
        for at in range(0, len(items), batch_size):
            chunk = items[at : at + batch_size]
            batch = [dict(rec) | {"verdict": verdict.to_dict() | {"include_trace": include_trace}}
                     for rec, verdict in zip(records[start + at : start + at + batch_size], judge.judge_batch(chunk))]
            if on_batch is not None:
                on_batch(batch)
            out.extend(batch)
            row.advance(len(chunk))
    return out


def judge_file(
    in_path: str | Path,
    judge: Judge,
    out_path: str | Path,
    *,
    include_trace: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Judge a records JSONL into ``out_path``; the input is never modified.

    Verdicts are appended batch by batch to ``<out>.partial`` and renamed to ``out_path`` when every
    record has one, so readers never see a half-judged file. A killed run continues: the same command
    keeps the partial file's finished records (a torn last line is cut away in place) and judges the
    rest. The partial file is kept only for the same input, judge and options (``<out>.partial.json``
    records them); otherwise it is set aside as ``<out>.partial.stale`` and judging starts again.
    """
    from thinksafe.judges.data import sha256_file

    in_path, out_path = Path(in_path), Path(out_path)
    records = list(read_jsonl(in_path))
    if not records:
        raise DataError(f"{in_path} holds no records to judge.")
    if in_path.resolve() == out_path.resolve():
        raise DataError(f"--out must differ from --in ({in_path}); the input records are kept as they are.")
    for lineno, rec in enumerate(records, start=1):  # every record readable before any is judged
        try:
            JudgeInput.from_record(rec, include_trace=include_trace)
        except (ConfigError, DataError) as exc:
            raise DataError(f"{in_path}, record {lineno}: {exc}") from None

    partial = out_path.with_name(out_path.name + ".partial")
    identity_path = partial.with_name(partial.name + ".json")
    identity = {"input_sha256": sha256_file(in_path), "judge": judge.name, "judge_fingerprint": judge.fingerprint,
                "judge_config": repr(getattr(judge, "config", None)), "include_trace": include_trace,
                "batch_size": batch_size}
    done = _resumable_verdicts(partial, identity_path, identity, records)
    if done:
        log.info("%s: %d of %d records already judged by a killed run; judging the rest", out_path, len(done),
                 len(records))
    done += annotate_records(records, judge, include_trace=include_trace, batch_size=batch_size, progress=progress,
                             start=len(done), on_batch=lambda batch: append_jsonl(partial, batch))
    partial.replace(out_path)
    identity_path.unlink(missing_ok=True)
    return done


def _resumable_verdicts(partial: Path, identity_path: Path, identity: dict[str, Any],
                        records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The judged records a killed run left in ``partial`` when it judged the same input the same way
    (each one the input record at its place plus a verdict); otherwise none, the old file set aside."""
    import json

    from thinksafe.jsonl import read_resumable, write_json_atomic

    if partial.exists() and identity_path.exists():
        try:
            same = json.loads(identity_path.read_text(encoding="utf-8")) == identity
        except (OSError, ValueError):
            same = False
        if same:
            done = read_resumable(partial)
            if len(done) <= len(records) and all(
                {k: v for k, v in d.items() if k != "verdict"} == dict(r) and "verdict" in d
                for d, r in zip(done, records)
            ):
                # back to the last whole batch, so every batch is judged as an uninterrupted run
                # judges it (a judge's scores may depend on what shares its batch)
                whole = len(done) - len(done) % identity["batch_size"]
                if whole < len(done):
                    data = partial.read_bytes()
                    cut = 0
                    for _ in range(whole):
                        cut = data.index(b"\n", cut) + 1
                    os.truncate(partial, cut)
                return done[:whole]
    if partial.exists():
        stale = partial.with_name(partial.name + ".stale")
        log.warning("%s was left by a run with another input or judge; moved to %s, judging from the start",
                    partial, stale)
        partial.replace(stale)
    write_json_atomic(identity_path, identity)
    return []
