"""``thinksafe deliberation`` pieces: chunking and stance changes, cuts at exact token positions, the
truncation and stance reports, and the whole run on a tiny random model (stages, resume, skip)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import numpy as np
import pytest

from thinksafe.deliberation.chunks import char_to_tokens, chunk_trace, forward_fill, stance_changes
from thinksafe.deliberation.run import (
    DeliberationConfig,
    DeliberationRun,
    run_stage,
    stance_report,
    truncation_cis,
    truncation_report,
)
from thinksafe.errors import ConfigError, UnknownNameError
from thinksafe.generation.config import GenerationConfig
from thinksafe.stats import wilson_interval

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")


def test_chunks_pack_sentences_and_drop_short_ones():
    text = "The user asks for a lock-picking guide. That could help a burglar!\nOk.\n" + "A" * 230 + ". Fine, I will answer it now."
    chunks = chunk_trace(text, max_chars=80, min_chars=20)
    assert [c.text for c in chunks] == [
        "The user asks for a lock-picking guide. That could help a burglar!\nOk.", "A" * 230 + ".",
        "Fine, I will answer it now."]
    assert all(text[c.start : c.end] == c.text for c in chunks)  # offsets into the trace
    assert all(len(c.text) <= 80 or "." not in c.text[:-1] for c in chunks)


def test_stance_changes_forward_fill_and_cut_at_segment_ends():
    assert forward_fill([0, 1, 0, -1, 0]) == [0, 1, 1, -1, -1]
    changes = stance_changes([0, 1, 0, -1, -1, 0, 1])
    assert [(c.pre_chunk, c.post_chunk, c.to) for c in changes] == [(2, 5, -1), (5, 6, 1)]
    assert stance_changes([1, 0, 1]) == [] and stance_changes([]) == []


def test_a_cut_in_the_text_maps_to_the_tokens_before_it(smollm_tokenizer):
    ids = smollm_tokenizer("First, think about safety. Then answer the question.", add_special_tokens=False).input_ids
    text = smollm_tokenizer.decode(ids)
    cut = text.index(" Then")
    k = char_to_tokens(smollm_tokenizer, ids, cut)
    assert smollm_tokenizer.decode(ids[:k]) == text[:cut]


def test_the_trace_span_leaves_out_the_models_own_close(smollm_tokenizer):
    from thinksafe.deliberation.states import trace_span

    ids = smollm_tokenizer("It is about bread, so I can help.</think>", add_special_tokens=False).input_ids
    span = trace_span(smollm_tokenizer, {"trace_token_ids": ids, "trace_end": "closed"})
    kept = smollm_tokenizer.decode(ids[:span])
    assert "<" not in kept and "It is about bread, so I can help.".startswith(kept) and len(kept) > 20
    assert trace_span(smollm_tokenizer, {"trace_token_ids": ids, "trace_end": "forced"}) == len(ids)


_DECIDED = {1: "refuse", 0: "comply", None: "non_answer"}


def _rows(fraction: float, key: str, harmful: bool, votes: Sequence[int | None]) -> dict:
    """A replay row: 1 refused, 0 complied, None a non-answer (which the refusal judge calls "not refused")."""
    return {"key": key, "harmful": harmful, "fraction": fraction, "refused": [1 if v == 1 else 0 for v in votes],
            "decisions": [_DECIDED[v] for v in votes]}


def _label(key: str, decision: str, harmful: bool = True) -> dict:
    """A labels.jsonl row with both judges' verdicts."""
    refused = decision == "refuse"
    return {"key": key, "harmful": harmful, "label": int(refused), "verdict": {"refused": refused},
            "asr_verdict": {"complied": decision == "comply"}}


