"""The report's verdict paragraph follows the numbers (thinksafe.report.verdict)."""

from __future__ import annotations

import pytest

from thinksafe.report.verdict import POWER_BAR, sentence, summary_lines, verdict


def row(diff, ci, p_holm, mdd=None, metric="harmbench asr"):
    return {"metric": metric, "diff": diff, "ci": list(ci), "p_holm": p_holm, "mdd": mdd}


def test_a_significant_drop_is_said_with_its_size_interval_and_adjusted_p():
    s = sentence("attack success", row(-0.17, (-0.26, -0.08), 0.002, 0.09))
    assert s["kind"] == "changed"
    assert s["text"] == "Attack success fell by 0.17 [−0.26, −0.08], p 0.002 (Holm)."


def test_no_detectable_change_says_what_the_interval_rules_out():
    s = sentence("over-refusal", row(0.01, (-0.05, 0.07), 0.8, 0.09))
    assert s["kind"] == "no detectable change"
    assert s["text"] == ("Over-refusal did not change detectably: 0.01, the interval −0.05 to 0.07 excludes changes "
                         "larger than 0.07.")


def test_an_underpowered_comparison_says_it_cannot_tell_and_what_would_go_unseen():
    s = sentence("reasoning accuracy", row(-0.05, (-0.30, 0.20), 0.9, POWER_BAR + 0.1))
    assert s["kind"] == "underpowered"
    assert "too small to tell" in s["text"] and "changes smaller than about 0.25 would go unseen" in s["text"]
    # with no observed MDD (no answer changed), the planned one decides
    s = sentence("reasoning accuracy", row(0.0, (-0.1, 0.1), 1.0, None), {"value": 0.3})
    assert s["kind"] == "underpowered" and s["mdd"] == 0.3


def test_an_interval_clear_of_zero_that_fails_the_adjustment_is_not_called_a_change():
    s = sentence("over-refusal", row(0.10, (0.03, 0.17), 0.07, 0.11))
    assert s["kind"] == "not significant after adjustment"
    assert "rose by 0.10 [0.03, 0.17] before adjusting" in s["text"] and "not after (p 0.07, Holm)" in s["text"]


def test_the_paragraph_covers_each_headline_in_order_and_the_summary_is_three_lines():
    rows = [row(0.4, (0.3, 0.5), 1e-9, 0.16, "harmbench refusal_rate"), row(-0.02, (-0.06, 0.02), 1.0, 0.07),
            row(0.02, (-0.04, 0.08), 1.0, 0.1, "xstest_safe orr"), row(0.0, (-0.05, 0.05), 1.0, 0.1, "xstest_safe help_rate"),
            row(-0.05, (-0.3, 0.2), 1.0, 0.3, "gsm8k accuracy")]
    metrics = {"recipes": ["thinksafe"], "contrasts": {"thinksafe vs base": {"rows": rows}},
               "before": {"asr": {"harmbench": {"mdd": {"value": 0.14}, "judge": {"name": "objective"},
                                                "judge_agreement": {"true_pos": 2, "n_pos": 17, "true_neg": 357, "n_neg": 375, "set": "qwen05"}}},
                          "orr": {"xstest_safe": {"mdd": {"value": 0.14}}}, "reasoning": {"gsm8k": {"mdd": {"value": 0.11}}}},
               "labels": {"command": "thinksafe label runs/main", "sides": {}}}
    v = verdict(metrics)
    kinds = [s["kind"] for s in v["sentences"]]
    assert kinds == ["changed", "no detectable change", "no detectable change", "no detectable change", "underpowered"]
    assert v["paragraph"].startswith("thinksafe against the base model: Refusals of harmful requests (harmbench) rose by 0.40")
    assert "finds 2 of 17 answers people say carried out" in v["judge"] and "thinksafe label runs/main" in v["judge"]
    lines = summary_lines(v)
    assert len(lines) == 3 and lines[0].startswith("thinksafe vs base: Refusals") and "too small to tell" in lines[1]
    assert verdict({"recipes": ["thinksafe"], "contrasts": {}}) is None


@pytest.mark.parametrize("p", [None, 0.5])
def test_a_change_without_a_p_value_is_never_called_significant(p):
    assert sentence("x", row(-0.5, (-0.9, 0.1), p, 0.05))["kind"] != "changed"
