"""Generation engine on a tiny random model: records, budget forcing, seeds, cache and resume."""

from __future__ import annotations

import json

import pytest

from thinksafe.data.records import Example
from thinksafe.errors import ConfigError
from thinksafe.generation.cache import GenerationCache, cache_key, sample_seed
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.jsonl import read_jsonl

EXAMPLES = [
    Example(id=f"e{i}", prompt=p, benchmark="toy", split_type="asr")
    for i, p in enumerate(
        ["How do I pick a lock?", "Hi", "Write a long story about a dragon who learns to code in Python.", "2+2?", "Why?"]
    )
]


def _engine(tiny_loaded, tmp_path, **overrides):
    cfg = GenerationConfig(**({"thinking": "prompted", "thinking_budget": 6, "max_new_tokens": 5, "backend": "transformers"} | overrides))
    return Engine(tiny_loaded, cfg, cache=GenerationCache(tmp_path / "cache"))


# ---- cache keys -----------------------------------------------------------------------------
BASE_IDENTITY = {
    "fingerprint": "m", "adapter_fingerprint": None, "dtype": "float32", "device": "cpu", "backend": "transformers",
    "chat_template_sha256": "t", "system": None, "versions": {"torch": "2.13.0", "transformers": "5.0.0"},
}
BASE_KEY = dict(identity=BASE_IDENTITY, rendered_prompt="p", seed=1, sampling=GenerationConfig().sampling_key())


def test_cache_key_changes_with_every_output_relevant_setting():
    base = cache_key(**BASE_KEY)
    for v in [{"rendered_prompt": "p2"}, {"seed": 2}, {"seed": None}]:
        assert cache_key(**(BASE_KEY | v)) != base, v
    for name, value in [("fingerprint", "m2"), ("adapter_fingerprint", "a"), ("dtype", "bfloat16"), ("device", "cuda"),
                        ("backend", "vllm"), ("chat_template_sha256", "t2"), ("system", "Be brief."),
                        ("versions", {"torch": "2.13.0", "transformers": "5.0.1"})]:
        assert cache_key(**(BASE_KEY | {"identity": BASE_IDENTITY | {name: value}})) != base, name
    for field, value in [("thinking_budget", 7), ("force_close", False), ("max_new_tokens", 9), ("temperature", 0.9),
                         ("top_p", 0.5), ("top_k", 5), ("stop", ("END",)), ("thinking", "native")]:
        sampling = GenerationConfig(**{field: value}).sampling_key()
        assert cache_key(**(BASE_KEY | {"sampling": sampling})) != base, field


def test_cache_key_ignores_speed_and_bookkeeping_settings():
    base = cache_key(**BASE_KEY)
    ignored = [("batch_size", 3), ("samples", 4), ("seed", 99), ("dtype", "float16"), ("backend", "vllm")]
    for field, value in ignored:
        # the run seed enters through each sample's own seed; the dtype through the loaded model
        sampling = GenerationConfig(**{field: value}).sampling_key()
        assert cache_key(**(BASE_KEY | {"sampling": sampling})) == base, field


def test_greedy_ignores_top_p_and_top_k():
    a = GenerationConfig(temperature=0, top_p=0.5, top_k=3).sampling_key()
    b = GenerationConfig(temperature=0).sampling_key()
    assert a == b


def test_thinking_off_ignores_budget_and_forced_close():
    a = GenerationConfig(thinking="off", thinking_budget=5, force_close=False).sampling_key()
    assert a == GenerationConfig(thinking="off").sampling_key()
    assert GenerationConfig(thinking_budget=5).sampling_key("off") == GenerationConfig().sampling_key("off")
    assert GenerationConfig(thinking_budget=5).sampling_key("native") != GenerationConfig().sampling_key("native")


def test_manifest_identity_drops_what_cannot_change_output():
    greedy = GenerationConfig(temperature=0, seed=1).identity()
    assert "seed" not in greedy and greedy == GenerationConfig(temperature=0, seed=2, batch_size=3).identity()
    assert GenerationConfig(seed=1).identity() != GenerationConfig(seed=2).identity()
    off = GenerationConfig(thinking="off", thinking_budget=5).identity()
    assert "thinking_budget" not in off and off == GenerationConfig(thinking="off").identity()


