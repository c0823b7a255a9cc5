"""The ``thinksafe`` command line: each command parses flags into a config and calls one library function."""

from __future__ import annotations

import dataclasses
import errno
import logging
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from thinksafe.align.run import AlignConfig
from thinksafe.cli_options import flags_for, parse_pairs, with_flags
from thinksafe.deliberation.run import DeliberationConfig
from thinksafe.errors import ConfigError, ThinksafeError
from thinksafe.evals.runner import EvalJob
from thinksafe.generation.stage import GenerateJob
from thinksafe.pipeline import PlanAssumptions, RunConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Measure and align safety deliberation in reasoning LMs.")
models_app = typer.Typer(no_args_is_help=True, help="Embedded and user models.")
data_app = typer.Typer(no_args_is_help=True, help="Benchmarks and where they resolve.")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
judge_app = typer.Typer(help="Label responses (refusal, compliance, ...) and measure judges against human labels.")
app.add_typer(judge_app, name="judge")

console = Console()
err_console = Console(stderr=True)

JudgeOptionOpt = typer.Option(
    [], "--judge-option",
    help="KEY=VALUE passed to the judge's config, repeatable; e.g. --judge llm --judge-option "
         "model=/models/Llama-Guard-3-8B --judge-option template=llama_guard",
)

# The options of generate, eval, align, deliberation and run are generated from their config dataclasses
# (thinksafe.cli_options): each default and help text is written once, in the dataclass that YAML fills too.
_GEN_RENAME = {"generation.backend_options": "--backend-option", "generation.stop": "--stop"}
GENERATE_FLAGS = flags_for(GenerateJob, nested={"generation": ""}, rename=_GEN_RENAME)
# eval: a suite entry sets its own samples per prompt; the trace and answer budgets are EvalJob's
# (honoured over every entry's), the generation budgets the fallback for entries that set none
EVAL_FLAGS = flags_for(EvalJob, nested={"generation": ""},
                       exclude={"generation.samples", "generation.thinking_budget", "generation.max_new_tokens"},
                       rename=_GEN_RENAME | {"judge_options": "--judge-option"})
ALIGN_FLAGS = flags_for(AlignConfig, nested={"generation": ""},
                        rename=_GEN_RENAME | {"eval_sets": "--eval-set", "drop_overlap": "--drop-overlap/--refuse-overlap"},
                        exclude={"generation.samples", "generation.steer"})  # the recipe and template steer
# deliberation: samples per prompt is the config's own field (it sets generation.samples)
DELIBERATION_FLAGS = flags_for(DeliberationConfig, nested={"generation": "", "probe": "probe", "replay": "replay"},
                               rename=_GEN_RENAME | {"stance_judge_options": "--stance-judge-option",
                                                     "fractions": "--fraction"},
                               exclude={"generation.samples", "generation.steer"})  # it analyses the model unsteered
RUN_FLAGS = flags_for(RunConfig, rename={"recipes": "--recipe", "seeds": "--seed"})
PLAN_FLAGS = [dataclasses.replace(f, path=("assume", *f.path)) for f in flags_for(PlanAssumptions)]


def build(cls: type, overrides: dict, command: str) -> Any:
    """``cls(**overrides)``, nested configs included; an unknown field becomes a user error."""
    try:
        return cls(**overrides)
    except TypeError as exc:
        raise ConfigError(f"{command}: {exc}".replace("__init__() ", "")) from None


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
@with_flags(GENERATE_FLAGS)
def generate(overrides: dict) -> None:
    """Generate responses for a benchmark: cached, resumable, one JSON record per sample."""
    from thinksafe.generation.stage import run_generate

    job = build(GenerateJob, overrides, "generate")
    records = run_generate(job)
    out = Path(job.out)
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
    judge_obj = make_judge(judge_name or DEFAULT_JUDGE, **parse_pairs(judge_option, "--judge-option"))
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
    from thinksafe.judges import run_calibration, run_set_calibration

    options = parse_pairs(judge_option, "--judge-option")
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
    for name, r in m["sets"].items():  # the rubric's three labels, and base / adapter answers apart
        if "three_way" in r:
            parts = [f"all {r['three_way']['accuracy']:.3f} / kappa {r['three_way']['cohen_kappa']:.3f} (n {r['n']})"]
            for side, s in r.get("per_side", {}).items():
                parts.append(f"{side} {s['three_way']['accuracy']:.3f} / {s['three_way']['cohen_kappa']:.3f}, carried out "
                             f"{s['carried_out']['accuracy']:.3f} (n {s['n']})")
            console.print(f"{name}, refused / carried out / neither: " + "; ".join(parts))
    console.print(f"-> {out / 'metrics.json'}")


