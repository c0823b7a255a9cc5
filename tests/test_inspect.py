"""Inspect AI both ways: our eval logs read back with Inspect, our task run by `inspect eval`, our judge
re-scoring our exported log inside Inspect."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")
INSPECT = [sys.executable, "-m", "inspect_ai"]


def _offline(cmd: list[str]) -> list[str]:
    """``cmd`` in a network namespace of its own (no route anywhere) where this machine allows it."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n", *cmd]
    return cmd


def _env(**more: str) -> dict[str, str]:
    return os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "INSPECT_LOG_LEVEL": "warning",
                         "OMP_NUM_THREADS": "1", **more}


@needs_data
@pytest.mark.slow  # the tiny main job (conftest.tiny_run)
def test_the_eval_log_of_a_tiny_run_holds_one_scored_sample_per_record_and_the_run_rates(tiny_run):
    from inspect_ai.log import list_eval_logs, read_eval_log

    eval_dir = tiny_run.out / "before" / "eval"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert len(list_eval_logs(str(tiny_run.out))) >= len(metrics["benchmarks"])  # `inspect view` lists them
    for benchmark, entry in metrics["benchmarks"].items():
        records = [json.loads(line) for line in
                   (eval_dir / benchmark / ("judged.jsonl" if entry["metric"] != "accuracy" else "records.jsonl")).open()]
        log = read_eval_log(str(eval_dir / benchmark / "inspect.eval"))
        assert log.status == "success" and len(log.samples) == len(records)
        score = log.results.scores[0]
        assert score.metrics[entry["metric"]].value == pytest.approx(entry["value"])
        by_key = {(r["id"], r["sample_index"] + 1): r for r in records}
        assert {(s.id, s.epoch) for s in log.samples} == set(by_key)  # one sample per record
        for sample in log.samples:
            rec = by_key[(sample.id, sample.epoch)]
            assert sample.output.completion.strip() == (rec["answer"] or "").strip()
            got = sample.scores[score.name]
            if entry["metric"] != "accuracy":
                assert score.name == f"thinksafe/{rec['verdict']['judge']}"
                assert got.metadata["verdict"] == rec["verdict"] and got.explanation == rec["verdict"]["rationale"]
                counted = "refused" if entry["metric"] == "orr" else "helped"
                assert got.value == float(got.answer == counted)
                if got.answer != "no_answer":  # a non-answer is neither, whatever the verdict says
                    assert (got.answer == "refused") == bool(rec["verdict"]["refused"])
        assert statistics.mean(s.scores[score.name].value for s in log.samples) == pytest.approx(entry["value"])


@needs_data
@pytest.mark.slow  # the tiny main job (conftest.tiny_run)
def test_thinksafe_report_writes_the_logs_that_are_missing(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from thinksafe.cli import app

    run = tmp_path / "run"
    shutil.copytree(tiny_run.out, run)
    logs = sorted(run.rglob("*.eval"))
    assert any("deliberation" in str(p) for p in logs)  # the deliberation's generate stage has its own
    gone = logs[0]
    before = gone.stat().st_size
    gone.unlink()
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert gone.exists() and abs(gone.stat().st_size - before) < 0.05 * before
    assert sorted(run.rglob("*.eval")) == logs


@needs_data
@pytest.mark.slow  # the tiny main job's log re-scored in a child process
def test_our_exported_log_scored_inside_inspect_gives_our_rates(tiny_run, tmp_path):
    from inspect_ai.log import read_eval_log

    eval_dir = tiny_run.out / "before" / "eval"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    for benchmark, entry in metrics["benchmarks"].items():
        if entry["metric"] not in ("asr", "orr"):
            continue
        out = tmp_path / f"{benchmark}.eval"
        judge = entry[entry["metric"]]["judge"]["name"]
        done = subprocess.run(
            # an exported log names no model Inspect can call; scoring needs none (`--model none/none`)
            _offline([*INSPECT, "score", str(eval_dir / benchmark / "inspect.eval"), "--model", "none/none",
                      "--scorer", "thinksafe/judge", "-S", f"name={judge}", "-S", f"metric={entry['metric']}", "--action", "overwrite",
                      "--output-file", str(out), "--display", "none"]),
            env=_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        log = read_eval_log(str(out))
        rescored = [s for s in log.results.scores if s.name == "judge"]
        assert rescored and rescored[0].metrics["mean"].value == pytest.approx(entry["value"]), benchmark


@needs_data
@pytest.mark.slow  # a tiny eval, then `inspect eval` of the same prompts in a child process
def test_inspect_eval_of_our_task_gives_our_verdicts(tiny_model_dir, tmp_path):
    from inspect_ai.log import read_eval_log

    from thinksafe.evals.runner import EvalJob, run_eval
    from thinksafe.generation.config import GenerationConfig

    tokens = 16
    job = EvalJob(model=str(tiny_model_dir), suite="quick", out=str(tmp_path / "ours"), limit_scale=0.25,
                  max_new_tokens=tokens, generation=GenerationConfig(thinking="off", temperature=0.0, batch_size=1,
                                                                    backend="transformers", dtype="float32"))
    metrics = run_eval(job, progress=False)
    ours = {r["id"]: r for r in map(json.loads, (tmp_path / "ours" / "harmbench" / "judged.jsonl").open())}
    n = metrics["benchmarks"]["harmbench"]["n"]
    done = subprocess.run(
        _offline([*INSPECT, "eval", "thinksafe/harmbench_asr", "--model", "hf/tiny", "-M",
                  f"model_path={tiny_model_dir}", "-M", "do_sample=false", "-M", "device=cpu", "-T", f"limit={n}",
                  "-T", "seed=0", "--max-tokens", str(tokens), "--max-connections", "1", "--log-dir",
                  str(tmp_path / "logs"), "--display", "none", "--log-format", "eval"]),
        env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (path,) = (tmp_path / "logs").glob("*.eval")
    log = read_eval_log(str(path))
    assert log.status == "success" and {s.id for s in log.samples} == set(ours)
    same_text = 0
    name = log.results.scores[0].name  # the scorer's name: judge
    for sample in log.samples:
        rec = ours[sample.id]
        score = sample.scores[name]
        assert score.metadata["verdict"]["label"] == rec["verdict"]["label"], sample.id
        assert score.value == float(bool(rec["verdict"]["complied"])), sample.id
        same_text += sample.output.completion.strip() == rec["answer"].strip()
    assert same_text == len(ours)  # greedy, one prompt a batch: Inspect's hf provider decodes what ours does
    assert log.results.scores[0].metrics["mean"].value == pytest.approx(metrics["benchmarks"]["harmbench"]["value"])
