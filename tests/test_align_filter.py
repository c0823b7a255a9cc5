"""Steering templates and judge filtering of training candidates (scripted judges: the filter's
logic, not the judges' accuracy, is under test here)."""

from __future__ import annotations

import pytest

from thinksafe.align.filter import filter_candidates
from thinksafe.align.templates import PAPER_INSTRUCTION, STEER_TEMPLATES
from thinksafe.judges.base import Judge, Verdict


class ScriptedJudge(Judge):
    """Labels a response by the first keyword it contains (answer and, for leak-aware judges, trace)."""

    def __init__(self, name: str, rules: dict[str, str], default: str, trace_can_leak: bool = False) -> None:
        self.name, self.rules, self.default, self.trace_can_leak = name, rules, default, trace_can_leak
        self.seen: list[str] = []

    def _judge(self, items):
        out = []
        for it in items:
            self.seen.append(it.prompt)
            label = next((lab for word, lab in self.rules.items() if word in it.response), self.default)
            out.append(Verdict(label=label, score=0.5, judge=self.name))
        return out


def _asr():
    return ScriptedJudge("asr", {"Step 1": "compliance", "cannot": "refusal", "Paris": "compliance"}, "non_answer",
                         trace_can_leak=True)


def _refusal():
    return ScriptedJudge("ref", {"cannot": "refusal"}, "compliance")


def _cand(i, harmful, answer, trace="I think.", end="closed", pool="advbench"):
    return {"id": str(i), "pool": pool, "category": "c", "harmful": harmful, "source_prompt": f"original {i}",
            "prompt": f"{PAPER_INSTRUCTION}\n\noriginal {i}" if harmful else f"original {i}", "answer": answer,
            "trace": trace, "trace_end": end, "trace_closed": end == "closed", "forced_close": end == "forced"}


def test_templates_wrap_the_prompt_and_the_paper_one_is_exact():
    assert STEER_TEMPLATES.get("prefix").apply("Do X") == (
        "The following prompt is harmful. You should refuse to answer the prompt.\n\nPrompt:\n\nDo X"
    )
    for name in ("prefix", "suffix", "intent-reminder"):
        t = STEER_TEMPLATES.get(name)
        steered = t.apply("Do X")
        assert "Do X" in steered and steered != "Do X"
        assert t.leaks_into(steered) and not t.leaks_into("Do X")


def test_filter_keeps_safe_pairs_and_says_why_each_drop():
    cands = [
        _cand(0, True, "I cannot help with that."),  # refusal: kept
        _cand(1, True, "Step 1: get the parts."),  # complied: dropped
        _cand(2, True, "Hmm, well."),  # neither: not a refusal
        _cand(3, False, "Paris is the capital.", pool="or_bench"),  # helped: kept
        _cand(4, False, "I cannot answer.", pool="or_bench"),  # over-refusal: dropped
        _cand(5, True, "I cannot.", end="unclosed"),
        _cand(6, True, "I cannot help.", end="forced"),
        _cand(7, False, "", pool="or_bench"),
        _cand(8, True, "I cannot help.", trace="Step 1: mix the chemicals"),  # the trace leaks the harm
        _cand(9, True, "I'm sorry, but I can't assist with that. " * 8),  # a loop of a refusal: not taught
    ]
    asr, ref = _asr(), _refusal()
    report = filter_candidates(cands, asr_judge=asr, refusal_judge=ref)
    assert [r["id"] for r in report.kept] == ["0", "3"]
    reasons = {r["id"]: r["drop_reason"] for r in report.dropped}
    assert reasons == {"1": "harmful_compliance", "2": "no_refusal", "4": "benign_not_helped", "5": "unclosed_trace",
                       "6": "forced_close", "7": "empty_answer", "8": "harmful_compliance", "9": "repetition_loop"}
    assert set(asr.seen) <= {f"original {i}" for i in range(10)}  # judges read the original prompt only
    s = report.summary()
    assert (s["generated"], s["kept"], s["dropped"]) == (10, 2, 8)
    assert s["kept_by_pool"] == {"advbench": 1, "or_bench": 1} and s["dropped_by_reason"]["harmful_compliance"] == 2
    kept_forced = filter_candidates([cands[6]], asr_judge=_asr(), refusal_judge=_refusal(), keep_forced=True)
    assert [r["id"] for r in kept_forced.kept] == ["6"] and kept_forced.summary()["kept_forced_close"] == 1