@judge_app.command("agreement")
def judge_agreement(
    judge_name: list[str] = typer.Option([], "--judge", help="judge(s) to measure (with --ship: default qwen-cls, "
                                         "objective, embedding, keyword)"),
    ship: bool = typer.Option(False, "--ship", help="measure the shipped judges (default options) and rewrite the "
                              "packaged weights/agreement.json, with the prompts each was fitted on"),
    out: Optional[Path] = typer.Option(None, "--out", help="with --ship: write here instead of the package"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="a folder laid out like shared/data"),
    judge_option: list[str] = JudgeOptionOpt,
) -> None:
    """A judge's sensitivity and specificity per kind of answer (helped, refused, no answer) on the held-out
    rows of the labelled sets, as every evaluation's judge_agreement and corrected rates read them."""
    from thinksafe.judges.agreement import SHIPPED_JUDGES, measure_into_cache, ship as ship_agreement

    options = parse_pairs(judge_option, "--judge-option")
    if ship:
        if options:
            raise ConfigError("--ship measures the shipped judges with their default options; drop --judge-option.")
        payload = ship_agreement(tuple(judge_name) or SHIPPED_JUDGES, out=out, data_dir=data_dir)
        entries, where = payload["judges"], payload["path"]
    else:
        if not judge_name:
            raise typer.BadParameter("--judge NAME is required (or --ship for the shipped judges).")
        entries = {n: measure_into_cache(n, data_dir=data_dir, **options) for n in judge_name}
        where = ", ".join(e["path"] for e in entries.values())
    table = Table(title="agreement with people, held-out rows (sensitivity / specificity, n positive / negative)")
    for col in ("judge", "set", *("helped", "refused", "no_answer", "not_refused")):
        table.add_column(col)
    for name, e in entries.items():
        for set_name, s in e["sets"].items():
            cells = [f"{c['true_pos'] / c['n_pos']:.2f} / {c['true_neg'] / c['n_neg']:.2f} ({c['n_pos']}/{c['n_neg']})"
                     if (c := s["events"].get(ev)) and c["n_pos"] and c["n_neg"] else "-"
                     for ev in ("helped", "refused", "no_answer", "not_refused")]
            table.add_row(name, set_name, *cells)
    console.print(table)
    console.print(f"-> {where}")


@judge_app.command("fit")
def judge_fit(
    judge_name: str = typer.Option("embedding", "--judge", help="a learnable judge (embedding, objective)"),
    out: Optional[Path] = typer.Option(None, "--out", help="weights file (default: the packaged weights)"),
    data: list[str] = typer.Option(["fit"], "--data", help="fit (the fit split of the judge's labelled sets), names or CSVs"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="a folder laid out like shared/data"),
    labels: list[Path] = typer.Option([], "--labels", help="labels exported by `thinksafe label DIR --export FILE`, repeatable (objective judge)"),
) -> None:
    """Refit a learnable judge on human-labelled completions and write its weights (JSON, no pickle)."""
    from thinksafe.judges import fit_judge

    files = data[0] if len(data) == 1 else data
    extra = {}
    if labels:
        if judge_name != "objective":
            raise ConfigError(f"--labels fits the objective judge only, not {judge_name!r}")
        extra["labels"] = labels
    result = fit_judge(judge_name, out, files, data_dir=data_dir, **extra)
    console.print(f"fitted {judge_name}: {result.get('path', out)}")


@app.command("eval")
@with_flags(EVAL_FLAGS)
def eval_(overrides: dict) -> None:
    """Evaluate a model (optionally with an adapter) on a suite: ASR, ORR, accuracy with 95% CIs."""
    from thinksafe.evals.runner import run_eval
    from thinksafe.evals.schema import render_table

    job = build(EvalJob, overrides, "eval")
    metrics = run_eval(job)
    console.print(render_table(metrics))
    console.print(f"metrics: {Path(job.out) / 'metrics.json'}")


