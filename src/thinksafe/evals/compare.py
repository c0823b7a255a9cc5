"""Before/after tables: a base evaluation against evaluations of the same suite with adapters.

Per safety set: the headline (ASR or ORR), the refusal rate and the share of non-answers (a refusal
rate bought with babble does not count). Per reasoning set: accuracy of both and an exact McNemar
test on the questions both answered (paired: the same questions, the same seeds), so a drop is
called significant only when the discordant pairs say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thinksafe.errors import DataError
from thinksafe.evals.reasoning import REASONING_TASKS
from thinksafe.evals.schema import read_metrics
from thinksafe.jsonl import read_jsonl
from thinksafe.stats import mcnemar_paired


def _secondary(entry: Mapping[str, Any], name: str) -> float | None:
    for s in entry.get("secondary") or []:
        if s["metric"] == name:
            return float(s["value"])
    return None


def _correct_by_id(eval_dir: Path, benchmark: str) -> dict[str, list[bool]]:
    task = REASONING_TASKS.get(benchmark)
    out: dict[str, list[bool]] = {}
    for r in read_jsonl(eval_dir / benchmark / "records.jsonl"):
        out.setdefault(str(r["id"]), []).append(task.correct(r.get("answer"), str(r["gold"])))
    return out


def mcnemar(base: Mapping[str, list[bool]], other: Mapping[str, list[bool]]) -> dict[str, Any]:
    """Exact McNemar test (two-sided binomial on the discordant questions; first sample of each)."""
    test = mcnemar_paired({q: v[0] for q, v in base.items()}, {q: v[0] for q, v in other.items()})
    if not test["n_paired"]:
        raise DataError("the two evaluations share no reasoning questions to pair")
    return {"n_paired": test["n_paired"], "lost": test["only_a"], "gained": test["only_b"], "p_value": test["p_value"]}


def compare_evals(base: str | Path, others: Mapping[str, str | Path]) -> dict[str, Any]:
    """Rows (one per evaluation, base first) with every set's numbers and the paired tests."""
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
            if entry["metric"] in ("asr", "orr"):
                cell["refused"] = _secondary(entry, f"{entry['metric']}_refused")
                cell["no_answer"] = _secondary(entry, f"{entry['metric']}_no_answer")
            elif name != "base":
                cell["paired"] = mcnemar(_correct_by_id(base, bench), _correct_by_id(folder, bench))
            row["sets"][bench] = cell
        rows.append(row)
    return {"suite": base_metrics["suite"], "rows": rows}


def render_markdown(table: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table, one line per evaluation."""
    rows = table["rows"]
    sets = list(rows[0]["sets"])
    head, rule = ["model"], ["---"]
    for s in sets:
        metric = rows[0]["sets"][s]["metric"]
        cols = [f"{s} {metric.upper()}"] + ([f"{s} refused", f"{s} no answer"] if metric in ("asr", "orr") else [f"{s} paired p"])
        head += cols
        rule += ["---"] * len(cols)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        cells = [row["name"]]
        for s in sets:
            c = row["sets"][s]
            cells.append(f"{c['value']:.3f} [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]")
            if c["metric"] in ("asr", "orr"):
                cells += [_fmt(c.get("refused")), _fmt(c.get("no_answer"))]
            else:
                p = c.get("paired")
                cells.append("-" if p is None else f"{p['p_value']:.3f} (-{p['lost']}/+{p['gained']} of {p['n_paired']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
