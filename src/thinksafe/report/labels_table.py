"""The terminal's view of a folder's label-corrected rates (``thinksafe report``, ``thinksafe label``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _cell(r: Mapping[str, Any]) -> str:
    return f"{_pct(r['value'])} [{_pct(r['ci'][0])}, {_pct(r['ci'][1])}]"


def print_label_rates(console: Console, rates: Mapping[str, Any] | None) -> None:
    """One row per side, set and rate: judge only, prediction-powered, labels only, how many labels."""
    if not rates:
        return
    table = Table(title=f"rates checked against people's labels (PPI++ from {rates['min_labels']} labelled prompts a set)")
    for col in ("side", "set", "rate", "judge only", "prediction-powered", "labels only", "labels", "judge vs labels"):
        table.add_column(col)
    missing = False
    for side, sets in rates["sides"].items():
        for name, e in sets.items():
            if e.get("status") != "ok":
                missing = True
                table.add_row(side, name, "–", e.get("status", "no labels"), "", "", f"{e['n_labels']} of {e['n_prompts']}", "")
                continue
            agree = e["agreement"]
            for i, (rate, r) in enumerate(e["rates"].items()):
                table.add_row(side, name, rate, _cell(r["judge"]), _cell(r["ppi"]), _cell(r["ppi"]["classical"]),
                              f"{e['n_labels']} of {e['n_prompts']}",
                              f"acc {agree['accuracy']:.2f}, kappa {agree['cohen_kappa'] if agree['cohen_kappa'] is None else round(agree['cohen_kappa'], 2)}" if i == 0 else "")
    console.print(table)
    for pair, sets in (rates.get("differences") or {}).items():
        diff = Table(title=f"{pair}, paired on the prompts labelled on both sides")
        for col in ("set", "rate", "judge only", "prediction-powered", "labelled on both"):
            diff.add_column(col)
        for name, d in sets.items():
            for rate, r in d["rates"].items():
                judge = r["judge"]
                cell = f"{judge['value']:+.3f}" + (f" [{judge['ci'][0]:+.3f}, {judge['ci'][1]:+.3f}]" if judge.get("ci") else "")
                ppi = r.get("ppi")
                diff.add_row(name, rate, cell, f"{ppi['value']:+.3f} [{ppi['ci'][0]:+.3f}, {ppi['ci'][1]:+.3f}]" if ppi else d["status"],
                             f"{d['n_labels']} of {d['n_paired']}")
        console.print(diff)
    for pair in rates.get("between_annotators") or []:
        kappa = "undefined (one label only)" if pair["cohen_kappa"] is None else f"{pair['cohen_kappa']:.2f}"
        console.print(f"annotators {' and '.join(pair['annotators'])}: {pair['agreement']:.2f} agreement, kappa {kappa}, "
                      f"on {pair['n']} shared answers")
    if missing:
        console.print(f"add labels: {rates['command']}")