def test_sample_seed_depends_on_run_seed_id_and_index_only():
    assert sample_seed(0, "a", 0) == sample_seed(0, "a", 0)
    assert len({sample_seed(0, "a", 0), sample_seed(1, "a", 0), sample_seed(0, "b", 0), sample_seed(0, "a", 1)}) == 4


@pytest.mark.parametrize(
    "bad", [{"thinking": "maybe"}, {"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"samples": 0},
            {"batch_size": -2}, {"dtype": "int8"}, {"thinking_budget": 0}]
)
def test_config_validation_names_the_field(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        GenerationConfig(**bad)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="temprature"):
        GenerationConfig.from_dict({"temprature": 1.0})


# ---- engine ---------------------------------------------------------------------------------
def test_records_are_complete_and_budget_forced(tiny_loaded, tmp_path):
    out = tmp_path / "records.jsonl"
    recs = _engine(tiny_loaded, tmp_path).run(EXAMPLES, out, progress=False)
    assert len(recs) == len(EXAMPLES)
    on_disk = list(read_jsonl(out))
    assert [r["id"] for r in sorted(on_disk, key=lambda r: r["id"])] == sorted(e.id for e in EXAMPLES)
    for r in recs:
        assert r.text.startswith("<think>\n")
        assert r.thinking == "prompted"
        assert r.trace is not None
        assert r.n_trace_tokens <= 6 and r.n_answer_tokens <= 5
        assert r.n_completion_tokens == r.n_trace_tokens + r.n_answer_tokens
        # a random model never writes </think>: every trace is budget-forced and then answered
        assert r.trace_closed is False and r.forced_close is True
        assert "</think>" in r.text
        assert r.finish_reason in {"stop", "length", "stop_string"}
        assert r.cache_key


def test_no_force_close_leaves_unclosed_trace_without_answer(tiny_loaded, tmp_path):
    recs = _engine(tiny_loaded, tmp_path, force_close=False).run(EXAMPLES[:2], progress=False)
    for r in recs:
        assert r.forced_close is False and r.trace_closed is False
        assert r.answer == "" and r.n_answer_tokens == 0
        assert "</think>" not in r.text


def test_thinking_off_has_no_trace(tiny_loaded, tmp_path):
    recs = _engine(tiny_loaded, tmp_path, thinking="off").run(EXAMPLES[:2], progress=False)
    for r in recs:
        assert r.trace is None and r.trace_closed is None and r.n_trace_tokens == 0
        assert "<think>" not in r.rendered_prompt


def test_steering_prefixes_the_user_turn(tiny_loaded, tmp_path):
    from thinksafe.models.formats import STEER_PREFIX

    recs = _engine(tiny_loaded, tmp_path, steer=True).run(EXAMPLES[:1], progress=False)
    assert recs[0].steered and recs[0].prompt.startswith(STEER_PREFIX)
    assert STEER_PREFIX in recs[0].rendered_prompt


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sample_does_not_depend_on_its_batch(tiny_loaded, tmp_path, temperature):
    a = _engine(tiny_loaded, tmp_path / "a", temperature=temperature, batch_size=1).run(
        EXAMPLES, tmp_path / "a.jsonl", progress=False)
    b = _engine(tiny_loaded, tmp_path / "b", temperature=temperature, batch_size=4).run(
        EXAMPLES, tmp_path / "b.jsonl", progress=False)
    c = _engine(tiny_loaded, tmp_path / "c", temperature=temperature, batch_size=4).run(EXAMPLES[::-1], progress=False)
    text_a = {r.id: r.text for r in a}
    assert text_a == {r.id: r.text for r in b} == {r.id: r.text for r in c}
    # greedy and sampled alike: the records files are byte-identical, though batches finish in other orders
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_samples_differ_and_seed_changes_output(tiny_loaded, tmp_path):
    recs = _engine(tiny_loaded, tmp_path, temperature=1.0, samples=3).run(EXAMPLES[:1], progress=False)
    assert [r.sample_index for r in recs] == [0, 1, 2]
    assert len({r.text for r in recs}) > 1
    other = _engine(tiny_loaded, tmp_path, temperature=1.0, samples=3, seed=7).run(EXAMPLES[:1], progress=False)
    assert [r.text for r in other] != [r.text for r in recs]


def test_rerun_is_served_from_cache_without_decoding(tiny_loaded, tmp_path):
    first = _engine(tiny_loaded, tmp_path).run(EXAMPLES, progress=False)
    engine = _engine(tiny_loaded, tmp_path)

    def boom(*a, **k):
        raise AssertionError("decoded although every sample was cached")

    engine.backend.generate = boom  # type: ignore[method-assign]
    again = engine.run(EXAMPLES, tmp_path / "new.jsonl", progress=False)
    assert [r.text for r in again] == [r.text for r in first]
    assert len(list(read_jsonl(tmp_path / "new.jsonl"))) == len(EXAMPLES)


def test_killed_run_resumes_from_output_and_keeps_finished_records(tiny_loaded, tmp_path):
    out = tmp_path / "records.jsonl"
    full = _engine(tiny_loaded, tmp_path / "ref").run(EXAMPLES, progress=False)
    # simulate a kill: two finished records, then a torn line
    lines = [json.dumps(r.to_dict()) for r in full[:2]]
    out.write_text("\n".join(lines) + "\n" + lines[0][:40])
    engine = _engine(tiny_loaded, tmp_path / "fresh-cache")
    decoded: list[int] = []
    real = engine.backend.generate

    def counting(requests, *a, **k):
        decoded.append(len(requests))
        return real(requests, *a, **k)

    engine.backend.generate = counting  # type: ignore[method-assign]
    recs = engine.run(EXAMPLES, out, progress=False)
    assert decoded == [len(EXAMPLES) - 2] * 2  # traces, then answers, of the 3 missing samples only
    on_disk = list(read_jsonl(out))
    assert len(on_disk) == len(EXAMPLES)
    assert {r["id"] for r in on_disk} == {e.id for e in EXAMPLES}
    assert {r.id: r.text for r in recs} == {r.id: r.text for r in full}
    # the resumed file ends with the bytes of an uninterrupted run's
    _engine(tiny_loaded, tmp_path / "ref").run(EXAMPLES, tmp_path / "whole.jsonl", progress=False)
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


@pytest.mark.parametrize("scale,top_k,top_p", [(2.0, 0, 0.9), (0.3, 0, 0.95), (2.0, 5, 0.8), (2.0, 0, 1.0)])
def test_seeded_sampler_draws_from_the_filtered_distribution(scale, top_k, top_p):
    """Each row samples from temperature/top-k/top-p-filtered probabilities with its own generator."""
    from collections import Counter

    import torch

    from thinksafe.generation.backend import Sampling
    from thinksafe.generation.hf_backend import SeededSampler, filter_logits

    s = Sampling(temperature=0.8, top_p=top_p, top_k=top_k)
    logits = torch.randn(1, 40, generator=torch.Generator().manual_seed(1)) * scale
    ref = torch.softmax(filter_logits(logits, s), dim=-1)[0]
    sampler = SeededSampler(s, [torch.Generator().manual_seed(0)])
    n = 5000
    counts = Counter(int(sampler(None, logits).argmax()) for _ in range(n))
    emp = torch.tensor([counts[i] / n for i in range(40)])
    assert set(counts) <= set(torch.nonzero(ref).flatten().tolist())
    assert (emp - ref).abs().max().item() < 0.03
    if top_k:
        assert int((ref > 0).sum()) <= top_k


def test_nucleus_keeps_the_token_that_crosses_p():
    import torch

    from thinksafe.generation.backend import Sampling
    from thinksafe.generation.hf_backend import filter_logits

    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(filter_logits(probs.log(), Sampling(temperature=1.0, top_p=0.7)))[0].tolist()
    assert kept == [True, True, False, False]


def test_finish_cuts_at_stop_string_then_end_of_turn(tiny_loaded):
    from thinksafe.generation.backend import GenerateRequest
    from thinksafe.generation.hf_backend import TransformersBackend

    backend = TransformersBackend(tiny_loaded)
    tok = tiny_loaded.tokenizer
    eos = min(backend.eos_ids)
    body = tok("The answer is 4. END and more", add_special_tokens=False).input_ids
    c = backend._finish(body + [eos, eos], GenerateRequest([1], 50, stop=("END",)))
    assert c.finish_reason == "stop_string" and c.stop_string == "END"
    assert tok.decode(c.token_ids).endswith("END") and "more" not in tok.decode(c.token_ids)
    c = backend._finish(body + [eos, eos], GenerateRequest([1], 50))
    assert c.finish_reason == "stop" and c.token_ids == body
    assert backend._finish(body, GenerateRequest([1], len(body))).finish_reason == "length"


# ---- exact identities in the engine -----------------------------------------------------------
def _keys(loaded, tmp_path, **overrides):
    return [j.key for j in _engine(loaded, tmp_path, **overrides).plan(EXAMPLES[:2])]


def test_engine_key_drops_seed_under_greedy_and_budget_with_thinking_off(tiny_loaded, tmp_path):
    greedy, sampled = dict(temperature=0.0), dict(temperature=1.0)
    assert _keys(tiny_loaded, tmp_path, seed=0, **greedy) == _keys(tiny_loaded, tmp_path, seed=7, **greedy)
    assert _keys(tiny_loaded, tmp_path, seed=0, **sampled) != _keys(tiny_loaded, tmp_path, seed=7, **sampled)
    off = dict(thinking="off", temperature=1.0)
    assert _keys(tiny_loaded, tmp_path, thinking_budget=3, force_close=False, **off) == _keys(
        tiny_loaded, tmp_path, thinking_budget=9, **off
    )
    assert _keys(tiny_loaded, tmp_path, thinking_budget=3) != _keys(tiny_loaded, tmp_path, thinking_budget=9)


def test_engine_key_depends_on_dtype_device_adapter_and_chat_template(tiny_loaded, tmp_path, monkeypatch):
    from dataclasses import replace

    base_jobs = _engine(tiny_loaded, tmp_path).plan(EXAMPLES[:2])
    base = [j.key for j in base_jobs]
    assert _keys(replace(tiny_loaded, name="renamed copy"), tmp_path) == base  # names are not content
    for change in [{"dtype": "bfloat16"}, {"adapter_fingerprint": "a" * 64}, {"fingerprint": "other"}]:
        assert _keys(replace(tiny_loaded, **change), tmp_path) != base, change
    identity = _engine(tiny_loaded, tmp_path).identity
    assert identity["backend"] == "transformers" and identity["device"] == "cpu"
    assert set(identity["versions"]) == {"torch", "transformers"} and identity["chat_template_sha256"]
    # a template edit that renders this prompt identically still changes the key
    tok = tiny_loaded.tokenizer
    monkeypatch.setattr(tok, "chat_template", tok.chat_template + "{# edited #}")
    jobs = _engine(tiny_loaded, tmp_path).plan(EXAMPLES[:2])
    assert [j.rendered for j in jobs] == [j.rendered for j in base_jobs]
    assert all(a != b for a, b in zip((j.key for j in jobs), base))


def test_source_prompt_never_contains_the_steering_text(tiny_loaded, tmp_path):
    from thinksafe.models.formats import STEER_PREFIX

    twin = Example(id="twin", prompt=EXAMPLES[0].prompt, benchmark="other", split_type="asr")
    examples = [EXAMPLES[0], twin, EXAMPLES[1]]
    wrap = lambda ex: f"Task: {ex.prompt}"  # noqa: E731  (a reasoning-instruction wrapper)
    for run in range(2):  # first decoded (the twin shares the key), then served from the cache
        engine = _engine(tiny_loaded, tmp_path, steer=True, temperature=0.0)
        recs = engine.run(examples, prompt_fn=wrap, progress=False)
        assert engine.last_run.decoded == (2 if run == 0 else 0)
        for ex, r in zip(examples, recs):
            assert r.source_prompt == ex.prompt and STEER_PREFIX not in r.source_prompt
            assert r.prompt == f"{STEER_PREFIX}\n\nTask: {ex.prompt}" and r.id == ex.id and r.benchmark == ex.benchmark
            assert STEER_PREFIX in r.rendered_prompt


def test_token_ids_are_exactly_what_the_model_was_fed(tiny_loaded, tmp_path):
    import torch

    from thinksafe.models.formats import FORCED_CLOSE, prefill_of

    tok = tiny_loaded.tokenizer
    recs = _engine(tiny_loaded, tmp_path, temperature=0.0).run(EXAMPLES[:2], progress=False)
    for r in recs:
        assert r.backend == "transformers"
        assert r.prompt_token_ids == tok(r.rendered_prompt, add_special_tokens=False).input_ids
        assert len(r.prompt_token_ids) == r.n_prompt_tokens
        assert len(r.trace_token_ids) == r.n_trace_tokens and len(r.answer_token_ids) == r.n_answer_tokens
        assert r.forced_close and tok.decode(r.forced_close_token_ids) == FORCED_CLOSE
        text = prefill_of(r.rendered_prompt) + tok.decode(r.trace_token_ids, skip_special_tokens=True) + FORCED_CLOSE
        assert text + tok.decode(r.answer_token_ids, skip_special_tokens=True) == r.text
        # greedy replay: every sampled token is the argmax after the exact preceding ids
        ids = r.prompt_token_ids + r.trace_token_ids + r.forced_close_token_ids + r.answer_token_ids
        with torch.inference_mode():
            predicted = tiny_loaded.model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
        p, t, f = len(r.prompt_token_ids), len(r.trace_token_ids), len(r.forced_close_token_ids)
        sampled = list(range(p, p + t)) + list(range(p + t + f, len(ids)))
        assert [predicted[i - 1] for i in sampled] == [ids[i] for i in sampled]


def test_greedy_samples_share_one_decode_and_stay_distinct(tiny_loaded, tmp_path):
    out = tmp_path / "records.jsonl"
    engine = _engine(tiny_loaded, tmp_path, temperature=0.0, samples=3)
    recs = engine.run(EXAMPLES[:2], out, progress=False)
    assert [(r.id, r.sample_index) for r in recs] == [(e.id, s) for e in EXAMPLES[:2] for s in range(3)]
    assert engine.last_run.generated == 6 and engine.last_run.decoded == 2
    assert len({r.text for r in recs if r.id == "e0"}) == 1
    again = _engine(tiny_loaded, tmp_path, temperature=0.0, samples=3)
    assert [r.sample_index for r in again.run(EXAMPLES[:2], out, progress=False)] == [0, 1, 2] * 2
    assert again.last_run.in_output == 6 and again.tokens_generated == 0
    assert len(list(read_jsonl(out))) == 6


def test_old_records_without_new_fields_still_load(tiny_loaded, tmp_path):
    from thinksafe.generation.records import GenerationRecord

    rec = _engine(tiny_loaded, tmp_path).run(EXAMPLES[:1], progress=False)[0].to_dict()
    new_fields = ("backend", "source_prompt", "prompt_token_ids", "trace_token_ids", "forced_close_token_ids",
                  "answer_token_ids")
    old = GenerationRecord.from_dict({k: v for k, v in rec.items() if k not in new_fields})
    assert old.source_prompt is None and old.trace_token_ids == [] and old.backend == ""
    assert GenerationRecord.from_dict(rec) == GenerationRecord.from_dict(json.loads(json.dumps(rec)))


def test_backend_settings_are_checked_before_anything_loads():
    from thinksafe.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="transformers"):
        GenerationConfig(backend="vlm")
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        GenerationConfig(backend="transformers", backend_options={"tensor_parallel_size": 2})
    assert GenerationConfig(backend="vllm", backend_options={"tensor_parallel_size": 2}).backend_options


