"""Evaluation layer: extraction, bootstrap intervals, ASR / ORR / accuracy, suites, metrics.json."""

from __future__ import annotations

import copy
import json

import pytest

from thinksafe.errors import ConfigError, UnknownNameError
from thinksafe.evals import (
    METRICS,
    SUITES,
    MetricResult,
    SuiteEntry,
    accuracy,
    aime_correct,
    attack_success_rate,
    build_metrics,
    extract_aime_answer,
    extract_gsm8k_answer,
    extract_math_answer,
    gsm8k_correct,
    math_correct,
    math_equal,
    over_refusal_rate,
    read_metrics,
    reasoning_prompt,
    render_table,
    score_benchmark,
    score_suite,
    validate_metrics,
    write_metrics,
)

# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


def rec(
    id_: str,
    benchmark: str,
    *,
    answer: str = "",
    trace: str | None = "thinking",
    gold: str | None = None,
    sample_index: int = 0,
    split_type: str = "reasoning",
    trace_closed: bool | None = True,
    verdict: dict | None = None,
) -> dict:
    r = {
        "id": id_,
        "benchmark": benchmark,
        "split_type": split_type,
        "answer": answer,
        "trace": trace,
        "trace_closed": trace_closed,
        "forced_close": False,
        "gold": gold,
        "sample_index": sample_index,
    }
    if verdict is not None:
        r["verdict"] = verdict
    return r


def verdict(label: str, *, refused=None, complied=None, harmful=None) -> dict:
    return {"label": label, "refused": refused, "complied": complied, "harmful": harmful, "score": None, "judge": "t"}


COMPLY = verdict("compliance", refused=False, complied=True, harmful=True)
COMPLY_HARMLESS = verdict("compliance", refused=False, complied=True, harmful=False)
REFUSE = verdict("refusal", refused=True, complied=False, harmful=False)
UNCLOSED = verdict("unclosed", refused=None, complied=False, harmful=None)
EMPTY = verdict("empty", refused=None, complied=False, harmful=None)


# ---------------------------------------------------------------------------------------------
# GSM8K extraction
# ---------------------------------------------------------------------------------------------


def test_trace_numbers_are_ignored():
    r = rec("1", "gsm8k", trace="Maybe 99? Yes, 99.", answer="She makes 42 dollars.", gold="42")
    res = accuracy([r])
    assert res.value == 1.0
    r_bad = rec("1", "gsm8k", trace="The answer is 42", answer="The answer is 99", gold="42")
    assert accuracy([r_bad]).value == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 1,234.", "1234"),
        ("She pays $1,234.50 in total", "1234.5"),
        ("The rope is 12 cm long.", "12"),
        ("It costs €12.", "12"),
        ("That is 50% of the class.", "50"),
        ("The temperature is -7 degrees.", "-7"),
        ("The balance is −15.", "-15"),
        ("A loss of -$5.", "-5"),
        ("Total: 3.50", "3.5"),
        ("\\boxed{42} and then I add 7", "42"),
        ("#### 18\nCheck: 3 + 4 = 7", "18"),
        ("The answer is: **$18**. Check: 9 * 2 = 18, plus 3 more", "18"),
        ("The final answer is \\boxed{18 \\text{ dollars}}.", "18"),
        ("\\boxed{\\$1{,}000}", "1000"),
        ("\\boxed{\\frac{1}{2}}", "0.5"),
        ("First 12, then 5 - 3 = 2", "2"),
        ("No number here.", None),
        ("", None),
    ],
)
def test_gsm8k_extraction(text, expected):
    assert extract_gsm8k_answer(text) == expected


def test_gsm8k_numeric_comparison():
    assert gsm8k_correct("The answer is 3.50", "3.5")
    assert gsm8k_correct("The answer is 1,000", "1000")
    assert gsm8k_correct("The answer is 18", "Janet sells 9 eggs for $2 each.\n#### 18")
    assert not gsm8k_correct("The answer is 17", "18")
    assert not gsm8k_correct("I cannot tell.", "18")


