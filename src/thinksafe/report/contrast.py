"""Two models of one run side by side, every difference with a paired test or an interval.

A *side* is a folder of the main job holding ``eval/`` and ``deliberation/`` (``before`` for the base
model, ``after/<recipe>`` for an adapter). :func:`contrast` gives, for ``b`` against ``a``:

* each evaluation set's headline (ASR, ORR, accuracy): both values and an exact McNemar test on the
  prompts both answered (the same prompts and seeds, so the test is paired);
* the deliberation scorecard: the first-token AUROC within the harmful pool (a percentile bootstrap
  of the difference from the probes' out-of-fold scores, prompts resampled), the commitment fraction
  and the flip rate at 20% (a bootstrap over the truncation prompts of each model), and the
  performative share of stance changes (Fisher's exact test on the two models' counts).

The two models answered the same prompts but wrote different traces, so the deliberation differences
resample each model's records independently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thinksafe.jsonl import read_jsonl
from thinksafe.stats import auroc, bootstrap_difference_ci, fisher_exact, mcnemar_paired

SAFETY = ("asr", "orr")


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# ------------------------------------------------------------------------------------ evaluation


def eval_events(eval_dir: Path, benchmark: str, metric: str) -> dict[str, bool]:
    """Per prompt id (its first sample): whether the headline's event happened: ASR: helped with a
    harmful request; ORR: a benign request not helped; accuracy: answered right."""
    if metric == "accuracy":
        from thinksafe.evals.compare import _correct_by_id

        return {k: v[0] for k, v in _correct_by_id(eval_dir, benchmark).items()}
    from thinksafe.evals.metrics import _response_kinds

    first: dict[str, dict[str, Any]] = {}
    for r in read_jsonl(eval_dir / benchmark / "judged.jsonl"):
        if str(r["id"]) not in first or r.get("sample_index", 0) < first[str(r["id"])].get("sample_index", 0):
            first[str(r["id"])] = r
    ids = list(first)
    kinds, _ = _response_kinds([first[i] for i in ids], benchmark)
    return {i: (k == "helped") if metric == "asr" else (k != "helped") for i, k in zip(ids, kinds)}


def mcnemar_events(a: Mapping[str, bool], b: Mapping[str, bool]) -> dict[str, Any]:
    """Exact McNemar test (two-sided binomial on the discordant prompts) of an event's rate, b against a."""
    return {"test": "McNemar (exact)"} | mcnemar_paired(a, b)


# ---------------------------------------------------------------------------------- deliberation


def _auroc_units(probe: Mapping[str, Any] | None, side: str = "harmful") -> list[list[tuple[int, float]]] | None:
    """The harmful pool's out-of-fold (label, score) pairs, grouped by prompt."""
    oof = ((probe or {}).get("oof") or {}).get("first_token")
    if not oof:
        return None
    groups: dict[str, list[tuple[int, float]]] = {}
    for g, y, s, sd in zip(oof["groups"], oof["labels"], oof["scores"], oof["sides"]):
        if sd == side and s is not None:
            groups.setdefault(g, []).append((int(y), float(s)))
    return list(groups.values())


def _auroc_of(units: list[list[tuple[int, float]]]) -> float | None:
    pairs = [p for u in units for p in u]
    return auroc([y for y, _ in pairs], [s for _, s in pairs]) if pairs else None


def _truncation_units(delib: Path) -> tuple[list[list[dict[str, Any]]], dict[str, Any]] | None:
    rows_path, cfg = delib / "truncation" / "replays.jsonl", _read(delib / "config.json")
    if not rows_path.exists() or cfg is None:
        return None
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in read_jsonl(rows_path):
        by_key.setdefault(r["key"], []).append(r)
    labels = {r["key"]: r for r in read_jsonl(delib / "generate" / "labels.jsonl")}
    return [by_key[k] for k in sorted(by_key) if k in labels], {"labels": labels, "cfg": cfg}


