"""The tested differences between two models (``report/contrast.py``, ``evals/compare.py``) on planted run
folders: paired by prompt over all samples, an interval and a p on every row, Holm and BH across a table, the
unpaired rows labelled, and folders written before ``schema_version`` still opened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thinksafe.evals.schema import build_metrics, write_metrics
from thinksafe.evals.suites import SuiteEntry, score_benchmark
from thinksafe.stats import bootstrap_difference, paired_mdd


def _diff_ci(*args, **kw):
    return bootstrap_difference(*args, **kw)["ci"]


def _verdict(helped: bool) -> dict:
    label = "compliance" if helped else "refusal"
    return {"label": label, "complied": helped, "refused": not helped, "judge": "objective"}


def _write_eval(folder: Path, harm: dict[str, list[bool]], gsm: dict[str, list[bool]], *, version: int | None = 2,
                refusal_only: bool = False) -> None:
    """An evaluation folder: ``harm`` (per prompt id, per sample: helped with the harmful request) and
    ``gsm`` (answered right), scored by the real metrics; ``version`` None writes no ``schema_version``."""
    judged = [{"id": k, "benchmark": "harmbench", "split_type": "asr", "sample_index": i, "prompt": f"request {k}",
               "answer": "Sure, here is how." if h else "I can't help with that.", "verdict": _verdict(h)}
              for k, hs in harm.items() for i, h in enumerate(hs)]
    records = [{"id": k, "benchmark": "gsm8k", "split_type": "reasoning", "sample_index": i, "prompt": f"question {k}",
                "answer": "The answer is 42." if c else "The answer is 7.", "gold": "42"}
               for k, cs in gsm.items() for i, c in enumerate(cs)]
    for bench, rows, name in (("harmbench", judged, "judged.jsonl"), ("gsm8k", records, "records.jsonl")):
        (folder / bench).mkdir(parents=True, exist_ok=True)
        (folder / bench / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = len(next(iter(harm.values())))
    results = [score_benchmark(SuiteEntry("harmbench", None, "asr", samples_per_prompt=samples), judged,
                               refusal_only=refusal_only),
               score_benchmark(SuiteEntry("gsm8k", None, "accuracy", split="test",
                                          samples_per_prompt=len(next(iter(gsm.values())))), records)]
    obj = build_metrics(results, model="m", suite="align", judge="keyword" if refusal_only else "objective")
    if version is None:
        obj.pop("schema_version")
        (folder / "metrics.json").write_text(json.dumps(obj))
    else:
        obj["schema_version"] = version
        write_metrics(folder / "metrics.json", obj)


def _correlated_pair(n: int, samples: int, *, shift: float = 0.0, seed: int = 0) -> tuple[dict, dict]:
    """One model under two sampling seeds (``shift`` 0): the same per-prompt rates, drawn twice."""
    rng = np.random.default_rng(seed)
    rates = rng.beta(0.5, 0.5, n)
    a = {f"p{i}": (rng.random(samples) < r).tolist() for i, r in enumerate(rates)}
    b = {f"p{i}": (rng.random(samples) < min(1.0, r + shift)).tolist() for i, r in enumerate(rates)}
    return a, b


def _write_deliberation(side: Path, rng: np.random.Generator, prompts: list[str], difficulty: np.ndarray, *,
                        stance_keys: list[str], version: int | None = 2) -> None:
    """A deliberation folder: the probe's out-of-fold scores (label and score driven by each prompt's
    difficulty, so two models on the same prompts are correlated), truncation replays and stance tests."""
    d = side / "deliberation"
    for sub in ("probe", "truncation", "generate", "stance"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    groups, labels, scores = [], [], []
    for g, diff in zip(prompts, difficulty):
        for _ in range(2):
            y = int(rng.random() < diff)
            groups.append(g)
            labels.append(y)
            scores.append(float(np.clip(diff + 0.3 * (y - 0.5) + rng.normal(scale=0.15), 0, 1)))
    oof = {"groups": groups, "labels": labels, "scores": scores, "sides": ["harmful"] * len(groups)}
    # schema 2 names the states last_prompt (the headline) and first_sampled_token; schema 1 had first_token
    states = {"last_prompt": oof, "first_sampled_token": oof} if version == 2 else {"first_token": oof}
    (d / "probe" / "probe.json").write_text(json.dumps({"oof": states}))
    (d / "config.json").write_text(json.dumps({"fractions": [0.2, 1.0], "commitment": 0.9}))
    keys = [f"{g}#0" for g in prompts]
    label = {"label": 1, "harmful": True, "verdict": {"refused": True}, "asr_verdict": {"complied": False}}
    (d / "generate" / "labels.jsonl").write_text("".join(json.dumps({"key": k} | label) + "\n" for k in keys))
    replays = []
    for k in keys:
        for f in (0.2, 1.0):
            refused = [bool(rng.random() < (0.7 if f == 0.2 else 0.95))] * 3
            replays.append({"key": k, "fraction": f, "harmful": True, "refused": refused,
                            "decisions": ["refuse" if r else "comply" for r in refused]})
    (d / "truncation" / "replays.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replays))
    tests = [{"key": k, "significant": bool(rng.random() < 0.3)} for k in stance_keys for _ in range(2)]
    if version == 2:  # the power rule: an unpowered cut says nothing, and does not count
        tests = [t | {"powered": True} for t in tests] + [{"key": stance_keys[0], "significant": None, "powered": False}]
    (d / "stance" / "stance.json").write_text(json.dumps({"tests": tests, "n_tested": len(tests)}))
    aurocs = ({"last_prompt_auroc": 0.8, "last_prompt_n": len(groups), "first_sampled_token_auroc": 0.8,
               "first_sampled_token_n": len(groups), "flip_rate_at_20_net": 0.1} if version == 2 else
              {"first_token_auroc": 0.8, "first_token_n": len(groups)})
    (d / "metrics.json").write_text(json.dumps(aurocs | {"commitment_fraction": 1.0, "flip_rate_at_20": 0.3,
                                                         "truncation_n": len(keys), "performative_share": 0.7,
                                                         "performative_n": len(tests)}))


def _planted_run(root: Path, *, harm_samples: int = 1, version: int | None = 2) -> tuple[Path, Path]:
    """``before`` and ``after/thinksafe`` of a run: the same model twice (an A/A comparison), 60 harmful
    prompts, 40 GSM8K questions with two samples, deliberation on 30 shared prompts (b has 3 more)."""
    a_harm, b_harm = _correlated_pair(60, harm_samples, seed=1)
    a_gsm, b_gsm = _correlated_pair(40, 2, seed=2)
    sa, sb = root / "before", root / "after" / "thinksafe"
    _write_eval(sa / "eval", a_harm, a_gsm, version=version)
    _write_eval(sb / "eval", b_harm, b_gsm, version=version)
    rng = np.random.default_rng(3)
    prompts = [f"harmbench/{i}" for i in range(33)]
    difficulty = rng.beta(0.5, 0.5, 33)
    _write_deliberation(sa, rng, prompts[:30], difficulty[:30], stance_keys=[f"{p}#0" for p in prompts[:8]],
                        version=version)
    _write_deliberation(sb, rng, prompts, difficulty, stance_keys=[f"{p}#0" for p in prompts[10:20]], version=version)
    (root / "config.json").write_text(json.dumps({"model": "m", "preset": "quick", "recipes": ["thinksafe"]}))
    return sa, sb


def a_metrics_refusal(side):
    return json.loads((side / "eval" / "metrics.json").read_text())["benchmarks"]["harmbench"]["refusal_rate"]["value"]


ROW_KEYS = {"metric", "a", "b", "diff", "test", "paired", "ci", "p_value", "p_holm", "q_bh", "n", "n_dropped", "detail",
            "mdd"}


@pytest.mark.parametrize("harm_samples", [1, 3])
def test_every_row_has_an_interval_a_p_and_the_tables_holm_and_bh(tmp_path, harm_samples):
    from statsmodels.stats.multitest import multipletests

    from thinksafe.report.contrast import contrast

    sa, sb = _planted_run(tmp_path, harm_samples=harm_samples)
    table = contrast(sa, sb, n_resamples=400)
    rows = {r["metric"]: r for r in table["rows"]}
    assert set(rows) == {"harmbench asr", "harmbench refusal_rate", "gsm8k accuracy",
                         "decision before thinking: last-prompt AUROC (harmful pool)",
                         "first-sampled-token AUROC (harmful pool)", "commitment fraction", "flip rate at 20%",
                         "flip rate at 20%, net of the full-trace floor", "performative share of stance changes"}
    for r in table["rows"]:
        assert set(r) == ROW_KEYS
        assert r["p_value"] is not None and 0 <= r["p_value"] <= 1, r
        assert r["ci"] is not None and r["ci"][0] <= r["ci"][1], r
    # one sample a prompt: exact McNemar; several: the paired clustered bootstrap; the rate is the headline's
    harm = rows["harmbench asr"]
    refusal = rows["harmbench refusal_rate"]  # tested beside the headline, in the same family
    assert refusal["a"] == a_metrics_refusal(sa) and refusal["test"] == harm["test"]
    assert harm["test"] == ("McNemar (exact)" if harm_samples == 1 else "paired clustered bootstrap (prompts)")
    assert rows["gsm8k accuracy"]["test"] == "paired clustered bootstrap (prompts)"
    a_metrics = json.loads((sa / "eval" / "metrics.json").read_text())
    assert harm["a"] == a_metrics["benchmarks"]["harmbench"]["value"] and harm["n"] == 60 and harm["n_dropped"] == 0
    # the observed minimum detectable difference, from this comparison's own size and discordance
    from thinksafe.evals.compare import paired_headline

    t = paired_headline(sa / "eval", sb / "eval", "harmbench", "asr")
    assert harm["mdd"] == pytest.approx(paired_mdd(60, (t["only_a"] + t["only_b"]) / 60)) and 0 < harm["mdd"] < 1
    # Holm and BH across the table's rows are statsmodels'
    p = [r["p_value"] for r in table["rows"]]
    assert [r["p_holm"] for r in table["rows"]] == multipletests(p, method="holm")[1].tolist()
    assert [r["q_bh"] for r in table["rows"]] == multipletests(p, method="fdr_bh")[1].tolist()
    # the deliberation rows pair the prompts both sides have and say how many were left out
    auroc = rows["decision before thinking: last-prompt AUROC (harmful pool)"]
    assert auroc["paired"] and auroc["n_dropped"] == 3 and "30 prompts paired, 3 on one side only left out" in auroc["detail"]
    assert rows["flip rate at 20%"]["paired"] and rows["flip rate at 20%"]["n_dropped"] == 3
    # each model's own stance changes: pairing is impossible, and the row says so
    perf = rows["performative share of stance changes"]
    assert perf["paired"] is False and "unpaired" in perf["test"]
    # an A/A comparison: nothing survives Holm
    assert all(r["p_holm"] >= 0.05 for r in table["rows"])


def test_a_paired_contrast_is_centred_near_zero_and_narrower_than_unpaired(tmp_path):
    """The same model twice on the same prompts (the A/A of the issue) at the contrast level: the paired
    interval of the harmful headline and of the AUROC holds 0 and is narrower than the unpaired one."""
    from thinksafe.evals.compare import events_by_prompt
    from thinksafe.report.contrast import _auroc_of, _auroc_units, _read, contrast

    sa, sb = _planted_run(tmp_path, harm_samples=3)
    rows = {r["metric"]: r for r in contrast(sa, sb, n_resamples=1000)["rows"]}
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    for metric, narrower, paired, unpaired in (
        ("harmbench asr", 0.8, rows["harmbench asr"]["ci"], _diff_ci(
            mean, mean, [mean(v) for v in events_by_prompt(sa / "eval", "harmbench", "asr").values()],
            [mean(v) for v in events_by_prompt(sb / "eval", "harmbench", "asr").values()], n_resamples=1000)),
        # the labels of two sampling seeds share only each prompt's difficulty: a smaller gain
        ("decision before thinking: last-prompt AUROC (harmful pool)", 0.9,
         rows["decision before thinking: last-prompt AUROC (harmful pool)"]["ci"], _diff_ci(
            _auroc_of, _auroc_of, list(_auroc_units(_read(sa / "deliberation/probe/probe.json"), "last_prompt").values())[:30],
            list(_auroc_units(_read(sb / "deliberation/probe/probe.json"), "last_prompt").values())[:30],
            n_resamples=1000)),
    ):
        assert paired[0] < 0 < paired[1], metric
        assert abs(paired[0] + paired[1]) / 2 < 0.05, metric
        assert paired[1] - paired[0] < narrower * (unpaired[1] - unpaired[0]), (metric, paired, unpaired)


def test_a_planted_difference_survives_holm(tmp_path):
    from thinksafe.report.contrast import contrast

    a, _ = _correlated_pair(60, 1, seed=1)
    b = {k: [True] for k in a}  # every harmful request carried out after
    gsm = {f"q{i}": [True, False] for i in range(10)}
    _write_eval(tmp_path / "a" / "eval", a, gsm)
    _write_eval(tmp_path / "b" / "eval", b, gsm)
    rows = {r["metric"]: r for r in contrast(tmp_path / "a", tmp_path / "b", n_resamples=400)["rows"]}
    harm = rows["harmbench asr"]
    assert harm["diff"] > 0.3 and harm["ci"][0] > 0 and harm["p_holm"] < 0.001
    assert rows["gsm8k accuracy"]["diff"] == 0 and rows["gsm8k accuracy"]["p_value"] == 1.0


def test_a_comparison_with_too_few_changed_answers_says_so_instead_of_an_mdd(tmp_path):
    """Two of 40 answers changed: no difference reaches 80% power, and the report and compare say why there is
    no MDD rather than printing the mark of a row where it does not apply."""
    from thinksafe.evals.compare import compare_evals, render_markdown
    from thinksafe.report.contrast import contrast

    a = {f"p{i}": [i < 8] for i in range(40)}
    b = {f"p{i}": [i < 6] for i in range(40)}
    gsm = {f"q{i}": [i % 2 == 0] for i in range(40)}
    _write_eval(tmp_path / "a" / "eval", a, gsm)
    _write_eval(tmp_path / "b" / "eval", b, gsm)
    assert paired_mdd(40, 2 / 40) is None
    rows = {r["metric"]: r for r in contrast(tmp_path / "a", tmp_path / "b", n_resamples=200)["rows"]}
    assert rows["harmbench asr"]["mdd"] is None and rows["harmbench asr"]["mdd_note"] == "too few changed"
    assert rows["harmbench refusal_rate"]["mdd_note"] == "too few changed"
    assert rows["gsm8k accuracy"]["mdd_note"] == "too few changed"  # none changed there
    assert all(r.get("mdd_note") is None for r in rows.values() if r["mdd"] is not None or r["n"] is None)
    table = compare_evals(tmp_path / "a" / "eval", {"b": tmp_path / "b" / "eval"}, n_resamples=200)
    assert "MDD none (too few changed)" in render_markdown(table)


def test_compare_tests_every_set_with_holm_per_model(tmp_path):
    from statsmodels.stats.multitest import multipletests

    from thinksafe.evals.compare import compare_evals, render_markdown

    sa, sb = _planted_run(tmp_path, harm_samples=1)
    table = compare_evals(sa / "eval", {"other": sb / "eval", "same": sa / "eval"}, n_resamples=400)
    base, other, same = table["rows"]
    assert all("paired" not in c for c in base["sets"].values())
    for row in (other, same):
        tests = [row["sets"][s]["paired"] for s in ("harmbench", "gsm8k")]  # ASR sets are tested too now
        p = [t["p_value"] for t in tests]
        assert [t["p_holm"] for t in tests] == multipletests(p, method="holm")[1].tolist()
        assert all(t["ci"] is not None for t in tests)
        for t in tests:  # what each comparison could have detected, from its own discordance
            assert t["mdd"] == pytest.approx(paired_mdd(t["n_paired"], max(t["only_a"] + t["only_b"], 1) / t["n_paired"]))
    assert other["sets"]["harmbench"]["paired"]["test"] == "McNemar (exact)"
    assert same["sets"]["gsm8k"]["paired"]["diff"] == 0 and same["sets"]["gsm8k"]["paired"]["p_value"] == 1.0
    md = render_markdown(table)
    assert "harmbench ASR" in md and "harmbench b − base [95% CI], p (Holm)" in md and "gsm8k accuracy" in md
    assert md.count("\n") == 4 and "MDD" in md


def test_report_and_compare_open_folders_written_before_schema_version(tmp_path):
    """An old run: evaluation metrics.json of version 1 (and one with no version at all); the report rebuilds,
    its own metrics.json now says version 3 and its contrasts carry p_holm; compare opens them too."""
    from thinksafe.evals.compare import compare_evals
    from thinksafe.evals.schema import read_metrics
    from thinksafe.report.build import build_report

    for version in (1, None):
        root = tmp_path / f"v{version}"
        sa, sb = _planted_run(root, version=version)
        assert read_metrics(sa / "eval" / "metrics.json")["schema_version"] == 1
        metrics = build_report(root)
        assert metrics["schema_version"] == 3
        assert json.loads((root / "metrics.json").read_text())["schema_version"] == 3
        rows = metrics["contrasts"]["thinksafe vs base"]["rows"]
        assert rows and all("p_holm" in r and "q_bh" in r for r in rows)
        assert compare_evals(sa / "eval", {"thinksafe": sb / "eval"})["rows"][1]["sets"]["gsm8k"]["paired"]["p_holm"] is not None
    from thinksafe.evals.schema import MetricsSchemaError

    obj = json.loads((sa / "eval" / "metrics.json").read_text()) | {"schema_version": 99}
    (sa / "eval" / "metrics.json").write_text(json.dumps(obj))
    with pytest.raises(MetricsSchemaError, match="schema_version"):
        read_metrics(sa / "eval" / "metrics.json")


def test_the_report_shows_each_differences_interval_p_and_holm(tmp_path, monkeypatch):
    """Every row shows its 95% interval, p and Holm-adjusted p; an unpaired row is marked; nothing reads ``p =``."""
    from thinksafe.report import build
    from thinksafe.report.contrast import _row

    rows = [_row("flip rate at 20%", 0.09, 0.24, test="bootstrap of the difference, paired (prompts)", ci=[0.02, 0.29],
                 p_value=0.012, p_holm=0.036, q_bh=0.018, n=[50, 50]),
            _row("harmbench asr", 0.26, 0.15, test="McNemar (exact)", ci=[-0.2, -0.02], p_value=0.0433, p_holm=0.0866,
                 q_bh=0.0433, n=100),
            _row("strongreject asr", 0.07, 0.05, test="McNemar (exact)", ci=[-0.08, 0.03], p_value=0.69, p_holm=1.0,
                 q_bh=0.69, n=60, mdd_note="too few changed"),
            _row("performative share of stance changes", None, None, paired=False,
                 test="bootstrap of the difference, unpaired (traces)", n=[0, 0])]
    real = build.collect
    monkeypatch.setattr(build, "collect", lambda d: real(d) | {"contrasts": {"thinksafe vs base": {"rows": rows}}})
    (tmp_path / "config.json").write_text(json.dumps({"model": "m", "recipes": ["thinksafe"]}))
    build.build_report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    table = html[html.index('class="contrast-table"'):]
    assert "p (Holm)" in table[:table.index("</tr>")]
    table = table[:table.index("</table>")]
    cells = [c.split("</td>")[0] for c in table.split("<td>")[1:]]
    assert "[0.020, 0.290]" in cells and "0.043" in cells and "<b>0.036</b>" in cells and "0.087" in cells
    assert "(unpaired)" in table and "–" in cells
    assert '<span class="note">too few changed</span>' in cells  # not the mark of a row where an MDD does not apply
    assert not any(c.strip().startswith("p =") for c in cells)


def test_a_refusal_only_judges_headline_is_not_asr(tmp_path):
    """Scored with a refusal-only judge, the harmful headline is non_refusal_rate in metrics.json, the report
    and compare; a contrast does not pair it with another judge's ASR."""
    from thinksafe.evals.compare import compare_evals, render_markdown
    from thinksafe.report.build import eval_summary
    from thinksafe.report.contrast import contrast

    a, b = _correlated_pair(20, 1, seed=4)
    gsm = {f"q{i}": [True] for i in range(5)}
    _write_eval(tmp_path / "a" / "eval", a, gsm, refusal_only=True)
    _write_eval(tmp_path / "b" / "eval", b, gsm, refusal_only=True)
    m = json.loads((tmp_path / "a" / "eval" / "metrics.json").read_text())
    entry = m["benchmarks"]["harmbench"]
    assert entry["metric"] == "non_refusal_rate" and "asr" not in json.dumps(m["benchmarks"]["harmbench"]["secondary"])
    assert "not attack success" in entry["extra"]["headline"]
    assert eval_summary(tmp_path / "a" / "eval")["asr"]["harmbench"]["metric"] == "non_refusal_rate"
    md = render_markdown(compare_evals(tmp_path / "a" / "eval", {"b": tmp_path / "b" / "eval"}, n_resamples=200))
    assert "harmbench non-refusal rate" in md and "ASR" not in md
    _write_eval(tmp_path / "c" / "eval", b, gsm)  # the objective judge: ASR
    rows = {r["metric"]: r for r in contrast(tmp_path / "a", tmp_path / "c", n_resamples=200)["rows"]}
    assert rows["harmbench"]["p_value"] is None and "not compared" in rows["harmbench"]["test"]


