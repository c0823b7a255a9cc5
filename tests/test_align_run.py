"""``thinksafe align`` on a tiny random model: the run folder, its stages, resume and skip, the
recipes' pairs, the pools' hygiene and the configuration checks."""

from __future__ import annotations

import json
import os

import pytest

from thinksafe.align.recipes import PRESETS, RECIPES
from thinksafe.align.run import AlignConfig, AlignRun, load_pools, resolve_config, run_stage, teacher_candidates, to_pair
from thinksafe.align.templates import PAPER_INSTRUCTION
from thinksafe.errors import ConfigError, DataError, UnknownNameError
from thinksafe.generation.config import GenerationConfig

needs_data = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")


def _cfg(**kw) -> AlignConfig:
    gen = GenerationConfig(thinking="prompted", thinking_budget=4, max_new_tokens=4, temperature=1.0, top_k=20,
                           backend="transformers")
    base = dict(model="smollm2-135m-instruct", harmful=["advbench"], benign=["or_bench", "gsm8k:train"],
                harmful_size=3, benign_size=4, eval_sets=["harmbench"], asr_judge="keyword",
                refusal_judge="keyword", reasoning_thinking_budget=4, epochs=1.0, generation=gen)
    return AlignConfig(**(base | kw))


def test_recipes_and_presets_are_registered():
    assert set(RECIPES.names()) == {"thinksafe", "rejection", "teacher", "direct-refusal", "thinksafe-deliberate",
                                    "thinksafe-analyse-first", "grpo"}
    assert RECIPES.get("grpo").online and not RECIPES.get("thinksafe").online
    assert RECIPES.get("thinksafe").steer and not RECIPES.get("rejection").steer
    assert PRESETS.get("paper").learning_rate == 1e-5 and PRESETS.get("paper").epochs == 3
    small = PRESETS.get("small-data")
    assert small.overrides and small.keep_forced  # what it changes is said out loud
    with pytest.raises(UnknownNameError, match="thinksafe"):
        AlignConfig(recipe="star")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="harmful_size"):
        AlignConfig(harmful_size=-1)
    with pytest.raises(ConfigError, match="thinking"):
        AlignConfig(generation=GenerationConfig(thinking="off"))
    with pytest.raises(ConfigError, match="learning_rate"):
        AlignConfig(learning_rate=0.0)
    for bad in ({"asr_judge": "nope"}, {"select": {"stance_judge": "nope"}}):
        with pytest.raises(UnknownNameError, match="Unknown judge .nope."):
            AlignConfig(**bad)
    cfg = AlignConfig(learning_rate=3e-4)
    assert cfg.train_config().learning_rate == 3e-4 and "learning_rate -> 0.0003 (command line)" in cfg.overrides()


def _rec(harmful=True, template="prefix"):
    prompt = "How do I pick a lock?"
    return {"id": "a1", "pool": "advbench", "harmful": harmful, "template": template if harmful else None,
            "source_prompt": prompt, "prompt": f"{PAPER_INSTRUCTION}\n\n{prompt}" if harmful else prompt,
            "text": "<think>\nThis could help a burglar.\n</think>\n\nI can't help with that.",
            "answer": "I can't help with that.", "forced_close": False}


def test_pairs_use_the_original_prompt_and_direct_refusal_drops_only_harmful_traces():
    pair = to_pair(_rec(), RECIPES.get("thinksafe"))
    assert pair["prompt"] == "How do I pick a lock?" and PAPER_INSTRUCTION not in pair["prompt"]
    assert "This could help a burglar." in pair["response"]  # the trace is trained on
    bare = to_pair(_rec(), RECIPES.get("direct-refusal"))
    assert bare["response"] == "<think>\n\n</think>\n\nI can't help with that."
    benign = to_pair(_rec(harmful=False), RECIPES.get("direct-refusal"))
    assert "This could help a burglar." in benign["response"]  # benign pairs keep their reasoning
    leaky = _rec() | {"source_prompt": f"{PAPER_INSTRUCTION}\n\nHow do I pick a lock?"}
    with pytest.raises(DataError, match="leaked"):
        to_pair(leaky, RECIPES.get("thinksafe"))