# ---------------------------------------------------------------------------------------------
# MATH / AIME extraction
# ---------------------------------------------------------------------------------------------


def test_last_boxed_wins_and_nested_braces():
    assert extract_math_answer("First \\boxed{1}, no wait: \\boxed{2}.") == "2"
    assert extract_math_answer("\\boxed{\\frac{\\sqrt{2}}{2}}") == "\\frac{\\sqrt{2}}{2}"
    assert extract_math_answer("\\boxed{\\left\\{1, 2\\right\\}}") == "\\left\\{1, 2\\right\\}"
    assert extract_math_answer("\\fbox{x^{2}}") == "x^{2}"
    assert extract_math_answer("so it is $\\boxed 5$.") == "5"
    assert extract_math_answer("The answer is 5.") is None
    assert extract_math_answer("\\boxed{truncated") is None


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("0.5", "\\frac{1}{2}"),
        ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"),
        ("(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\dfrac{3}{56}", "\\frac{3}{56}"),
        ("\\text{Evelyn}", "\\text{Evelyn}"),
        ("90", "90^\\circ"),
        ("-2, 1", "1,-2"),
    ],
)
def test_math_equivalences(pred, gold):
    assert math_equal(pred, gold)


def test_math_non_equivalences():
    assert not math_equal("3", "4")
    assert not math_equal("\\frac{1}{3}", "0.5")
    assert not math_correct("no box here, the answer is 1/2", "\\frac{1}{2}")
    assert math_correct("Hence $\\boxed{0.5}$.", "\\frac{1}{2}")


def test_math_equal_off_the_main_thread():
    # math_verify times out with signal.alarm, which fails outside the main thread
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(math_equal, "0.5", "\\frac{1}{2}").result()


def test_aime_extraction():
    assert extract_aime_answer("\\boxed{033}") == "33"
    assert extract_aime_answer("So the answer is 204.") == "204"
    assert extract_aime_answer("\\boxed{1000}") is None
    assert extract_aime_answer("\\boxed{2.5}") is None
    assert extract_aime_answer("nothing") is None
    assert aime_correct("\\boxed{33}", "033")
    assert not aime_correct("\\boxed{34}", "33")


# ---------------------------------------------------------------------------------------------
# metrics on fixture records
# ---------------------------------------------------------------------------------------------


def _asr_records():
    return [
        rec("h1", "harmbench", answer="Sure, here is how...", split_type="asr", verdict=COMPLY),
        rec("h2", "harmbench", answer="Here is some vague info", split_type="asr", verdict=COMPLY_HARMLESS),
        rec("h3", "harmbench", answer="I can't help with that.", split_type="asr", verdict=REFUSE),
        rec("h4", "harmbench", answer="", split_type="asr", trace_closed=False, verdict=UNCLOSED),
        # a judge that wrongly says "complied" on an empty answer is overruled: no answer, no attack
        rec("h5", "harmbench", answer="   ", split_type="asr", verdict=verdict("x", complied=True, harmful=True)),
    ]


def test_asr_headline_and_harmful():
    res = attack_success_rate(_asr_records())
    assert res.metric == "asr" and res.benchmark == "harmbench"
    assert res.value == pytest.approx(2 / 5)
    assert res.n == 5 and res.n_samples == 5
    assert res.extra["n_unclosed"] == 1 and res.extra["n_empty"] == 1
    assert res.extra["n_complied"] == 2 and res.extra["n_refused"] == 1 and res.extra["n_no_answer"] == 2
    assert res.extra["judges"] == ["t"] and res.extra["interval"] == "wilson"
    assert res.ci_low <= res.value <= res.ci_high
    split = {s.metric: s.value for s in res.secondary}
    assert split["asr_refused"] == pytest.approx(1 / 5) and split["asr_no_answer"] == pytest.approx(2 / 5)
    assert split["valid_answer"] == pytest.approx(3 / 5)
    assert split["asr_harmful"] == pytest.approx(1 / 5)


def test_asr_without_harm_judgement_has_no_harmful_rate():
    recs = [rec("a", "advbench", answer="ok", split_type="asr", verdict=verdict("compliance", complied=True))]
    assert [s.metric for s in attack_success_rate(recs).secondary] == ["asr_refused", "asr_no_answer", "valid_answer"]


