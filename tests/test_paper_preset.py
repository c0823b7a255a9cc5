"""The paper preset trains on pools it never evaluates: disjoint sets, the paper's pool sizes, short pools refused."""

from __future__ import annotations

import os

import pytest

from thinksafe.evals.suites import PAPER_TRAINING_POOLS, SUITES

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")


def test_the_paper_suite_never_evaluates_a_training_pool():
    evaluated = set(SUITES.get("paper").benchmarks)
    assert not evaluated & {*PAPER_TRAINING_POOLS["harmful"], *PAPER_TRAINING_POOLS["benign"]}
    assert {"harmbench", "strongreject", "jailbreakbench", "hexphi", "xstest_safe", "coconot", "gsm8k",
            "math500", "aime2024"} <= evaluated


@needs_data
def test_no_evaluated_prompt_is_in_a_training_pool_of_the_paper_preset(tmp_path):
    from thinksafe.align.run import load_pools
    from thinksafe.data import load_benchmark
    from thinksafe.data.checks import normalize_prompt
    from thinksafe.data.loading import parse_ref
    from thinksafe.pipeline import RunConfig, choose_sets, plan_pools

    cfg = RunConfig(preset="paper", out=str(tmp_path / "run"))
    chosen = {r: s["benchmark"] for r, s in choose_sets(None, evaluated=cfg.evaluated_sets).items()}
    align = cfg.stage_config("align", chosen)
    assert (tuple(align.harmful), tuple(align.benign)) == (PAPER_TRAINING_POOLS["harmful"], PAPER_TRAINING_POOLS["benign"])
    pools = load_pools(align)
    assert sum(len(p.examples) for p in pools if p.harmful) == 1000  # the paper's sizes, which the data allow
    assert sum(len(p.examples) for p in pools if not p.harmful) == 1000
    evaluated = set()
    for ref in cfg.evaluated_sets(chosen["orr"]):  # every prompt of every evaluated set, not only the subsets
        name, split = parse_ref(ref)
        evaluated |= {normalize_prompt(ex.prompt) for ex in load_benchmark(name, split=split)}
    leaked = [ex.prompt for p in pools for ex in p.examples if normalize_prompt(ex.prompt) in evaluated]
    assert leaked == [], f"{len(leaked)} evaluated prompts in the training pools, e.g. {leaked[:2]}"
    assert any(p.dropped_for_overlap for p in pools)  # the check had something to remove (SORRY-Bench, AdvBench)
    assert plan_pools(cfg)["shared_prompts"] == 0


@needs_data
def test_a_pool_smaller_than_asked_is_an_error_unless_allowed(tmp_path):
    from thinksafe.align.run import AlignConfig, load_pools
    from thinksafe.errors import DataError

    base = dict(harmful=["jailbreakbench"], benign=["xstest_safe"], harmful_size=150, benign_size=10,
                eval_sets=["harmbench"], drop_overlap=True)
    with pytest.raises(DataError, match="fewer than the 150 asked for"):
        load_pools(AlignConfig(**base))
    pools = load_pools(AlignConfig(**base, allow_small_pools=True))
    assert len(pools[0].examples) < 150
