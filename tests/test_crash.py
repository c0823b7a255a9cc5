"""Crash safety with a real SIGKILL: ``thinksafe generate`` runs as a child process and is killed
(signal 9, no clean-up of any kind) once a seeded random number of its records are on disk; the same
command run again must end with exactly the records of an uninterrupted run: none lost, none
duplicated, the same texts. A half-written line is added after the kill as well, as a kill mid-write
leaves (the resume cuts it away in place)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")
N = 16


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_loaded, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-crash") / "model"
    tiny_loaded.model.save_pretrained(d, safe_serialization=True)
    tiny_loaded.tokenizer.save_pretrained(d)
    return d


def _command(model_dir, out) -> list[str]:
    return [sys.executable, "-c", "from thinksafe.cli import main; main()", "generate", "--model", str(model_dir),
            "--data", "harmbench", "--limit", str(N), "--out", str(out), "--backend", "transformers",
            "--dtype", "float32", "--thinking", "prompted", "--thinking-budget", "24", "--max-new-tokens", "8",
            "--temperature", "1.0", "--top-k", "20", "--batch-size", "1", "--seed", "3"]


def _env(cache) -> dict[str, str]:
    return os.environ | {"THINKSAFE_CACHE": str(cache)}


def _rows(path) -> list[dict]:
    volatile = {"seconds", "created", "elapsed"}
    rows = [{k: v for k, v in json.loads(x).items() if k not in volatile} for x in path.read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["id"], r["sample_index"]))


@needs_data
@pytest.mark.parametrize("seed", [0, 1])
def test_a_sigkilled_generate_resumes_to_the_records_of_an_uninterrupted_run(tiny_model_dir, tmp_path, seed):
    whole = tmp_path / "whole"
    done = subprocess.run(_command(tiny_model_dir, whole), env=_env(tmp_path / "cache-whole"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    expected = _rows(whole / "records.jsonl")
    assert len(expected) == N

    out, cache = tmp_path / "killed", tmp_path / "cache-killed"
    records = out / "records.jsonl"
    at = random.Random(seed).randint(1, N - 2)  # records on disk when the kill lands
    child = subprocess.Popen(_command(tiny_model_dir, out), env=_env(cache), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while child.poll() is None and time.monotonic() < deadline:
        if records.exists() and records.read_bytes().count(b"\n") >= at:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the run finished before the kill: make it longer"
    kept = records.read_bytes().count(b"\n")
    assert at <= kept < N
    with records.open("ab") as fh:  # what a kill in the middle of a write leaves
        fh.write(b'{"id": "torn", "text": "half a rec')

    again = subprocess.run(_command(tiny_model_dir, out), env=_env(cache), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert _rows(records) == expected  # none lost, none duplicated, the same texts as the uninterrupted run