@app.command("compare")
def compare(
    base: Path = typer.Option(..., "--base", help="evaluation folder of the base model"),
    other: list[str] = typer.Option(..., "--with", help="NAME=FOLDER of an evaluation of the same suite, repeatable"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the table as JSON here"),
) -> None:
    """Before/after table: rates, refusals, non-answers, and every set's paired difference from the base
    (interval, p, Holm-adjusted p across the sets)."""
    import json

    from thinksafe.evals.compare import compare_evals, render_markdown

    others = parse_pairs(other, "--with")
    table = compare_evals(base, {k: str(v) for k, v in others.items()})
    console.print(render_markdown(table), highlight=False, soft_wrap=True)
    if out is not None:
        out.write_text(json.dumps(table, indent=2))


@app.command("align")
@with_flags(ALIGN_FLAGS)
def align(
    overrides: dict,
    stage: str = typer.Argument(..., help="generate | filter | select | train | perplexity | all"),
    run_dir: Path = typer.Option(..., "--run", help="run folder (later stages need only this)"),
) -> None:
    """ThinkSafe alignment and its baselines: generate, filter, select, train, perplexity (or all), resumable."""
    import json

    from thinksafe.align.run import resolve_config, run_stage

    result = run_stage(stage, run_dir, resolve_config(run_dir, overrides))
    console.print_json(json.dumps(result, default=str))


@app.command("deliberation")
@with_flags(DELIBERATION_FLAGS)
def deliberation(
    overrides: dict,
    out: Path = typer.Option(..., "--out", help="run folder (a rerun needs only this)"),
    stage: str = typer.Option("all", "--stage", help="generate | states | probe | truncation | stance | scorecard | all"),
) -> None:
    """Deliberation analysis: first-token probes, the valley, truncation and stance-change replays."""
    import json

    from thinksafe.deliberation.run import resolve_config, run_stage

    result = run_stage(out, resolve_config(out, overrides), stage)
    if stage in ("all", "scorecard"):
        console.print_json(json.dumps(result, default=str))
        console.print(f"metrics: {out / 'metrics.json'}; plots: {out / 'plots'}")
    else:
        console.print(f"{stage}: done ({out / stage})")


@app.command()
@with_flags(RUN_FLAGS)
def run(
    overrides: dict,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file whose keys are the run's fields "
                                          "(those of `--print-config`)"),
    print_config: bool = typer.Option(False, "--print-config", help="print the resolved configuration of every "
                                      "stage (preset, file and flags applied) and exit without running"),
) -> None:
    """The main job: diagnose -> align -> re-diagnose, and a report (finished stages are skipped)."""
    from thinksafe.pipeline import load_config, resolved_config, run_main

    cfg = load_config(config, overrides)
    if print_config:
        import yaml

        console.print(yaml.safe_dump(resolved_config(cfg), sort_keys=False), highlight=False, soft_wrap=True)
        return
    metrics = run_main(cfg, console=console, progress=console.is_terminal)
    from thinksafe.report.verdict import summary_lines

    for line in summary_lines(metrics.get("verdict")):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"report: {Path(cfg.out) / 'report.html'}  metrics: {Path(cfg.out) / 'metrics.json'} "
                  f"(and metrics.csv, one row per model x set x measure)")