def _truncation_stat(which: str, ctx: Mapping[str, Any]) -> Any:
    from thinksafe.deliberation.run import truncation_report

    cfg = ctx["cfg"]

    def stat(units: list[list[dict[str, Any]]]) -> float | None:
        rows = [r for u in units for r in u]
        labels = [ctx["labels"][k] for k in {r["key"] for r in rows}]
        side = truncation_report(rows, labels, cfg["fractions"], cfg["commitment"])["sides"]["all"]
        return side[which]

    return stat


def _row(metric: str, a: Any, b: Any, **extra: Any) -> dict[str, Any]:
    diff = None if a is None or b is None else b - a
    return {"metric": metric, "a": a, "b": b, "diff": diff, "p_value": None, "ci": None} | extra


def contrast(side_a: str | Path, side_b: str | Path, *, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Rows ``{metric, a, b, diff, test, p_value, ci, n}`` for every number both sides have (``p_value`` for the
    paired and Fisher tests, ``ci`` for the bootstrap ones; the other is None)."""
    side_a, side_b = Path(side_a), Path(side_b)
    rows: list[dict[str, Any]] = []
    ma, mb = _read(side_a / "eval" / "metrics.json"), _read(side_b / "eval" / "metrics.json")
    if ma and mb:
        for bench, entry in ma["benchmarks"].items():
            if bench not in mb["benchmarks"]:
                continue
            metric = entry["metric"]
            test = mcnemar_events(eval_events(side_a / "eval", bench, metric), eval_events(side_b / "eval", bench, metric))
            rows.append(_row(f"{bench} {metric}", entry["value"], mb["benchmarks"][bench]["value"],
                             test=test["test"], p_value=test["p_value"], n=test["n_paired"],
                             detail=f"{test['only_a']} only in a, {test['only_b']} only in b"))
    da, db = side_a / "deliberation", side_b / "deliberation"
    sa, sb = _read(da / "metrics.json"), _read(db / "metrics.json")
    if sa and sb:
        ua, ub = _auroc_units(_read(da / "probe" / "probe.json")), _auroc_units(_read(db / "probe" / "probe.json"))
        ci = bootstrap_difference_ci(_auroc_of, _auroc_of, ua, ub, n_resamples=n_resamples, seed=seed) if ua and ub else None
        rows.append(_row("first-token AUROC (harmful pool)", sa.get("first_token_auroc"), sb.get("first_token_auroc"),
                         test="bootstrap of the difference (prompts)", ci=ci,
                         n=[sa.get("first_token_n"), sb.get("first_token_n")]))
        ta, tb = _truncation_units(da), _truncation_units(db)
        for which, name in (("commitment_fraction", "commitment fraction"), ("flip_rate_at_20", "flip rate at 20%")):
            ci = None
            if ta and tb and ta[0] and tb[0]:
                # each resample re-runs the truncation report: a quarter of the resamples
                ci = bootstrap_difference_ci(_truncation_stat(which, ta[1]), _truncation_stat(which, tb[1]), ta[0], tb[0],
                                             n_resamples=n_resamples // 4, seed=seed)
            rows.append(_row(name, sa.get(which), sb.get(which), test="bootstrap of the difference (prompts)", ci=ci,
                             n=[sa.get("truncation_n"), sb.get("truncation_n")]))
        pa, pb = _read(da / "stance" / "stance.json"), _read(db / "stance" / "stance.json")
        p_value = None
        if pa and pb and pa.get("n_tested") and pb.get("n_tested"):
            perf_a = sum(not t["significant"] for t in pa["tests"])
            perf_b = sum(not t["significant"] for t in pb["tests"])
            p_value = fisher_exact(perf_a, pa["n_tested"], perf_b, pb["n_tested"])
        rows.append(_row("performative share of stance changes", sa.get("performative_share"), sb.get("performative_share"),
                         test="Fisher exact", p_value=p_value, n=[sa.get("performative_n"), sb.get("performative_n")]))
    return {"a": str(side_a), "b": str(side_b), "rows": rows}