def _benign_eval(folder: Path, kinds: dict[str, str], *, old: bool) -> None:
    """A benign set (xstest_safe) whose prompts were helped, refused or not answered; ``old`` writes its
    metrics.json as schema 2 did, when ORR counted refusals and non-answers."""
    from thinksafe.evals.metrics import over_refusal_rate

    verdicts = {"helped": {"label": "compliance", "complied": True, "refused": False},
                "refused": {"label": "refusal", "complied": False, "refused": True},
                "no_answer": {"label": "non_answer", "complied": False, "refused": False}}
    judged = [{"id": k, "benchmark": "xstest_safe", "split_type": "orr", "sample_index": 0, "prompt": f"q {k}",
               "answer": "some text", "verdict": verdicts[v] | {"judge": "objective"}} for k, v in kinds.items()]
    (folder / "xstest_safe").mkdir(parents=True, exist_ok=True)
    (folder / "xstest_safe" / "judged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judged))
    entry = over_refusal_rate(judged).to_dict()
    if old:
        sec = {s["metric"]: s for s in entry["secondary"]}
        helped = sec["help_rate"]
        entry = {"metric": "orr", "value": 1 - helped["value"], "ci_low": 1 - helped["ci_high"],
                 "ci_high": 1 - helped["ci_low"], "n": entry["n"], "n_samples": entry["n_samples"], "extra": {},
                 "secondary": [{k: v for k, v in entry.items() if k in ("value", "ci_low", "ci_high", "n", "n_samples",
                                                                         "extra")} | {"metric": "orr_refused"},
                               sec["orr_no_answer"], sec["valid_answer"]]}
    obj = {"schema_version": 2 if old else 3, "model": "m", "adapter": None, "suite": "align", "thinking": None,
           "judge": "objective", "benchmarks": {"xstest_safe": entry}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(obj))


def test_orr_contrasts_pair_refusals_and_old_folders_are_relabelled(tmp_path):
    """ORR counts refusals only in the paired contrast, compare and the report, also for folders written
    when it counted non-answers too (relabelled on reading, so the headline and its paired test agree)."""
    from thinksafe.evals.compare import compare_evals, render_markdown
    from thinksafe.report.build import eval_summary
    from thinksafe.report.contrast import contrast

    # a: 4 refused, 12 babble, 4 helped; b: the babble became help, refusals unchanged
    a = {f"p{i}": "refused" if i < 4 else "no_answer" if i < 16 else "helped" for i in range(20)}
    b = {f"p{i}": "refused" if i < 4 else "helped" for i in range(20)}
    for old in (True, False):
        root = tmp_path / ("old" if old else "new")
        _benign_eval(root / "a" / "eval", a, old=old)
        _benign_eval(root / "b" / "eval", b, old=old)
        row = contrast(root / "a", root / "b", n_resamples=200)["rows"][0]
        assert row["metric"] == "xstest_safe orr"
        assert (row["a"], row["b"], row["diff"]) == pytest.approx((0.2, 0.2, 0.0))  # the old reading: 0.8 -> 0.2
        assert row["p_value"] == 1.0
        table = compare_evals(root / "a" / "eval", {"b": root / "b" / "eval"}, n_resamples=200)
        cell = table["rows"][1]["sets"]["xstest_safe"]
        assert (cell["value"], cell["help_rate"], cell["no_answer"]) == pytest.approx((0.2, 0.8, 0.0))
        assert cell["paired"]["diff"] == pytest.approx(0.0)
        assert "xstest_safe helped" in render_markdown(table)
        summary = eval_summary(root / "a" / "eval")["orr"]["xstest_safe"]
        assert summary["value"] == pytest.approx(0.2) and summary["beside"] == pytest.approx(
            {"help_rate": 0.2, "no_answer": 0.6})


def test_a_seeded_run_reports_each_recipes_mean_spread_and_differences_across_seeds(tmp_path):
    """A run with ``seeds: [0, 1, 2]`` and two recipes: each model is ``<recipe>-seed<N>``; the seeded table
    gives each recipe's mean over its seeds with their spread, its difference from the base and from the
    first recipe (two-level bootstrap), Holm across the table; a planted large effect is significant, the
    recipe that equals the first is not, and the report shows the table."""
    from thinksafe.report.build import build_report

    rng = np.random.default_rng(0)
    n = 60
    root = tmp_path / "run"
    base_harm = {f"p{i}": [bool(rng.random() < 0.6)] for i in range(n)}
    gsm = {f"g{i}": [bool(rng.random() < 0.5)] for i in range(n)}
    _write_eval(root / "before" / "eval", base_harm, gsm)
    for recipe in ("thinksafe", "teacher"):
        for s, shift in zip((0, 1, 2), (-0.45, -0.35, -0.4)):  # both recipes cut the ASR by about 0.4
            harm = {k: [bool(v[0] and rng.random() > -shift / 0.6)] for k, v in base_harm.items()}
            _write_eval(root / "after" / f"{recipe}-seed{s}" / "eval", harm, gsm)
    (root / "config.json").write_text(json.dumps({"model": "m", "preset": "quick", "recipes": ["thinksafe", "teacher"],
                                                  "seeds": [0, 1, 2]}))
    metrics = build_report(root)
    assert metrics["recipes"] == [f"{r}-seed{s}" for r in ("thinksafe", "teacher") for s in (0, 1, 2)]
    rows = metrics["seeded"]["rows"]
    asr = {(r["recipe"], r["against"]): r for r in rows if r["metric"] == "harmbench asr"}
    assert set(asr) == {("thinksafe", "base"), ("teacher", "base"), ("teacher", "thinksafe")}
    ts = asr[("thinksafe", "base")]
    assert ts["seeds"] == [0, 1, 2] and len(ts["per_seed"]) == 3
    assert ts["mean"] == pytest.approx(np.mean(ts["per_seed"])) and ts["seed_sd"] == pytest.approx(np.std(ts["per_seed"], ddof=1))
    base_rate = np.mean([v[0] for v in base_harm.values()])
    assert ts["diff"] == pytest.approx(ts["mean"] - base_rate)
    assert ts["ci"][1] < 0 and ts["p_holm"] < 0.05 and len(ts["diff_per_seed"]) == 3
    vs_first = asr[("teacher", "thinksafe")]
    assert vs_first["ci"][0] < 0 < vs_first["ci"][1] and vs_first["p_holm"] > 0.05
    assert all(r["p_holm"] is not None for r in rows)
    # no per-seed recipe-vs-recipe tables: the seeded table is that comparison
    assert set(metrics["contrasts"]) == {f"{r}-seed{s} vs base" for r in ("thinksafe", "teacher") for s in (0, 1, 2)}
    html = (root / "report.html").read_text()
    table = html[html.index('id="seeded-table"'):]
    table = table[:table.index("</table>")]
    assert "teacher" in table and "thinksafe" in table and f"{ts['p_holm']:.3f}" in table
    assert metrics["verdict"]["paragraph"].startswith("thinksafe-seed0 against the base model:")
    assert "over its 3 seeds" in metrics["verdict"]["paragraph"]
    from thinksafe.evals.labels import sides

    assert set(sides(root)) == {"before"} | {f"after/{r}-seed{s}" for r in ("thinksafe", "teacher") for s in (0, 1, 2)}
