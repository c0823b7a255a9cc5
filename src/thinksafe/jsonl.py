"""JSON Lines reading and appending with errors that name the file and line.

Appends are flushed per record so that a killed run keeps every finished record; a stage that
resumes an appended file reads it with :func:`read_resumable`, which cuts a torn last line (from a
kill mid-write) away in place before the stage appends again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from thinksafe.errors import DataError


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-empty line; raise :class:`DataError` naming file and line on bad input."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"File not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as fh:
            lines = fh.readlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 text (byte {exc.start}): re-encode it as UTF-8.") from exc
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            is_last = lineno == len(lines)
            if tolerate_torn_tail and is_last and not line.endswith("\n"):
                return
            raise DataError(f"{path}, line {lineno}: malformed JSON ({exc.msg}).") from exc
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}.")
        yield obj


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Append records to ``path`` (one line each, flushed); return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            n += 1
    return n


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    """The bytes :func:`append_jsonl` writes for ``records``."""
    return "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records).encode("utf-8")


def settle_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> bool:
    """Make ``path`` hold exactly ``records``, in this order: a file whose records were appended in
    the order they finished (or across a resume) is replaced whole, via a temporary file and a rename,
    so the same run always ends with the same bytes. Returns whether the file was rewritten."""
    path = Path(path)
    data = jsonl_bytes(records)
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def repair_torn_tail(path: str | Path) -> int:
    """Drop a partial last line left by a killed writer, so appends start on a fresh line; return the
    number of bytes dropped. The file is truncated in place (``os.truncate``), never rewritten: the
    finished records are not copied, so a second kill during the repair cannot lose them."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep, block = 0, 1 << 16  # the last newline, read backwards block by block
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            cut = fh.read(pos - start).rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            pos = start
    os.truncate(path, keep)
    return size - keep


def read_resumable(path: str | Path) -> list[dict[str, Any]]:
    """The finished records of a file that a killed run was appending to: a torn last line is
    truncated away in place (the run appends after it again); no file means no records."""
    path = Path(path)
    if not path.exists():
        return []
    repair_torn_tail(path)
    return list(read_jsonl(path))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` via a temporary file and rename, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see a half-written file."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