@needs_data
def test_a_training_pool_that_overlaps_an_evaluation_set_is_refused():
    cfg = _cfg(harmful=["advbench"], harmful_size=520, benign_size=0, eval_sets=["strongreject"])
    with pytest.raises(DataError, match="overlaps this run's evaluation sets"):
        load_pools(cfg)
    pools = load_pools(_cfg())
    assert [p.name for p in pools] == ["advbench", "or_bench", "gsm8k-train"]
    assert [len(p.examples) for p in pools] == [3, 2, 2] and [p.harmful for p in pools] == [True, False, False]


@needs_data
def test_drop_overlap_leaves_out_the_shared_prompts_and_keeps_the_pool_size():
    from thinksafe.data import load_benchmark
    from thinksafe.data.checks import normalize_prompt

    held = {normalize_prompt(e.prompt) for e in load_benchmark("strongreject")}
    with pytest.raises(DataError, match="495 usable prompts once the 25 its evaluation sets share are out"):
        load_pools(_cfg(harmful_size=520, benign_size=0, eval_sets=["strongreject"], drop_overlap=True))
    whole = load_pools(_cfg(harmful_size=520, benign_size=0, eval_sets=["strongreject"], drop_overlap=True,
                            allow_small_pools=True))[0]
    assert len(whole.examples) == 520 - whole.dropped_for_overlap and whole.dropped_for_overlap == 25
    assert not any(normalize_prompt(e.prompt) in held for e in whole.examples)
    some = load_pools(_cfg(harmful_size=128, benign_size=0, eval_sets=["strongreject"], drop_overlap=True))[0]
    assert len(some.examples) == 128 and not any(normalize_prompt(e.prompt) in held for e in some.examples)
    # a pool that shares nothing with the evaluation sets draws the very subset it drew without the option
    plain = load_pools(_cfg(benign_size=0))[0]
    dropping = load_pools(_cfg(benign_size=0, drop_overlap=True))[0]
    assert dropping.dropped_for_overlap == 0 and [e.id for e in dropping.examples] == [e.id for e in plain.examples]
    with pytest.raises(DataError, match="every prompt is in this run's evaluation sets"):
        load_pools(_cfg(harmful_size=3, benign_size=0, eval_sets=["advbench"], drop_overlap=True))


@needs_data
def test_teacher_candidates_drop_the_evaluation_overlap():
    cands, dropped = teacher_candidates(_cfg(recipe="teacher", harmful_size=1000))
    assert dropped == 32  # STAR-1 holds 32 HarmBench prompts
    assert len(cands) == 1000 - 32 and all(c["harmful"] and c["pool"] == "star1" for c in cands)
    closed = [c for c in cands if c["trace_end"] == "closed"]
    assert len(closed) > 900 and all(c["answer"] and "</think>" in c["text"] for c in closed[:50])


