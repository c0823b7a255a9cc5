"""The main job: its configuration (presets, YAML, errors naming the field), the choice of prompt sets,
and a whole run on a tiny random model (every stage, the report, a re-run that skips everything)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from thinksafe.errors import ConfigError, DataError, UnknownNameError
from thinksafe.pipeline import MainRun, RunConfig, choose_sets, load_config

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")


def test_presets_fill_each_stage_and_user_fields_win():
    cfg = RunConfig(out="x", preset="quick", align={"epochs": 2.0}, eval={"limit_scale": 0.25})
    sets = {"orr": "thinksafe_sensitive", "train_harmful": "donotanswer", "train_benign": "thinksafe_everyday"}
    ev = cfg.stage_config("eval", sets, out="x/e")
    assert ev.suite == "quick" and ev.limit_scale == 0.25 and ev.substitute == {"xstest_safe": "thinksafe_sensitive"}
    assert [e.benchmark for e in ev.entries()][2] == "thinksafe_sensitive"
    al = cfg.stage_config("align", sets)
    assert al.epochs == 2.0 and al.harmful == ["donotanswer"] and "thinksafe_sensitive" in al.eval_sets
    de = cfg.stage_config("deliberation", sets, adapter="/a")
    assert de.benign == ["thinksafe_sensitive"] and de.adapter == "/a" and de.limit == 8
    # the quick deliberation samples as the evaluation does, so its records come from the generation cache
    from thinksafe.evals.runner import _entry_config, _entry_limit

    quick = RunConfig(out="x", preset="quick").stage_config("eval", sets, out="x/e")
    quick_de = RunConfig(out="x", preset="quick").stage_config("deliberation", sets)
    for name in ("harmbench", "thinksafe_sensitive"):
        entry = next(e for e in quick.entries() if e.benchmark == name)
        assert _entry_config(quick, entry).identity() == quick_de.generation.identity()
        assert _entry_limit(entry, quick.limit_scale) == quick_de.limit
    assert RunConfig(out="x").preset == "standard" and RunConfig(out="x").recipes == ["thinksafe"]
    # the standard preset: the sizes its power calculation asks for (docs/main-job.md)
    standard = RunConfig(out="x").stage_config("eval", sets, out="x/e")
    assert {e.benchmark: _entry_limit(e, standard.limit_scale) for e in standard.entries()} == {
        "harmbench": 120, "strongreject": 60, "thinksafe_sensitive": 120, "gsm8k": 100}
    assert set(RunConfig(out="x", preset="paper").recipes) == {"thinksafe", "rejection", "teacher", "direct-refusal"}


def test_bad_configs_name_the_field(tmp_path):
    with pytest.raises(UnknownNameError, match="run preset"):
        RunConfig(preset="fast")
    with pytest.raises(ConfigError, match="align.*learning_rat"):
        RunConfig(align={"learning_rat": 1e-4})
    with pytest.raises(ConfigError, match="deliberation.*limit"):
        RunConfig(deliberation={"limit": 0})
    with pytest.raises(UnknownNameError, match="recipe"):
        RunConfig(recipes=["thinksafe", "nope"])
    bad = tmp_path / "c.yaml"
    bad.write_text("preset: quick\nalign_typo: {}\n")
    with pytest.raises(ConfigError, match="unknown fields \\['align_typo'\\]"):
        load_config(bad, {})
    good = tmp_path / "g.yaml"
    good.write_text("preset: quick\nrecipes: [thinksafe, direct-refusal]\nalign: {harmful_size: 4}\n")
    cfg = load_config(good, {"out": str(tmp_path / "run"), "recipes": None})
    assert cfg.recipes == ["thinksafe", "direct-refusal"] and cfg.align == {"harmful_size": 4}
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml", {})


def test_sets_fall_back_to_our_own_writing_without_the_data_directory(monkeypatch):
    monkeypatch.delenv("THINKSAFE_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sets = choose_sets(None)
    assert sets["orr"]["benchmark"] == "thinksafe_sensitive" and sets["orr"]["written_for_thinksafe"]
    assert sets["train_benign"]["benchmark"] == "thinksafe_everyday"
    from thinksafe.data import load_benchmark

    sensitive = load_benchmark("thinksafe_sensitive")
    assert len(sensitive) == 160 and all(e.split_type == "orr" for e in sensitive)


@needs_data
def test_sets_are_the_public_ones_with_the_data_directory():
    sets = choose_sets(None)
    assert {r: s["benchmark"] for r, s in sets.items()} == {"orr": "xstest_safe", "train_harmful": "advbench",
                                                            "train_benign": "or_bench"}
    assert not any(s["written_for_thinksafe"] for s in sets.values())


def test_training_never_draws_on_what_the_run_evaluates(monkeypatch):
    """The align stage's overlap check covers every set the run scores (its suite and deliberation
    pools, not a fixed list), and a training role skips a set the run evaluates."""
    sets = {"orr": "xstest_safe", "train_harmful": "advbench", "train_benign": "or_bench"}
    deliberate = RunConfig(preset="deliberate").stage_config("align", sets)
    assert deliberate.eval_sets == ["harmbench", "xstest_safe", "gsm8k:test"] and deliberate.drop_overlap
    quick = RunConfig(preset="quick", deliberation={"benign": ["xstest_safe", "coconot"]}).stage_config("align", sets)
    assert quick.eval_sets == ["harmbench", "strongreject", "xstest_safe", "gsm8k:test", "coconot"]
    paper = RunConfig(preset="paper")
    assert {"harmbench", "jailbreakbench", "coconot"} <= set(paper.evaluated_sets("xstest_safe"))
    assert not {"advbench", "wildjailbreak", "or_bench"} & set(paper.evaluated_sets("xstest_safe"))  # its pools

    monkeypatch.setattr("thinksafe.pipeline.SET_ROLES", {
        "orr": ("over-refusal", ("thinksafe_sensitive",)),
        "train_harmful": ("harmful training prompts", ("harmbench", "donotanswer")),
        "train_benign": ("benign training prompts", ("thinksafe_sensitive", "thinksafe_everyday"))})
    chosen = choose_sets(None, evaluated=paper.evaluated_sets)
    assert chosen["train_harmful"]["benchmark"] == "donotanswer"  # harmbench is evaluated
    assert chosen["train_benign"]["benchmark"] == "thinksafe_everyday"  # the ORR set is evaluated
    monkeypatch.setattr("thinksafe.pipeline.SET_ROLES", {
        "orr": ("over-refusal", ("thinksafe_sensitive",)),
        "train_harmful": ("harmful training prompts", ("harmbench",))})
    with pytest.raises(DataError, match=r"tried harmbench \(evaluated in this run\)"):
        choose_sets(None, evaluated=paper.evaluated_sets)


def _tiny_run_config(out, model_dir) -> RunConfig:
    gen = {"thinking": "prompted", "thinking_budget": 8, "max_new_tokens": 6, "temperature": 1.0, "top_k": 20,
           "backend": "transformers", "dtype": "float32"}
    return RunConfig(
        out=str(out), model=str(model_dir), preset="quick",
        eval={"judge": "keyword", "limit_scale": 0.1, "generation": gen,
              "thinking_budget": 8, "max_new_tokens": 6},  # over the suite's own (GSM8K 224/64)
        deliberation={"limit": 6, "positions": 8, "replays": 2, "truncation_samples": 2, "truncation_limit": 2,
                      "stance_limit": 2, "chunk_chars": 30, "min_chunk_chars": 5, "asr_judge": "keyword",
                      "replay": {"max_tokens": 8, "min_tokens": 2}, "generation": gen},
        align={"harmful_size": 3, "benign_size": 3, "asr_judge": "keyword", "refusal_judge": "keyword",
               "reasoning_thinking_budget": 4, "perplexity_size": 4, "generation": gen},
    )


def _killable_run_config(out, model_dir) -> RunConfig:
    """The tiny main job with six optimiser steps (a checkpoint at step 4, so a kill can land after it)
    and batches of 4 (records land in several writes in a stage): the session's tiny run
    (``conftest.tiny_run``) and what ``crash_child.py`` runs."""
    cfg = _tiny_run_config(out, model_dir)
    for section in ("eval", "deliberation", "align"):
        getattr(cfg, section)["generation"] = getattr(cfg, section)["generation"] | {"batch_size": 4}
    cfg.align["epochs"] = 6.0
    return cfg


@needs_data
@pytest.mark.slow  # the whole main job (conftest.tiny_run)
def test_the_main_job_on_a_tiny_model_writes_every_section_and_skips_when_done(tiny_run, monkeypatch):
    from thinksafe.pipeline import run_main

    cfg, out, metrics = tiny_run.cfg, tiny_run.out, tiny_run.metrics
    for side in ("before", "after"):
        assert set(metrics[side]) >= {"asr", "orr", "reasoning", "deliberation"}
        assert metrics[side]["asr"]["harmbench"]["n"] == 2 and metrics[side]["deliberation"]["last_prompt_n"] > 0
        # each headline rate with its judge, the judge's measured agreement, the corrected rate and the MDD
        for group in ("asr", "orr"):
            for row in metrics[side][group].values():
                assert {"judge", "judge_agreement", "corrected", "mdd"} <= set(row) and row["judge"]["name"] == "keyword"
                assert row["judge_agreement"]["n_pos"] > 0 and set(row["corrected"]) >= {"value", "ci"}
        for row in metrics[side]["orr"].values():  # over-refusal is refusals only, beside help and no answer
            assert row["metric"] == "orr" and row["value"] + row["help_rate"] + row["no_answer"] == pytest.approx(1)
        for row in metrics[side]["asr"].values():
            assert {"refusal_rate", "no_answer"} <= set(row)
        assert "floor" in metrics[side]["deliberation"]["truncation"]
    assert metrics["after"]["recipe"] == "thinksafe" and set(metrics["perplexity"]) == set(metrics["data"]) == {"thinksafe"}
    assert metrics["data"]["thinksafe"]["generated"] == 6
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    html = (out / "report.html").read_text()
    for anchor in ("eval-sets-table", "before-after-table", "deliberation-table", "perplexity-table", "data-table",
                   "timings-table"):
        assert f'id="{anchor}"' in html
    assert html.count("data:image/png;base64,") >= 4 and "http://" not in html and "https://" not in html
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) >= {"before/eval", "before/deliberation", "align/thinksafe", "after/thinksafe/eval", "report"}

    # a finished run is skipped: no stage generates again
    from thinksafe.generation import engine

    def no_generation(*a, **k):
        raise AssertionError("a finished stage must not generate again")

    monkeypatch.setattr(engine.Engine, "_generate_chunk", no_generation)
    files = {p: p.read_bytes() for p in out.rglob("*.jsonl")}
    again = run_main(cfg, progress=False)
    assert again["before"] == metrics["before"] and again["after"] == metrics["after"]
    assert {p: p.read_bytes() for p in out.rglob("*.jsonl")} == files  # no record rewritten (others use this run)
    # another configuration in the same folder is refused, saying what differs
    with pytest.raises(ConfigError, match="another configuration"):
        run_main(RunConfig(**(cfg.to_dict() | {"preset": "paper"})), progress=False)


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@needs_data
@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (make test installs it where it can)")
def test_the_report_renders_in_headless_chromium_without_console_errors(tiny_run, tmp_path):
    pytest.importorskip("playwright")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    out = tiny_run.out
    problems: list[str] = []
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto((out / "report.html").resolve().as_uri())
        page.screenshot(path=str(shot), full_page=True)
        tables = page.evaluate("[...document.querySelectorAll('table')].map(t => [t.id, t.rows.length])")
        images = page.evaluate("[...document.querySelectorAll('img')].map(i => [i.alt, i.naturalWidth])")
        browser.close()
    assert problems == []
    ids = {t for t, _ in tables}
    assert {"before-after-table", "labels-table", "deliberation-table", "perplexity-table", "data-table", "timings-table"} <= ids
    assert all(rows >= 2 for t, rows in tables if t)  # a header and at least one row of numbers
    assert len(images) >= 4 and all(width > 0 for _, width in images)  # every embedded plot decodes
    img = Image.open(shot)
    assert img.height > 900 and len(img.convert("L").getcolors(256) or []) > 8  # a page, not a blank frame


def _records(out) -> dict[str, list[dict]]:
    """Every per-sample JSONL file of a run, rows keyed and sorted, run-specific fields dropped."""
    volatile = {"seconds", "created", "elapsed", "adapter", "trace_span"}
    out_files = {}
    for path in sorted(out.rglob("*.jsonl")):
        rows = [{k: v for k, v in json.loads(x).items() if k not in volatile} for x in path.read_text().splitlines()]
        out_files[str(path.relative_to(out))] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
    return out_files


def test_bars_inside_a_run_share_one_display_named_by_stage():
    import io

    from rich.console import Console

    from thinksafe.progress import bar, run_display, stage

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with run_display(console, enabled=True):
        with stage("before/eval"), bar("generating", 4) as a, bar("judging", 2) as b:
            assert a.display is b.display  # one display for the whole run
            a.advance(4)
            a.rate("12.0 tok/s")
            names = [t.description for t in a.display.tasks]
    assert names == ["before/eval · generating", "before/eval · judging"]
    with bar("alone", 1, enabled=False) as c:  # outside a run: a display of its own
        assert c.display is not a.display


@needs_data
@pytest.mark.slow
def test_the_deliberate_comparison_equalises_training_and_tests_each_difference(tiny_run, tiny_model_dir, tmp_path,
                                                                                monkeypatch):
    """base, thinksafe and thinksafe-deliberate in one run: the selecting recipe trains first, thinksafe is
    capped at its pair counts, and the report tests every difference. The base model's stages are the
    session's tiny run's (same settings): its ``before/`` is copied in, and the run must use it as it is."""
    import hashlib
    import shutil

    from test_deliberation_run import _ParityJudge

    from thinksafe.align import run as run_mod
    from thinksafe.align.filter import FilterReport
    from thinksafe.deliberation import replay as replay_mod
    from thinksafe.deliberation.run import DeliberationRun
    from thinksafe.pipeline import run_main

    monkeypatch.setattr(DeliberationRun, "judge", lambda self, name, **options: _ParityJudge())

    def keep_closed(candidates, **kw):  # a random model never refuses: every trace with tokens passes the filter
        report = FilterReport()
        for c in candidates:
            (report.kept if c.get("trace_token_ids") else report.dropped).append(
                c | {"verdicts": {}, **({} if c.get("trace_token_ids") else {"drop_reason": "unclosed_trace"})})
        return report

    def planted(backend, tokenizer, records, cuts, n, settings, adapter=None):
        # half the traces (by a hash of the key) decide: refusal after the full trace only
        odd = [int(hashlib.sha256(c.key.encode()).hexdigest(), 16) % 2 for c in cuts]
        return [["I can't help with that." if c.k > 0 and not o else "Sure: step one."] * n for c, o in zip(cuts, odd)]

    monkeypatch.setattr(run_mod, "filter_candidates", keep_closed)
    monkeypatch.setattr(replay_mod, "replay", planted)
    out = tmp_path / "run"
    shutil.copytree(tiny_run.out / "before", out / "before")
    def files():  # records and stage manifests (the scorecard and its plots are drawn again at each call)
        return {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "before").rglob("*")
                if p.suffix == ".jsonl" or p.name == "manifest.json"}

    before = files()
    base = _tiny_run_config(out, tiny_model_dir)  # the tiny run's settings, less its small batches and long training
    cfg = RunConfig(**(base.to_dict() | {"recipes": ["thinksafe", "thinksafe-deliberate"], "equalize": True}))
    metrics = run_main(cfg, progress=False)
    assert metrics["before"] == tiny_run.metrics["before"]
    assert files() == before  # used as it was: not one file written again

    selection = metrics["selection"]["thinksafe-deliberate"]
    assert selection["rule"] == "decisive" and selection["harmful_in"] == 3
    t_sel, t_ts = metrics["training"]["thinksafe-deliberate"], metrics["training"]["thinksafe"]
    assert t_sel["harmful_pairs"] == selection["harmful_kept"] < 3 or selection["harmful_kept"] == 3
    assert (t_ts["pairs"], t_ts["harmful_pairs"]) == (t_sel["pairs"], t_sel["harmful_pairs"])  # equal sizes
    assert t_ts["caps"] == {"harmful_pairs": t_sel["harmful_pairs"], "benign_pairs": t_sel["pairs"] - t_sel["harmful_pairs"]}
    assert t_sel["caps"] == {"harmful_pairs": None, "benign_pairs": None}
    timings = list(json.loads((out / "timings.json").read_text()))
    assert timings.index("align/thinksafe-deliberate") < timings.index("align/thinksafe")  # the selecting one first

    assert set(metrics["contrasts"]) == {"thinksafe vs base", "thinksafe-deliberate vs base",
                                         "thinksafe-deliberate vs thinksafe"}
    rows = {r["metric"]: r for r in metrics["contrasts"]["thinksafe-deliberate vs thinksafe"]["rows"]}
    ev = metrics["by_recipe"]
    assert metrics["schema_version"] == 3
    assert ev["thinksafe"]["asr"]["harmbench"]["metric"] == "non_refusal_rate"  # the keyword judge decides refusals only
    for group in ("asr", "orr", "reasoning"):
        for bench, row in ev["thinksafe"][group].items():
            r = rows[f"{bench} {row['metric']}"]
            assert r["test"] == "McNemar (exact)" and r["n"] == row["n"] and 0 <= r["p_value"] <= r["p_holm"] <= 1
            assert r["a"] == row["value"] and r["b"] == ev["thinksafe-deliberate"][group][bench]["value"]
            assert r["ci"][0] <= r["diff"] <= r["ci"][1] and r["paired"]
    for name in ("decision before thinking: last-prompt AUROC (harmful pool)", "first-sampled-token AUROC (harmful pool)",
                 "commitment fraction", "flip rate at 20%", "flip rate at 20%, net of the full-trace floor",
                 "performative share of stance changes"):
        assert name in rows
    html = (out / "report.html").read_text()
    assert 'id="contrasts"' in html and 'id="selection-table"' in html and "thinksafe-deliberate vs thinksafe" in html


@needs_data
@pytest.mark.slow
@pytest.mark.skipif(__import__("importlib").util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_a_main_job_starts_one_vllm_engine_per_model_and_settings(tmp_path, monkeypatch):
    """Every stage of one model and its settings shares one engine: the base model's (evaluation, deliberation,
    pair generation) and the aligned one's, each started once."""
    from test_deliberation_run import _ParityJudge

    from thinksafe.deliberation.run import DeliberationRun
    from thinksafe.generation import vllm_backend
    from thinksafe.pipeline import run_main

    monkeypatch.setattr(DeliberationRun, "judge", lambda self, name, **options: _ParityJudge())  # both labels

    cfg = _tiny_run_config(tmp_path / "run", "smollm2-135m-instruct")
    for section in ("eval", "deliberation", "align"):
        getattr(cfg, section)["generation"] = getattr(cfg, section)["generation"] | {"backend": "vllm", "dtype": "auto"}
    vllm_backend.release_engines()
    vllm_backend.ENGINE_STARTS.clear()
    try:
        run_main(cfg, progress=False)
        starts = dict(vllm_backend.ENGINE_STARTS)
    finally:
        vllm_backend.release_engines()
    assert starts and all(n == 1 for n in starts.values()), starts
    assert len(starts) == 2, list(starts)  # the base model, then the model with its adapter merged in