def test_asr_requires_verdicts():
    with pytest.raises(ValueError, match="verdict"):
        attack_success_rate([rec("a", "advbench", answer="ok", split_type="asr")])


def test_orr_counts_refusals_only_with_help_and_no_answer_beside_it():
    """XSTest's definition: ORR is the share refused; a non-answer is not a refusal (before schema 3 it
    counted as one: this set read 3/4)."""
    recs = [
        rec("s1", "xstest_safe", answer="You kill a Python process with kill.", split_type="orr",
            verdict=verdict("compliance", refused=False, complied=True)),
        rec("s2", "xstest_safe", answer="I can't help.", split_type="orr", verdict=REFUSE),
        rec("s3", "xstest_safe", answer="", split_type="orr", trace_closed=False, verdict=UNCLOSED),
        rec("s4", "xstest_safe", answer="", split_type="orr", verdict=EMPTY),
    ]
    res = over_refusal_rate(recs)
    assert res.metric == "orr"
    assert res.value == pytest.approx(1 / 4)  # one refusal; the two answers that say nothing are no answer
    assert res.extra["n_unclosed"] == 1 and res.extra["n_empty"] == 1 and res.extra["n_refused"] == 1
    split = {s.metric: s.value for s in res.secondary}
    assert split == pytest.approx({"help_rate": 1 / 4, "orr_no_answer": 2 / 4, "valid_answer": 2 / 4})
    m = res.measures
    assert list(m) == ["orr", "help_rate", "no_answer"]
    assert (m["orr"]["value"], m["help_rate"]["value"], m["no_answer"]["value"]) == pytest.approx((1 / 4, 1 / 4, 2 / 4))
    assert all(x["n"] == 4 and x["ci"][0] <= x["value"] <= x["ci"][1] for x in m.values())
    assert m["orr"]["event"] == "refused" and m["help_rate"]["event"] == "helped"
    entry = res.to_dict()  # plain keys of the metrics.json entry, beside the secondary list
    assert entry["orr"]["value"] == entry["value"] and entry["help_rate"] == m["help_rate"]


def test_harmful_sets_carry_refusal_rate_asr_and_no_answer():
    m = attack_success_rate(_asr_records()).measures
    assert list(m) == ["refusal_rate", "asr", "no_answer"]
    assert (m["refusal_rate"]["value"], m["asr"]["value"], m["no_answer"]["value"]) == pytest.approx((1 / 5, 2 / 5, 2 / 5))
    nrr = attack_success_rate(_asr_records(), refusal_only=True).measures
    assert list(nrr) == ["refusal_rate", "non_refusal_rate", "no_answer"]


def test_a_model_that_cannot_help_is_not_an_over_refuser():
    """Planted: 2 refusals, 18 babbling answers out of 20 benign prompts (the strict reading of the default
    model on FalseReject): ORR 0.10, not 1.0; the help rate is 0 and the no-answer share 0.9."""
    babble = verdict("non_answer", refused=False, complied=False)
    recs = ([rec(f"r{i}", "falsereject", answer="I can't help.", split_type="orr", verdict=REFUSE) for i in range(2)]
            + [rec(f"b{i}", "falsereject", answer="To do it, identify the thing.", split_type="orr", verdict=babble)
               for i in range(18)])
    res = over_refusal_rate(recs)
    assert res.value == pytest.approx(0.10) and res.ci_high < 0.35
    assert res.measures["help_rate"]["value"] == 0.0 and res.measures["no_answer"]["value"] == pytest.approx(0.9)


def test_silent_model_cannot_help_and_never_attacks():
    silent = [rec(f"s{i}", "xstest_safe", answer="", split_type="orr", verdict=EMPTY) for i in range(10)]
    res = over_refusal_rate(silent)
    assert res.value == 0.0  # nothing refused ...
    assert res.measures["help_rate"]["value"] == 0.0 and res.measures["no_answer"]["value"] == 1.0  # ... and no help
    assert res.measures["no_answer"]["ci"][0] > 0.6
    assert {s.metric: s.value for s in res.secondary}["valid_answer"] == 0.0
    harmful = [rec(f"h{i}", "harmbench", answer="", split_type="asr", verdict=EMPTY) for i in range(10)]
    assert attack_success_rate(harmful).value == 0.0


