"""The deliberation measures on planted data (seconds, no model): three-way labels in the probe, the
truncation noise floor, the power rule of the stance tests, and old run folders that still open."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thinksafe.deliberation.decisions import COMPLY, NON_ANSWER, REFUSE, record_decision, three_way
from thinksafe.deliberation.probes import ProbeConfig
from thinksafe.deliberation.run import DeliberationConfig, stance_report, truncation_cis, truncation_report
from thinksafe.deliberation.scorecard import probe_report
from thinksafe.deliberation.states import StateSet, load_states


def _label(key: str, decision: str, harmful: bool = True) -> dict:
    refused = decision == REFUSE
    bench, rest = key.split("/", 1)
    return {"key": key, "benchmark": bench, "id": rest.split("#")[0], "harmful": harmful, "label": int(refused),
            "verdict": {"refused": refused}, "asr_verdict": {"complied": decision == COMPLY}}


def test_three_way_decisions_keep_the_refusals_and_split_the_rest():
    assert three_way(True, True) == REFUSE  # a refusal stays a refusal whatever the ASR judge says
    assert three_way(False, True) == COMPLY and three_way(False, False) == NON_ANSWER
    assert three_way(None, False) == NON_ANSWER  # an empty or unclosed answer: no answer at all
    assert record_decision(_label("hb/1#0", NON_ANSWER)) == NON_ANSWER


def _planted_states(n: int = 200, dim: int = 16, seed: int = 0):
    """Refusals along +direction, compliance along -direction, and non-answers that look like refusals:
    read as compliance (the binary reading) they blur the probe; left out (three-way) they do not."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    decisions = rng.choice([REFUSE, COMPLY, NON_ANSWER], size=n, p=[0.3, 0.4, 0.3])
    sign = np.where(decisions == COMPLY, -1.0, 1.0)
    keys = [f"{'hb' if i % 2 == 0 else 'xs'}/{i}#0" for i in range(n)]

    def states():
        return rng.normal(size=(n, dim)) + 2.0 * np.outer(sign, direction)

    st = StateSet(keys, [1, 2], np.stack([states(), states()], axis=1), np.stack([states(), states()], axis=1),
                  rng.normal(size=(n, 4, dim)))
    labels = {k: _label(k, d, harmful=k.startswith("hb")) for k, d in zip(keys, decisions)}
    records = {k: {"prompt": f"prompt number {i} about topic {i % 7}"} for i, k in enumerate(keys)}
    return st, labels, records, decisions


def test_a_probe_on_planted_three_way_labels_leaves_non_answers_out_and_counts_them():
    st, labels, records, decisions = _planted_states()
    out = probe_report(st, labels, records, ProbeConfig(pca=8, folds=3, bootstrap=50))
    n_refuse, n_comply, n_non = ((decisions == d).sum() for d in (REFUSE, COMPLY, NON_ANSWER))
    headline = out["definitions"]["last_prompt"]["all"]
    assert (headline["n"], headline["n_refuse"], headline["n_comply"], headline["n_non_answer"]) == (
        n_refuse + n_comply, n_refuse, n_comply, n_non)
    assert out["counts"]["all"] == {REFUSE: n_refuse, COMPLY: n_comply, NON_ANSWER: n_non}
    harmful_non = sum(d == NON_ANSWER for k, d in zip(st.keys, decisions) if k.startswith("hb"))
    assert out["definitions"]["last_prompt"]["harmful"]["n_non_answer"] == out["counts"]["harmful"][NON_ANSWER] == harmful_non
    assert headline["auroc"] > 0.95 and out["definitions"]["first_sampled_token"]["all"]["auroc"] > 0.95
    assert len(out["oof"]["last_prompt"]["keys"]) == n_refuse + n_comply
    # the earlier binary reading counts the refusal-like non-answers as compliance: a much weaker probe
    binary = out["binary_refusal"]["definitions"]["last_prompt"]["all"]
    assert binary["n"] == len(st.keys) and binary["auroc"] < 0.85
    assert set(out["by_layer"]) == {"last_prompt", "first_sampled_token"} and "by_layer" not in out["binary_refusal"]


def _noise(n_prompts: int, k: int, seed: int, *, floor_agrees: bool = False):
    """Each record's own answer and every replayed answer drawn at random (refuse or comply, a tenth
    non-answers), whatever the cut: nothing the trace holds decides anything. With ``floor_agrees``
    the whole-trace replay repeats the record's own answer instead (no sampling noise at all)."""
    rng = np.random.default_rng(seed)
    labels, rows = [], []
    for i in range(n_prompts):
        key = f"hb/{i}#0"
        own = rng.choice([REFUSE, COMPLY])
        labels.append(_label(key, own, harmful=i % 2 == 0))
        for f in (0.2, 0.6, 1.0):
            decisions = ([own] * k if floor_agrees and f == 1.0
                         else list(rng.choice([REFUSE, COMPLY, NON_ANSWER], size=k, p=[0.45, 0.45, 0.1])))
            rows.append({"key": key, "harmful": i % 2 == 0, "fraction": f, "decisions": decisions,
                         "refused": [int(d == REFUSE) for d in decisions]})
    return labels, rows