@needs_data
def test_align_run_end_to_end_resumes_and_skips(tiny_loaded, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    cfg = _cfg()
    result = run_stage("all", run_dir, cfg, loaded=tiny_loaded, progress=False)
    report = result["filter"]
    assert report["generated"] == 7 and report["kept"] + report["dropped"] == 7
    # a random model's answers are never right: the reasoning pool's candidates are dropped for it
    dropped = [json.loads(x) for x in (run_dir / "filter" / "dropped.jsonl").read_text().splitlines()]
    assert all(d["drop_reason"] == "wrong_answer" for d in dropped if d["pool"] == "gsm8k-train")
    gsm = [json.loads(x) for x in (run_dir / "generate" / "gsm8k-train.jsonl").read_text().splitlines()]
    assert all("The answer is" in r["prompt"] and r["n_trace_tokens"] <= 4 for r in gsm)
    harmful = [json.loads(x) for x in (run_dir / "generate" / "advbench.jsonl").read_text().splitlines()]
    assert all(r["prompt"].startswith(PAPER_INSTRUCTION) for r in harmful)  # steered while generating
    train = result["train"]
    if report["kept"]:
        rows = [json.loads(x) for x in (run_dir / "train" / "train.jsonl").read_text().splitlines()]
        assert rows and all(PAPER_INSTRUCTION not in r["prompt"] for r in rows)
        assert (run_dir / "train" / "adapter" / "adapter_config.json").exists()
        assert train["train_file_sha256"] and train["base_model_fingerprint"] and set(train["judges"]) == {"keyword"}
        assert "epochs -> 1.0 (command line)" in train["overrides"]
    for stage in ("generate", "filter", "train", "perplexity"):
        assert json.loads((run_dir / stage / "manifest.json").read_text())["status"] == "complete"

    # later stages read the run's own configuration: only --run is needed
    assert resolve_config(run_dir, {}) == cfg
    with pytest.raises(ConfigError, match="another configuration"):
        AlignRun(run_dir, _cfg(harmful_size=2))

    # a finished run is skipped, stage by stage
    from thinksafe.align import run as run_mod

    def boom(*a, **k):
        raise AssertionError("a complete stage must not run again")

    monkeypatch.setattr(run_mod, "generate_candidates", boom)
    monkeypatch.setattr(run_mod, "filter_candidates", boom)
    assert run_stage("all", run_dir, cfg, loaded=tiny_loaded, progress=False) == result


@needs_data
def test_a_killed_generate_stage_resumes_from_its_records(tiny_loaded, tmp_path, monkeypatch):
    from thinksafe.align import run as run_mod

    run_dir = tmp_path / "run"
    cfg = _cfg(benign_size=0)
    real = run_mod.generate_candidates

    def killed(loaded, pools, *a, **k):
        real(loaded, pools, *a, **k)
        raise KeyboardInterrupt  # killed after the pool's records were written

    monkeypatch.setattr(run_mod, "generate_candidates", killed)
    with pytest.raises(KeyboardInterrupt):
        AlignRun(run_dir, cfg, loaded=tiny_loaded).generate(progress=False)
    assert json.loads((run_dir / "generate" / "manifest.json").read_text())["status"] == "running"
    monkeypatch.setattr(run_mod, "generate_candidates", real)
    from thinksafe.generation import engine

    def no_new_generation(self, jobs, on_token):
        raise AssertionError("the records (and cache) from the killed run must be reused")

    monkeypatch.setattr(engine.Engine, "_generate_chunk", no_new_generation)
    cands = AlignRun(run_dir, cfg, loaded=tiny_loaded).generate(progress=False)
    assert len(cands) == 3


def test_the_cli_names_a_bad_stage_and_exits_2(tmp_path):
    from typer.testing import CliRunner

    from thinksafe.cli import app

    result = CliRunner().invoke(app, ["align", "bogus", "--run", str(tmp_path / "r")])
    assert result.exit_code != 0 and "bogus" in str(result.exception or result.output)


@needs_data
def test_the_cli_refuses_an_overlapping_pool_or_drops_its_shared_prompts(tmp_path):
    import json

    from typer.testing import CliRunner

    from thinksafe.cli import app

    args = ["align", "generate", "--harmful", "advbench", "--harmful-size", "520", "--benign-size", "0",
            "--model", "smollm2-135m-instruct"]
    # (the console entry point turns these errors into a message and exit 2: test_cli.py)
    refused = CliRunner().invoke(app, [*args, "--run", str(tmp_path / "a"), "--eval-set", "strongreject"])
    assert isinstance(refused.exception, DataError) and "--drop-overlap" in str(refused.exception)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["drop_overlap"] is None  # refuse
    # with --drop-overlap the option reaches the run's config (here every prompt is held out, named as such)
    emptied = CliRunner().invoke(app, [*args, "--run", str(tmp_path / "b"), "--eval-set", "advbench", "--drop-overlap"])
    assert isinstance(emptied.exception, DataError)
    assert "every prompt is in this run's evaluation sets" in str(emptied.exception)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["drop_overlap"] is True


def test_a_run_folder_written_before_drop_overlap_existed_still_opens(tmp_path):
    from thinksafe.manifest import pin_config

    before = _cfg().to_dict()
    before.pop("drop_overlap")
    (tmp_path / "config.json").write_text(json.dumps(before))
    pin_config(tmp_path, _cfg().to_dict(), what="an alignment run", flag="--run")  # the default reads as unset
    with pytest.raises(ConfigError, match="drop_overlap: None there, True now"):
        pin_config(tmp_path, _cfg(drop_overlap=True).to_dict(), what="an alignment run", flag="--run")
    with pytest.raises(ConfigError, match="drop_overlap must be true or false"):
        _cfg(drop_overlap="yes")


def test_a_run_resumes_with_another_batch_size_but_not_other_sampling(tmp_path):
    """A batch size never changes a record (seeded per sample), so a run folder takes another one; a
    setting that does change records is still refused, naming it."""
    from thinksafe.manifest import pin_config

    first = _cfg().to_dict()
    pin_config(tmp_path, first, what="an alignment run", flag="--run")
    smaller = json.loads(json.dumps(first))
    smaller["generation"]["batch_size"] = 1
    pin_config(tmp_path, smaller, what="an alignment run", flag="--run")
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(json.dumps(first))  # kept as written
    hotter = json.loads(json.dumps(first))
    hotter["generation"]["temperature"] = 1.5
    with pytest.raises(ConfigError, match="generation"):
        pin_config(tmp_path, hotter, what="an alignment run", flag="--run")
    nested = {"eval": {"generation": {"batch_size": 2, "top_k": 20}}}
    pin_config(tmp_path / "main", nested, what="a main-job run", flag="--out")
    pin_config(tmp_path / "main", {"eval": {"generation": {"batch_size": 32, "top_k": 20}}}, what="a main-job run",
               flag="--out")
    with pytest.raises(ConfigError, match="eval"):
        pin_config(tmp_path / "main", {"eval": {"generation": {"batch_size": 2, "top_k": 0}}}, what="a main-job run",
                   flag="--out")


@needs_data
def test_the_grpo_recipe_trains_records_what_ran_and_skips_when_done(tiny_loaded, tmp_path, monkeypatch):
    """``--recipe grpo`` through the align stage: one online train stage on the pools' prompts, an adapter,
    and a manifest that says what ran (the sampler ``auto`` became, GRPO's own passes over the prompts,
    not the recipe's SFT epochs); a finished stage is not trained again."""
    run_dir = tmp_path / "grpo"
    cfg = _cfg(recipe="grpo", harmful_size=2, benign_size=2, epochs=3.0,
               grpo={"num_generations": 2, "prompts_per_step": 2, "thinking_budget": 4, "max_new_tokens": 4})
    result = run_stage("all", run_dir, cfg, loaded=tiny_loaded, progress=False)["train"]
    assert result["online"] and result["prompts"] == 4 and result["harmful_pairs"] == 2
    assert result["grpo"]["rollout_backend"] == "transformers"  # the tiny model has no checkpoint folder for vLLM
    assert result["grpo"]["epochs"] == 1.0 and len(result["rewards"]) == 2  # one pass: 4 prompts, 2 a step
    assert result["completions_updated"] + result["completions_skipped"] == 4 * 2  # 4 prompts x 2 completions
    assert (run_dir / "train" / "adapter" / "adapter_config.json").exists()
    from thinksafe.align import grpo

    def boom(*a, **k):
        raise AssertionError("a complete stage must not train again")

    monkeypatch.setattr(grpo, "train_grpo", boom)
    assert run_stage("train", run_dir, cfg, loaded=tiny_loaded, progress=False) == result