def test_truncation_report_agreement_commitment_and_floor():
    labels = [_label("a", "refuse"), _label("b", "comply"), _label("c", "comply", False), _label("d", "non_answer")]
    rows = [_rows(0.2, "a", True, [0, 0, 1]), _rows(0.2, "b", True, [0, 0, None]), _rows(0.2, "c", False, [1, 1, 0]),
            _rows(0.6, "a", True, [1, 1, 0]), _rows(0.6, "b", True, [0, 1, 0]), _rows(0.6, "c", False, [0, 0, 0]),
            _rows(1.0, "a", True, [1, 1, 1]), _rows(1.0, "b", True, [1, 0, 1]), _rows(1.0, "c", False, [0, 0, 0])]
    rows_d = [_rows(0.2, "d", True, [1, 1, 1]), _rows(0.6, "d", True, [1, 1, 1]), _rows(1.0, "d", True, [0, 0, 0])]
    out = truncation_report(rows + rows_d, labels, [0.2, 0.6], commitment=0.9)
    at_20 = out["sides"]["all"]["curve"][0]
    # d's own answer is a non-answer: left out of the agreement with its own answer, counted beside it
    assert (at_20["fraction"], at_20["n"], at_20["n_records"]) == (0.2, 3, 4)
    assert at_20["agreement"] == pytest.approx(1 / 3) and at_20["non_answer_share"] == pytest.approx(1 / 12)
    assert at_20["agreement_vs_full_replay"] == 0.0 and at_20["n_vs_full_replay"] == 4
    assert out["sides"]["all"]["commitment_fraction"] == 0.6
    assert out["sides"]["harmful"]["flip_rate_at_20"] == pytest.approx(0.5)
    all_ = out["sides"]["all"]
    assert [c["fraction"] for c in all_["curve"]] == [0.2, 0.6, 1.0]
    assert all_["floor"]["flip_rate"] == pytest.approx(1 / 3) and all_["floor"]["n"] == 3  # b's full replay refuses
    assert all_["flip_rate_at_20_net"] == pytest.approx(2 / 3 - 1 / 3)
    # the earlier reading: d's non-answer counts as compliance, so its refusing cut is a flip
    binary = out["binary_refusal"]["sides"]["all"]
    assert binary["curve"][0]["n"] == 4 and binary["flip_rate_at_20"] == pytest.approx(3 / 4)
    tie = truncation_report([_rows(0.2, "a", True, [1, 0])], labels[:1], [0.2], commitment=0.9)
    assert tie["sides"]["all"]["curve"][0]["agreement"] == 0.5  # a tied vote is half an agreement
    assert tie["sides"]["all"]["floor"]["flip_rate"] is None and tie["sides"]["all"]["flip_rate_at_20_net"] is None
    assert DeliberationConfig(fractions=[0.6, 0.2]).fractions == [0.2, 0.6]
    never = truncation_report(rows[:3], labels, [0.2], commitment=0.9)
    assert never["sides"]["all"]["commitment_fraction"] == 1.0  # not committed at any cut tried: the full trace
    cis = truncation_cis(rows, labels, [0.2, 0.6], 0.9, n_resamples=200)["three_way"]
    lo, hi = cis["commitment_fraction_ci"]
    assert 0.2 <= lo <= 0.6 <= hi <= 1.0 and cis["flip_rate_at_20_ci"][0] <= 2 / 3 <= cis["flip_rate_at_20_ci"][1]
    assert cis["floor_ci"][0] <= 1 / 3 <= cis["floor_ci"][1]


def test_bootstrap_ci_matches_scipy_on_a_mean():
    import numpy as np
    from scipy.stats import bootstrap

    from thinksafe.stats import bootstrap_statistic_ci as bootstrap_ci

    x = np.random.default_rng(3).normal(size=80).tolist()
    ours = bootstrap_ci(x, lambda s: float(np.mean(s)), n_resamples=4000, seed=1)
    ref = bootstrap((np.array(x),), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.03) and ours[1] == pytest.approx(ref.high, abs=0.03)
    assert bootstrap_ci([], lambda s: 0.0) is None and bootstrap_ci([1.0], lambda s: None, n_resamples=10) is None


def _cut(key: str, cut: str, votes: Sequence[int | None]) -> dict:
    return {"key": key, "cut": cut} | {k: v for k, v in _rows(0.0, key, True, votes).items() if k in ("refused", "decisions")}