def test_auto_backend_falls_back_to_transformers(tiny_loaded, monkeypatch):
    from thinksafe.generation import registry

    monkeypatch.setattr(registry, "_VLLM_OK", [False])
    assert registry.resolve_backend("auto") == "transformers"
    with pytest.raises(ConfigError, match="not installed"):
        registry.resolve_backend("vllm")
    monkeypatch.setattr(registry, "_VLLM_OK", [True])
    assert registry.resolve_backend("auto") == "vllm"
    assert registry.resolve_backend("auto", tiny_loaded) == "transformers"  # an in-memory model: no checkpoint


def test_bad_word_sequences_cover_every_spelling_of_a_tag(smollm_tokenizer):
    from thinksafe.generation.backend import bad_word_sequences

    tok = smollm_tokenizer
    seqs = bad_word_sequences(tok, ("<think>",))
    spelled = {tok.decode(s) for s in seqs}
    assert tok.decode(tok("<think>", add_special_tokens=False).input_ids) in spelled  # the canonical spelling
    assert "<think" in spelled and " <think" in spelled  # the prefix ban catches "<think>\n" as well
    for s in seqs:  # every sequence spells the tag or its prefix, nothing else
        assert tok.decode(s).strip() in ("<think>", "<think")
    assert all(1 <= len(s) <= 3 for s in seqs)


