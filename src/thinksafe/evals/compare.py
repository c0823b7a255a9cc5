"""Before/after tables: a base evaluation against evaluations of the same suite with adapters.

Per set: the headline (ASR or its refusal-only name ``non_refusal_rate``, ORR, accuracy); beside the
safety headlines, the other two of the three shares every safety set reports (harmful sets: the
refusal rate and the no-answer share; benign sets: the help rate and the no-answer share), so a
refusal rate bought with babble shows. Every set of every other evaluation is tested against the base on the prompts both
answered (paired: the same prompts, the same seeds) by :func:`paired_headline`: the difference of the
headline with a paired bootstrap interval over prompt ids, and a p-value (exact McNemar with one
sample per prompt, the paired clustered bootstrap with several), Holm- and BH-adjusted across the
sets of one model pair, so a difference is called significant only when the family says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thinksafe.errors import DataError
from thinksafe.evals.metrics import EVENTS, MEASURES, _response_kinds
from thinksafe.evals.reasoning import REASONING_TASKS
from thinksafe.evals.schema import read_metrics
from thinksafe.jsonl import read_jsonl
from thinksafe.stats import benjamini_hochberg, holm, observed_paired_mdd, paired_rate_difference

HEADLINE_LABELS = {"asr": "ASR", "orr": "ORR", "accuracy": "accuracy", "non_refusal_rate": "non-refusal rate",
                   "refusal_rate": "refused", "help_rate": "helped", "no_answer": "no answer"}


def beside(metric: str) -> tuple[str, ...]:
    """The plain-key rates shown beside a headline: ``refusal_rate, no_answer`` (harmful sets),
    ``help_rate, no_answer`` (benign sets), none (accuracy)."""
    return tuple(k for k in MEASURES.get(metric, ()) if k != metric)


def _correct_by_id(eval_dir: Path, benchmark: str) -> dict[str, list[bool]]:
    task = REASONING_TASKS.get(benchmark)
    out: dict[str, list[bool]] = {}
    for r in read_jsonl(eval_dir / benchmark / "records.jsonl"):
        out.setdefault(str(r["id"]), []).append(task.correct(r.get("answer"), str(r["gold"])))
    return out


def events_by_prompt(eval_dir: Path, benchmark: str, metric: str) -> dict[str, list[bool]]:
    """Per prompt id, for every sample: whether the rate's event (:data:`thinksafe.evals.metrics.EVENTS`)
    happened. ASR (or ``non_refusal_rate``), ``help_rate``: helped; ORR, ``refusal_rate``: refused;
    ``no_answer``: no answer; accuracy: answered right. The rate is the mean over prompts of these
    per-prompt means. Recomputed from the judged records, so a folder written before ORR meant refusals
    only is read with the current meaning."""
    if metric == "accuracy":
        return _correct_by_id(eval_dir, benchmark)
    event = EVENTS[metric]
    records = list(read_jsonl(eval_dir / benchmark / "judged.jsonl"))
    kinds, _ = _response_kinds(records, benchmark)
    out: dict[str, list[bool]] = {}
    for r, kind in zip(records, kinds):
        out.setdefault(str(r["id"]), []).append(kind == event)
    return out


def paired_headline(dir_a: Path, dir_b: Path, benchmark: str, metric: str, *, n_resamples: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """``b`` against ``a`` on one set's headline, paired by prompt over all samples
    (:func:`thinksafe.stats.paired_rate_difference`): ``{test, n_paired, n_dropped, only_a, only_b,
    a, b, diff, ci, p_value}``."""
    return paired_rate_difference(events_by_prompt(dir_a, benchmark, metric), events_by_prompt(dir_b, benchmark, metric),
                                  n_resamples=n_resamples, seed=seed)


def adjust_family(tests: list[dict[str, Any]]) -> None:
    """Add ``p_holm`` and ``q_bh`` to each test (in place), adjusted across the family; a test without a
    p-value gets None for both and does not count."""
    pvalues = [t.get("p_value") for t in tests]
    for t, ph, qb in zip(tests, holm(pvalues), benjamini_hochberg(pvalues)):
        t["p_holm"], t["q_bh"] = ph, qb


def compare_evals(base: str | Path, others: Mapping[str, str | Path], *, n_resamples: int = 2000,
                  seed: int = 0) -> dict[str, Any]:
    """Rows (one per evaluation, base first) with every set's numbers; each set of another evaluation
    carries ``paired``, its test against the base, with ``p_holm`` and ``q_bh`` across that row's sets."""
    base = Path(base)
    base_metrics = read_metrics(base / "metrics.json")
    rows = []
    for name, folder in {"base": base, **{k: Path(v) for k, v in others.items()}}.items():
        metrics = read_metrics(folder / "metrics.json")
        if metrics["suite"] != base_metrics["suite"]:
            raise DataError(f"{folder} ran suite {metrics['suite']!r}, the base ran {base_metrics['suite']!r}")
        row: dict[str, Any] = {"name": name, "adapter": metrics.get("adapter"), "sets": {}}
        for bench, entry in metrics["benchmarks"].items():
            cell: dict[str, Any] = {"metric": entry["metric"], "value": entry["value"], "ci": [entry["ci_low"], entry["ci_high"]],
                                    "n": entry["n"]}
            for key in beside(entry["metric"]):
                cell[key] = (entry.get(key) or {}).get("value")
            base_entry = base_metrics["benchmarks"].get(bench)
            if name != "base" and base_entry is not None:
                if base_entry["metric"] != entry["metric"]:
                    raise DataError(f"{bench}: the base reports {base_entry['metric']!r}, {folder} reports "
                                    f"{entry['metric']!r} (judges of different kinds); compare like with like")
                test = paired_headline(base, folder, bench, entry["metric"], n_resamples=n_resamples, seed=seed)
                if not test["n_paired"]:
                    raise DataError(f"{bench}: the two evaluations share no prompts to pair")
                test["mdd"] = observed_paired_mdd(test["n_paired"], test["only_a"] + test["only_b"])
                cell["paired"] = test
            row["sets"][bench] = cell
        adjust_family([c["paired"] for c in row["sets"].values() if "paired" in c])
        rows.append(row)
    return {"suite": base_metrics["suite"], "rows": rows,
            "tests": "b - a per set on the prompts both answered: paired bootstrap 95% interval over prompt ids; "
                     "p from exact McNemar (one sample per prompt) or the paired clustered bootstrap (several); "
                     "p_holm and q_bh adjusted across the sets of each model against the base; mdd the smallest "
                     "difference the comparison could have detected (alpha 0.05, power 0.8, its own share of "
                     "prompts whose answer changed)"}


