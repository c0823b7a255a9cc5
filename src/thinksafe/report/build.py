"""The main job's report: ``metrics.json``, a self-contained ``report.html`` and ``manifest.json``.

Everything is read back from the run directory, so ``thinksafe report DIR`` rebuilds the report
from a finished (or partly finished) run without running a model. Plots are matplotlib PNGs
embedded as base64; the HTML comes from a jinja2 template; nothing in it reaches the network.
"""

from __future__ import annotations

import base64
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

from thinksafe.errors import DataError
from thinksafe.evals.compare import beside
from thinksafe.jsonl import read_jsonl, write_json_atomic, write_text_atomic
from thinksafe.manifest import git_revision, package_versions

GROUPS = {"asr": "asr", "non_refusal_rate": "asr", "orr": "orr", "accuracy": "reasoning"}
"""Each headline's group in the report: harmful sets (ASR, or ``non_refusal_rate`` under a refusal-only
judge), benign sets, reasoning sets."""
SCHEMA_VERSION = 3
"""The main job's ``metrics.json``: 2 adds ``schema_version`` and the contrasts' paired rows with ``ci``,
``p_value``, ``p_holm``, ``q_bh`` and ``n_dropped``; 3: ORR counts refusals only (help rate and no-answer
share beside it, under ``beside``), and each set's row carries its headline's ``judge``, ``judge_agreement``,
``corrected`` and ``mdd``; a file without it is version 1."""
EXAMPLES = 3


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def eval_summary(eval_dir: Path) -> dict[str, Any] | None:
    """``{asr|orr|reasoning: {benchmark: row}}`` of one evaluation; a row holds the headline's ``metric``,
    ``value``, ``ci``, ``n``, the rates ``beside`` it (harmful sets: refusal rate and no-answer share; benign
    sets: help rate and no-answer share; also as plain keys), its ``judge``, ``judge_agreement``, ``corrected`` and ``mdd``, and
    each secondary rate under its name. A folder written before ORR meant refusals only is relabelled."""
    from thinksafe.evals.schema import read_metrics

    if not (eval_dir / "metrics.json").exists():
        return None
    metrics = read_metrics(eval_dir / "metrics.json")
    out: dict[str, Any] = {g: {} for g in GROUPS.values()}
    for name, e in metrics["benchmarks"].items():
        row = {"metric": e["metric"], "value": e["value"], "ci": [e["ci_low"], e["ci_high"]], "n": e["n"]}
        for s in e.get("secondary") or []:
            row[s["metric"]] = s["value"]
        row["beside"] = {k: e[k]["value"] for k in beside(e["metric"]) if isinstance(e.get(k), dict)}
        row |= row["beside"]  # and as plain keys: a benign set's orr, help_rate and no_answer side by side
        head = e.get(e["metric"]) or {}
        row |= {k: head.get(k) for k in ("judge", "judge_agreement", "corrected", "mdd")}
        row["judge_fit_overlap"] = e.get("judge_fit_overlap")
        row["rates"] = {k: {"value": e[k]["value"], "ci": e[k].get("ci"), "mdd": (e[k].get("mdd") or {}).get("value")}
                        for k in (e["metric"], *beside(e["metric"])) if isinstance(e.get(k), dict)}
        row["by_category"] = by_category(eval_dir, name, e["metric"])
        out[GROUPS.get(e["metric"], e["metric"])][name] = row
    return out


CATEGORY_KEYS = ("semantic_category", "category", "type")
"""Where a record's metadata names its category: HarmBench's semantic category, XSTest's prompt type (and our
sets' categories), StrongREJECT's category."""


