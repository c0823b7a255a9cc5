"""Rates corrected by people's labels: prediction-powered estimates (PPI++) beside the judge's own.

For every judged set of every side with labels (:mod:`thinksafe.evals.labels`), and every rate of that
set (a harmful set's ``refusal_rate``, ``asr``, ``no_answer``; a benign set's ``orr``, ``help_rate``,
``no_answer``), :func:`label_rates` gives

* ``judge``: the judge-only rate over all of the set's prompts, with its Wilson interval (it assumes
  the judge is right);
* ``ppi``: the prediction-powered estimate and 95% interval (:func:`thinksafe.stats.prediction_powered_mean`,
  PPI++ for the finite set of the run's prompts)
  from the labelled prompts (the people's answer kind) and the judge's verdicts on every prompt; valid
  however biased the judge is, because the labelled prompts are a uniform random draw;
* ``classical``: the labels alone (their mean and CLT interval), the width PPI++ is never meant to exceed;

from :data:`MIN_LABELS` labelled prompts per set and side (below it: ``status: "too few labels"``),
with the judge's agreement with the labels on this model (accuracy, Cohen's kappa, the confusion
matrix). A before/after difference uses the prompts labelled on both sides (paired: the same draw).

Labels that fitted the run's judge (``thinksafe judge fit --labels``; the judge's weights list the
answers' identities) never correct that judge's rates: they are left out and counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from thinksafe.evals.labels import LABELS, Item, all_items, annotator_agreement, consensus, read_all_labels, sides
from thinksafe.evals.metrics import EVENTS, MEASURES
from thinksafe.stats import paired_rate_difference, prediction_powered_mean, wilson_interval

MIN_LABELS = 30
"""Fewest labelled prompts of a set on a side for a prediction-powered rate. On a planted population of 400
answers whose judge calls 30% of non-answers carried out and misses 10% of real ones, the 95% interval
covered the true rate in 94.4% of 500 draws at 30 labels, 92.0% at 20 and 88.0% at 10
(``python bench/ppi_coverage.py``)."""
HEADLINE_OF = {"asr": "asr", "orr": "orr"}
KINDS = tuple(LABELS.values())


def _judge_of(folder: Path, kind: str, benchmark: str) -> dict[str, Any] | None:
    """``{name, fingerprint, options}`` of the judge whose verdicts a set's rates count (a deliberation folder
    records only the name of its ASR judge, which runs with its shipped weights)."""
    if kind != "eval":
        config = json.loads((folder / "config.json").read_text(encoding="utf-8")) if (folder / "config.json").exists() else {}
        return {"name": config.get("asr_judge"), "options": {}} if config.get("asr_judge") else None
    path = folder / "metrics.json"
    if not path.exists():
        return None
    entry = (json.loads(path.read_text(encoding="utf-8")).get("benchmarks") or {}).get(benchmark) or {}
    head = entry.get(entry.get("metric") or "") or {}
    return head.get("judge") if isinstance(head, dict) else None


def fitted_identities(judge: Mapping[str, Any] | None) -> set[str]:
    """Identities of the labelled answers the judge was fitted on (empty when it was fitted on none of a user's)."""
    if not judge:
        return set()
    from thinksafe.judges.objective import fitted_label_identities

    return fitted_label_identities(judge.get("options") or {}) if judge.get("name") == "objective" else set()


def _by_prompt(items: list[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for i in items:
        out.setdefault(i.id, []).append(i)
    return out


def _confusion(items: list[Item], shares: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    from sklearn.metrics import cohen_kappa_score

    people, judge = [], []
    for i in items:
        s = shares.get(i.key)
        if s is None:
            continue
        people.append(max(KINDS, key=lambda k: (s[k], -KINDS.index(k))))  # the majority kind; ties to the first
        judge.append(i.judge_kind)
    matrix = {p: {j: sum(1 for a, b in zip(people, judge) if a == p and b == j) for j in KINDS} for p in KINDS}
    kappa = float(cohen_kappa_score(people, judge, labels=list(KINDS))) if len(set(people + judge)) > 1 else None
    return {"n": len(people), "accuracy": sum(a == b for a, b in zip(people, judge)) / len(people) if people else None,
            "cohen_kappa": kappa, "confusion": matrix, "rows": "people's label", "columns": "the judge's"}


def _units(prompts: Mapping[str, list[Item]], shares: Mapping[str, Mapping[str, float]], event: str
           ) -> tuple[dict[str, float], dict[str, float]]:
    """Per prompt: the judge's share of samples of kind ``event``, and the people's (labelled prompts only)."""
    judge = {pid: float(np.mean([i.judge_kind == event for i in its])) for pid, its in prompts.items()}
    people = {pid: float(np.mean([shares[i.key][event] for i in its])) for pid, its in prompts.items()
              if all(i.key in shares for i in its)}
    return judge, people


def _ppi(judge: Mapping[str, float], people: Mapping[str, float], bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    lab = sorted(people)
    res = prediction_powered_mean([people[p] for p in lab], [judge[p] for p in lab], list(judge.values()), bounds=bounds)
    return {"value": res["value"], "ci": list(res["ci"]), "lam": res["lam"], "method": "PPI++ (finite population)",
            "classical": {"value": res["classical"]["value"], "ci": list(res["classical"]["ci"])}}


def _set_rates(items: list[Item], shares: Mapping[str, Mapping[str, float]], n_excluded: int) -> dict[str, Any]:
    prompts = _by_prompt(items)
    split_type = items[0].split_type
    measures = MEASURES[HEADLINE_OF[split_type]]
    labelled = {pid for pid, its in prompts.items() if all(i.key in shares for i in its)}
    out: dict[str, Any] = {"n_prompts": len(prompts), "n_labels": len(labelled), "n_excluded_fitted": n_excluded,
                           "headline": HEADLINE_OF[split_type]}
    if not labelled:
        return out | {"status": "no labels"}
    out["agreement"] = _confusion(items, shares)
    if len(labelled) < MIN_LABELS:
        return out | {"status": "too few labels", "why": f"{len(labelled)} labelled prompts; at least {MIN_LABELS} needed"}
    out["status"] = "ok"
    out["rates"] = {}
    for m in measures:
        judge, people = _units(prompts, shares, EVENTS[m])
        value = float(np.mean(list(judge.values())))
        lo, hi = wilson_interval(value * len(judge), len(judge))
        out["rates"][m] = {"judge": {"value": value, "ci": [lo, hi]}, "ppi": _ppi(judge, people)}
    return out


def _difference(a: list[Item], b: list[Item], shares_a: Mapping[str, Mapping[str, float]],
                shares_b: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    pa, pb = _by_prompt(a), _by_prompt(b)
    shared = sorted(set(pa) & set(pb))
    measures = MEASURES[HEADLINE_OF[a[0].split_type]]
    out: dict[str, Any] = {"n_paired": len(shared)}
    both = None
    rates = {}
    for m in measures:
        ja, ya = _units({p: pa[p] for p in shared}, shares_a, EVENTS[m])
        jb, yb = _units({p: pb[p] for p in shared}, shares_b, EVENTS[m])
        both = sorted(set(ya) & set(yb))
        judge_diff = paired_rate_difference({p: [ja[p]] for p in shared}, {p: [jb[p]] for p in shared})
        row: dict[str, Any] = {"judge": {"value": judge_diff["diff"], "ci": list(judge_diff["ci"]) if judge_diff["ci"] else None,
                                         "p_value": judge_diff["p_value"]}}
        if len(both) >= MIN_LABELS:
            row["ppi"] = _ppi({p: jb[p] - ja[p] for p in shared}, {p: yb[p] - ya[p] for p in both}, (-1.0, 1.0))
        rates[m] = row
    out["n_labels"] = len(both or [])
    if not both:
        return out | {"status": "no labels", "rates": rates}
    if len(both) < MIN_LABELS:
        return out | {"status": "too few labels", "rates": rates,
                      "why": f"{len(both)} prompts labelled on both sides; at least {MIN_LABELS} needed"}
    return out | {"status": "ok", "rates": rates}


def label_rates(run_dir: str | Path) -> dict[str, Any]:
    """The prediction-powered section of a folder's ``metrics.json`` (see the module docstring)."""
    run_dir = Path(run_dir)
    where = sides(run_dir)
    items = all_items(run_dir)
    known = {i.key for by_set in items.values() for its in by_set.values() for i in its}
    labels = read_all_labels(run_dir, known)
    shares_all = consensus(labels)
    out: dict[str, Any] = {
        "min_labels": MIN_LABELS, "command": f"thinksafe label {run_dir}",
        "annotators": {a: sum(r["label"] in LABELS for r in rows.values()) for a, rows in labels.items()},
        "skipped": sum(r["label"] not in LABELS for rows in labels.values() for r in rows.values()),
        "between_annotators": annotator_agreement(labels), "sides": {}, "differences": {}}
    shares_of: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for side, by_set in items.items():
        kind, folder = where[side]
        out["sides"][side] = {}
        for name, its in sorted(by_set.items()):
            fitted = fitted_identities(_judge_of(folder, kind, name))
            keep = {i.key for i in its if i.identity not in fitted}
            shares = {k: v for k, v in shares_all.items() if k in keep}
            n_excluded = sum(1 for i in its if i.key in shares_all and i.key not in keep)
            shares_of[(side, name)] = shares
            out["sides"][side][name] = _set_rates(its, shares, n_excluded)
    if "before" in items:
        for side in items:
            if side == "before":
                continue
            out["differences"][f"{side} - before"] = {
                name: _difference(items["before"][name], its, shares_of[("before", name)], shares_of[(side, name)])
                for name, its in sorted(items[side].items()) if name in items["before"]}
    return out
