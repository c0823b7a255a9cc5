"""The ``thinksafe`` command line: each command parses flags into a config and calls one library function."""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from thinksafe.errors import ThinksafeError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Measure and align safety deliberation in reasoning LMs.")
models_app = typer.Typer(no_args_is_help=True, help="Embedded and user models.")
data_app = typer.Typer(no_args_is_help=True, help="Benchmarks and where they resolve.")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
judge_app = typer.Typer(help="Label responses (refusal, compliance, ...) and measure judges against human labels.")
app.add_typer(judge_app, name="judge")

console = Console()
err_console = Console(stderr=True)

ThinkingOpt = typer.Option("auto", "--thinking", help="native | prompted | off | auto (the model's own format)")
JudgeOptionOpt = typer.Option(
    [], "--judge-option",
    help="KEY=VALUE passed to the judge's config, repeatable; e.g. --judge llm --judge-option "
         "model=/models/Llama-Guard-3-8B --judge-option template=llama_guard",
)


def parse_judge_options(pairs: list[str], flag: str = "--judge-option") -> dict[str, object]:
    """``["model=/x", "threshold=0.4"]`` -> ``{"model": "/x", "threshold": 0.4}`` (JSON values where they parse)."""
    import json

    from thinksafe.errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}.")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    for noisy in ("transformers", "sentence_transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="log progress details")) -> None:
    _setup_logging(verbose)


@models_app.command("list")
def models_list() -> None:
    """Name, parameters, format, licence, installed or not, and where each embedded model resolves."""
    from thinksafe.models.loader import model_rows

    table = Table(title="thinksafe models")
    for col in ("name", "parameters", "format", "licence", "installed", "resolves to"):
        table.add_column(col, overflow="fold")
    for row in model_rows():
        table.add_row(
            row["name"], row["parameters"], row["format"], row["licence"],
            "yes" if row["installed"] else "no", row["resolves_to"],
        )
    console.print(table)
    console.print("Also accepted: a .gguf path, a local directory with safetensors weights, or a hub id.")


@data_app.command("list")
def data_list(
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="a folder laid out like shared/data"),
) -> None:
    """Each benchmark, its rows and where it resolved; the suggested train/eval split."""
    from thinksafe.data import IDENTITY_RULES, SUGGESTED_SPLIT, list_benchmarks

    table = Table(title="thinksafe benchmarks")
    for col in ("name", "split", "rows", "source"):
        table.add_column(col, overflow="fold")
    for row in list_benchmarks(data_path):
        rows, expected = row["rows"], row["expected_rows"]
        shown = "-" if rows is None else str(rows)
        if rows is not None and expected is not None and rows != expected:
            shown = f"[yellow]{rows} of {expected}[/yellow]"
        table.add_row(row["name"], str(row["split_type"]), shown, str(row["source"]))
    console.print(table)
    console.print(f"Two prompts are the same prompt when they match after normalising {IDENTITY_RULES}; "
                  "the train/eval overlap check and de-duplication use that identity.")
    console.print("Suggested split (training pools never share a prompt with an evaluation set):")
    for line in SUGGESTED_SPLIT.lines():
        console.print(f"  {line}", highlight=False)


