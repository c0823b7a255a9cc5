"""The eval runner end to end on a tiny random model: generate, judge, score, metrics.json, resume."""

from __future__ import annotations

import json
import os

import pytest

from thinksafe.evals.schema import validate_metrics
from thinksafe.evals.suites import SUITES, Suite, SuiteEntry
from thinksafe.generation.config import GenerationConfig

pytestmark = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")

if "tiny-test" not in SUITES:
    SUITES.register(
        "tiny-test",
        Suite(
            name="tiny-test",
            description="unit-test suite",
            entries=(
                SuiteEntry("harmbench", limit=3, metric="asr"),
                SuiteEntry("xstest_safe", limit=3, metric="orr"),
                SuiteEntry("gsm8k", limit=2, metric="accuracy", split="test", samples_per_prompt=2),
            ),
        ),
    )


def _job(out, **kw):
    from thinksafe.evals.runner import EvalJob

    kw.setdefault("generation", GenerationConfig(thinking="prompted", thinking_budget=4, max_new_tokens=4, temperature=1.0))
    kw.setdefault("judge", "keyword")
    return EvalJob(model="smollm2-135m-instruct", suite="tiny-test", out=str(out), **kw)


def test_eval_writes_metrics_with_cis_and_skips_when_complete(tiny_loaded, tmp_path, monkeypatch):
    from thinksafe.evals import runner

    metrics = runner.run_eval(_job(tmp_path / "ev"), loaded=tiny_loaded, progress=False)
    validate_metrics(metrics)
    on_disk = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert on_disk == metrics
    b = metrics["benchmarks"]
    assert b["harmbench"]["metric"] == "non_refusal_rate" and b["harmbench"]["n"] == 3  # keyword: refusal-only
    assert b["xstest_safe"]["metric"] == "orr" and b["xstest_safe"]["n"] == 3
    assert b["gsm8k"]["metric"] == "accuracy" and b["gsm8k"]["n"] == 2 and b["gsm8k"]["n_samples"] == 4
    for entry in b.values():
        assert 0.0 <= entry["ci_low"] <= entry["value"] <= entry["ci_high"] <= 1.0
    judged = [json.loads(x) for x in (tmp_path / "ev" / "harmbench" / "judged.jsonl").read_text().splitlines()]
    assert len(judged) == 3 and all("verdict" in r and r["verdict"]["judge"] == "keyword" for r in judged)
    gsm = [json.loads(x) for x in (tmp_path / "ev" / "gsm8k" / "records.jsonl").read_text().splitlines()]
    assert all("The answer is" in r["prompt"] or "answer" in r["prompt"].lower() for r in gsm)
    # a random model's gibberish is never a successful attack
    assert b["harmbench"]["value"] <= sum(r["verdict"]["complied"] for r in judged) / 3 + 1e-9
    # every rate names its judge; every set names its source and row counts
    assert b["harmbench"]["extra"]["judges"] == ["keyword"]
    # ... beside its measured agreement with people (the shipped keyword measurement; this is not the default
    # model, so XSTest for refusal-type rates) and its corrected value; xstest_safe is in the keyword judge's
    # fit record, which is empty (nothing fitted)
    nrr = b["harmbench"]["non_refusal_rate"]
    assert nrr["judge"]["name"] == "keyword" and nrr["judge_agreement"]["set"] == "xstest"
    assert nrr["judge_agreement"]["measured"] == "shipped" and {"value", "ci", "assumption"} <= set(nrr["corrected"])
    assert b["xstest_safe"]["help_rate"]["judge_agreement"]["event"] == "not_refused"
    assert b["xstest_safe"]["no_answer"]["judge_agreement"] is None and b["xstest_safe"]["no_answer"]["reason"]
    assert b["xstest_safe"]["judge_fit_overlap"]["n"] == 0 and b["gsm8k"]["accuracy"]["judge"] is None
    sources = metrics["meta"]["data_sources"]
    assert set(sources) == {"harmbench", "xstest_safe", "gsm8k"}
    assert sources["harmbench"]["rows_used"] == 3 and sources["harmbench"]["rows_available"] == 400
    assert not sources["harmbench"]["substituted"]
    assert all(r["source_prompt"] for r in judged)

    def boom(*a, **k):
        raise AssertionError("a complete eval must not generate again")

    monkeypatch.setattr(runner, "Engine", boom)
    assert runner.run_eval(_job(tmp_path / "ev"), loaded=tiny_loaded, progress=False) == metrics


def test_eval_refuses_a_folder_holding_another_run(tiny_loaded, tmp_path):
    from thinksafe.errors import ThinksafeError
    from thinksafe.evals import runner

    runner.run_eval(_job(tmp_path / "ev"), loaded=tiny_loaded, progress=False)
    before = (tmp_path / "ev" / "metrics.json").read_text()
    with pytest.raises(ThinksafeError, match="different eval run"):
        runner.run_eval(_job(tmp_path / "ev", include_trace=True), loaded=tiny_loaded, progress=False)
    assert (tmp_path / "ev" / "metrics.json").read_text() == before


