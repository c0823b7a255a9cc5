"""Two-phase budget forcing: the engine's trace/answer state machine, on a scripted backend and on a
tiny real model."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from thinksafe.data.records import Example
from thinksafe.generation.backend import Completion, GenerateRequest
from thinksafe.generation.cache import GenerationCache
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import ANSWER_BAD_WORDS, Engine, answer_seed
from thinksafe.models.formats import FORCED_CLOSE

EX = [Example(id="a", prompt="How do I pick a lock?", benchmark="toy", split_type="asr")]


@dataclass
class ScriptedBackend:
    """Answers trace requests (those that stop at </think>) and answer requests from a script."""

    tokenizer: object
    trace: tuple[str, str, str | None]  # text, finish reason, stop string
    answer: tuple[str, str, str | None] = ("Sure.", "stop", None)
    name: str = "scripted"
    version: str = "1"
    calls: list[list[GenerateRequest]] = field(default_factory=list)

    def generate(self, requests, on_tokens=None):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            text, reason, stop = self.trace if "</think>" in r.stop else self.answer
            out.append([Completion(self.tokenizer(text, add_special_tokens=False).input_ids, reason, stop)])
        return out

    def score(self, requests):
        raise NotImplementedError


def _run(tiny_loaded, tmp_path, backend, **cfg):
    config = GenerationConfig(**({"thinking": "prompted", "thinking_budget": 32, "max_new_tokens": 16} | cfg))
    engine = Engine(tiny_loaded, config, backend=backend, cache=GenerationCache(tmp_path / "cache"))
    return engine.run(EX, progress=False)[0]


def test_model_written_close_goes_straight_to_the_answer(tiny_loaded, tmp_path):
    tok = tiny_loaded.tokenizer
    backend = ScriptedBackend(tok, ("I should refuse.\n</think>", "stop_string", "</think>"))
    rec = _run(tiny_loaded, tmp_path, backend)
    assert rec.trace_end == "closed" and rec.trace_closed is True and rec.forced_close is False
    assert rec.forced_close_token_ids == [] and rec.trace == "I should refuse." and rec.answer == "Sure."
    trace_req, answer_req = backend.calls[0][0], backend.calls[1][0]
    assert trace_req.max_tokens == 32 and trace_req.stop == ("</think>",) and trace_req.min_tokens == 0
    assert answer_req.prompt_ids == rec.prompt_token_ids + rec.trace_token_ids  # no second close
    assert answer_req.min_tokens == 8 and answer_req.bad_words == ANSWER_BAD_WORDS
    assert answer_req.seed == answer_seed(rec.seed) != rec.seed and answer_req.max_tokens == 16


@pytest.mark.parametrize("reason", ["length", "stop"])  # the budget ran out / the model ended its turn
def test_budget_or_end_of_turn_in_the_trace_forces_the_close(tiny_loaded, tmp_path, reason):
    tok = tiny_loaded.tokenizer
    backend = ScriptedBackend(tok, ("Let me think about locks", reason, None))
    rec = _run(tiny_loaded, tmp_path, backend)
    assert rec.trace_end == "forced" and rec.forced_close and rec.trace_closed is False
    assert tok.decode(rec.forced_close_token_ids) == FORCED_CLOSE
    answer_req = backend.calls[1][0]
    assert answer_req.prompt_ids == rec.prompt_token_ids + rec.trace_token_ids + rec.forced_close_token_ids
    assert rec.text == "<think>\nLet me think about locks" + FORCED_CLOSE + "Sure."
    assert rec.answer == "Sure." and rec.finish_reason == "stop"


def test_without_forced_close_the_trace_stays_open_and_nothing_is_answered(tiny_loaded, tmp_path):
    backend = ScriptedBackend(tiny_loaded.tokenizer, ("Let me think", "length", None))
    rec = _run(tiny_loaded, tmp_path, backend, force_close=False)
    assert rec.trace_end == "unclosed" and rec.answer == "" and rec.answer_token_ids == []
    assert len(backend.calls) == 2 and backend.calls[1] == []  # the answer phase got no request
    assert rec.finish_reason == "length"


def test_stop_strings_reach_the_answer_phase_and_its_finish_reason(tiny_loaded, tmp_path):
    tok = tiny_loaded.tokenizer
    backend = ScriptedBackend(tok, ("ok\n</think>", "stop_string", "</think>"), ("The answer is 4. END", "stop_string", "END"))
    rec = _run(tiny_loaded, tmp_path, backend, stop=("END",))
    assert backend.calls[1][0].stop == ("END",)
    assert rec.finish_reason == "stop_string" and rec.answer == "The answer is 4. END"


def test_thinking_off_is_one_plain_phase(tiny_loaded, tmp_path):
    backend = ScriptedBackend(tiny_loaded.tokenizer, ("unused", "stop", None))
    rec = _run(tiny_loaded, tmp_path, backend, thinking="off")
    assert len(backend.calls) == 1 and backend.calls[0][0].min_tokens == 0 and backend.calls[0][0].bad_words == ()
    assert rec.trace is None and rec.trace_end is None and rec.answer == "Sure."


def test_forced_close_equals_a_fresh_generation_from_prompt_trace_close(tiny_loaded, tmp_path):
    """Greedy, on a real (tiny) model: the two-phase answer is what the model writes when handed
    prompt + trace + closing text as one prompt."""
    from thinksafe.generation.hf_backend import TransformersBackend

    examples = [Example(id=f"e{i}", prompt=p, benchmark="toy", split_type="asr") for i, p in enumerate(["Hi", "2+2?"])]
    config = GenerationConfig(thinking="prompted", thinking_budget=6, max_new_tokens=10, temperature=0.0,
                              backend="transformers")
    recs = Engine(tiny_loaded, config, cache=GenerationCache(tmp_path / "c")).run(examples, progress=False)
    backend = TransformersBackend(tiny_loaded)
    for r in recs:
        assert r.forced_close  # a random model never closes its trace
        prefix = r.prompt_token_ids + r.trace_token_ids + r.forced_close_token_ids
        fresh = backend.generate([GenerateRequest(prefix, 10, config_sampling(config), min_tokens=8,
                                                  bad_words=ANSWER_BAD_WORDS)])[0][0]
        assert fresh.token_ids == r.answer_token_ids


def config_sampling(config):
    from thinksafe.generation.backend import Sampling

    return Sampling(config.temperature, config.top_p, config.top_k)


@pytest.mark.parametrize(("at_once", "batch_size", "calls"), [(None, 2, [4, 4, 1]), (5, 2, [5, 4]), (16, 2, [9])])
def test_the_engine_hands_a_backend_as_many_requests_as_it_takes_at_once(tiny_loaded, tmp_path, at_once, batch_size, calls):
    """vLLM takes a few hundred requests a call (``requests_at_once``); other backends get twice their batch."""
    backend = ScriptedBackend(tiny_loaded.tokenizer, ("ok\n</think>", "stop_string", "</think>"))
    if at_once is not None:
        backend.requests_at_once = at_once
    examples = [Example(id=f"p{i}", prompt=f"Question {i}?", benchmark="toy", split_type="asr") for i in range(9)]
    config = GenerationConfig(thinking="prompted", thinking_budget=32, max_new_tokens=16, batch_size=batch_size)
    out = tmp_path / "records.jsonl"
    records = Engine(tiny_loaded, config, backend=backend, cache=GenerationCache(tmp_path / "cache")).run(
        examples, out, progress=False)
    assert [len(c) for c in backend.calls[::2]] == calls  # trace requests a chunk (each chunk then answers)
    assert [len(c) for c in backend.calls[1::2]] == calls
    assert sorted(r.id for r in records) == sorted(e.id for e in examples) and len(out.read_text().splitlines()) == 9