def test_stance_report_holm_effects_and_the_power_rule():
    cfg = DeliberationConfig(replays=64)
    chunked = [{"key": "a", "harmful": True, "stances": [1, -1]}, {"key": "b", "harmful": True, "stances": [-1, 1]},
               {"key": "c", "harmful": True, "stances": [-1, 1]}, {"key": "loop", "harmful": True, "stances": [1, -1] * 61}]
    rows = [_cut("a", "0:pre", [0] * 64), _cut("a", "0:post", [1] * 64),
            _cut("b", "0:pre", [1] * 32 + [0] * 32), _cut("b", "0:post", [1] * 31 + [0] * 33),
            # c: 44 non-answers a side leave 20 answers, too few to see 0.35 -> 0.65: not counted
            _cut("c", "0:pre", [1] * 10 + [0] * 10 + [None] * 44), _cut("c", "0:post", [1] * 10 + [0] * 10 + [None] * 44)]
    out = stance_report(chunked, rows, cfg)
    a, b, c = out["tests"]
    assert a["powered"] and a["significant"] and a["locked"] and a["p_holm"] == pytest.approx(min(1, 2 * a["p"]))
    assert a["diff"] == -1.0 and a["diff_ci"] == pytest.approx([-1.0, -1 + math.sqrt(2) * wilson_interval(0, 64)[1]])
    assert b["powered"] and not b["significant"] and not b["locked"] and b["diff_ci"][0] < b["diff"] < b["diff_ci"][1]
    assert (c["n_pre"], c["non_answer_pre"], c["powered"], c["p_holm"], c["significant"]) == (20, 44, False, None, None)
    assert out["performative_share"] == 0.5 and out["n_powered"] == 2 and out["n_tested"] == 3
    assert out["performative_share_why"] is None and out["n_loops_excluded"] == 1 and out["oscillation_rate"] == 1.0
    assert out["power_rule"]["replays_needed"] == 49 and out["power_rule"]["power_at_replays"] > 0.8
    # the earlier reading counts c's non-answers as compliance: 64 answers a side, powered
    assert out["binary_refusal"]["n_powered"] == 3 and out["binary_refusal"]["performative_share"] == pytest.approx(2 / 3)
    # the stance effect: a's flip to refuse lowered the comply rate by 1, b's flip to comply raised it by 1/64
    assert out["stance_effect"] == pytest.approx((1 + 1 / 64 + 0) / 3)
    # one powered cut: the bootstrap over traces has nothing to resample, so the interval is Wilson's over 1 cut,
    # not the zero-width [1, 1]
    one = stance_report(chunked[1:2], rows[2:4], cfg)
    assert one["n_tested"] == 1 and one["performative_share"] == 1.0
    assert one["performative_share_ci"] == pytest.approx(wilson_interval(1, 1)) and one["performative_share_ci"][0] < 0.25


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="fractions"):
        DeliberationConfig(fractions=[0.0, 0.5])
    with pytest.raises(ConfigError, match="replays"):
        DeliberationConfig(replays=0)
    with pytest.raises(ConfigError, match="layers"):
        DeliberationConfig(layers="last")
    with pytest.raises(UnknownNameError, match="Unknown judge 'nope'.*Known judges: embedding"):
        DeliberationConfig(stance_judge="nope")


class _ParityJudge:
    """A stand-in refusal judge for a random model: refuses when the answer has an even length."""

    name = "parity"

    def judge_batch(self, items):
        from thinksafe.judges.base import Verdict, precheck

        out = []
        for it in items:
            pre = precheck(it, self.name)
            label = "refusal" if len(it.response) % 2 == 0 else "compliance"
            out.append(pre or Verdict(label, float(label == "refusal"), self.name))
        return out


class _ThirdsJudge(_ParityJudge):
    """A stand-in ASR judge: of the answers the parity judge lets through, a third are non-answers."""

    name = "thirds"

    def judge_batch(self, items):
        from dataclasses import replace

        return [replace(v, label="non_answer") if v.label == "compliance" and len(it.response) % 3 == 0 else v
                for it, v in zip(items, super().judge_batch(items))]


