"""LoRA training under `accelerate launch`: two CPU processes (gloo DDP) against one, on the tiny model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # three child processes that import torch, transformers and TRL

CHILD = Path(__file__).with_name("ddp_child.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                         "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "true"}


def _adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    single, ddp = root / "single", root / "ddp"
    one = subprocess.Popen([sys.executable, str(CHILD), str(tiny_model_dir), str(single), str(root / "single.log"), "4"],
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    two = subprocess.Popen(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
         "--main_process_port", str(_free_port()),
         str(CHILD), str(tiny_model_dir), str(ddp), str(root / "ddp.log"), "2"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_one, _ = one.communicate(timeout=600)
    out_two, _ = two.communicate(timeout=600)
    assert one.returncode == 0, out_one[-4000:]
    assert two.returncode == 0, out_two[-4000:]
    logs = {name: json.loads((root / name).read_text()) for name in ("single.log.0", "ddp.log.0", "ddp.log.1")}
    return single, ddp, logs


def test_two_processes_train_the_adapter_one_process_trains(runs):
    single, ddp, logs = runs
    assert logs["ddp.log.0"]["world"] == 2 and logs["ddp.log.1"]["world"] == 2 and logs["single.log.0"]["world"] == 1
    assert logs["single.log.0"]["steps"] == logs["ddp.log.0"]["steps"] == 2  # 8 rows, global batch 4
    a, b = _adapter(single), _adapter(ddp)
    assert a.keys() == b.keys() and a
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float(a[k].abs().max()) for k in a if "lora_B" in k)
    assert moved > 1e-3  # training moved B away from its zero start, so equality is not trivial
    assert worst < 1e-4, f"DDP adapter differs from the single-process one by {worst:.2e}"
    assert json.loads((ddp / "train_config.json").read_text())["processes"] == 2


def test_only_the_main_process_writes_the_run_folder(runs):
    _, ddp, logs = runs
    assert any(p.startswith("adapter") for p in logs["ddp.log.0"]["written"])
    # transformers saves each process's RNG state in its checkpoint (rng_state_RANK.pth) for an exact
    # resume: the one file a second process writes, by design
    opened = [p for p in logs["ddp.log.1"]["written"] if not p.endswith("rng_state_1.pth")]
    assert opened == [], f"process 1 opened {opened} for writing"
    created = [str(p.relative_to(ddp)) for p in ddp.rglob("*") if p.is_file() and p.stat().st_mode & 0o020]
    assert created and all(p.endswith("rng_state_1.pth") for p in created), f"process 1 created {created}"


@pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")
def test_the_train_stage_runs_under_the_launcher_the_environment_names(tiny_run, tmp_path, monkeypatch):
    """THINKSAFE_TRAIN_LAUNCHER: `thinksafe align train` (and so `thinksafe run`) trains through it."""
    import shutil

    from typer.testing import CliRunner

    from thinksafe.cli import app

    run = tmp_path / "align"
    shutil.copytree(tiny_run.out / "align" / "thinksafe", run)
    shutil.rmtree(run / "train")
    launcher = (f"{sys.executable} -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 "
                f"--mixed_precision no --dynamo_backend no --main_process_ip 127.0.0.1 --main_process_port {_free_port()}")
    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("THINKSAFE_TRAIN_LAUNCHER", launcher)
    result = CliRunner().invoke(app, ["align", "train", "--run", str(run)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "train" / "data_manifest.json").read_text())
    assert manifest["processes"] == 2 and (run / "train" / "adapter" / "adapter_model.safetensors").exists()
    assert json.loads((run / "train" / "manifest.json").read_text())["status"] == "complete"
    monkeypatch.setenv("THINKSAFE_TRAIN_LAUNCHER", "false")  # a finished stage is skipped, launcher or not
    assert CliRunner().invoke(app, ["align", "train", "--run", str(run)]).exit_code == 0
