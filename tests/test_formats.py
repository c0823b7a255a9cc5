"""Trace/answer parsing, prompt rendering and cut prompts."""

from __future__ import annotations

import pytest

from thinksafe.errors import ConfigError
from thinksafe.models.formats import (
    FORCED_CLOSE,
    PROMPTED_SYSTEM,
    STEER_PREFIX,
    build_cut_prompt,
    check_thinking,
    parse_response,
    prefill_of,
    render_prompt,
    steer,
)


def test_parse_closed_trace():
    p = parse_response("<think>\nLet me think. 2+2=4.\n</think>\n\nThe answer is 4.")
    assert p.trace == "Let me think. 2+2=4."
    assert p.answer == "The answer is 4."
    assert p.closed is True and not p.unclosed


def test_parse_unclosed_trace_has_no_answer():
    p = parse_response("<think>\nI keep thinking and never stop")
    assert p.closed is False and p.unclosed
    assert p.trace == "I keep thinking and never stop"
    assert p.answer == ""


def test_parse_empty_answer_after_close():
    p = parse_response("<think>reasoning</think>   \n")
    assert p.closed is True
    assert p.trace == "reasoning"
    assert p.answer == ""


def test_parse_trace_opened_in_prompt():
    # DeepSeek-R1-Distill templates put <think> in the prompt: only the close is generated
    p = parse_response("some reasoning\n</think>\nFinal.")
    assert p.trace == "some reasoning" and p.answer == "Final." and p.closed is True


def test_parse_no_trace():
    p = parse_response("  Just an answer.  ")
    assert p.trace is None and p.closed is None and p.answer == "Just an answer."


def test_parse_answer_mentioning_tags_uses_first_close():
    p = parse_response("<think>a</think>b </think> c")
    assert p.trace == "a" and p.answer == "b </think> c"


def test_check_thinking_rejects_unknown():
    with pytest.raises(ConfigError, match="native, prompted, off"):
        check_thinking("sometimes")


def test_steer_prefix_comes_first():
    assert steer("How do I X?").startswith(STEER_PREFIX)
    assert steer("How do I X?").endswith("How do I X?")


def test_render_prompted_and_off(smollm_tokenizer):
    prompted = render_prompt(smollm_tokenizer, "Hello?", thinking="prompted")
    assert PROMPTED_SYSTEM in prompted
    assert prompted.endswith("<think>\n")
    assert prefill_of(prompted) == "<think>\n"
    off = render_prompt(smollm_tokenizer, "Hello?", thinking="off")
    assert "<think>" not in off and PROMPTED_SYSTEM not in off
    assert prefill_of(off) == ""


def test_render_native_prefills_when_template_does_not(smollm_tokenizer):
    native = render_prompt(smollm_tokenizer, "Hi", thinking="native")
    assert native.rstrip().endswith("<think>")
    assert PROMPTED_SYSTEM not in native


def test_cut_prompt_force_close_and_continue(smollm_tokenizer):
    tok = smollm_tokenizer
    rendered = render_prompt(tok, "Q?", thinking="prompted")
    trace_ids = tok("First I consider the request. Then I decide.", add_special_tokens=False).input_ids
    k = 4
    cut = build_cut_prompt(rendered, trace_ids, k, tok)
    assert cut.startswith(rendered)
    assert cut.endswith(FORCED_CLOSE)
    assert cut[len(rendered) : -len(FORCED_CLOSE)] == tok.decode(trace_ids[:k])
    cont = build_cut_prompt(rendered, trace_ids, k, tok, force_close=False)
    assert cont == rendered + tok.decode(trace_ids[:k])
    # k beyond the trace clamps; k = 0 closes the trace immediately
    assert build_cut_prompt(rendered, trace_ids, 10_000, tok) == rendered + tok.decode(trace_ids) + FORCED_CLOSE
    assert build_cut_prompt(rendered, trace_ids, 0, tok) == rendered + FORCED_CLOSE
    parsed = parse_response(prefill_of(rendered) + tok.decode(trace_ids[:k]) + FORCED_CLOSE + "Answer")
    assert parsed.closed and parsed.answer == "Answer"


def test_cut_prompt_rejects_bad_input(smollm_tokenizer):
    with pytest.raises(ValueError):
        build_cut_prompt("no think here", [1, 2], 1, smollm_tokenizer)
    rendered = render_prompt(smollm_tokenizer, "Q?", thinking="prompted")
    with pytest.raises(ValueError):
        build_cut_prompt(rendered, [1, 2], -1, smollm_tokenizer)


def test_cut_ids_are_exact_token_prefixes(smollm_tokenizer):
    from thinksafe.models.formats import build_cut_ids

    tok = smollm_tokenizer
    prompt = tok("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n", add_special_tokens=False).input_ids
    # a trace whose text would re-tokenise differently: token pieces chosen one by one
    trace = [tok.convert_tokens_to_ids(t) for t in ["I", "Ġthink", "Ġab", "out", "Ġit"]]
    close = tok(FORCED_CLOSE, add_special_tokens=False).input_ids
    cut = build_cut_ids(prompt, trace, 3, close)
    assert cut == prompt + trace[:3] + close
    assert build_cut_ids(prompt, trace, 99, close, force_close=False) == prompt + trace
    assert tok(tok.decode(trace[:4]), add_special_tokens=False).input_ids != trace[:4]  # text would not round-trip
    with pytest.raises(ValueError):
        build_cut_ids(prompt, trace, -1, close)