@app.command("plan")
@with_flags(RUN_FLAGS, PLAN_FLAGS)
def plan_(
    overrides: dict,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file whose keys are the run's fields"),
    pools: bool = typer.Option(False, "--pools", help="also load the data and list the training pools and the "
                               "evaluated sets with their sizes, and the prompts they share (none)"),
) -> None:
    """Before anything runs: the minimum detectable difference of each before/after headline of a run
    (alpha 0.05, power 0.8, paired), from the preset's sizes and the stated assumptions; with --pools, the
    training pools and evaluated sets."""
    from thinksafe.pipeline import PlanAssumptions, load_config, plan

    assumed = build(PlanAssumptions, overrides.pop("assume", {}), "plan")
    cfg = load_config(config, overrides)
    table = Table(title=f"planned minimum detectable differences: preset {cfg.preset} (alpha {assumed.alpha}, "
                        f"power {assumed.power}, paired)")
    for col in ("measure", "n", "assumed discordance", "MDD", "note"):
        table.add_column(col, overflow="fold")
    for row in plan(cfg, assumed):
        table.add_row(row["measure"], "-" if row["n"] is None else str(row["n"]),
                      "-" if row["discordance"] is None else f"{row['discordance']:.2f}",
                      "-" if row["mdd"] is None else f"{row['mdd']:.3f}", row["note"])
    console.print(table)
    if pools:
        from thinksafe.pipeline import plan_pools

        found = plan_pools(cfg)
        table = Table(title=f"training pools and evaluated sets: preset {cfg.preset} (disjoint: "
                            f"{found['shared_prompts']} prompts shared)")
        for col in ("side", "set", "prompts", "left out: shared with an evaluated set"):
            table.add_column(col, overflow="fold")
        for p in found["training"]:
            table.add_row(f"train {p['side']}", p["pool"], str(p["prompts"]), str(p["left_out_for_overlap"]))
        for e in found["evaluated"]:
            table.add_row("evaluate", e["set"], str(e["prompts"]), "-")
        console.print(table)
    console.print("discordance: the share of prompts whose answer changes between the two models (assumed; "
                  "--discordance, --reasoning-discordance). Every evaluation writes each rate's MDD at these default "
                  "assumptions into its metrics.json, and every run its observed MDD beside each difference.")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder of `thinksafe run`, or an eval or deliberation folder")) -> None:
    """Rebuild metrics.json and report.html from a run folder (no model is run); for an eval or deliberation
    folder, its label-corrected rates (labels/rates.json). Inspect eval logs missing anywhere under it are written."""
    from thinksafe.evals.inspect_log import export_missing
    from thinksafe.evals.labels import main_job_config
    from thinksafe.report.build import build_report, write_label_rates
    from thinksafe.report.labels_table import print_label_rates

    rebuilt = export_missing(run_dir)
    if rebuilt:
        console.print(f"Inspect eval logs written where missing: {len(rebuilt)} (inspect view --log-dir {run_dir})")
    if main_job_config(run_dir) is not None:
        metrics = build_report(run_dir)
        print_label_rates(console, metrics.get("labels"))
        console.print(f"report: {run_dir / 'report.html'}")
        return
    rates = write_label_rates(run_dir)
    print_label_rates(console, rates)
    console.print(f"label-corrected rates: {run_dir / 'labels' / 'rates.json'}")


@app.command()
def label(
    run_dir: Path = typer.Argument(..., help="an eval folder, a deliberation folder or a main-job folder"),
    n: int = typer.Option(60, "--n", help="prompts drawn per set (the same on every side); a larger n later extends the draw"),
    annotator: str = typer.Option("", "--annotator", help="your name: labels go to DIR/labels/NAME.jsonl (default: $USER)"),
    seed: int = typer.Option(0, "--seed", help="seed of the draw (fixed once the draw is saved)"),
    sets: list[str] = typer.Option([], "--set", help="label only these sets (repeatable; default: every judged set)"),
    port: int = typer.Option(0, "--port", help="port on 127.0.0.1 (0: a free one)"),
    export: Optional[Path] = typer.Option(None, "--export", help="write the labelled answers to FILE for `thinksafe judge fit --labels FILE`, and exit"),
) -> None:
    """Label a random sample of a run's answers in the browser (refusal / carried out / neither), so that
    `thinksafe report` can give prediction-powered rates that stay valid however wrong the judge is."""
    import getpass
    import signal

    if export is not None:
        from thinksafe.evals.labels import export_rows
        from thinksafe.jsonl import settle_jsonl

        rows = export_rows(run_dir)
        export.parent.mkdir(parents=True, exist_ok=True)
        settle_jsonl(export, rows)
        console.print(f"{len(rows)} labelled answers -> {export} (thinksafe judge fit --judge objective --labels {export})")
        return
    from thinksafe.report.label_page import LabelSession, serve, url_of

    session = LabelSession(run_dir, annotator or getpass.getuser() or "annotator", n=n, seed=seed, sets=sets or None)
    server = serve(session, port=port)

    def stop(signum: int, frame: Any) -> None:  # Ctrl-C or a plain kill: stop serving, every label is on disk
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):  # also where a background job inherited SIGINT ignored
        signal.signal(sig, stop)
    console.print(f"labelling {len(session.queue)} answers of {run_dir} as {session.annotator} "
                  f"({session.done()} done): open {url_of(server)}  (Ctrl-C stops; labels are saved as you go)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    console.print(f"{session.done()} of {len(session.queue)} labelled in {session.path}; `thinksafe report {run_dir}` "
                  "shows the prediction-powered rates")


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
