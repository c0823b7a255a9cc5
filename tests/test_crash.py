"""Crash safety with a real SIGKILL (signal 9, no clean-up of any kind): ``thinksafe generate``,
``thinksafe judge`` and the main job run as child processes and are killed at seeded points (a number
of records on disk, a time, a training checkpoint); the same command run again must end with exactly
what an uninterrupted run writes: none lost, none duplicated, the same texts and numbers. A
half-written line is added after a kill as well, as a kill mid-write leaves (the resume cuts it away
in place)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from functools import partial

import pytest

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")
pytestmark = pytest.mark.slow  # child processes doing whole runs: make test, not make test-fast
N = 16


def _command(model_dir, out) -> list[str]:
    return [sys.executable, "-c", "from thinksafe.cli import main; main()", "generate", "--model", str(model_dir),
            "--data", "harmbench", "--limit", str(N), "--out", str(out), "--backend", "transformers",
            "--dtype", "float32", "--thinking", "prompted", "--thinking-budget", "24", "--max-new-tokens", "8",
            "--temperature", "1.0", "--top-k", "20", "--batch-size", "1", "--seed", "3"]


def _env(cache) -> dict[str, str]:
    return os.environ | {"THINKSAFE_CACHE": str(cache)}


ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""For children that run side by side (one core each): every run a test compares runs with the same
threads, so their numbers agree to the bit."""


class _Child:
    """A child process started now and waited for later; its output goes to a file, read on failure."""

    def __init__(self, command: list[str], env: dict[str, str], log) -> None:
        self.log = log
        with open(log, "w") as fh:
            self.proc = subprocess.Popen(command, env=env, stdout=fh, stderr=subprocess.STDOUT)

    def finish(self, timeout: float = 900) -> str:
        """Wait for a clean exit; the child's output."""
        self.proc.wait(timeout=timeout)
        said = self.log.read_text()
        assert self.proc.returncode == 0, said[-3000:]
        return said


def _rows(path) -> list[dict]:
    volatile = {"seconds", "created", "elapsed"}
    rows = [{k: v for k, v in json.loads(x).items() if k not in volatile} for x in path.read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["id"], r["sample_index"]))


@needs_data
def test_a_sigkilled_generate_resumes_to_the_records_of_an_uninterrupted_run(tiny_model_dir, tmp_path):
    """Two runs, each killed at a seeded number of records on disk (seeds 0 and 1) and run again, and the
    uninterrupted run: all three side by side, one thread each."""
    whole = tmp_path / "whole"
    reference = _Child(_command(tiny_model_dir, whole), _env(tmp_path / "cache-whole") | ONE_THREAD, tmp_path / "whole.log")
    runs = []
    for seed in (0, 1):
        out, cache = tmp_path / f"killed{seed}", tmp_path / f"cache-killed{seed}"
        records = out / "records.jsonl"
        at = random.Random(seed).randint(1, N - 2)  # records on disk when the kill lands
        child = subprocess.Popen(_command(tiny_model_dir, out), env=_env(cache) | ONE_THREAD, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        runs.append((seed, out, cache, records, at, child))
    killed = _kill_all_when([(child, lambda r=records, a=at: r.exists() and r.read_bytes().count(b"\n") >= a)
                             for _, _, _, records, at, child in runs], timeout=600)
    assert all(killed), "a run finished before the kill: make it longer"
    resumed = []
    for seed, out, cache, records, at, child in runs:
        assert child.returncode == -signal.SIGKILL
        kept = records.read_bytes().count(b"\n")
        assert at <= kept < N, seed
        with records.open("ab") as fh:  # what a kill in the middle of a write leaves
            fh.write(b'{"id": "torn", "text": "half a rec')
        resumed.append(_Child(_command(tiny_model_dir, out), _env(cache) | ONE_THREAD, tmp_path / f"again{seed}.log"))
    reference.finish()
    expected = _rows(whole / "records.jsonl")
    assert len(expected) == N
    for again, (seed, out, _, records, _, _) in zip(resumed, runs):
        again.finish()
        assert _rows(records) == expected, seed  # none lost, none duplicated, the same texts as the uninterrupted run
        assert records.read_bytes() == (whole / "records.jsonl").read_bytes(), seed  # and the same bytes


def _kill_all_when(children: list[tuple[subprocess.Popen, object]], timeout: float = 900) -> list[bool]:
    """SIGKILL each child once its ``ready()`` holds (all polled together); for each, False when it finished first."""
    deadline = time.monotonic() + timeout
    killed = [False] * len(children)
    while time.monotonic() < deadline and any(c.poll() is None for c, _ in children):
        for i, (child, ready) in enumerate(children):
            if child.poll() is None and ready():
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=60)
                killed[i] = True
        time.sleep(0.005)
    for child, _ in children:
        child.wait(timeout=60)
    return killed


def _kill_when(child: subprocess.Popen, ready, timeout: float = 900) -> bool:
    """SIGKILL ``child`` once ``ready()`` holds; False when it finished first."""
    return _kill_all_when([(child, ready)], timeout)[0]