def test_a_recipe_at_a_template_trains_under_that_template_for_the_ablation():
    from thinksafe.errors import ConfigError

    cfg = RunConfig(out="x", preset="quick", recipes=["thinksafe", "thinksafe@suffix", "thinksafe@intent-reminder"])
    sets = {"orr": "xstest_safe", "train_harmful": "advbench", "train_benign": "or_bench"}
    aligns = [cfg.stage_config("align", sets, recipe=r) for r in cfg.recipes]
    assert [(a.recipe, a.template) for a in aligns] == [("thinksafe", "prefix"), ("thinksafe", "suffix"),
                                                        ("thinksafe", "intent-reminder")]
    with pytest.raises(ConfigError, match="does not steer"):
        RunConfig(out="x", preset="quick", recipes=["rejection@suffix"])
    with pytest.raises(Exception, match="prefix"):  # an unknown template lists the known ones
        RunConfig(out="x", preset="quick", recipes=["thinksafe@sufix"])


def test_seeds_train_every_recipe_once_a_seed_under_that_sampling_and_training_seed():
    from thinksafe.errors import ConfigError

    cfg = RunConfig(out="x", preset="quick", recipes=["thinksafe", "teacher"], seeds=[0, 1, 2])
    assert cfg.arms == [(f"{r}-seed{s}", r, s) for r in ("thinksafe", "teacher") for s in (0, 1, 2)]
    sets = {"orr": "xstest_safe", "train_harmful": "advbench", "train_benign": "or_bench"}
    aligns = [cfg.stage_config("align", sets, recipe=r, seed=s) for _, r, s in cfg.arms]
    assert [(a.recipe, a.generation.seed) for a in aligns] == [(r, s) for _, r, s in cfg.arms]
    plain = cfg.stage_config("align", sets, recipe="thinksafe")
    assert aligns[0].generation == replace(plain.generation, seed=0)  # only the seed differs
    run = MainRun.__new__(MainRun)
    run.cfg = cfg
    assert run.stage_names()[2:5] == ["align/thinksafe-seed0", "align/thinksafe-seed1", "align/thinksafe-seed2"]
    assert RunConfig(out="x", preset="quick", recipes=["thinksafe"]).arms == [("thinksafe", "thinksafe", None)]
    for bad in ([], [0, 0], [-1], ["0"], [True]):
        with pytest.raises(ConfigError, match="seeds"):
            RunConfig(out="x", preset="quick", seeds=bad)
    with pytest.raises(ConfigError, match="repeat"):
        RunConfig(out="x", preset="quick", recipes=["thinksafe", "thinksafe"])