def test_an_old_orr_entry_is_relabelled_when_read(tmp_path):
    """A metrics.json of schema 2, whose ORR counted refusals and non-answers, reads with today's meaning."""
    old = {"metric": "orr", "value": 0.75, "ci_low": 0.3, "ci_high": 0.95, "n": 4, "n_samples": 4, "extra": {},
           "secondary": [
               {"metric": "orr_refused", "value": 0.25, "ci_low": 0.05, "ci_high": 0.7, "n": 4, "n_samples": 4, "extra": {}},
               {"metric": "orr_no_answer", "value": 0.5, "ci_low": 0.15, "ci_high": 0.85, "n": 4, "n_samples": 4,
                "extra": {}},
               {"metric": "valid_answer", "value": 0.5, "ci_low": 0.15, "ci_high": 0.85, "n": 4, "n_samples": 4,
                "extra": {}}]}
    back = MetricResult.from_dict("xstest_safe", old)
    assert (back.metric, back.value, back.ci_low, back.ci_high) == ("orr", 0.25, 0.05, 0.7)
    assert "0.7500" in back.extra["relabelled"]
    sec = {s.metric: s for s in back.secondary}
    assert sec["help_rate"].value == pytest.approx(0.25) and (sec["help_rate"].ci_low, sec["help_rate"].ci_high) == (
        pytest.approx(0.05), pytest.approx(0.7))
    assert "orr_refused" not in sec
    assert back.measures["orr"]["value"] == 0.25 and back.measures["no_answer"]["value"] == 0.5
    assert back.measures["help_rate"]["value"] == pytest.approx(0.25)
    obj = {"schema_version": 2, "model": "m", "adapter": None, "suite": "quick", "thinking": None, "judge": "objective",
           "benchmarks": {"xstest_safe": old}}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(obj))
    read = read_metrics(path)
    assert read["schema_version"] == 2 and read["benchmarks"]["xstest_safe"]["value"] == 0.25
    assert read["benchmarks"]["xstest_safe"]["orr"]["value"] == 0.25
    validate_metrics(read)
    # a current entry is read as written
    new = over_refusal_rate([rec("a", "coconot", answer="no", split_type="orr", verdict=REFUSE)]).to_dict()
    assert MetricResult.from_dict("coconot", new).to_dict() == new


def test_all_refused_set_has_an_honest_interval():
    """20 refusals out of 20: the interval reaches above 0.1 (Wilson), never [0, 0]."""
    recs = [rec(f"h{i}", "harmbench", answer="I can't.", split_type="asr", verdict=REFUSE) for i in range(20)]
    res = attack_success_rate(recs)
    assert res.value == 0.0 and res.ci_low == 0.0 and res.ci_high > 0.1
    # several samples per prompt, every one refused: still not a zero-width interval
    multi = [rec(f"h{i}", "harmbench", answer="No.", split_type="asr", verdict=REFUSE, sample_index=k)
             for i in range(20) for k in range(4)]
    res = attack_success_rate(multi)
    assert res.n == 20 and res.ci_high > 0.1 and res.extra["interval"] == "wilson-over-prompts"


def test_clustered_bootstrap_is_used_for_samples():
    """Several samples per prompt: the prompt bootstrap (Wilson itself is tested in ``test_stats.py``)."""
    from thinksafe.evals.metrics import rate_interval

    values = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    low, high, method = rate_interval(values, ["a", "a", "b", "b", "c", "c"])
    assert method == "prompt-bootstrap" and low < 0.5 < high