def _judge_command(src, out) -> list[str]:
    return [sys.executable, "-c", "from thinksafe.cli import main; main()", "judge", "--in", str(src), "--judge",
            "objective", "--batch-size", "4", "--out", str(out)]


def test_a_sigkilled_judge_run_continues_to_the_bytes_of_an_uninterrupted_one(tmp_path):
    rng = random.Random(5)
    answers = ["I'm sorry, but I can't help with that.", "Sure. Step 1: buy the parts. Step 2: put them together.",
               "Here is a short poem about the sea.", "", "I cannot assist with hacking into accounts."]
    src = tmp_path / "records.jsonl"
    n = 40
    src.write_text("".join(json.dumps({"id": str(i), "benchmark": "toy", "split_type": "asr",
                                       "prompt": f"Question {i}: how do I get into my neighbour's wifi?",
                                       "answer": rng.choice(answers) + f" ({i})", "trace": "thinking",
                                       "trace_closed": True}) + "\n" for i in range(n)))
    whole = tmp_path / "whole.jsonl"
    env = os.environ | ONE_THREAD
    reference = _Child(_judge_command(src, whole), env, tmp_path / "whole.log")  # runs beside the kills

    out = tmp_path / "judged.jsonl"
    partial = tmp_path / "judged.jsonl.partial"
    for kill in range(2):  # killed twice, at seeded numbers of judged records
        at = rng.randint(2 + 16 * kill, 14 + 16 * kill)
        child = subprocess.Popen(_judge_command(src, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed = _kill_when(child, lambda at=at: partial.exists() and partial.read_bytes().count(b"\n") >= at)
        assert killed and child.returncode == -signal.SIGKILL, "the judge finished before the kill"
        lines = partial.read_bytes().count(b"\n")
        assert not out.exists() and lines < n - 1
        with partial.open("ab") as fh:  # a kill in the middle of a batch, and in the middle of a write
            if lines % 4 == 0:
                reference.finish()
                fh.write(whole.read_bytes().splitlines(keepends=True)[lines])
            fh.write(b'{"id": "torn", "verd')
    again = subprocess.run(_judge_command(src, out), env=env, capture_output=True, text=True, timeout=600, check=False)
    reference.finish()
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == whole.read_bytes()  # none lost, none duplicated, byte for byte
    # (a resume goes back to the last whole batch of 4, so every batch is judged as in one run)
    assert not partial.exists()


def _run_command(out, model_dir) -> list[str]:
    return [sys.executable, os.path.join(os.path.dirname(__file__), "crash_child.py"), "run", str(out), str(model_dir)]


@needs_data
def test_a_main_job_sigkilled_in_every_stage_ends_as_an_uninterrupted_one(tiny_run, tiny_model_dir, tmp_path):
    """Killed three times (early, mid-training, late), the main job run again ends with the records and
    numbers of the session's uninterrupted tiny run (``conftest.tiny_run``: the same configuration, run
    once in the test process)."""
    from test_pipeline import _records

    ref, whole = tiny_run.out, tiny_run.seconds
    out, env = tmp_path / "b", _env(tmp_path / "cache-b")
    rng = random.Random(11)
    def mid_training():
        return any(out.glob("**/trainer/checkpoint-*/trainer_state.json")) and \
            not any(out.glob("**/train/adapter/adapter_model.safetensors"))

    def in_alignment():
        return (out / "align").exists()

    def in_after_stage():
        return any(out.glob("after/**/*.jsonl"))

    def trained():
        return any(out.glob("align/*/train/adapter/adapter_model.safetensors"))

    def ready_at(seconds, at_the_latest, counting_from=lambda: True):
        """A kill ``seconds`` after ``counting_from()`` first holds (the child's own work has begun: its
        start-up, imports and model load, is not what a seeded time is for), or once ``at_the_latest()``
        holds: the seeded times keep their place among the stages on a machine faster now than when
        ``whole`` was timed (in-process, warm)."""
        since: list[float] = []

        def ready():
            if not since and counting_from():
                since.append(time.monotonic())
            return (seconds is not None and bool(since) and time.monotonic() - since[0] > seconds) or at_the_latest()
        return ready

    def before_stage():
        return (out / "before").exists()

    schedule = [  # (what, seeded seconds, at the latest, counted from, where the kill must have landed)
        ("early, at a seeded time into the before stage (at the latest when alignment starts)",
         rng.uniform(0.05, 0.3) * whole, in_alignment, before_stage, lambda: before_stage() and not trained()),
        ("mid-training, after a complete checkpoint", None, mid_training, lambda: True, mid_training),
        ("late, at a seeded time after training (at the latest in the after stage)", rng.uniform(0.15, 0.35) * whole,
         in_after_stage, trained, trained),
    ]
    for what, seconds, at_the_latest, counting_from, landed in schedule:
        child = subprocess.Popen(_run_command(out, tiny_model_dir), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        assert _kill_when(child, ready_at(seconds, at_the_latest, counting_from)), f"the run finished before the kill {what}"
        assert landed(), f"the kill {what} landed elsewhere"
        assert not (out / "metrics.json").exists()
    again = subprocess.run(_run_command(out, tiny_model_dir), env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    log = "\n".join(p.read_text() for p in out.glob("**/*.log")) + again.stderr
    a, b = _records(ref), _records(out)
    assert set(a) == set(b) and a == b  # every records file: none lost, none duplicated, the same rows
    for path in sorted(ref.rglob("*.jsonl")):  # and the same bytes, the run's own folder aside
        other = out / path.relative_to(ref)
        assert path.read_text().replace(str(ref), "RUN") == other.read_text().replace(str(out), "RUN"), path
    ma, mb = (json.loads((d / "metrics.json").read_text().replace(str(d), "RUN")) for d in (ref, out))
    assert ma["before"] == mb["before"] and ma["after"] == mb["after"] and ma["training"] == mb["training"], log[-2000:]


def _align_command(*args) -> list[str]:
    return [sys.executable, "-c", "from thinksafe.cli import main; main()", "align", *map(str, args)]


def _complete(manifest) -> bool:
    try:
        return json.loads(manifest.read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False


def _whole_checkpoint(folder) -> bool:
    """The trainer writes ``trainer_state.json`` last: a checkpoint without a readable one is torn."""
    try:
        return "global_step" in json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False


@needs_data
def test_a_sigkilled_align_train_resumes_from_its_checkpoint_to_the_uninterrupted_adapter(tiny_model_dir, tmp_path):
    """The teacher recipe (no generation: STAR-1 traces, judged) on the tiny model, one pair per optimizer
    step (9 steps, a checkpoint every 4); ``align train`` is killed after its checkpoint at step 4 and run again (it resumes from the checkpoint), and in a
    second copy once that checkpoint's folder appears (when the kill finds it torn, it is removed and the run
    starts again; the tiny model's checkpoint may also be whole by then, and the run resumes from it). The copies are taken once the uninterrupted run has finished every stage before
    training, and train beside it, one thread each."""
    import shutil

    from safetensors.torch import load_file

    a = tmp_path / "a"
    env = _env(tmp_path / "cache") | ONE_THREAD
    reference = _Child(_align_command("all", "--run", a, "--recipe", "teacher", "--model", tiny_model_dir,
                                      "--harmful-size", 16, "--benign-size", 0, "--backend", "transformers",
                                      "--epochs", 1, "--grad-accum", 1), env, tmp_path / "a.log")
    deadline = time.monotonic() + 900
    while not _complete(a / "perplexity" / "manifest.json"):  # the last stage before training (see AlignRun.all)
        assert reference.proc.poll() is None, reference.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the reference run never reached training"
        time.sleep(0.02)
    copies, children = {}, []
    for copy in ("after", "during"):
        b = tmp_path / copy
        shutil.copytree(a, b, ignore=lambda d, names: ["train"] if d == str(a) else [])
        checkpoint = b / "train" / "trainer" / "checkpoint-4"
        copies[copy] = (b, checkpoint)
        children.append((subprocess.Popen(_align_command("train", "--run", b), env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL),
                         partial(_whole_checkpoint, checkpoint) if copy == "after" else checkpoint.exists))
    assert all(_kill_all_when(children)), "training finished before the kill"
    resumed = {}
    for copy, (b, checkpoint) in copies.items():
        assert not (b / "train" / "adapter").exists()
        torn = not _whole_checkpoint(checkpoint)
        assert not torn or copy == "during"  # ("during" may find it whole: the tiny model's checkpoint is written
        #                                       within one poll; test_align_train covers the torn case alone)
        resumed[copy] = (torn, _Child(_align_command("train", "--run", b), env | {"COLUMNS": "400"}, tmp_path / f"{copy}.log"))
    reference.finish()
    wa = load_file(a / "train" / "adapter" / "adapter_model.safetensors")
    la = json.loads((a / "train" / "train_log.json").read_text())
    assert len(la) == json.loads((a / "train" / "data_manifest.json").read_text())["pairs"] > 4  # a step per pair
    for copy, (torn, child) in resumed.items():
        b = copies[copy][0]
        said = " ".join(child.finish().split())
        if torn:
            assert "cut short by a kill" in said and "resuming training from" not in said, said[-2000:]
        else:
            # (checkpoint-8 where the poll came late: the resume is what is tested)
            assert "resuming training from" in said and ("checkpoint-4" in said or "checkpoint-8" in said), said[-2000:]

        wb = load_file(b / "train" / "adapter" / "adapter_model.safetensors")
        assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa), copy  # bit for bit
        for name in ("adapter_config.json", "adapter_model.safetensors"):  # and the same files (another process)
            assert (a / "train" / "adapter" / name).read_bytes() == (b / "train" / "adapter" / name).read_bytes()
        lb = json.loads((b / "train" / "train_log.json").read_text())
        assert [e["loss"] for e in la] == [e["loss"] for e in lb]
