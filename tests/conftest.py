"""Shared fixtures: tiny random models with a real tokenizer, an isolated cache, the slow-test switch.

``pytest`` alone skips tests marked ``slow`` (real embedded models, minutes of CPU);
``pytest --runslow`` (what ``make test`` runs) includes them.

Tests never write to the user's cache: ``THINKSAFE_CACHE`` points into a folder of the test
session, shared by its tests, so the real model's weights are joined and de-quantised at most once
a session (about a minute for the 0.5B model, only when slow tests run). To keep that folder
between sessions, set ``THINKSAFE_TEST_CACHE`` to a folder of your choice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB per vLLM engine; tests start a few in one process


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (make test does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


SLOW_SUITE_DISK_GIB = 8
"""Free disk the temporary folder needs for ``--runslow``: the whole suite's peak was 5.2 GiB on
2026-12-06 (the embedded models' conversions, merged checkpoints, vLLM's compile cache, run folders),
measured with ``du`` every 20 s through ``.ci/run``; the rest is headroom."""


def pytest_sessionstart(session: pytest.Session) -> None:
    """A ``--runslow`` session on a nearly full disk stops at once, saying so, rather than failing
    tests for most of an hour with "No space left on device" (a CI run once did)."""
    import tempfile

    if not session.config.getoption("--runslow"):
        return
    # the session's folders (pytest's base folder, or --basetemp) and the test cache, if kept elsewhere
    places = [session.config.option.basetemp or os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir(),
              os.environ.get("THINKSAFE_TEST_CACHE")]
    free, probe = float("inf"), Path(tempfile.gettempdir())
    for where in filter(None, places):
        p = Path(where)
        while not p.exists() and p != p.parent:
            p = p.parent
        if shutil.disk_usage(p).free / 2**30 < free:
            free, probe = shutil.disk_usage(p).free / 2**30, p
    if free < SLOW_SUITE_DISK_GIB:
        pytest.exit(f"{probe} has {free:.1f} GiB free; the slow suite needs about {SLOW_SUITE_DISK_GIB} GiB there "
                    "(models, merged checkpoints, vLLM's compile cache). Free some space (old pytest folders under "
                    f"{tempfile.gettempdir()}/pytest-of-*, run folders) or point TMPDIR at a larger disk.", returncode=3)


PRECONVERT = "from thinksafe.models.loader import load_model\n" \
    "for name in ('smollm2-135m-instruct', 'qwen2.5-coder-0.5b-instruct'): load_model(name, dtype='float32')"
"""The embedded models' first loads (de-quantising the GGUFs into the session cache: mostly single-threaded
Python, about half a minute), done by a child process at the start of a ``--runslow`` session while the
first tests run; a test that loads a model first waits for that conversion (``loader._conversion_lock``)."""


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """``THINKSAFE_CACHE`` for every test: a session folder (or ``$THINKSAFE_TEST_CACHE``), restored after.

    A session folder's model conversions, merged checkpoints and vLLM compile cache (gigabytes) are
    deleted at the end; pytest keeps the rest of a failed session's folders for inspection.
    """
    keep = os.environ.get("THINKSAFE_TEST_CACHE")
    root = Path(keep).expanduser() if keep else tmp_path_factory.mktemp("thinksafe-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THINKSAFE_CACHE", str(root))
        mp.setenv("VLLM_CACHE_ROOT", str(root / "vllm"))  # vLLM's compile cache stays out of ~/.cache too
        converter = None
        if request.config.getoption("--runslow"):
            converter = subprocess.Popen([sys.executable, "-c", PRECONVERT], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL,
                                         env=os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        try:
            yield root
        finally:
            if converter is not None and converter.poll() is None:
                converter.kill()
                converter.wait()
    if not keep:
        for heavy in ("models", "merged", "vllm"):
            shutil.rmtree(root / heavy, ignore_errors=True)


@pytest.fixture(scope="session")
def smollm_tokenizer():
    """The real SmolLM2 tokenizer (read from the embedded GGUF; cached as a converted folder)."""
    from thinksafe.models.assets import ensure_gguf
    from thinksafe.models.registry import MODELS
    from transformers import AutoTokenizer

    gguf = ensure_gguf(MODELS.get("smollm2-135m-instruct"))
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="session")
def tiny_loaded(smollm_tokenizer):
    """A tiny random Llama (hidden 16, 2 layers) with the real tokenizer, wrapped as a LoadedModel."""
    import torch
    from thinksafe.models.loader import LoadedModel, ResolvedModel
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(smollm_tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=smollm_tokenizer.eos_token_id,
        pad_token_id=smollm_tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(cfg).eval()
    return LoadedModel(
        model=model,
        tokenizer=smollm_tokenizer,
        name="tiny-random-llama",
        fingerprint="tiny-random-llama-seed0",
        thinking="prompted",
        resolved=ResolvedModel("tiny-random-llama", "local", "<memory>"),
        dtype="float32",
    )


class NetworkGuard:
    """Fails any connection that leaves this machine (loopback and Unix sockets pass) and keeps a list of
    the attempts, so a test can assert none was made even where library code swallows the error."""

    LOCAL = ("127.0.0.1", "::1", "localhost")

    def __init__(self) -> None:
        self.attempts: list[object] = []

    def __enter__(self) -> NetworkGuard:
        import socket

        self._mp = pytest.MonkeyPatch()
        real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
        guard = self

        def local(sock: socket.socket, address: object) -> bool:
            return sock.family == getattr(socket, "AF_UNIX", None) or (
                isinstance(address, tuple) and str(address[0]) in guard.LOCAL)

        def connect(sock, address):
            if not local(sock, address):
                guard.attempts.append(address)
                raise OSError(f"network access blocked by the test: {address}")
            return real_connect(sock, address)

        def connect_ex(sock, address):
            if not local(sock, address):
                guard.attempts.append(address)
                return 111  # ECONNREFUSED
            return real_connect_ex(sock, address)

        def getaddrinfo(host, *args, **kwargs):
            if host not in (None, *guard.LOCAL):
                guard.attempts.append(host)
                raise socket.gaierror(f"name lookup blocked by the test: {host}")
            return real_getaddrinfo(host, *args, **kwargs)

        self._mp.setattr(socket.socket, "connect", connect)
        self._mp.setattr(socket.socket, "connect_ex", connect_ex)
        self._mp.setattr(socket, "getaddrinfo", getaddrinfo)
        return self

    def __exit__(self, *exc: object) -> None:
        self._mp.undo()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_loaded, tmp_path_factory):
    """The tiny random model saved as a local safetensors folder (what a user's own model looks like)."""
    d = tmp_path_factory.mktemp("tiny") / "model"
    tiny_loaded.model.save_pretrained(d, safe_serialization=True)
    tiny_loaded.tokenizer.save_pretrained(d)
    return d


@pytest.fixture
def no_network():
    with NetworkGuard() as guard:
        yield guard
    assert not guard.attempts, f"network access attempted: {guard.attempts}"


class TinyRun(NamedTuple):
    cfg: Any
    out: Path
    metrics: dict[str, Any]
    seconds: float


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir, tmp_path_factory) -> TinyRun:
    """One whole main job on the tiny model, run once a session in this process (the deliberation judge a
    stand-in that gives both labels; ``test_pipeline._killable_run_config``, which ``crash_child.py`` runs
    too). Its folder is what ``test_pipeline`` checks, the reference that the main-job kill test
    (``test_crash.py``) must end at byte for byte, and the ``before/`` that the deliberate comparison
    starts from. Tests only read it (the re-run of a finished job in ``test_pipeline`` rewrites no record)."""
    if not os.environ.get("THINKSAFE_DATA_DIR"):
        pytest.skip("THINKSAFE_DATA_DIR is not set")
    from test_deliberation_run import _ParityJudge
    from test_pipeline import _killable_run_config

    from thinksafe.deliberation.run import DeliberationRun
    from thinksafe.pipeline import run_main

    out = tmp_path_factory.mktemp("main") / "run"
    cfg = _killable_run_config(out, tiny_model_dir)
    t0 = time.monotonic()
    with pytest.MonkeyPatch.context() as mp, NetworkGuard() as net:
        mp.setattr(DeliberationRun, "judge", lambda self, name, **options: _ParityJudge())
        metrics = run_main(cfg, progress=False)
    assert not net.attempts, f"the main job tried the network: {net.attempts}"  # the offline guarantee
    return TinyRun(cfg, out, metrics, time.monotonic() - t0)