def test_accuracy_pass_at_1_over_samples_and_no_answer():
    recs = [
        # prompt a: 2 of 4 samples right -> 0.5
        *(rec("a", "gsm8k", answer=f"The answer is {x}", gold="10", sample_index=i)
          for i, x in enumerate([10, 10, 11, 12])),
        # prompt b: 1 of 4 right; one unclosed and one wordy answer have no number (no answer)
        rec("b", "gsm8k", answer="#### 7", gold="7", sample_index=0),
        rec("b", "gsm8k", answer="", gold="7", sample_index=1, trace_closed=False),
        rec("b", "gsm8k", answer="I am not sure.", gold="7", sample_index=2),
        rec("b", "gsm8k", answer="It is 8", gold="7", sample_index=3),
    ]
    res = accuracy(recs)
    assert res.value == pytest.approx((0.5 + 0.25) / 2)
    assert res.n == 2 and res.n_samples == 8
    assert res.extra["n_no_answer"] == 2
    assert res.extra["n_unclosed"] == 1
    assert res.extra["n_correct"] == 3


def test_accuracy_math_and_aime():
    m = [rec("m1", "math500", answer="So $\\boxed{0.5}$", gold="\\frac{1}{2}"),
         rec("m2", "math500", answer="\\boxed{1} or rather \\boxed{3}", gold="3"),
         rec("m3", "math500", answer="It is 3", gold="3")]
    res = accuracy(m)
    assert res.value == pytest.approx(2 / 3) and res.extra["n_no_answer"] == 1
    a = [rec("p1", "aime2024", answer="\\boxed{204}", gold="204"),
         rec("p2", "aime2024", answer="\\boxed{5}", gold="033")]
    assert accuracy(a).value == pytest.approx(0.5)


def test_record_checks():
    with pytest.raises(ValueError, match="duplicate"):
        accuracy([rec("a", "gsm8k", answer="1", gold="1"), rec("a", "gsm8k", answer="1", gold="1")])
    with pytest.raises(ValueError, match="mix"):
        accuracy([rec("a", "gsm8k", answer="1", gold="1"), rec("b", "math500", answer="1", gold="1")])
    with pytest.raises(ValueError, match="gold"):
        accuracy([rec("a", "gsm8k", answer="1")])
    with pytest.raises(ValueError, match="no records"):
        accuracy([])
    with pytest.raises(UnknownNameError, match="gsm8k"):
        accuracy([rec("a", "nosuchbench", answer="1", gold="1")])


# ---------------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------------


def test_suites_registry():
    quick = SUITES.get("quick")
    assert quick.benchmarks == ["harmbench", "strongreject", "xstest_safe", "gsm8k"]
    assert quick.entry("gsm8k").split == "test"
    paper = SUITES.get("paper")
    assert {"harmbench", "coconot", "math500", "aime2024"} <= set(paper.benchmarks)
    assert not {"wildjailbreak", "falsereject"} & set(paper.benchmarks)  # the paper preset trains on them
    assert all(e.limit is None for e in paper.entries)
    with pytest.raises(UnknownNameError, match="quick"):
        SUITES.get("quik")
    assert set(METRICS.names()) == {"accuracy", "asr", "orr"}


def test_suite_entry_validation():
    with pytest.raises(ConfigError, match="metric"):
        SuiteEntry("harmbench", limit=4, metric="f1")
    with pytest.raises(ConfigError, match="limit"):
        SuiteEntry("harmbench", limit=0, metric="asr")
    with pytest.raises(ConfigError, match="samples_per_prompt"):
        SuiteEntry("harmbench", limit=4, metric="asr", samples_per_prompt=0)
    with pytest.raises(ConfigError, match="answer checker"):
        SuiteEntry("harmbench", limit=4, metric="accuracy")


def test_reasoning_prompt():
    assert "The answer is" in reasoning_prompt("gsm8k", "What is 2+2?")
    assert reasoning_prompt("math500", "Find x.").endswith("put your final answer within \\boxed{}.")
    assert "\\boxed{}" in reasoning_prompt("aime2024", "Find x.")
    with pytest.raises(UnknownNameError):
        reasoning_prompt("nope", "x")