def by_category(eval_dir: Path, benchmark: str, metric: str) -> dict[str, Any] | None:
    """``{category: {n, rate: {value, ci}}}`` of a judged set's rates (Wilson intervals over prompts, one sample a
    prompt; the prompt's mean over several), or None where its records name no category."""
    from thinksafe.evals.compare import events_by_prompt
    from thinksafe.stats import wilson_interval

    path = eval_dir / benchmark / "judged.jsonl"
    if metric == "accuracy" or not path.exists():  # a reasoning set has no judged records
        return None
    category: dict[str, str] = {}
    for r in read_jsonl(path):
        meta = r.get("metadata") if isinstance(r.get("metadata"), dict) else {}
        name = next((str(meta[k]) for k in CATEGORY_KEYS if meta.get(k)), None)
        if name is None:
            return None
        category[str(r["id"])] = name
    out: dict[str, Any] = {}
    for rate in (metric, *beside(metric)):
        events = events_by_prompt(eval_dir, benchmark, rate)
        for cat in sorted(set(category.values())):
            ids = [i for i, c in category.items() if c == cat and i in events]
            means = [sum(events[i]) / len(events[i]) for i in ids]
            low, high = wilson_interval(sum(means), len(means))
            out.setdefault(cat, {"n": len(ids)})[rate] = {"value": sum(means) / len(means), "ci": [low, high]}
    return out


def side_summary(side_dir: Path) -> dict[str, Any] | None:
    ev = eval_summary(side_dir / "eval")
    if ev is None:
        return None
    return ev | {"deliberation": _read(side_dir / "deliberation" / "metrics.json")}


def collect(run_dir: Path) -> dict[str, Any]:
    """The report's numbers (``metrics.json``), from whatever stages of the run have finished."""
    config = _read(run_dir / "config.json")
    if config is None:
        raise DataError(f"{run_dir} is not a thinksafe run folder (no config.json); run `thinksafe run --out {run_dir}`")
    from thinksafe.manifest import run_arms as arms_of

    arms = arms_of(list(config.get("recipes") or []), config.get("seeds"))
    recipes = [label for label, _, _ in arms]  # the models: a recipe, or a recipe under one seed
    after = {r: side_summary(run_dir / "after" / r) for r in recipes}
    comparison = None
    done = {r: run_dir / "after" / r / "eval" for r in recipes if after.get(r)}
    if (run_dir / "before" / "eval" / "metrics.json").exists() and done:
        from thinksafe.evals.compare import compare_evals

        comparison = compare_evals(run_dir / "before" / "eval", done)
    perplexity, data, training, selection = {}, {}, {}, {}
    for r in recipes:
        adir = run_dir / "align" / r
        perplexity[r] = _read(adir / "perplexity" / "perplexity.json")
        data[r] = _read(adir / "filter" / "report.json")
        selection[r] = _read(adir / "select" / "report.json")
        t = _read(adir / "train" / "data_manifest.json")
        if t is not None:
            losses = [float(x) for x in t.get("losses", [])]  # one per logged step
            training[r] = {"pairs": t["pairs"], "harmful_pairs": t["harmful_pairs"], "dropped_too_long": t["dropped_too_long"],
                           "caps": t.get("caps"),
                           "overrides": t.get("overrides"), "first_loss": losses[0] if losses else None,
                           "last_loss": losses[-1] if losses else None, "losses": losses}
    contrasts = {}
    from thinksafe.report.contrast import contrast, seeded_contrasts

    if (run_dir / "before" / "eval" / "metrics.json").exists():
        for r in done:
            contrasts[f"{r} vs base"] = contrast(run_dir / "before", run_dir / "after" / r)
    finished = list(done)
    seeded = seeded_contrasts(run_dir, arms) if config.get("seeds") is not None else None
    if config.get("seeds") is None:  # a seeded run tests recipe against recipe across its seeds (``seeded``) instead
        for r in finished[1:]:  # each later recipe against the first (e.g. thinksafe-deliberate vs thinksafe)
            contrasts[f"{r} vs {finished[0]}"] = contrast(run_dir / "after" / finished[0], run_dir / "after" / r)
    first = recipes[0] if recipes else None
    before_eval = _read(run_dir / "before" / "eval" / "metrics.json") or {}
    out = {
        "schema_version": SCHEMA_VERSION,
        "eval_sources": (before_eval.get("meta") or {}).get("data_sources") or {},
        "model": config.get("model"), "preset": config.get("preset"), "recipes": recipes,
        "seeds": config.get("seeds"), "arms": [{"label": a, "recipe": r, "seed": s} for a, r, s in arms],
        "seeded": seeded,
        "sets": _read(run_dir / "sets.json"),
        "before": side_summary(run_dir / "before"),
        "after": after[first] | {"recipe": first} if first and after.get(first) else None,
        "by_recipe": after, "comparison": comparison,
        "perplexity": perplexity, "data": data, "selection": selection, "training": training, "contrasts": contrasts,
        "timings": _read(run_dir / "timings.json") or {},
        "cost": recipe_costs(_read(run_dir / "costs.json") or {}, recipes),
        "labels": label_section(run_dir),
        "verdict": None,  # build_report fills it from the finished metrics (report.verdict)
    }
    out["deliberation_power"] = {"base": deliberation_power(out["before"]),
                                 **{r: deliberation_power(s) for r, s in after.items()}}
    return out