def headline_label(metric: str) -> str:
    """How a table names a headline: ``ASR``, ``ORR``, ``accuracy``, ``non-refusal rate``."""
    return HEADLINE_LABELS.get(metric, metric)


def render_markdown(table: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table, one line per evaluation; each set's difference from the
    base with its 95% interval, p and Holm-adjusted p."""
    rows = table["rows"]
    sets = list(rows[0]["sets"])
    head, rule = ["model"], ["---"]
    for s in sets:
        metric = rows[0]["sets"][s]["metric"]
        cols = [f"{s} {headline_label(metric)}"] + [f"{s} {headline_label(k)}" for k in beside(metric)]
        cols.append(f"{s} b − base [95% CI], p (Holm)")
        head += cols
        rule += ["---"] * len(cols)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        cells = [row["name"]]
        for s in sets:
            c = row["sets"][s]
            cells.append(f"{c['value']:.3f} [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]")
            cells += [_fmt(c.get(k)) for k in beside(c["metric"])]
            cells.append(_paired_cell(c.get("paired")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired_cell(p: Mapping[str, Any] | None) -> str:
    if p is None:
        return "-"
    ci = "" if p["ci"] is None else f" [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}]"
    dropped = f", {p['n_dropped']} unpaired left out" if p.get("n_dropped") else ""
    # without an MDD, too few answers changed for any difference to reach 80% power
    mdd = f", MDD {p['mdd']:.2f}" if p.get("mdd") is not None else ", MDD none (too few changed)"
    return (f"{p['diff']:+.3f}{ci}, p {p['p_value']:.3f} ({p['p_holm']:.3f}){mdd}; "
            f"higher in base on {p['only_a']}, in b on {p['only_b']} of {p['n_paired']} prompts{dropped}")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