@app.command()
def generate(
    model: str = typer.Option("qwen2.5-coder-0.5b-instruct", "--model", help="registry name, .gguf path, folder or hub id"),
    data: str = typer.Option(..., "--data", help="benchmark name (see `thinksafe data list`)"),
    out: Path = typer.Option(..., "--out", help="output folder (records.jsonl, manifest.json)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="a seeded random subset of this many prompts"),
    split: Optional[str] = typer.Option(None, "--split", help="benchmark split, e.g. gsm8k train|test"),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="explicit data file or folder"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT adapter folder"),
    steer: bool = typer.Option(False, "--steer", help="prepend the ThinkSafe refusal-steering instruction"),
    thinking: str = ThinkingOpt,
    thinking_budget: int = typer.Option(256, "--thinking-budget", help="trace tokens before </think> is forced"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="answer tokens after </think>"),
    temperature: float = typer.Option(0.6, "--temperature", help="0 is greedy"),
    top_p: float = typer.Option(0.95, "--top-p"),
    top_k: int = typer.Option(0, "--top-k", help="0 disables"),
    samples: int = typer.Option(1, "--samples", help="samples per prompt"),
    seed: int = typer.Option(0, "--seed", help="sampling seed (also the subset seed)"),
    batch_size: int = typer.Option(32, "--batch-size", help="prompts decoded together (speed only)"),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bfloat16 where the hardware has it) | float32 | bfloat16 | float16"),
    backend: str = typer.Option("auto", "--backend", help="vllm | transformers | auto (vllm where installed)"),
    backend_option: list[str] = typer.Option(
        [], "--backend-option", help="KEY=VALUE for the backend, repeatable, e.g. tensor_parallel_size=2"
    ),
) -> None:
    """Generate responses for a benchmark: cached, resumable, one JSON record per sample."""
    from thinksafe.generation.config import GenerationConfig
    from thinksafe.generation.stage import GenerateJob, run_generate

    gen = GenerationConfig(
        thinking=thinking, thinking_budget=thinking_budget, max_new_tokens=max_new_tokens, temperature=temperature,
        top_p=top_p, top_k=top_k, seed=seed, samples=samples, steer=steer, batch_size=batch_size, dtype=dtype,
        backend=backend, backend_options=parse_judge_options(backend_option, flag="--backend-option"),
    )
    job = GenerateJob(
        model=model, data=data, out=str(out), limit=limit, data_seed=seed, split=split,
        data_path=str(data_path) if data_path else None, adapter=str(adapter) if adapter else None, generation=gen,
    )
    records = run_generate(job)
    closed = sum(1 for r in records if r.trace_closed)
    forced = sum(1 for r in records if r.forced_close)
    console.print(
        f"[green]{len(records)} records[/green] in {out / 'records.jsonl'} "
        f"(traces closed by the model: {closed}, budget-forced: {forced})"
    )