def recipe_costs(costs: dict[str, Any], recipes: list[str]) -> dict[str, Any]:
    """Each stage's compute (``costs.json``: wall, CPU and GPU seconds, tokens generated and trained) and
    each recipe's: its align stage, where its pairs were generated and judged and its adapter trained."""
    return {"stages": costs, "by_recipe": {r: costs.get(f"align/{r}") for r in recipes}}


TIDY_COLUMNS = ("model", "set", "measure", "value", "ci_low", "ci_high", "n", "judge", "mdd_planned",
                "diff_vs_base", "diff_ci_low", "diff_ci_high", "p_holm")


def tidy_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """``metrics.json`` as one row per model x set x measure (``metrics.csv``), for comparing runs: the rate with
    its interval and n, its judge and planned MDD, and for a recipe its paired difference from the base."""
    from thinksafe.evals.metrics import MEASURES

    sides = {"base": metrics.get("before")} | {r: s for r, s in (metrics.get("by_recipe") or {}).items()}
    out = []
    for model, side in sides.items():
        if not side:
            continue
        tests = {r["metric"]: r for r in ((metrics.get("contrasts") or {}).get(f"{model} vs base") or {}).get("rows", [])}
        for group in ("asr", "orr", "reasoning"):
            for name, row in (side.get(group) or {}).items():
                for measure in MEASURES.get(row["metric"], (row["metric"],)):
                    rate = (row.get("rates") or {}).get(measure) or {}
                    value = row["value"] if measure == row["metric"] else rate.get("value", row.get(measure))
                    ci = row["ci"] if measure == row["metric"] else (rate.get("ci") or [None, None])
                    t = tests.get(f"{name} {measure}") or {}
                    out.append({"model": model, "set": name, "measure": measure, "value": value, "ci_low": ci[0],
                                "ci_high": ci[1], "n": row["n"], "judge": (row.get("judge") or {}).get("name"),
                                "mdd_planned": rate.get("mdd") if rate else (row.get("mdd") or {}).get("value"),
                                "diff_vs_base": t.get("diff"), "diff_ci_low": (t.get("ci") or [None, None])[0],
                                "diff_ci_high": (t.get("ci") or [None, None])[1], "p_holm": t.get("p_holm")})
    return out


