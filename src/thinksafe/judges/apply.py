"""Apply a judge to generation records: each record gains a ``verdict`` dict; batched, with progress."""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
) -> list[dict[str, Any]]:
    """Return copies of ``records`` with ``verdict`` (label, refused, complied, harmful, score, ...)."""
    from thinksafe.progress import bar

    items = [JudgeInput.from_record(r, include_trace=include_trace) for r in records]
    out: list[dict[str, Any]] = []
    with bar(f"judging ({judge.name})", len(items), enabled=progress) as row:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            for rec, verdict in zip(records[start : start + batch_size], judge.judge_batch(chunk)):
                out.append(dict(rec) | {"verdict": verdict.to_dict() | {"include_trace": include_trace}})
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
    """Judge a records JSONL into ``out_path`` (written whole at the end; the input is never modified)."""
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
    judged = annotate_records(records, judge, include_trace=include_trace, batch_size=batch_size, progress=progress)
    tmp = out_path.with_name(out_path.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    append_jsonl(tmp, judged)
    tmp.replace(out_path)
    return judged