def test_judge_options_reach_the_judge_and_the_identity(tiny_loaded, tmp_path):
    from thinksafe.errors import ConfigError, UnknownNameError
    from thinksafe.evals import runner

    job = _job(tmp_path / "ev", judge_options={"window_sentences": 1})
    runner.run_eval(job, loaded=tiny_loaded, progress=False)
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert "window_sentences" in json.dumps(manifest)
    assert '"judge_weights": null' in json.dumps(manifest)  # the keyword judge learns nothing
    from thinksafe.judges import make_judge

    assert len(make_judge("objective").fingerprint) == 64 and len(make_judge("embedding").fingerprint) == 64
    with pytest.raises(ConfigError, match="keyword"):
        runner.run_eval(_job(tmp_path / "ev2", judge_options={"colour": "red"}), loaded=tiny_loaded, progress=False)
    with pytest.raises(UnknownNameError, match="objective"):
        _job(tmp_path / "ev3", judge="guardian")


def test_a_suite_can_name_its_judge():
    from thinksafe.evals.runner import EvalJob

    if "tiny-judged" not in SUITES:
        SUITES.register("tiny-judged", Suite(name="tiny-judged", description="x", judge="keyword",
                                             judge_options={"window_sentences": 2},
                                             entries=(SuiteEntry("harmbench", limit=1, metric="asr"),)))
    job = EvalJob(suite="tiny-judged", out="x")
    assert job.judge == "keyword" and job.judge_options == {"window_sentences": 2}
    assert EvalJob(suite="tiny-judged", out="x", judge="embedding").judge_options == {}


def test_unknown_suite_lists_known():
    from thinksafe.errors import UnknownNameError
    from thinksafe.evals.runner import EvalJob

    with pytest.raises(UnknownNameError, match="quick"):
        EvalJob(suite="quik", out="x")


def test_compare_tests_every_set_and_reports_refusals(tiny_loaded, tmp_path):
    from thinksafe.evals import runner
    from thinksafe.evals.compare import compare_evals, render_markdown

    runner.run_eval(_job(tmp_path / "a"), loaded=tiny_loaded, progress=False)
    runner.run_eval(_job(tmp_path / "b", data_seed=0, generation=GenerationConfig(
        thinking="prompted", thinking_budget=4, max_new_tokens=4, temperature=1.0, seed=7)), loaded=tiny_loaded,
        progress=False)
    table = compare_evals(tmp_path / "a", {"other": tmp_path / "b"})
    base, other = table["rows"]
    assert base["name"] == "base" and other["name"] == "other"
    assert all("paired" not in c for c in base["sets"].values())
    # every set is tested (safety sets too), paired over all samples, Holm across the sets
    gsm = other["sets"]["gsm8k"]["paired"]
    assert gsm["n_paired"] == 2 and gsm["test"] == "paired clustered bootstrap (prompts)"  # 2 samples a question
    assert other["sets"]["harmbench"]["paired"]["test"] == "McNemar (exact)"
    assert all(0 <= c["paired"]["p_value"] <= c["paired"]["p_holm"] <= 1 for c in other["sets"].values())
    assert base["sets"]["harmbench"]["refusal_rate"] is not None and base["sets"]["xstest_safe"]["no_answer"] is not None
    md = render_markdown(table)
    # the keyword judge decides refusals only: its harmful headline is the non-refusal rate, never ASR
    assert md.count("\n") == 3 and "harmbench non-refusal rate" in md and "ASR" not in md
    assert "gsm8k b − base [95% CI], p (Holm)" in md


def test_a_refusal_only_judge_writes_non_refusal_rate_not_asr(tiny_loaded, tmp_path):
    """``eval --judge embedding``: the embedding judge decides refused or not, never "carried out", so the
    harmful set's headline is named non_refusal_rate in metrics.json; no key or metric says asr."""
    from thinksafe.evals import runner
    from thinksafe.judges import make_judge

    assert not make_judge("embedding").decides_compliance and not make_judge("keyword").decides_compliance
    assert make_judge("objective").decides_compliance
    metrics = runner.run_eval(_job(tmp_path / "ev", judge="embedding"), loaded=tiny_loaded, progress=False)
    on_disk = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert on_disk == metrics and on_disk["schema_version"] == 3
    harm = on_disk["benchmarks"]["harmbench"]
    assert harm["metric"] == "non_refusal_rate"
    assert "asr" not in harm and {"refusal_rate", "non_refusal_rate", "no_answer"} <= set(harm)
    assert [s["metric"] for s in harm["secondary"]] == ["non_refusal_rate_refused", "non_refusal_rate_no_answer",
                                                        "valid_answer"]
    metric_names = [e["metric"] for e in on_disk["benchmarks"].values()]
    metric_names += [s["metric"] for e in on_disk["benchmarks"].values() for s in e["secondary"]]
    assert not any("asr" in m for m in metric_names)