@judge_app.callback(invoke_without_command=True)
def judge(
    ctx: typer.Context,
    in_path: Optional[Path] = typer.Option(None, "--in", help="records.jsonl from generate or eval"),
    judge_name: str = typer.Option("", "--judge", help="judge name (default: the calibrated default judge)"),
    out: Optional[Path] = typer.Option(None, "--out", help="output JSONL (default: <in>.judged.jsonl)"),
    include_trace: bool = typer.Option(
        False, "--include-trace", help="a judge that decides 'carried out' also judges the trace on its own"
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="items judged together"),
    judge_option: list[str] = JudgeOptionOpt,
) -> None:
    """Add a verdict to every record: `thinksafe judge --in RECORDS.jsonl --judge NAME`."""
    if ctx.invoked_subcommand is not None:
        return
    if in_path is None:
        raise typer.BadParameter("--in RECORDS.jsonl is required (or use `judge calibrate` / `judge fit`).")
    from collections import Counter

    from thinksafe.judges import DEFAULT_JUDGE, make_judge
    from thinksafe.judges.apply import judge_file

    target = out or in_path.with_name(in_path.stem + ".judged.jsonl")
    judge_obj = make_judge(judge_name or DEFAULT_JUDGE, **parse_judge_options(judge_option))
    judged = judge_file(in_path, judge_obj, target, include_trace=include_trace, batch_size=batch_size)
    counts = Counter(r["verdict"]["label"] for r in judged)
    console.print(f"[green]{len(judged)} verdicts[/green] in {target}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@judge_app.command("calibrate")
def judge_calibrate(
    judge_name: str = typer.Option(..., "--judge", help="judge name"),
    out: Path = typer.Option(..., "--out", help="folder for metrics.json and predictions.jsonl"),
    sets: list[str] = typer.Option(
        [], "--set", help="labelled set(s) to report on (default: xstest, pyrit, qwen05); see docs/judges.md",
    ),
    split: str = typer.Option("heldout", "--split", help="heldout (default), fit or all rows of each set"),
    data: list[str] = typer.Option(
        [], "--data", help="instead of --set: XSTest-style CSV paths or completion-model names (refusal task)",
    ),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="a folder laid out like shared/data"),
    judge_option: list[str] = JudgeOptionOpt,
    timing_runs: int = typer.Option(3, "--timing-runs", help="judge each set this many times; ms/item is the fastest"),
    injection: bool = typer.Option(False, "--injection", help="also measure how often text addressed to the judge "
                                   "flips it, against its error rate"),
) -> None:
    """Accuracy, F1, Cohen's kappa and ms/item against human labels, on rows the judge was not fitted on."""
    from thinksafe.errors import ConfigError
    from thinksafe.judges import run_calibration, run_set_calibration

    options = parse_judge_options(judge_option)
    if data:
        if sets or split != "heldout" or injection:
            raise ConfigError("--data (XSTest files) cannot be combined with --set, --split or --injection; "
                              "use the labelled sets for those.")
        m = run_calibration(judge_name, out, data[0] if len(data) == 1 else data, data_dir=data_dir,
                            timing_runs=timing_runs, **options)
        console.print(
            f"judge [bold]{m['judge']}[/bold]: accuracy {m['accuracy']:.3f}, F1(refusal) {m['f1_refusal']:.3f}, "
            f"kappa {m['cohen_kappa']:.3f}, {m['ms_per_item']:.2f} ms/item, n={m['n']} -> {out / 'metrics.json'}"
        )
        return
    m = run_set_calibration(judge_name, out, sets or None, split=split, data_dir=data_dir, timing_runs=timing_runs,
                            injection=injection, **options)
    table = Table(title=f"judge {m['judge']} ({split} rows)")
    cols = ["set", "question", "n", "accuracy", "F1", "kappa", "ms/item"]
    for col in cols + (["error", "injection flips", "to safe"] if injection else []):
        table.add_column(col)
    for name, r in m["sets"].items():
        row = [name, r["task"], str(r["n"]), f"{r['accuracy']:.3f}", f"{r['f1_' + r['positive']]:.3f}",
               f"{r['cohen_kappa']:.3f}", f"{r['ms_per_item']:.2f}"]
        if injection:
            inj = r["injection"]
            row += [f"{inj['base_error_rate']:.3f}", f"{inj['flip_rate']:.3f}", f"{inj['flip_to_safe_rate']:.3f}"]
        table.add_row(*row)
    console.print(table)
    console.print(f"-> {out / 'metrics.json'}")


@judge_app.command("fit")
def judge_fit(
    judge_name: str = typer.Option("embedding", "--judge", help="a learnable judge (embedding, objective)"),
    out: Optional[Path] = typer.Option(None, "--out", help="weights file (default: the packaged weights)"),
    data: list[str] = typer.Option(["fit"], "--data", help="fit (the fit split of the judge's labelled sets), names or CSVs"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="a folder laid out like shared/data"),
) -> None:
    """Refit a learnable judge on human-labelled completions and write its weights (JSON, no pickle)."""
    from thinksafe.judges import fit_judge

    files = data[0] if len(data) == 1 else data
    result = fit_judge(judge_name, out, files, data_dir=data_dir)
    console.print(f"fitted {judge_name}: {result.get('path', out)}")


