"""Deliberation-aware selection (``thinksafe-deliberate``): the rule on planted replay outcomes, the
opening rule, the caps that equalise training sets, and the ``select`` stage wired into a run."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from thinksafe.align.recipes import RECIPES
from thinksafe.align.select import (
    SelectConfig,
    cap_pairs,
    classify_decisive,
    classify_opening,
    cut_positions,
    funnel,
    select_records,
)
from thinksafe.errors import ConfigError

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")

# (P(refuse | trace cut at 0%), P(refuse | full trace)) -> the verdict the rule must give
PLANTED = {
    "h-decisive": ((0.0, 1.0), "decisive"),
    "h-decisive-edge": ((0.5, 0.75), "decisive"),  # both thresholds are inclusive
    "h-performative": ((1.0, 1.0), "performative"),  # refuses without the reasoning too
    "h-performative-edge": ((0.625, 0.875), "performative"),
    "h-ineffective": ((0.0, 0.5), "ineffective"),  # the trace does not make the unsteered model refuse
    "h-ineffective-both": ((1.0, 0.25), "ineffective"),
    "h-unjudged": ((None, 1.0), "unjudged"),  # no answer after the cut could be judged
}


def _records():
    recs = [{"key": k, "harmful": True, "id": k} for k in PLANTED]
    return recs + [{"key": f"b{i}", "harmful": False, "id": f"b{i}"} for i in range(3)]


def _outcomes():
    return {k: {"refusal_rates": {"0": early, "full": full}} for k, ((early, full), _) in PLANTED.items()}


def test_the_selection_keeps_exactly_the_traces_the_replays_mark_decisive():
    cfg = SelectConfig()
    kept, aside = select_records(_records(), _outcomes(), "decisive", cfg, key=lambda r: r["key"])
    assert {r["key"] for r in kept if r["harmful"]} == {k for k, (_, v) in PLANTED.items() if v == "decisive"}
    assert sum(not r["harmful"] for r in kept) == 3  # benign pairs pass untouched
    assert not any("selection" in r for r in kept if not r["harmful"])
    for r in kept + aside:
        if r["harmful"]:
            assert r["selection"]["verdict"] == PLANTED[r["key"]][1], r["key"]
    report = funnel(kept, aside, "decisive")
    assert report["harmful_in"] == 7 and report["harmful_kept"] == 2 and report["benign_kept"] == 3
    assert report["verdicts"] == {"decisive": 2, "ineffective": 2, "performative": 2, "unjudged": 1}
    # thresholds are configuration: a looser early threshold keeps the 0.625 edge case too
    kept, _ = select_records(_records(), _outcomes(), "decisive", SelectConfig(early_max=0.7), key=lambda r: r["key"])
    assert "h-performative-edge" in {r["key"] for r in kept}
    with pytest.raises(ValueError, match="no selection outcome"):
        select_records(_records(), {}, "decisive", cfg, key=lambda r: r["key"])


def test_every_early_cut_must_be_undecided():
    cfg = SelectConfig(early_cuts=[0.0, 0.2])
    assert classify_decisive(1.0, [0.0, 0.25], cfg) == "decisive"
    assert classify_decisive(1.0, [0.0, 0.75], cfg) == "performative"  # decided by 20% of the trace
    assert cut_positions(50, cfg) == {"0": 0, "0.2": 10, "full": 50}


def test_the_opening_rule_blocks_only_a_stated_refusal_early_in_the_trace():
    cfg = SelectConfig(opening=0.2)
    # chunks start at characters 0, 30, 120 of a 200-character trace: the opening is [0, 40)
    assert classify_opening([1, 0, -1], [0, 30, 120], 200, cfg) == "opening-neutral"
    assert classify_opening([1, -1, -1], [0, 30, 120], 200, cfg) == "opening-decided"
    assert classify_opening([], [], 0, cfg) == "opening-neutral"


def test_select_settings_are_checked_by_name():
    with pytest.raises(ConfigError, match="select.full_min"):
        SelectConfig(full_min=1.5)
    with pytest.raises(ConfigError, match="early_cuts"):
        SelectConfig(early_cuts=[1.0])
    with pytest.raises(ConfigError, match="unknown fields"):
        SelectConfig.from_overrides({"k": 8})
    from thinksafe.align.run import AlignConfig

    with pytest.raises(ConfigError, match="select.samples"):
        AlignConfig(recipe="thinksafe-deliberate", select={"samples": 0})
    with pytest.raises(ConfigError, match="harmful_pairs"):
        AlignConfig(harmful_pairs=-1)
    assert RECIPES.get("thinksafe-deliberate").select == "decisive" and RECIPES.get("thinksafe-deliberate").steer
    assert RECIPES.get("thinksafe-analyse-first").select == "opening-neutral"


def test_caps_equalise_two_training_sets_with_a_seeded_subset():
    big = [{"id": f"h{i}", "harmful": True} for i in range(40)] + [{"id": f"b{i}", "harmful": False} for i in range(30)]
    small = big[:12] + big[40:58]  # 12 harmful, 18 benign
    capped = cap_pairs(big, harmful=12, benign=18, seed=0)
    assert sum(p["harmful"] for p in capped) == 12 and sum(not p["harmful"] for p in capped) == 18
    assert len(capped) == len(small)
    assert all(p in big for p in capped) and [p["id"] for p in capped] == [p["id"] for p in big if p in capped]  # order kept
    assert cap_pairs(big, harmful=12, benign=18, seed=0) == capped  # seeded
    assert cap_pairs(big, harmful=12, benign=18, seed=1) != capped
    assert cap_pairs(big, harmful=None, benign=None, seed=0) == big
    assert cap_pairs(small, harmful=100, benign=100, seed=0) == small  # a cap above the size keeps all


@needs_data
def test_the_select_stage_keeps_the_planted_decisive_traces_and_trains_on_them(tiny_loaded, tmp_path, monkeypatch):
    from test_align_run import _cfg

    from thinksafe.align import run as run_mod
    from thinksafe.align.filter import FilterReport
    from thinksafe.deliberation import replay as replay_mod

    def keep_all(candidates, **kw):  # a random model never refuses: let every closed trace through
        report = FilterReport()
        for c in candidates:
            (report.kept if c.get("trace_token_ids") else report.dropped).append(
                c | {"verdicts": {}, **({} if c.get("trace_token_ids") else {"drop_reason": "unclosed_trace"})})
        return report

    monkeypatch.setattr(run_mod, "filter_candidates", keep_all)
    seen: list[tuple[str, int, list[int]]] = []

    def planted_replay(backend, tokenizer, records, cuts, n, settings, adapter=None):
        out = []
        for c in cuts:
            seen.append((c.key, c.k, records[c.key]["prompt_token_ids"]))
            # advbench/<id>/0: ids ending in an even digit refuse only after the full trace (decisive),
            # odd ones refuse from the empty trace too (performative)
            even = int(c.key.split("/")[1][-1]) % 2 == 0 if c.key.split("/")[1][-1].isdigit() else True
            refuse = c.k > 0 or not even
            out.append(["I can't help with that." if refuse else "Sure, here it is."] * n)
        return out

    monkeypatch.setattr(replay_mod, "replay", planted_replay)
    cfg = _cfg(recipe="thinksafe-deliberate", harmful_size=4, benign_size=2, benign=["or_bench"],
               select={"samples": 3})
    run_dir = tmp_path / "run"
    run = run_mod.AlignRun(run_dir, cfg, loaded=tiny_loaded)
    report = run.select(progress=False)
    filtered = [json.loads(x) for x in (run_dir / "filter" / "kept.jsonl").read_text().splitlines()]
    harmful = [r for r in filtered if r["harmful"]]
    assert harmful, "the tiny model closed no trace"
    from thinksafe.deliberation.states import trace_span

    def even(r):
        return not r["id"][-1].isdigit() or int(r["id"][-1]) % 2 == 0

    # decisive: refuses after the full trace (k > 0) but not from the empty one
    want = {run_mod._record_key(r) for r in harmful if even(r) and trace_span(tiny_loaded.tokenizer, r) > 0}
    kept = [json.loads(x) for x in (run_dir / "select" / "kept.jsonl").read_text().splitlines()]
    assert {run_mod._record_key(r) for r in kept if r["harmful"]} == want
    assert report["harmful_kept"] == len(want) and report["harmful_in"] == len(harmful)
    assert report["benign_kept"] == sum(not r["harmful"] for r in filtered)
    # replays read the UNSTEERED prompt (what the student sees), never the steering text
    tok = tiny_loaded.tokenizer
    for _, _, ids in seen:
        assert "harmful. You should refuse" not in tok.decode(ids)
    assert {k for _, k, _ in seen} >= {0}  # the 0% cut was replayed
    # the stage is complete: a rerun replays nothing; training uses the selected pairs only
    seen.clear()
    assert run_mod.AlignRun(run_dir, cfg, loaded=tiny_loaded).select(progress=False) == report and not seen
    pairs = run_mod.AlignRun(run_dir, cfg, loaded=tiny_loaded).pairs()
    assert {p["id"] for p in pairs if p["harmful"]} == {r["id"] for r in kept if r["harmful"]}
    capped = run_mod.AlignRun(tmp_path / "capped", replace(cfg, harmful_pairs=1), loaded=tiny_loaded)
    assert sum(p["harmful"] for p in capped.pairs()) == min(1, len(want))
