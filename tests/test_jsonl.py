"""JSON Lines files that a killed run was appending to: the torn last line is cut away in place."""

from __future__ import annotations

import json
import os

import pytest

from thinksafe.errors import DataError
from thinksafe.jsonl import append_jsonl, read_jsonl, read_resumable, repair_torn_tail


def test_a_torn_tail_is_truncated_in_place_and_appends_go_on(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"i": i, "pad": "x" * 50_000} for i in range(3)])  # lines longer than one read block
    inode, whole = path.stat().st_ino, path.read_bytes()
    with path.open("ab") as fh:
        fh.write(b'{"i": 3, "pad": "xx')
    with pytest.raises(DataError, match="line 4: malformed JSON"):
        list(read_jsonl(path))
    assert [r["i"] for r in read_resumable(path)] == [0, 1, 2]
    assert path.stat().st_ino == inode and path.read_bytes() == whole  # the same file, cut, not rewritten
    append_jsonl(path, [{"i": 3}])
    assert [r["i"] for r in read_jsonl(path)] == [0, 1, 2, 3]


def test_repair_edge_cases(tmp_path):
    path = tmp_path / "rows.jsonl"
    assert read_resumable(path) == [] and repair_torn_tail(path) == 0  # no file: no records
    path.write_bytes(b'{"a": 1')  # killed during the first record
    assert repair_torn_tail(path) == 7 and path.read_bytes() == b""
    path.write_text(json.dumps({"a": 1}) + "\n")
    assert repair_torn_tail(path) == 0 and read_resumable(path) == [{"a": 1}]


def test_a_bad_line_that_is_not_the_tail_is_still_an_error(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(DataError, match="line 2"):
        read_resumable(path)
    assert os.path.getsize(path) == len('{"a": 1}\n{"a": \n{"a": 3}\n')  # nothing cut from a finished file


def test_settle_rewrites_a_file_only_when_its_records_or_their_order_differ(tmp_path):
    from thinksafe.jsonl import append_jsonl, settle_jsonl

    path = tmp_path / "r.jsonl"
    rows = [{"id": str(i), "text": f"é{i}"} for i in range(3)]
    append_jsonl(path, [rows[2], rows[0], rows[1]])  # appended in the order they finished
    assert settle_jsonl(path, rows) is True
    assert [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()] == ["0", "1", "2"]
    fresh = tmp_path / "fresh.jsonl"
    append_jsonl(fresh, rows)
    assert path.read_bytes() == fresh.read_bytes()
    before = path.stat().st_mtime_ns
    assert settle_jsonl(path, rows) is False and path.stat().st_mtime_ns == before
    assert not (tmp_path / "r.jsonl.tmp").exists()