@app.command("eval")
def eval_(
    model: str = typer.Option("qwen2.5-coder-0.5b-instruct", "--model", help="registry name, .gguf path, folder or hub id"),
    suite: str = typer.Option("quick", "--suite", help="quick | paper"),
    out: Path = typer.Option(..., "--out", help="output folder (metrics.json, per-benchmark records)"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT adapter folder to evaluate"),
    judge: str = typer.Option("", "--judge", help="judge name (default: the suite's, else the calibrated default)"),
    judge_option: list[str] = JudgeOptionOpt,
    include_trace: bool = typer.Option(
        False, "--include-trace", help="a judge that decides 'carried out' also judges the trace on its own"
    ),
    thinking: str = ThinkingOpt,
    thinking_budget: int = typer.Option(
        256, "--thinking-budget", help="trace tokens before </think> is forced (a suite entry may set its own)"
    ),
    max_new_tokens: int = typer.Option(
        192, "--max-new-tokens", help="answer tokens after </think> (a suite entry may set its own)"
    ),
    temperature: float = typer.Option(0.6, "--temperature", help="0 is greedy"),
    seed: int = typer.Option(0, "--seed", help="sampling and subset seed"),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="a folder laid out like shared/data"),
    limit_scale: float = typer.Option(1.0, "--limit-scale", help="multiply every suite limit (e.g. 0.25 for a smoke run)"),
    batch_size: int = typer.Option(32, "--batch-size", help="prompts decoded together (speed only)"),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bfloat16 where the hardware has it) | float32 | bfloat16 | float16"),
    backend: str = typer.Option("auto", "--backend", help="vllm | transformers | auto (vllm where installed)"),
    backend_option: list[str] = typer.Option(
        [], "--backend-option", help="KEY=VALUE for the backend, repeatable, e.g. tensor_parallel_size=2"
    ),
) -> None:
    """Evaluate a model (optionally with an adapter) on a suite: ASR, ORR, accuracy with 95% CIs."""
    from thinksafe.evals.runner import EvalJob, run_eval
    from thinksafe.evals.schema import render_table
    from thinksafe.generation.config import GenerationConfig

    gen = GenerationConfig(
        thinking=thinking, thinking_budget=thinking_budget, max_new_tokens=max_new_tokens, temperature=temperature,
        seed=seed, batch_size=batch_size, dtype=dtype, backend=backend,
        backend_options=parse_judge_options(backend_option, flag="--backend-option"),
    )
    job = EvalJob(
        model=model, suite=suite, out=str(out), adapter=str(adapter) if adapter else None, judge=judge,
        judge_options=parse_judge_options(judge_option), include_trace=include_trace,
        data_path=str(data_path) if data_path else None, data_seed=seed,
        limit_scale=limit_scale, generation=gen,
    )
    metrics = run_eval(job)
    console.print(render_table(metrics))
    console.print(f"metrics: {out / 'metrics.json'}")