def test_pure_noise_replays_flip_as_often_as_their_floor():
    labels, rows = _noise(300, 5, seed=1)
    out = truncation_report(rows, labels, [0.2, 0.6], commitment=0.9)["sides"]["all"]
    cis = truncation_cis(rows, labels, [0.2, 0.6], 0.9, n_resamples=400)["three_way"]
    assert out["flip_rate_at_20"] == pytest.approx(0.5, abs=0.07)
    assert out["floor"]["flip_rate"] == pytest.approx(out["flip_rate_at_20"], abs=0.08)  # the flip is all floor
    lo, hi = cis["flip_rate_at_20_net_ci"]
    assert lo < 0 < hi and abs(out["flip_rate_at_20_net"]) < 0.08 and hi - lo < 0.3
    assert out["curve"][0]["non_answer_share"] == pytest.approx(0.1, abs=0.02)
    assert out["flip_rate_at_20_vs_full_replay"] == pytest.approx(0.5, abs=0.1)

    # the same cuts against a floor with no noise: the flip at 20% is real and the net rate says so
    labels, rows = _noise(300, 5, seed=1, floor_agrees=True)
    out = truncation_report(rows, labels, [0.2, 0.6], commitment=0.9)["sides"]["all"]
    lo, hi = truncation_cis(rows, labels, [0.2, 0.6], 0.9, n_resamples=400)["three_way"]["flip_rate_at_20_net_ci"]
    assert out["floor"]["flip_rate"] == 0.0 and out["flip_rate_at_20_net"] == pytest.approx(0.5, abs=0.07) and lo > 0.3


def _stance_rows(k: int, comply_pre: int, comply_post: int, key: str = "t") -> list[dict]:
    def cut(name: str, comply: int) -> dict:
        decisions = [COMPLY] * comply + [REFUSE] * (k - comply)
        return {"key": key, "cut": name, "decisions": decisions, "refused": [int(d == REFUSE) for d in decisions]}

    return [cut("0:pre", comply_pre), cut("0:post", comply_post)]


def test_a_stance_comparison_at_k4_reports_the_performative_share_as_underpowered():
    chunked = [{"key": f"t{i}", "harmful": True, "stances": [-1, 1]} for i in range(6)]
    rows = [r for i in range(6) for r in _stance_rows(4, 2, 2, key=f"t{i}")]
    out = stance_report(chunked, rows, DeliberationConfig(replays=4))
    assert out["n_tested"] == 6 and out["n_powered"] == 0
    assert out["performative_share"] is None and out["performative_share_ci"] is None
    assert out["performative_share_why"].startswith("underpowered: K = 4")
    assert out["binary_refusal"]["performative_share"] is None
    # each cut still reports its effect: the change of the comply rate with Newcombe's interval
    t = out["tests"][0]
    assert t["diff"] == 0.0 and t["diff_ci"] == pytest.approx([-0.4949, 0.4949], abs=1e-4) and t["power"] < 0.05
    # 49 answers a side meet the rule (48 do not): the share is measured
    at_49 = stance_report(chunked[:1], _stance_rows(49, 24, 25, key="t0"), DeliberationConfig(replays=49))
    assert at_49["n_powered"] == 1 and at_49["performative_share"] == 1.0 and at_49["performative_share_why"] is None
    at_48 = stance_report(chunked[:1], _stance_rows(48, 24, 25, key="t0"), DeliberationConfig(replays=48))
    assert at_48["performative_share"] is None and at_48["performative_share_why"].startswith("underpowered: K = 48")
    assert stance_report([], [], DeliberationConfig())["performative_share_why"] == "no stance change tested"


def test_states_written_before_the_rename_still_open(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    first, last, trace = (rng.normal(size=s).astype(np.float16) for s in ((3, 2, 4), (3, 2, 4), (3, 5, 4)))
    save_file({"first_token": first, "last_prompt": last, "trace": trace}, str(tmp_path / "part-00000.safetensors"),
              metadata={"keys": json.dumps(["a", "b", "c"]), "layers": json.dumps([1, 2]), "trace_layer": "2"})
    st = load_states(tmp_path)
    assert np.array_equal(st.first_sampled_token, first.astype(np.float32))
    assert np.array_equal(st.last_prompt, last.astype(np.float32)) and st.keys == ["a", "b", "c"]