def write_tidy(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TIDY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def deliberation_power(side: dict[str, Any] | None) -> dict[str, Any] | None:
    """Whether a side's deliberation scorecard can show a change of :data:`thinksafe.report.verdict.POWER_BAR`:
    the paired MDD of its flip rate at its truncation prompts (at the discordance ``thinksafe plan`` assumes),
    the size of its probe's pool, and the performative share's own rule."""
    from thinksafe.evals.metrics import ASSUMED_DISCORDANCE
    from thinksafe.report.verdict import POWER_BAR
    from thinksafe.stats import paired_mdd

    d = (side or {}).get("deliberation")
    if not d:
        return None
    n = d.get("truncation_n") or 0
    mdd = paired_mdd(n, ASSUMED_DISCORDANCE) if n else None
    why = []
    if mdd is None or mdd > POWER_BAR:
        why.append(f"the flip rate and commitment fraction rest on {n} truncated prompts (MDD "
                   f"{'unreachable' if mdd is None else f'{mdd:.2f}'} > {POWER_BAR})")
    if d.get("performative_share") is None and d.get("performative_share_why"):
        why.append(f"performative share: {d['performative_share_why']}")
    return {"truncation_n": n, "flip_rate_mdd": mdd, "probe_n": d.get("last_prompt_n"), "underpowered": bool(why),
            "why": "; ".join(why) or None}


def label_section(run_dir: Path) -> dict[str, Any] | None:
    """The prediction-powered rates of a run folder (:func:`thinksafe.evals.label_rates.label_rates`); None
    before any side has finished its evaluation."""
    from thinksafe.evals.label_rates import label_rates
    from thinksafe.evals.labels import main_job_config

    if main_job_config(run_dir) is not None and not (run_dir / "before" / "eval" / "metrics.json").exists():
        return None  # a main job whose base model has not been evaluated yet
    return label_rates(run_dir)


def write_label_rates(run_dir: str | Path) -> dict[str, Any]:
    """``DIR/labels/rates.json`` of an eval or deliberation folder (a main job keeps them in its metrics.json)."""
    rates = label_section(Path(run_dir))
    write_json_atomic(Path(run_dir) / "labels" / "rates.json", rates)
    return rates


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _mean(group: dict[str, Any] | None) -> float | None:
    vals = [v["value"] for v in (group or {}).values() if v.get("value") is not None]
    return sum(vals) / len(vals) if vals else None


def _cost_label(cost: dict[str, Any] | None) -> str:
    """`` (12 CPU-min)`` or `` (3 GPU-min)``: what training the recipe took, beside its point."""
    if not cost:
        return ""
    if cost.get("gpu_s"):
        return f" ({cost['gpu_s'] / 60:.0f} GPU-min)"
    return f" ({cost.get('cpu_s', 0) / 60:.0f} CPU-min)"


def tradeoff_plot(metrics: dict[str, Any]) -> str | None:
    """ASR against ORR (means over the sets), the base model and each recipe as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [("base", metrics["before"])] + [(r, s) for r, s in metrics["by_recipe"].items() if s]
    refusal_only = any(row.get("metric") == "non_refusal_rate" for _, s in points if s for row in s["asr"].values())
    points = [(n, _mean(s.get("orr")), _mean(s.get("asr"))) for n, s in points if s]
    points = [p for p in points if p[1] is not None and p[2] is not None]
    if not points:
        return None
    costs = (metrics.get("cost") or {}).get("by_recipe") or {}
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for i, (name, orr, asr) in enumerate(points):
        ax.scatter([orr], [asr], s=60, label=name, marker="o" if name == "base" else "s")
        # labels step upward so points that coincide (a small run's equal rates) stay readable
        ax.annotate(name + _cost_label(costs.get(name)), (orr, asr), textcoords="offset points", xytext=(6, 4 + 11 * i),
                    fontsize=8)
    ax.set_xlabel("over-refusal rate (ORR: benign prompts refused)")
    # a refusal-only judge cannot decide attack success: say what its number counts
    ax.set_ylabel("non-refusal rate (refusal-only judge)" if refusal_only else "attack success rate (ASR)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("safety against over-refusal (lower left is better)", fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)


DELIBERATION_PANELS = (("last_prompt_auroc", "decision before thinking:\nlast-prompt AUROC (harmful)"),
                       ("commitment_fraction", "commitment fraction"), ("performative_share", "performative share"),
                       ("flip_rate_at_20_net", "flip rate at 20%,\nnet of the floor"))


def deliberation_plot(metrics: dict[str, Any]) -> str | None:
    """The deliberation scorecard of the base model and each recipe, one panel a measure (AUROC with its CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [("base", (metrics.get("before") or {}).get("deliberation"))]
    sides += [(r, (s or {}).get("deliberation")) for r, s in metrics["by_recipe"].items()]
    sides = [(n, d) for n, d in sides if d]
    if not sides:
        return None
    fig, axes = plt.subplots(1, len(DELIBERATION_PANELS), figsize=(3.0 * len(DELIBERATION_PANELS), 3.0))
    for ax, (key, title) in zip(axes, DELIBERATION_PANELS):
        for i, (name, d) in enumerate(sides):
            value = d.get(key)
            if value is None:  # e.g. no stance change seen, so no performative share: say so, not a blank
                ax.text(i, 0.02, "not\nmeasured", ha="center", va="bottom", fontsize=7, color="0.4")
                continue
            ci = d.get(f"{key}_ci")
            err = [[value - ci[0]], [ci[1] - value]] if ci and None not in ci else None
            ax.bar([i], [value], yerr=err, capsize=4, color=f"C{i}")
        ax.set_xticks(range(len(sides)), [n for n, _ in sides], rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(sides) - 0.4)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def loss_plot(training: dict[str, Any]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {r: t["losses"] for r, t in training.items() if t["losses"]}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for r, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, marker=".", label=r)
    ax.set_xlabel("logged step")
    ax.set_ylabel("training loss (response tokens)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _plots_of(side_dir: Path) -> dict[str, str]:
    d = side_dir / "deliberation" / "plots"
    return {p.stem: base64.b64encode(p.read_bytes()).decode() for p in sorted(d.glob("*.png"))} if d.is_dir() else {}


def examples(run_dir: Path, recipe: str, benchmark: str, n: int = EXAMPLES) -> list[dict[str, Any]]:
    """The first ``n`` prompts of ``benchmark`` answered before and after ``recipe``, side by side."""
    def rows(side: Path) -> dict[str, dict[str, Any]]:
        path = side / "eval" / benchmark / "judged.jsonl"
        return {r["id"]: r for r in read_jsonl(path) if r.get("sample_index", 0) == 0} if path.exists() else {}

    before, after = rows(run_dir / "before"), rows(run_dir / "after" / recipe)
    out = []
    for key in [k for k in before if k in after][:n]:
        b, a = before[key], after[key]
        out.append({"prompt": b["prompt"], "before": _side(b), "after": _side(a)})
    return out


def _side(rec: dict[str, Any]) -> dict[str, Any]:
    v = rec.get("verdict") or {}
    return {"trace": rec.get("trace") or "", "answer": rec.get("answer") or "", "label": v.get("label"),
            "trace_end": rec.get("trace_end")}


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.machine(),
            "packages": package_versions(), "git_revision": git_revision()}


def build_report(run_dir: str | Path) -> dict[str, Any]:
    """Write ``metrics.json``, ``report.html`` and ``manifest.json`` into ``run_dir``; returns the metrics."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from thinksafe.report.verdict import verdict

    run_dir = Path(run_dir)
    metrics = collect(run_dir)
    metrics["verdict"] = verdict(metrics)
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_tidy(run_dir / "metrics.csv", tidy_rows(metrics))
    env = Environment(loader=PackageLoader("thinksafe.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["pct"] = lambda x: "–" if x is None else f"{100 * x:.1f}%"
    env.filters["num"] = lambda x, d=3: "–" if x is None else (f"{x:.{d}f}" if isinstance(x, float) else str(x))
    html = env.get_template("report.html.j2").render(
        m=metrics, config=_read(run_dir / "config.json"), env=environment(), generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        tradeoff=tradeoff_plot(metrics) if metrics["before"] else None, losses=loss_plot(metrics["training"]),
        deliberation_bars=deliberation_plot(metrics),
        plots_before=_plots_of(run_dir / "before"),
        plots_after={r: _plots_of(run_dir / "after" / r) for r in metrics["recipes"]},
        examples={r: examples(run_dir, r, b) for r in metrics["recipes"] for b in ("harmbench",)},
        json=lambda x: json.dumps(x, indent=2, default=str),
    )
    write_text_atomic(run_dir / "report.html", html)
    write_json_atomic(run_dir / "manifest.json", {"kind": "main-job", "config": _read(run_dir / "config.json"),
                                                  "sets": metrics["sets"], "timings": metrics["timings"],
                                                  "environment": environment()})
    return metrics