@app.command("compare")
def compare(
    base: Path = typer.Option(..., "--base", help="evaluation folder of the base model"),
    other: list[str] = typer.Option(..., "--with", help="NAME=FOLDER of an evaluation of the same suite, repeatable"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the table as JSON here"),
) -> None:
    """Before/after table: rates, refusals, non-answers, and a paired test on reasoning accuracy."""
    import json

    from thinksafe.evals.compare import compare_evals, render_markdown

    others = parse_judge_options(other, flag="--with")
    table = compare_evals(base, {k: str(v) for k, v in others.items()})
    console.print(render_markdown(table), highlight=False, soft_wrap=True)
    if out is not None:
        out.write_text(json.dumps(table, indent=2))


@app.command("align")
def align(
    stage: str = typer.Argument(..., help="generate | filter | select | train | perplexity | all"),
    run_dir: Path = typer.Option(..., "--run", help="run folder (later stages need only this)"),
    model: Optional[str] = typer.Option(None, "--model", help="model name or path (default: the embedded Qwen)"),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="thinksafe | rejection | teacher | direct-refusal | "
                                         "thinksafe-deliberate | thinksafe-analyse-first"),
    template: Optional[str] = typer.Option(None, "--template", help="prefix | suffix | intent-reminder"),
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | small-data (default)"),
    harmful: list[str] = typer.Option([], "--harmful", help="harmful pool, repeatable (default advbench, wildjailbreak)"),
    benign: list[str] = typer.Option([], "--benign", help="benign pool, repeatable (default or_bench, gsm8k:train)"),
    harmful_size: Optional[int] = typer.Option(None, "--harmful-size", help="harmful prompts in all (default 128)"),
    benign_size: Optional[int] = typer.Option(None, "--benign-size", help="benign prompts in all (default 128)"),
    eval_set: list[str] = typer.Option([], "--eval-set", help="a set this run is evaluated on, repeatable"),
    drop_overlap: Optional[bool] = typer.Option(None, "--drop-overlap/--refuse-overlap",
                                                help="leave out training prompts an evaluation set holds, or refuse the "
                                                     "pool (default)"),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", help="override the preset's"),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="override the preset's"),
    kl_benign: Optional[bool] = typer.Option(None, "--kl-benign/--no-kl-benign", help="the paper's KL variant on benign pairs"),
    seed: Optional[int] = typer.Option(None, "--seed", help="sampling and training seed"),
    data_seed: Optional[int] = typer.Option(None, "--data-seed", help="seed of the pools' subsets"),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="a folder laid out like shared/data"),
    backend: Optional[str] = typer.Option(None, "--backend", help="vllm | transformers | auto"),
    harmful_pairs: Optional[int] = typer.Option(None, "--harmful-pairs", help="train on at most this many harmful pairs"),
    benign_pairs: Optional[int] = typer.Option(None, "--benign-pairs", help="train on at most this many benign pairs"),
    select: list[str] = typer.Option([], "--select", help="KEY=VALUE selection setting of a selecting recipe "
                                     "(samples, full_min, early_max, early_cuts, opening, stance_judge)"),
) -> None:
    """ThinkSafe alignment and its baselines: generate, filter, select, train, perplexity (or all), resumable."""
    from thinksafe.align.run import resolve_config, run_stage

    flags = {"model": model, "recipe": recipe, "template": template, "preset": preset,
             "harmful": harmful or None, "benign": benign or None, "harmful_size": harmful_size,
             "benign_size": benign_size, "eval_sets": eval_set or None, "drop_overlap": drop_overlap, "learning_rate": learning_rate,
             "epochs": epochs, "kl_benign": kl_benign, "data_seed": data_seed, "data_path": str(data_path) if data_path else None,
             "harmful_pairs": harmful_pairs, "benign_pairs": benign_pairs,
             "select": parse_judge_options(select, flag="--select") or None}
    overrides = {k: v for k, v in flags.items() if v is not None}
    gen = {k: v for k, v in {"seed": seed, "backend": backend}.items() if v is not None}
    if gen:
        overrides["generation"] = gen
    result = run_stage(stage, run_dir, resolve_config(run_dir, overrides))
    import json

    console.print_json(json.dumps(result, default=str))


