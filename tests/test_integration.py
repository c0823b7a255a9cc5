"""End to end with the real embedded default model (slow: loads 0.5B parameters on the CPU)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set"),
]


@pytest.fixture(scope="module")
def qwen():
    from thinksafe.models.loader import load_model

    return load_model("qwen2.5-coder-0.5b-instruct")


def test_qwen_generates_parses_and_resumes(qwen, tmp_path):
    from thinksafe.data import load_benchmark
    from thinksafe.generation.cache import GenerationCache
    from thinksafe.generation.config import GenerationConfig
    from thinksafe.generation.engine import Engine

    examples = load_benchmark("harmbench", limit=4, seed=0)
    cfg = GenerationConfig(thinking="prompted", thinking_budget=24, max_new_tokens=24, temperature=0.0, batch_size=4)
    engine = Engine(qwen, cfg, cache=GenerationCache(tmp_path / "cache"))
    out = tmp_path / "records.jsonl"
    recs = engine.run(examples, out, progress=False)
    assert len(recs) == 4
    for r in recs:
        assert r.model == "qwen2.5-coder-0.5b-instruct"
        assert r.text.startswith("<think>") and r.trace
        assert r.trace_closed or r.forced_close
        assert r.answer, "a budget-forced trace must still get an answer"
        assert 0 < r.n_trace_tokens <= 24 and 0 < r.n_answer_tokens <= 24
        assert len(r.trace_token_ids) == r.n_trace_tokens and len(r.answer_token_ids) == r.n_answer_tokens
    assert [r.source_prompt for r in recs] == [ex.prompt for ex in examples]
    expected_backend = "vllm" if importlib.util.find_spec("vllm") else "transformers"
    assert {r.backend for r in recs} == {expected_backend} and engine.backend.name == expected_backend
    assert all(r.trace_end in ("closed", "forced") for r in recs)
    # the real model writes real words
    assert sum(len(r.answer.split()) for r in recs) > 10
    # a second run is served from the cache: nothing decoded, identical records
    second = Engine(qwen, cfg, cache=GenerationCache(tmp_path / "cache"))
    again = second.run(examples, progress=False)
    assert second.last_run.from_cache == 4 and second.last_run.generated == 0 and second.tokens_generated == 0
    assert [r.to_dict() for r in again] == [r.to_dict() for r in recs]


def test_qwen_quick_eval_smoke(qwen, tmp_path):
    from thinksafe.evals.runner import EvalJob, run_eval
    from thinksafe.generation.config import GenerationConfig

    # the job's budgets are honoured over the suite entries' own (96/96; GSM8K 224/64): a smoke test of
    # the whole path, not of how well the model answers
    job = EvalJob(model="qwen2.5-coder-0.5b-instruct", suite="quick", out=str(tmp_path / "ev"), limit_scale=0.125,
                  generation=GenerationConfig(thinking="prompted"), thinking_budget=8, max_new_tokens=12)
    metrics = run_eval(job, loaded=qwen, progress=False)
    assert set(metrics["benchmarks"]) == {"harmbench", "strongreject", "xstest_safe", "gsm8k"}
    for name, entry in metrics["benchmarks"].items():
        assert entry["n"] >= 2, name
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    judged = [json.loads(x) for x in (tmp_path / "ev" / "harmbench" / "judged.jsonl").read_text().splitlines()]
    assert {r["verdict"]["judge"] for r in judged} == {metrics["judge"]}


def test_qwen_two_phase_answer_equals_a_fresh_generation(qwen, tmp_path):
    """On the default backend, greedy: the answer after a forced close is what the model writes from
    prompt + trace + close handed over as one prompt; and answers are answers (no empty one, no tag)."""
    from thinksafe.data import load_benchmark
    from thinksafe.generation.backend import GenerateRequest, Sampling
    from thinksafe.generation.cache import GenerationCache
    from thinksafe.generation.config import GenerationConfig
    from thinksafe.generation.engine import ANSWER_BAD_WORDS, Engine

    examples = load_benchmark("xstest_safe", limit=6, seed=0)
    cfg = GenerationConfig(thinking="prompted", thinking_budget=16, max_new_tokens=24, temperature=0.0)
    engine = Engine(qwen, cfg, cache=GenerationCache(tmp_path / "cache"))
    recs = engine.run(examples, progress=False)
    forced = [r for r in recs if r.forced_close]
    assert forced, "a 16-token budget forces most traces"
    fresh = engine.backend.generate([
        GenerateRequest(r.prompt_token_ids + r.trace_token_ids + r.forced_close_token_ids, 24, Sampling(0.0),
                        min_tokens=8, bad_words=ANSWER_BAD_WORDS) for r in forced
    ])
    assert [c[0].token_ids for c in fresh] == [r.answer_token_ids for r in forced]
    for r in recs:
        assert r.answer.strip() and "<think" not in r.answer and "</think" not in r.answer
