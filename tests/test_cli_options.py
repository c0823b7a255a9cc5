"""One source of defaults: the command-line options are generated from the stage configs, every flag a
suite or preset could override is honoured, and `run --print-config` shows the resolved configuration."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import yaml

from thinksafe.cli import ALIGN_FLAGS, DELIBERATION_FLAGS, EVAL_FLAGS, GENERATE_FLAGS, RUN_FLAGS, main


class Captured(Exception):
    """Raised by a stand-in stage function once it has the config the command built."""


def _capture(monkeypatch, module, name: str) -> dict:
    seen: dict = {}

    def stand_in(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        raise Captured

    monkeypatch.setattr(module, name, stand_in)
    return seen


def _invoke(monkeypatch, *args: str) -> None:
    from thinksafe.cli import app

    monkeypatch.setattr(sys, "argv", ["thinksafe", *args])
    with pytest.raises(Captured):
        app(list(args), standalone_mode=False)


def test_eval_thinking_budget_is_honoured_over_the_quick_suites_own(monkeypatch, tmp_path):
    from thinksafe.evals import runner
    from thinksafe.evals.runner import _entry_config

    seen = _capture(monkeypatch, runner, "run_eval")
    _invoke(monkeypatch, "eval", "--suite", "quick", "--out", str(tmp_path / "a"))
    default = seen["cfg"]
    assert {e.benchmark: _entry_config(default, e).thinking_budget for e in default.entries()} == {
        "harmbench": 96, "strongreject": 96, "xstest_safe": 96, "gsm8k": 224}
    _invoke(monkeypatch, "eval", "--suite", "quick", "--out", str(tmp_path / "b"), "--thinking-budget", "64",
            "--max-new-tokens", "40")
    job = seen["cfg"]
    assert job.thinking_budget == 64 and job.max_new_tokens == 40
    for entry in job.entries():  # every set, whatever the suite entry says
        cfg = _entry_config(job, entry)
        assert (cfg.thinking_budget, cfg.max_new_tokens) == (64, 40)
        assert cfg.samples == entry.samples_per_prompt


def test_eval_budget_flag_changes_the_run_identity(tiny_loaded, tmp_path):
    """The flag reaches generation: a budget of 2 caps every record's trace, and the stage identity
    records it (so a folder written with the suite's budgets is not silently reused)."""
    import json

    from thinksafe.evals.runner import EvalJob, run_eval
    from thinksafe.evals.suites import SUITES, Suite, SuiteEntry
    from thinksafe.generation.config import GenerationConfig

    if "budget-test" not in SUITES:
        SUITES.register("budget-test", Suite("budget-test", "unit test", (
            SuiteEntry("thinksafe_sensitive", limit=2, metric="orr", thinking_budget=6, max_new_tokens=3),)))
    gen = GenerationConfig(thinking="prompted", temperature=1.0, backend="transformers")
    job = EvalJob(model="smollm2-135m-instruct", suite="budget-test", out=str(tmp_path / "e"), judge="keyword",
                  generation=gen, thinking_budget=2)
    run_eval(job, loaded=tiny_loaded, progress=False)
    records = [json.loads(x) for x in (tmp_path / "e" / "thinksafe_sensitive" / "records.jsonl").read_text().splitlines()]
    assert records and all(r["n_trace_tokens"] <= 2 for r in records)
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["identity"]["thinking_budget"] == 2


@pytest.mark.parametrize("name,flags", [("generate", GENERATE_FLAGS), ("eval", EVAL_FLAGS), ("align", ALIGN_FLAGS),
                                        ("deliberation", DELIBERATION_FLAGS), ("run", RUN_FLAGS)])
def test_every_flag_comes_from_a_config_field_and_shows_its_default(name, flags):
    from thinksafe.align.run import AlignConfig
    from thinksafe.deliberation.run import DeliberationConfig
    from thinksafe.evals.runner import EvalJob
    from thinksafe.generation.stage import GenerateJob
    from thinksafe.pipeline import RunConfig

    cls = {"generate": GenerateJob, "eval": EvalJob, "align": AlignConfig, "deliberation": DeliberationConfig,
           "run": RunConfig}[name]
    spelt = [f.option.split("/")[0] for f in flags]
    assert len(spelt) == len(set(spelt)), f"{name}: a flag generated twice"
    for flag in flags:
        node = cls
        for key in flag.path[:-1]:
            node = {f.name: f for f in dataclasses.fields(node)}[key].default_factory().__class__
        field = {f.name: f for f in dataclasses.fields(node)}[flag.path[-1]]
        assert field.metadata.get("help"), f"{name} {flag.option}: the field has no help text"
        assert "(default: " in flag.help, f"{name} {flag.option}: the help does not show the default"


def test_per_command_generation_defaults_are_the_configs(monkeypatch, tmp_path):
    """The help of each command shows its own config's generation default (declared once there)."""
    by_option = {name: {f.option: f.help for f in flags} for name, flags in
                 (("generate", GENERATE_FLAGS), ("align", ALIGN_FLAGS), ("deliberation", DELIBERATION_FLAGS))}
    assert by_option["generate"]["--thinking-budget"].endswith("(default: 256)")
    assert by_option["align"]["--thinking-budget"].endswith("(default: 128)")
    assert by_option["align"]["--top-k"].endswith("(default: 20)")
    assert by_option["deliberation"]["--max-new-tokens"].endswith("(default: 96)")
    assert "--samples" not in {f.option for f in EVAL_FLAGS}  # a suite entry decides it


def test_align_and_deliberation_flags_reach_their_configs(monkeypatch, tmp_path):
    from thinksafe.align import run as align_run
    from thinksafe.deliberation import run as delib_run

    seen = {}

    def capture_align(stage, run_dir, cfg, **kw):
        seen["align"] = cfg
        raise Captured

    def capture_delib(out, cfg, stage="all", **kw):
        seen["delib"] = cfg
        raise Captured

    monkeypatch.setattr(align_run, "run_stage", capture_align)
    monkeypatch.setattr(delib_run, "run_stage", capture_delib)
    _invoke(monkeypatch, "align", "generate", "--run", str(tmp_path / "al"), "--harmful", "advbench", "--eval-set",
            "harmbench", "--refuse-overlap", "--seed", "3", "--top-k", "0", "--select", "samples=4")
    al = seen["align"]
    assert al.harmful == ["advbench"] and al.eval_sets == ["harmbench"] and al.drop_overlap is False
    assert (al.generation.seed, al.generation.top_k, al.generation.thinking_budget) == (3, 0, 128)
    assert al.select == {"samples": 4}
    _invoke(monkeypatch, "deliberation", "--out", str(tmp_path / "de"), "--replays", "48", "--fraction", "0.5",
            "--probe-folds", "3", "--replay-top-k", "0", "--stance-judge-option", "threshold=0.4")
    de = seen["delib"]
    assert de.replays == 48 and de.fractions == [0.5] and de.probe.folds == 3 and de.replay.top_k == 0
    assert de.stance_judge_options == {"threshold": 0.4} and de.generation.top_k == 20


def test_run_print_config_shows_preset_file_and_flags(monkeypatch, capsys, tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("deliberation: {replays: 48}\neval: {limit_scale: 0.5}\n")
    monkeypatch.setattr(sys, "argv", ["thinksafe", "run", "--print-config", "--config", str(cfg_file), "--out",
                                      str(tmp_path / "r"), "--eval", "thinking_budget=64"])
    main()
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["preset"] == "standard" and printed["out"] == str(tmp_path / "r")  # make run's default
    assert printed["eval"]["limit_scale"] == 0.5 and printed["eval"]["thinking_budget"] == 64  # file + flag
    assert printed["deliberation"]["replays"] == 48 and printed["deliberation"]["truncation_samples"] == 2  # preset
    assert printed["align"]["thinksafe"]["harmful_size"] == 32
    assert not (tmp_path / "r").exists()  # nothing run, nothing written


def test_presets_are_the_shipped_yaml_files():
    from thinksafe.pipeline import PRESET_DIR, RUN_PRESETS

    assert sorted(p.stem for p in PRESET_DIR.glob("*.yaml")) == sorted(RUN_PRESETS.names())
    assert RUN_PRESETS.get("quick").eval == {"suite": "quick", "limit_scale": 0.4}
    assert RUN_PRESETS.get("deliberate").equalize is True


def test_plan_prints_the_planned_mdd_of_each_headline_before_anything_runs(monkeypatch, capsys, tmp_path):
    from thinksafe.pipeline import PlanAssumptions, RunConfig, plan
    from thinksafe.stats import paired_mdd

    rows = {r["measure"]: r for r in plan(RunConfig(out=str(tmp_path / "r"), preset="deliberate"))}
    harm = rows["harmbench asr"]
    assert harm["n"] == 100 and harm["mdd"] == paired_mdd(100, 0.3) and 0.1 < harm["mdd"] < 0.3
    assert rows["gsm8k accuracy"]["n"] == 200 and rows["gsm8k accuracy"]["discordance"] == 0.2
    assert "reported" in rows["performative share of stance changes"]["note"]  # K = 49 meets the power rule
    quick = {r["measure"]: r for r in plan(RunConfig(out=str(tmp_path / "q"), preset="quick"), PlanAssumptions(discordance=0.5))}
    assert quick["harmbench asr"]["n"] == 8 and quick["harmbench asr"]["discordance"] == 0.5
    assert quick["performative share of stance changes"]["note"].startswith("not reported (underpowered: K = 4")
    # make run's preset detects a change of 0.15 in each headline the verdict turns on
    standard = {r["measure"]: r for r in plan(RunConfig(out=str(tmp_path / "s")))}
    orr = next(m for m in standard if m.endswith(" orr"))  # XSTest's safe prompts, or ours offline
    for measure in ("harmbench asr", orr, "gsm8k accuracy"):
        assert standard[measure]["mdd"] <= 0.15, standard[measure]
    monkeypatch.setattr(sys, "argv", ["thinksafe", "plan", "--preset", "deliberate", "--out", str(tmp_path / "p"),
                                      "--discordance", "0.25"])
    main()
    printed = " ".join(capsys.readouterr().out.split())
    assert "harmbench asr" in printed and f"{paired_mdd(100, 0.25):.3f}" in printed
    assert not (tmp_path / "p").exists()  # planning writes nothing