@app.command("deliberation")
def deliberation(
    out: Path = typer.Option(..., "--out", help="run folder (a rerun needs only this)"),
    stage: str = typer.Option("all", "--stage", help="generate | states | probe | truncation | stance | scorecard | all"),
    model: Optional[str] = typer.Option(None, "--model", help="model name or path (default: the embedded Qwen)"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="PEFT adapter folder: analyse base + adapter"),
    harmful: list[str] = typer.Option([], "--harmful", help="harmful pool, repeatable (default harmbench)"),
    benign: list[str] = typer.Option([], "--benign", help="benign pool, repeatable (default xstest_safe)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="prompts per side (default 100)"),
    samples: Optional[int] = typer.Option(None, "--samples", help="responses per prompt (default 1)"),
    replays: Optional[int] = typer.Option(None, "--replays", help="answers per stance-change cut, K (default 32)"),
    truncation_samples: Optional[int] = typer.Option(None, "--truncation-samples", help="answers per truncation (default 8)"),
    truncation_limit: Optional[int] = typer.Option(None, "--truncation-limit", help="records per side replayed (default all)"),
    stance_limit: Optional[int] = typer.Option(None, "--stance-limit", help="records per side chunked (default all)"),
    layers: Optional[str] = typer.Option(None, "--layers", help="first-token layers: all | comma list"),
    stance_judge: Optional[str] = typer.Option(None, "--stance-judge", help="judge of each chunk's lean (default embedding)"),
    stance_judge_option: list[str] = typer.Option([], "--stance-judge-option", help="KEY=VALUE for the stance judge"),
    thinking_budget: Optional[int] = typer.Option(None, "--thinking-budget", help="trace tokens (default 256)"),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="answer tokens (default 96)"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="sampling temperature (default 0.6)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="top-k sampling, 0 off (default 20; the eval suites use 0)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="sampling seed"),
    data_seed: Optional[int] = typer.Option(None, "--data-seed", help="seed of the prompt subsets"),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="a folder laid out like shared/data"),
    backend: Optional[str] = typer.Option(None, "--backend", help="vllm | transformers | auto"),
) -> None:
    """Deliberation analysis: first-token probes, the valley, truncation and stance-change replays."""
    import json

    from thinksafe.deliberation.run import resolve_config, run_stage

    flags = {"model": model, "adapter": str(adapter) if adapter else None, "harmful": harmful or None,
             "benign": benign or None, "limit": limit, "samples": samples, "replays": replays,
             "truncation_samples": truncation_samples, "truncation_limit": truncation_limit,
             "stance_limit": stance_limit, "layers": layers, "data_seed": data_seed, "stance_judge": stance_judge,
             "stance_judge_options": parse_judge_options(stance_judge_option, flag="--stance-judge-option") or None,
             "data_path": str(data_path) if data_path else None}
    overrides: dict[str, object] = {k: v for k, v in flags.items() if v is not None}
    gen = {k: v for k, v in {"seed": seed, "backend": backend, "thinking_budget": thinking_budget,
                             "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k}.items()
           if v is not None}
    if gen:
        overrides["generation"] = gen
    result = run_stage(out, resolve_config(out, overrides), stage)
    if stage in ("all", "scorecard"):
        console.print_json(json.dumps(result, default=str))
        console.print(f"metrics: {out / 'metrics.json'}; plots: {out / 'plots'}")
    else:
        console.print(f"{stage}: done ({out / stage})")


@app.command()
def run(
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default runs/main)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="quick | paper | deliberate (default quick)"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with the same keys as these flags"),
    model: Optional[str] = typer.Option(None, "--model", help="registry name, .gguf path, folder or hub id"),
    recipe: list[str] = typer.Option([], "--recipe", help="alignment recipe, repeatable (default: the preset's)"),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="a folder laid out like shared/data"),
    equalize: Optional[bool] = typer.Option(None, "--equalize/--no-equalize",
                                            help="cap other recipes at the selecting recipe's pair counts (default: the preset's)"),
) -> None:
    """The main job: diagnose -> align -> re-diagnose, and a report (finished stages are skipped)."""
    from thinksafe.pipeline import load_config, run_main

    cfg = load_config(config, {"out": str(out) if out else None, "preset": preset, "model": model,
                               "recipes": list(recipe) or None, "data_path": str(data_path) if data_path else None,
                               "equalize": equalize})
    metrics = run_main(cfg, console=console, progress=console.is_terminal)
    console.print(f"report: {Path(cfg.out) / 'report.html'}  metrics: {Path(cfg.out) / 'metrics.json'}")
    if metrics.get("before") and metrics.get("after"):
        for group in ("asr", "orr", "reasoning"):
            for name, row in metrics["before"][group].items():
                after = metrics["after"][group].get(name, {}).get("value")
                console.print(f"  {name} {row['metric']}: {row['value']:.3f} -> "
                              f"{'-' if after is None else f'{after:.3f}'} ({metrics['after']['recipe']})")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder of `thinksafe run`")) -> None:
    """Rebuild metrics.json and report.html from a run folder (no model is run)."""
    from thinksafe.report.build import build_report

    build_report(run_dir)
    console.print(f"report: {run_dir / 'report.html'}")


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _write_error(exc: OSError) -> str:
    """One paragraph for a disk that is full or a folder that cannot be written: what failed, where,
    that finished records are kept, and what to do."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free some space (or point --out and THINKSAFE_CACHE at a disk with room)"
    else:
        fix = "choose a folder you can write (--out, or THINKSAFE_CACHE for the cache)"
    return (f"could not write{where}: {exc.strerror or exc}. Everything finished before this is kept; "
            f"{fix}, then run the same command again to resume.")


def main() -> None:
    """Entry point: user errors become one paragraph on stderr and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except ThinksafeError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished records are kept; run the same command again to resume")
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        err_console.print(f"[bold red]error:[/bold red] {_write_error(exc)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