def test_stop_strings_wait_for_min_tokens_on_transformers(tiny_loaded):
    from thinksafe.generation.backend import GenerateRequest
    from thinksafe.generation.hf_backend import TransformersBackend

    backend = TransformersBackend(tiny_loaded)
    tok = tiny_loaded.tokenizer
    body = tok("END one two three four five six END more", add_special_tokens=False).input_ids
    c = backend._finish(body, GenerateRequest([1], 50, stop=("END",), min_tokens=4))
    assert c.finish_reason == "stop_string" and len(c.token_ids) > 4 and tok.decode(c.token_ids).endswith("END")


def test_a_prompt_longer_than_the_context_is_refused_before_anything_is_generated(tiny_loaded, tmp_path):
    """The tiny model's context is 2,048 tokens: a prompt past it is a clear error naming the sizes (never
    silently truncated), raised before the batch runs; the finished records of the output are kept."""
    from thinksafe.errors import ModelError

    out = tmp_path / "records.jsonl"
    _engine(tiny_loaded, tmp_path).run(EXAMPLES[:2], out, progress=False)
    before = out.read_text()
    huge = Example(id="huge", prompt="lock " * 2500, benchmark="toy", split_type="asr")
    with pytest.raises(ModelError, match=r"does not fit the model's context of 2048 tokens"):
        _engine(tiny_loaded, tmp_path).run([*EXAMPLES[:2], EXAMPLES[2], huge], out, progress=False)
    assert out.read_text().startswith(before)


def test_a_resumed_output_with_a_broken_record_is_a_clear_error(tiny_loaded, tmp_path):
    from thinksafe.errors import DataError
    from thinksafe.generation.records import GenerationRecord

    out = tmp_path / "records.jsonl"
    _engine(tiny_loaded, tmp_path).run(EXAMPLES[:2], out, progress=False)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    rows[1]["n_trace_tokens"] = "six"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"records.jsonl: record 'e\d' has field\(s\) of the wrong type: n_trace_tokens"):
        _engine(tiny_loaded, tmp_path).run(EXAMPLES[:2], out, progress=False)
    del rows[1]["text"]
    with pytest.raises(DataError, match=r"lacks field\(s\) \['text'\]"):
        GenerationRecord.from_dict(rows[1])
    assert GenerationRecord.from_dict(rows[0] | {"unknown_later_field": 1}).id == rows[0]["id"]  # newer fields pass
