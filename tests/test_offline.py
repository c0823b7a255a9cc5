"""The offline guarantee: with the hub set offline (conftest) and every connection off this machine
failing, the quick paths run end to end from what the packages ship: the embedded model, a benchmark
from a data package (no data folder), the default judge and its sentence encoder. The main job on a
tiny model runs under the same guard (``tests/test_pipeline.py::tiny_run``)."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from thinksafe.cli import main


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["thinksafe", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def test_the_guard_blocks_a_connection_off_this_machine(no_network):
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1: never routed
    assert no_network.attempts
    no_network.attempts.clear()  # this test's own attempt was the point


@pytest.mark.slow  # the real SmolLM2 generates
def test_generate_and_judge_offline_from_packaged_assets(monkeypatch, capsys, tmp_path, no_network):
    monkeypatch.delenv("THINKSAFE_DATA_DIR", raising=False)  # the benchmark comes from its package
    out = tmp_path / "gen"
    code, err = _cli(monkeypatch, capsys, "generate", "--model", "smollm2-135m-instruct", "--data", "harmbench",
                     "--limit", "2", "--out", str(out), "--backend", "transformers", "--thinking", "prompted",
                     "--thinking-budget", "8", "--max-new-tokens", "8")
    assert code == 0, err
    code, err = _cli(monkeypatch, capsys, "judge", "--in", str(out / "records.jsonl"), "--judge", "objective",
                     "--out", str(tmp_path / "judged.jsonl"))
    assert code == 0, err
    judged = [json.loads(x) for x in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert len(judged) == 2 and all(r["verdict"]["label"] for r in judged)