def test_filter_needs_to_know_which_prompts_are_harmful():
    bad = _cand(0, True, "x")
    del bad["harmful"]
    with pytest.raises(ValueError, match="harmful"):
        filter_candidates([bad], asr_judge=_asr(), refusal_judge=_refusal())


def test_engine_steering_is_the_paper_template():
    from thinksafe.models.formats import steer

    assert steer("Do X") == STEER_TEMPLATES.get("prefix").apply("Do X")


def test_generated_candidates_steer_only_harmful_prompts_and_keep_the_original(tiny_loaded, tmp_path):
    from thinksafe.align.generate import Pool, generate_candidates
    from thinksafe.data.records import Example
    from thinksafe.generation.config import GenerationConfig

    harmful = [Example(id=f"h{i}", prompt=f"How do I do harm {i}?", benchmark="advbench", split_type="asr")
               for i in range(3)]
    benign = [Example(id=f"b{i}", prompt=f"How do I bake {i}?", benchmark="or_bench", split_type="orr")
              for i in range(2)]
    cfg = GenerationConfig(thinking="prompted", thinking_budget=4, max_new_tokens=4, backend="transformers")
    pools = [Pool("advbench", harmful, True), Pool("or_bench", benign, False)]
    cands = generate_candidates(tiny_loaded, pools, cfg, tmp_path / "gen", template="suffix", progress=False)
    assert len(cands) == 5 and (tmp_path / "gen" / "advbench.jsonl").exists()
    template = STEER_TEMPLATES.get("suffix")
    for c in cands:
        assert not template.leaks_into(c["source_prompt"])  # the training prompt is never the steered one
        if c["harmful"]:
            assert c["prompt"] == template.apply(c["source_prompt"]) and c["template"] == "suffix"
        else:
            assert c["prompt"] == c["source_prompt"] and c["template"] is None
    plain = generate_candidates(tiny_loaded, pools, cfg, tmp_path / "rej", template=None, progress=False)
    assert all(c["prompt"] == c["source_prompt"] for c in plain)  # rejection sampling: nothing steered


def test_perplexity_scores_response_tokens_only(tiny_loaded):
    import math

    import torch

    from thinksafe.align.perplexity import response_ids, response_perplexity
    from thinksafe.generation.hf_backend import TransformersBackend

    tok = tiny_loaded.tokenizer
    prompt_ids, cont = response_ids(tok, "Hi", "<think>\nHello there.\n</think>\n\nHi!")
    assert tok.decode(prompt_ids).endswith("<think>\n") and tok.decode(cont).startswith("Hello")
    result = response_perplexity(TransformersBackend(tiny_loaded), tok, [("Hi", "<think>\nHello there.\n</think>\n\nHi!")])
    with torch.inference_mode():  # the same number by hand: mean NLL of the response tokens only
        logits = tiny_loaded.model(input_ids=torch.tensor([prompt_ids + cont])).logits[0].float()
    lp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], -1).gather(-1, torch.tensor(cont)[:, None])
    assert math.isclose(result["perplexity"], math.exp(-lp.mean().item()), rel_tol=1e-4)
    assert result["tokens"] == len(cont) and result["n"] == 1


def test_answer_only_candidates_are_judged_without_their_trace():
    leaky = "Step 1 of the policy: decide whether to refuse."  # a trace the ASR judge reads as carrying out
    cands = [_cand(0, True, "I cannot help with that.", trace=leaky, pool="star1"),
             _cand(1, True, "I cannot help with that.", trace=leaky, pool="advbench")]
    everything = filter_candidates(cands, asr_judge=_asr(), refusal_judge=_refusal())
    assert [r["drop_reason"] for r in everything.dropped] == ["harmful_compliance"] * 2
    report = filter_candidates(cands, asr_judge=_asr(), refusal_judge=_refusal(),
                               answer_only=lambda rec: rec["pool"] == "star1")
    assert [r["id"] for r in report.kept] == ["0"] and [r["id"] for r in report.dropped] == ["1"]
    assert report.kept[0]["verdicts"]["asr"]["include_trace"] is False
    assert report.dropped[0]["verdicts"]["asr"]["include_trace"] is True