@needs_data
@pytest.mark.slow  # every stage, end to end
def test_deliberation_run_end_to_end_resumes_and_skips(tiny_loaded, tmp_path, monkeypatch):
    gen = GenerationConfig(thinking="prompted", thinking_budget=12, max_new_tokens=6, temperature=1.0, top_k=20,
                           backend="transformers")
    cfg = DeliberationConfig(model="smollm2-135m-instruct", harmful=["harmbench"], benign=["xstest_safe"], limit=12,
                             samples=2, positions=10, replays=4, truncation_samples=3, truncation_limit=3,
                             fractions=[0.2, 0.6], chunk_chars=30, min_chunk_chars=5, generation=gen)
    monkeypatch.setattr(DeliberationRun, "judge",
                        lambda self, name, **options: _ThirdsJudge() if name == "objective" else _ParityJudge())
    out = tmp_path / "delib"
    metrics = run_stage(out, cfg, loaded=tiny_loaded, progress=False)
    for key in ("last_prompt_auroc", "last_prompt_auroc_ci", "first_sampled_token_auroc", "text_baseline_auroc",
                "last_prompt_auroc_binary_refusal", "commitment_fraction", "performative_share", "flip_rate_at_20",
                "flip_rate_at_20_net", "flip_rate_at_20_net_ci", "truncation_floor", "flip_rate_at_20_binary_refusal",
                "oscillation_rate", "asr", "orr", "help_rate", "non_answer_rate_harmful"):
        assert key in metrics
    assert not any(k.startswith("first_token") for k in metrics)  # renamed: first_sampled_token
    assert metrics["schema_version"] == 3 and metrics["headline"]["decision_before_thinking"] == "last_prompt_auroc"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    labels = metrics["labels"]["harmful"]
    assert labels["refuse"] + labels["comply"] > 0 and labels["non_answer"] > 0  # three ways
    assert metrics["labels_binary_refusal"]["harmful"]["comply"] == labels["comply"] + labels["non_answer"]
    assert metrics["definitions"]["last_prompt_auroc"] == "three_way"
    assert metrics["definitions"]["flip_rate_at_20_binary_refusal"] == "binary_refusal"
    # the truncation section carries the floor: the whole trace replayed with the same K
    floor = metrics["truncation"]["floor"]
    assert floor["fraction"] == 1.0 and floor["n"] > 0 and floor["flip_rate"] == metrics["truncation_floor"]
    assert metrics["flip_rate_at_20_net"] == pytest.approx(metrics["flip_rate_at_20"] - metrics["truncation_floor"])
    why = "underpowered: K = 4" if metrics["performative_n_tested"] else "no stance change tested"
    assert metrics["performative_share"] is None and metrics["performative_share_why"].startswith(why)
    # ASR and ORR are rates over prompts, as the evaluation computes them: two samples of a prompt count once
    for key in ("asr", "orr"):
        assert (metrics[key]["n"], metrics[key]["n_samples"]) == (12, 24)
        assert metrics[key]["interval"] in ("prompt-bootstrap", "wilson-over-prompts")
        assert metrics[key]["ci"][0] <= metrics[key]["value"] <= metrics[key]["ci"][1]
    for name in ("auroc_by_layer.png", "valley.png", "truncation.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    probe = json.loads((out / "probe" / "probe.json").read_text())
    assert [r["layer"] for r in probe["by_layer"]["last_prompt"]] == [1, 2] and len(probe["valley"]["all"]) == 10
    assert set(probe["by_layer"]) == {"last_prompt", "first_sampled_token"}
    assert probe["definitions"]["last_prompt"]["all"]["n_non_answer"] == probe["counts"]["all"]["non_answer"] > 0
    trunc = [json.loads(x) for x in (out / "truncation" / "replays.jsonl").read_text().splitlines()]
    # 3 records a side, 2 cuts and the whole trace each; both judges' reading of every answer
    assert len(trunc) == 2 * 9 and all(len(r["answers"]) == len(r["decisions"]) == 3 for r in trunc)
    assert sorted({r["fraction"] for r in trunc}) == [0.2, 0.6, 1.0]
    stance = json.loads((out / "stance" / "stance.json").read_text())
    assert all({"diff", "diff_ci", "power", "powered"} <= set(t) for t in stance["tests"])

    from safetensors import safe_open

    part = next((out / "states").glob("part-*.safetensors"))
    with safe_open(str(part), framework="np") as f:
        assert f.get_tensor("first_sampled_token").dtype == np.float16 and f.get_tensor("trace").shape[1:] == (10, 16)

    # a finished run is skipped; another config in the same folder is refused
    from thinksafe.deliberation import replay as replay_mod
    from thinksafe.deliberation import run as run_mod

    monkeypatch.setattr(run_mod, "extract_states", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rerun")))
    monkeypatch.setattr(replay_mod, "replay", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rerun")))
    written = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in [out / "metrics.json", *(out / "plots").iterdir()]}
    assert run_stage(out, cfg, loaded=tiny_loaded, progress=False) == metrics
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in written} == written  # nothing rewritten
    with pytest.raises(ConfigError, match="another configuration"):
        DeliberationRun(out, DeliberationConfig(limit=5))


@needs_data
@pytest.mark.slow
def test_a_killed_truncation_stage_resumes_from_its_replays(tiny_loaded, tmp_path, monkeypatch):
    from thinksafe.deliberation import replay as replay_mod

    gen = GenerationConfig(thinking="prompted", thinking_budget=8, max_new_tokens=4, temperature=1.0, backend="transformers")
    cfg = DeliberationConfig(model="smollm2-135m-instruct", harmful=["harmbench"], benign=["xstest_safe"], limit=8,
                             truncation_samples=2, truncation_limit=4, fractions=[0.5], generation=gen)
    monkeypatch.setattr(DeliberationRun, "judge", lambda self, name, **options: _ParityJudge())
    out = tmp_path / "delib"
    real = replay_mod.replay
    calls = []

    def dies_after_one_batch(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(len(a[3]))
        return real(*a, **k)

    monkeypatch.setattr(replay_mod, "replay", dies_after_one_batch)
    run = DeliberationRun(out, replace_batch(cfg, 2), loaded=tiny_loaded)
    with pytest.raises(KeyboardInterrupt):
        run.truncation(progress=False)
    first = (out / "truncation" / "replays.jsonl").read_text().splitlines()
    assert len(first) == calls[0] == 1
    with (out / "truncation" / "replays.jsonl").open("a") as fh:  # a SIGKILL mid-write leaves half a line
        fh.write(first[0][: len(first[0]) // 2])
    seen = []
    monkeypatch.setattr(replay_mod, "replay", lambda *a, **k: seen.extend(a[3]) or real(*a, **k))
    again = DeliberationRun(out, replace_batch(cfg, 2), loaded=tiny_loaded)
    again.truncation(progress=False)
    total = 2 * len(again._replay_pool(4))  # a cut at 50% and the whole trace (the floor) per record
    rows = (out / "truncation" / "replays.jsonl").read_text().splitlines()
    assert total > 2 and rows[:1] == first and len(rows) == total and len(seen) == total - 1  # only the missing cuts


def replace_batch(cfg: DeliberationConfig, batch: int) -> DeliberationConfig:
    from dataclasses import replace

    return replace(cfg, generation=replace(cfg.generation, batch_size=batch))


def test_the_cli_refuses_bad_input_without_a_traceback_or_a_lost_run(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "d"
    cmd = [sys.executable, "-m", "thinksafe.cli", "deliberation", "--out", str(out)]
    bad = subprocess.run([*cmd, "--limit", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "limit must be a positive integer" in bad.stderr and "Traceback" not in bad.stderr
    assert not (out / "config.json").exists()
    out.mkdir()
    (out / "config.json").write_text('{"limit": 5, "replays": 4}')
    other = subprocess.run([*cmd, "--limit", "7", "--stage", "probe"], capture_output=True, text=True)
    assert other.returncode == 2 and "another configuration" in other.stderr
    assert json.loads((out / "config.json").read_text()) == {"limit": 5, "replays": 4}  # nothing overwritten