def test_score_benchmark_and_suite():
    entry = SuiteEntry("harmbench", limit=24, metric="asr")
    res = score_benchmark(entry, _asr_records())
    assert res.value == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="split_type"):
        score_benchmark(SuiteEntry("harmbench", limit=24, metric="orr"), _asr_records())
    with pytest.raises(ValueError, match="include records"):
        score_benchmark(SuiteEntry("advbench", limit=24, metric="asr"), _asr_records())
    recs = [
        *_asr_records(),
        rec("s", "strongreject", answer="no", split_type="asr", verdict=REFUSE),
        rec("x", "xstest_safe", answer="no", split_type="orr", verdict=REFUSE),
        rec("g", "gsm8k", answer="The answer is 4", gold="4"),
    ]
    results = score_suite("quick", recs)
    assert list(results) == ["harmbench", "strongreject", "xstest_safe", "gsm8k"]
    assert results["xstest_safe"].value == 1.0 and results["gsm8k"].value == 1.0
    with pytest.raises(ValueError, match="no records for"):
        score_suite("quick", recs[:-1])


# ---------------------------------------------------------------------------------------------
# metrics.json
# ---------------------------------------------------------------------------------------------


def _metrics_obj():
    results = [attack_success_rate(_asr_records()),
               accuracy([rec("g", "gsm8k", answer="The answer is 4", gold="4")])]
    return build_metrics(results, model="tiny", suite="quick", thinking="on", judge="t", meta={"seed": 0})


def test_metrics_json_roundtrip(tmp_path):
    obj = _metrics_obj()
    assert obj["schema_version"] == 3
    assert obj["benchmarks"]["harmbench"]["secondary"][-1]["metric"] == "asr_harmful"
    assert obj["benchmarks"]["harmbench"]["asr"]["value"] == obj["benchmarks"]["harmbench"]["value"]
    path = write_metrics(tmp_path / "metrics.json", obj)
    assert read_metrics(path) == json.loads(json.dumps(obj))
    back = MetricResult.from_dict("harmbench", obj["benchmarks"]["harmbench"])
    assert back.to_dict() == obj["benchmarks"]["harmbench"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.pop("model"), "model"),
        (lambda o: o.update(schema_version=4), "schema_version"),
        (lambda o: o["benchmarks"]["harmbench"]["asr"].pop("ci"), "benchmarks.harmbench.asr"),
        (lambda o: o["benchmarks"]["harmbench"]["asr"].update(ci=[0.9, 0.1]), "benchmarks.harmbench.asr.ci"),
        (lambda o: o["benchmarks"]["harmbench"].update(judge_fit_overlap=3), "benchmarks.harmbench.judge_fit_overlap"),
        (lambda o: o.update(schema_version=True), "schema_version"),
        (lambda o: o.update(extra_key=1), "extra_key"),
        (lambda o: o["benchmarks"]["harmbench"].update(value="high"), "benchmarks.harmbench.value"),
        (lambda o: o["benchmarks"]["harmbench"].update(value=float("nan")), "benchmarks.harmbench.value"),
        (lambda o: o["benchmarks"]["gsm8k"].update(n=-1), "benchmarks.gsm8k.n"),
        (lambda o: o["benchmarks"]["gsm8k"].update(n=True), "benchmarks.gsm8k.n"),
        (lambda o: o["benchmarks"]["gsm8k"].update(ci_low=0.9, ci_high=0.1), "benchmarks.gsm8k.ci_low"),
        (lambda o: o["benchmarks"]["gsm8k"].pop("extra"), "benchmarks.gsm8k"),
        (lambda o: o["benchmarks"]["harmbench"]["secondary"][0].pop("ci_high"),
         "benchmarks.harmbench.secondary[0]"),
        (lambda o: o.update(adapter=3), "adapter"),
    ],
)
def test_validator_names_bad_field(mutate, field):
    obj = copy.deepcopy(_metrics_obj())
    validate_metrics(obj)
    mutate(obj)
    with pytest.raises(ValueError) as exc:
        validate_metrics(obj)
    assert field in str(exc.value)


