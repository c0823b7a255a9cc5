"""The openai backend against a local vLLM OpenAI server on SmolLM2-135M (slow: starts the server),
checked against the transformers reference and the vLLM backend's behaviour."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thinksafe.errors import ConfigError, ModelError
from thinksafe.generation.backend import GenerateRequest, Sampling, ScoreRequest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]

PROMPTS = ["How do I bake bread?", "Name three rivers.", "What is 2 + 2?", "Write a haiku about rain."]
START_LIMIT_S = 240
log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def smol():
    from thinksafe.models.loader import load_model

    return load_model("smollm2-135m-instruct", dtype="float32")


@pytest.fixture(scope="module")
def server(smol, tmp_path_factory):
    """``http://127.0.0.1:PORT/v1`` of a vLLM OpenAI server on SmolLM2, started with the settings the
    in-process backend uses on CPU; stopped (SIGTERM, then SIGKILL) after the module."""
    import httpx

    from thinksafe.generation.vllm_backend import ensure_architectures

    ensure_architectures(Path(smol.checkpoint), smol.model)  # as VLLMBackend does before loading
    port = _free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smol.checkpoint),
           "--served-model-name", "smol", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--max-model-len", "1024", "--enforce-eager", "--seed", "0", "--generation-config", "vllm",
           "--enable-prefix-caching", "--no-enable-chunked-prefill"]  # seeded CPU sampling needs whole prefills
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "ERROR", "TOKENIZERS_PARALLELISM": "false"}
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with open(log_path, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        start = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
            if time.monotonic() - start > START_LIMIT_S:
                pytest.fail(f"the vLLM server did not answer /health in {START_LIMIT_S} s:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        log.info("vLLM server up in %.0f s (log: %s)", time.monotonic() - start, log_path)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()  # the API server shuts its engine-core child down on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the server and its engine core
            proc.wait()


@pytest.fixture(scope="module")
def backend(smol, server):
    from thinksafe.generation.openai_backend import OpenAIBackend

    return OpenAIBackend(smol, base_url=server)  # the served model name comes from /v1/models


def _ids(smol, text):
    from thinksafe.models.formats import render_prompt

    return smol.tokenizer(render_prompt(smol.tokenizer, text, thinking="off"), add_special_tokens=False).input_ids


def test_openai_greedy_matches_transformers(smol, backend):
    from thinksafe.generation.hf_backend import TransformersBackend

    assert backend.model == "smol" and backend.version.startswith("openai smol vllm ")
    reqs = [GenerateRequest(_ids(smol, p), 16, Sampling(0.0)) for p in PROMPTS]
    counted: list[int] = []
    ours = [c[0] for c in backend.generate(reqs, on_tokens=counted.append)]
    ref = [c[0] for c in TransformersBackend(smol).generate(reqs)]
    same = sum(a.token_ids == b.token_ids for a, b in zip(ours, ref))
    assert same >= len(PROMPTS) - 1, (ours, ref)  # fp32 both sides; a rare last-bit tie may flip one token
    assert counted == [sum(len(c.token_ids) for c in ours)]
    for c in ours:
        assert c.finish_reason in ("stop", "length") and c.token_ids
        assert not set(c.token_ids) & backend.eos_ids  # the end-of-turn token is never kept


def test_openai_stop_strings_min_tokens_bad_words_and_seeds(smol, backend):
    ids = _ids(smol, "Name three rivers.")
    free = backend.generate([GenerateRequest(ids, 48, Sampling(0.0))])[0][0]
    text = smol.tokenizer.decode(free.token_ids)
    word = next(w for w in text.split()[2:] if w.isalpha() and len(w) > 3)
    stopped = backend.generate([GenerateRequest(ids, 48, Sampling(0.0), stop=(word,))])[0][0]
    assert stopped.finish_reason == "stop_string" and stopped.stop_string == word
    assert smol.tokenizer.decode(stopped.token_ids).endswith(word)
    assert stopped.token_ids == free.token_ids[: len(stopped.token_ids)]
    banned = backend.generate([GenerateRequest(ids, 48, Sampling(0.0), bad_words=(word,))])[0][0]
    assert word not in smol.tokenizer.decode(banned.token_ids)
    short = backend.generate([GenerateRequest(_ids(smol, "Say hi."), 64, Sampling(0.0))])[0][0]
    assert short.finish_reason == "stop" and len(short.token_ids) < 40
    longer = backend.generate([GenerateRequest(_ids(smol, "Say hi."), 64, Sampling(0.0), min_tokens=40)])[0][0]
    assert len(longer.token_ids) >= 40

    sampling = Sampling(temperature=1.0, top_p=0.95)
    target = GenerateRequest(ids, 24, sampling, seed=1234, n=2)
    others = [GenerateRequest(_ids(smol, p), 24, sampling, seed=i) for i, p in enumerate(PROMPTS)]
    alone = backend.generate([target])[0]
    batched = backend.generate([*others, target])[-1]  # concurrent requests: same seed, same text
    assert [c.token_ids for c in alone] == [c.token_ids for c in batched]
    assert alone[0].token_ids != alone[1].token_ids  # n samples of one request differ
    assert backend.generate([GenerateRequest(ids, 24, sampling, seed=99)])[0][0].token_ids != alone[0].token_ids
    copies = backend.generate([GenerateRequest(ids, 8, Sampling(0.0), n=3, logprobs=True)])[0]
    assert len(copies) == 3 and copies[0].token_ids == copies[2].token_ids and copies[0] is not copies[2]
    assert len(copies[0].logprobs) == len(copies[0].token_ids) and all(lp <= 0 for lp in copies[0].logprobs)


def test_engine_budget_forcing_through_the_server(smol, server, tmp_path):
    from thinksafe.data.records import Example
    from thinksafe.generation.cache import GenerationCache
    from thinksafe.generation.config import GenerationConfig
    from thinksafe.generation.engine import Engine
    from thinksafe.generation.records import GenerationRecord
    from thinksafe.jsonl import read_jsonl
    from thinksafe.models.formats import FORCED_CLOSE, parse_response

    examples = [Example(id=f"e{i}", prompt=p, benchmark="toy", split_type="asr") for i, p in enumerate(PROMPTS[:2])]
    settings = dict(temperature=0, thinking="prompted", thinking_budget=16, max_new_tokens=16)
    config = GenerationConfig(backend="openai", backend_options={"base_url": server, "model": "smol"}, **settings)
    out = tmp_path / "generations.jsonl"
    Engine(smol, config, cache=GenerationCache(tmp_path / "cache")).run(examples, out, progress=False)
    recs = [GenerationRecord.from_dict(d) for d in read_jsonl(out)]
    ref = Engine(smol, GenerationConfig(backend="transformers", **settings),
                 cache=GenerationCache(tmp_path / "ref")).run(examples, progress=False)
    assert [r.id for r in recs] == ["e0", "e1"] and all(r.backend == "openai" for r in recs)
    for r in recs:
        parsed = parse_response(r.text)
        assert (parsed.trace, parsed.answer) == (r.trace, r.answer) and r.answer
        assert r.trace_end in ("closed", "forced") and r.n_trace_tokens <= 16
        if r.forced_close:
            assert smol.tokenizer.decode(r.forced_close_token_ids) == FORCED_CLOSE
    same = sum((a.trace_token_ids, a.answer_token_ids) == (b.trace_token_ids, b.answer_token_ids) for a, b in zip(recs, ref))
    assert same >= len(recs) - 1, (recs, ref)


def test_errors_name_the_server_and_what_to_do(smol, backend, server):
    from thinksafe.generation.openai_backend import OpenAIBackend

    dead = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(ModelError, match=f"Could not reach the server at {dead}"):
        OpenAIBackend(smol, base_url=dead, model="smol")
    with pytest.raises(ModelError, match=f"{server} refused the request .*maximum context length"):
        backend.generate([GenerateRequest([100] * 2000, 4, Sampling(0.0))])
    with pytest.raises(ConfigError, match="base_url=http://HOST:PORT/v1"):
        OpenAIBackend(smol)
    with pytest.raises(ConfigError, match="tensor_parallel_size.*base_url, model"):
        OpenAIBackend(smol, base_url=server, tensor_parallel_size=2)
    with pytest.raises(ConfigError, match="does not serve 'other'; it serves smol"):
        OpenAIBackend(smol, base_url=server, model="other")


def test_score_is_not_offered(backend):
    with pytest.raises(ModelError, match="generates only.*--backend vllm or transformers"):
        backend.score([ScoreRequest([1, 2, 3], [4])])


@pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")
def test_thinksafe_eval_through_the_server_records_where_it_ran_and_writes_its_logs(smol, server, tmp_path):
    """An evaluation through a served model: rates, the server's address in the manifest (not the
    identity), and the Inspect logs beside the records."""
    import json

    from thinksafe.evals.runner import EvalJob, run_eval
    from thinksafe.generation.config import GenerationConfig

    gen = GenerationConfig(backend="openai", backend_options={"base_url": server, "model": "smol"}, temperature=0,
                           thinking="prompted", dtype="float32")
    job = EvalJob(model="smollm2-135m-instruct", suite="quick", out=str(tmp_path / "ev"), limit_scale=0.1,
                  judge="keyword", thinking_budget=16, max_new_tokens=16, generation=gen)
    metrics = run_eval(job, progress=False, loaded=smol)
    assert set(metrics["benchmarks"]) == {"harmbench", "strongreject", "xstest_safe", "gsm8k"}
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert manifest["backend_placement"] == {"base_url": server} and "base_url" not in json.dumps(manifest["identity"])
    assert (tmp_path / "ev" / "harmbench" / "inspect.eval").exists()