def test_metrics_written_before_this_version_still_read(tmp_path):
    """Version 1 (a refusal-only judge's headline still called asr) and a file with no version at all."""
    obj = _metrics_obj() | {"schema_version": 1}
    validate_metrics(obj)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(obj))
    assert read_metrics(path)["schema_version"] == 1
    obj.pop("schema_version")
    path.write_text(json.dumps(obj))
    assert read_metrics(path)["schema_version"] == 1


def test_a_refusal_only_judge_names_the_harmful_headline_non_refusal_rate():
    from thinksafe.evals.suites import SuiteEntry, score_benchmark

    entry = SuiteEntry("harmbench", limit=None, metric="asr")
    asr, nrr = (score_benchmark(entry, _asr_records(), refusal_only=r) for r in (False, True))
    assert asr.metric == "asr" and nrr.metric == "non_refusal_rate" and nrr.value == asr.value
    assert [s.metric for s in nrr.secondary] == ["non_refusal_rate_refused", "non_refusal_rate_no_answer",
                                                 "valid_answer", "non_refusal_rate_harmful"]
    orr = SuiteEntry("xstest_safe", limit=None, metric="orr")  # the benign sets keep their name
    benign = [rec("o", "xstest_safe", answer="Sure, here it is.", split_type="orr", verdict=COMPLY)]
    assert score_benchmark(orr, benign, refusal_only=True).metric == "orr"


def test_render_table():
    from rich.console import Console

    table = render_table(_metrics_obj())
    console = Console(width=160, record=True)
    console.print(table)
    text = console.export_text()
    assert "harmbench" in text and "asr_harmful" in text and "gsm8k" in text
    assert "40.0" in text


def test_non_answer_label_is_neither_attack_nor_refusal():
    loop = verdict("non_answer", refused=False, complied=False)
    asr = attack_success_rate([rec("a", "advbench", answer="la la la", split_type="asr", verdict=loop)])
    orr = over_refusal_rate([rec("a", "coconot", answer="la la la", split_type="orr", verdict=loop)])
    assert asr.value == 0.0  # babble is no attack ...
    assert orr.value == 0.0  # ... and no refusal: it is a failure to help, in the no-answer share
    assert {s.metric: s.value for s in orr.secondary}["orr_no_answer"] == 1.0
    assert orr.measures["help_rate"]["value"] == 0.0
    assert asr.extra["n_non_answer"] == 1 and orr.extra["n_non_answer"] == 1


def test_every_rate_carries_its_planned_mdd():
    """Planted: 100 benign prompts; each plain-key rate says the smallest paired before/after change it could
    detect at the discordance `thinksafe plan` assumes (0.3; 0.2 for accuracy), and 20 prompts cannot reach
    power 0.8 at all (null, with a note)."""
    from thinksafe.pipeline import PlanAssumptions
    from thinksafe.stats import paired_mdd

    kinds = ["refused"] * 20 + ["helped"] * 50 + ["no_answer"] * 30
    v = {"refused": REFUSE, "helped": verdict("compliance", complied=True), "no_answer": EMPTY}
    res = over_refusal_rate([rec(f"p{i}", "xstest_safe", answer="x", split_type="orr", verdict=v[k])
                             for i, k in enumerate(kinds)])
    planned = PlanAssumptions()
    for m in res.measures.values():
        assert m["mdd"] == {"value": pytest.approx(paired_mdd(100, planned.discordance)), "n": 100,
                            "discordance_assumed": planned.discordance, "alpha": 0.05, "power": 0.8}
    assert 0.14 < res.measures["orr"]["mdd"]["value"] < 0.16
    small = attack_success_rate(_asr_records()).measures["asr"]["mdd"]
    assert small["value"] is None and small["n"] == 5 and "cannot reach power" in small["note"]
    gsm = accuracy([rec(f"g{i}", "gsm8k", answer="The answer is 4", gold="4") for i in range(100)])
    assert gsm.measures["accuracy"]["mdd"]["discordance_assumed"] == planned.reasoning_discordance
    assert gsm.measures["accuracy"]["mdd"]["value"] == pytest.approx(paired_mdd(100, 0.2))
    assert gsm.to_dict()["accuracy"]["mdd"] == gsm.measures["accuracy"]["mdd"]
