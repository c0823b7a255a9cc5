"""Two models of one run side by side, every difference with its interval, a p-value and the
table's multiplicity control.

A *side* is a folder of the main job holding ``eval/`` and ``deliberation/`` (``before`` for the base
model, ``after/<recipe>`` for an adapter). The two models answered the same prompts with the same
seeds, so the differences are paired by prompt id wherever both sides have the prompt.
:func:`contrast` gives, for ``b`` against ``a``:

* each evaluation set's headline (ASR or ``non_refusal_rate``, ORR: benign prompts refused, accuracy): the paired bootstrap
  interval of the difference over prompt ids (each prompt the mean of all its samples, as in the
  headline) and a p-value: exact McNemar with one sample per prompt, the paired clustered bootstrap
  with several (:func:`thinksafe.evals.compare.paired_headline`);
* the deliberation scorecard: the first-token AUROC within the harmful pool (from the probes'
  out-of-fold scores), the commitment fraction and the flip rate at 20%: a paired percentile
  bootstrap of the difference, prompt ids resampled jointly on both sides, with its bootstrap p;
  the performative share of stance changes: each model's own stance changes (they happen on
  different cuts of different traces, so pairing is impossible), an unpaired bootstrap with traces
  resampled (the cuts of one trace are not independent), labelled unpaired.

Every row carries ``diff``, ``ci``, ``p_value`` and, across the rows of one table, Holm-adjusted
``p_holm`` and Benjamini-Hochberg ``q_bh``; ``n_dropped`` counts the prompts on one side only, left
out of a paired row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from thinksafe.deliberation.states import prompt_of
from thinksafe.evals.compare import adjust_family, paired_headline
from thinksafe.evals.schema import read_metrics
from thinksafe.jsonl import read_jsonl
from thinksafe.stats import auroc, bootstrap_difference, observed_paired_mdd


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# ---------------------------------------------------------------------------------- deliberation


def _auroc_units(probe: Mapping[str, Any] | None, state: str,
                 side: str = "harmful") -> dict[str, list[tuple[int, float]]] | None:
    """The harmful pool's out-of-fold (label, score) pairs of one state's probe, grouped by prompt id
    (``first_sampled_token`` reads a folder written before the rename under its old name)."""
    oof = (probe or {}).get("oof") or {}
    oof = oof.get(state) or (oof.get("first_token") if state == "first_sampled_token" else None)
    if not oof:
        return None
    groups: dict[str, list[tuple[int, float]]] = {}
    for g, y, s, sd in zip(oof["groups"], oof["labels"], oof["scores"], oof["sides"]):
        if sd == side and s is not None:
            groups.setdefault(g, []).append((int(y), float(s)))
    return groups


def _auroc_of(units: list[list[tuple[int, float]]]) -> float | None:
    pairs = [p for u in units for p in u]
    return auroc([y for y, _ in pairs], [s for _, s in pairs]) if pairs else None


def _truncation_units(delib: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]] | None:
    """The truncation replays of each prompt id (all its labelled samples, every cut), and what the
    report needs to recompute the curve."""
    rows_path, cfg = delib / "truncation" / "replays.jsonl", _read(delib / "config.json")
    if not rows_path.exists() or cfg is None:
        return None
    labels = {r["key"]: r for r in read_jsonl(delib / "generate" / "labels.jsonl")}
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for r in read_jsonl(rows_path):
        if r["key"] in labels:
            by_prompt.setdefault(prompt_of(r["key"]), []).append(r)
    return dict(sorted(by_prompt.items())), {"labels": labels, "cfg": cfg}


def _truncation_stat(which: str, ctx: Mapping[str, Any]) -> Any:
    from thinksafe.deliberation.run import truncation_report

    cfg = ctx["cfg"]

    def stat(units: list[list[dict[str, Any]]]) -> float | None:
        rows = [r for u in units for r in u]
        labels = [ctx["labels"][k] for k in {r["key"] for r in rows}]
        side = truncation_report(rows, labels, cfg["fractions"], cfg["commitment"])["sides"]["all"]
        return side[which]

    return stat


def _stance_units(stance: Mapping[str, Any] | None) -> list[list[dict[str, Any]]] | None:
    """Each trace's stance tests (one per cut that changed stance), the unit a bootstrap resamples."""
    if not stance or not stance.get("tests"):
        return None
    per_trace: dict[str, list[dict[str, Any]]] = {}
    for t in stance["tests"]:
        per_trace.setdefault(t["key"], []).append(t)
    return list(per_trace.values())


def _performative_of(units: list[list[dict[str, Any]]]) -> float | None:
    """The share of powered stance cuts whose change was not significant (unpowered cuts say nothing;
    a folder written before the power rule has no ``powered`` key and counts every cut, as it did)."""
    tests = [t for u in units for t in u if t.get("powered", True)]
    return sum(t["significant"] is False for t in tests) / len(tests) if tests else None


def _bootstrap_row(metric: str, a: Any, b: Any, stat_a: Any, stat_b: Any, units_a: Mapping[str, Any] | None,
                   units_b: Mapping[str, Any] | None, *, unit: str, n_resamples: int, seed: int, **extra: Any) -> dict[str, Any]:
    """A row whose interval and p come from a percentile bootstrap of the difference: paired over the ids
    both sides have (the ones on one side only are left out and counted), unpaired (and labelled so)
    only where no id is shared."""
    out: dict[str, Any] = {"ci": None, "p_value": None}
    if not units_a or not units_b:
        return _row(metric, a, b, test=f"bootstrap of the difference, paired ({unit})", paired=True, **out, **extra)
    shared = [k for k in units_a if k in units_b]
    if shared:
        dropped = len(units_a) + len(units_b) - 2 * len(shared)
        res = bootstrap_difference(stat_a, stat_b, {k: units_a[k] for k in shared}, {k: units_b[k] for k in shared},
                                   paired=True, n_resamples=n_resamples, seed=seed)
        detail = f"{len(shared)} {unit} paired" + (f", {dropped} on one side only left out" if dropped else "")
        return _row(metric, a, b, test=f"bootstrap of the difference, paired ({unit})", paired=True,
                    ci=res["ci"], p_value=res["p_value"], n_dropped=dropped, detail=detail, **extra)
    res = bootstrap_difference(stat_a, stat_b, list(units_a.values()), list(units_b.values()),
                               n_resamples=n_resamples, seed=seed)
    return _row(metric, a, b, test=f"bootstrap of the difference, unpaired ({unit}: none shared)", paired=False,
                ci=res["ci"], p_value=res["p_value"], **extra)


# ------------------------------------------------------------------------------------------ rows


def _observed_mdd(test: Mapping[str, Any]) -> float | None:
    """The smallest difference this comparison could have detected (α 0.05, power 0.8)."""
    return observed_paired_mdd(test.get("n_paired") or 0, test.get("only_a", 0) + test.get("only_b", 0))


SECONDARY: dict[str, tuple[str, ...]] = {"asr": ("refusal_rate",), "orr": ("help_rate",)}
"""Rates tested beside each headline (in the same Holm family)."""


def _row(metric: str, a: Any, b: Any, **extra: Any) -> dict[str, Any]:
    """One difference: ``{metric, a, b, diff, test, paired, ci, p_value, p_holm, q_bh, n, n_dropped, detail,
    mdd}`` (``p_holm`` and ``q_bh`` are filled across the table by :func:`contrast`; ``mdd``, the observed
    minimum detectable difference, where the test is a paired comparison of rates)."""
    diff = None if a is None or b is None else b - a
    ci = extra.pop("ci", None)
    return {"metric": metric, "a": a, "b": b, "diff": diff, "test": None, "paired": True,
            "ci": None if ci is None else list(ci), "p_value": None, "p_holm": None, "q_bh": None,
            "n": None, "n_dropped": 0, "detail": None, "mdd": None} | extra


def eval_rows(side_a: Path, side_b: Path, *, n_resamples: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per evaluation set both sides have: the headline's paired difference (all samples)."""
    rows: list[dict[str, Any]] = []
    if not ((side_a / "eval" / "metrics.json").exists() and (side_b / "eval" / "metrics.json").exists()):
        return rows
    # read_metrics relabels a folder written before ORR meant refusals only, as paired_headline counts it
    ma, mb = read_metrics(side_a / "eval" / "metrics.json"), read_metrics(side_b / "eval" / "metrics.json")
    for bench, entry in ma["benchmarks"].items():
        other = mb["benchmarks"].get(bench)
        if other is None:
            continue
        if other["metric"] != entry["metric"]:  # judges of different kinds: not like with like
            rows.append(_row(bench, None, None, test=f"not compared: a reports {entry['metric']}, b {other['metric']}"))
            continue
        # the headline, then the other rate a verdict turns on: a harmful set's refusal rate (where alignment
        # shows on a model that rarely carries a request out), a benign set's help rate
        for metric in (entry["metric"], *SECONDARY.get(entry["metric"], ())):
            t = paired_headline(side_a / "eval", side_b / "eval", bench, metric, n_resamples=n_resamples, seed=seed)
            detail = f"higher in a on {t['only_a']} prompts, in b on {t['only_b']}"
            if t["n_dropped"]:
                detail += f"; {t['n_dropped']} prompts on one side only left out"
            va, vb = (e["value"] if metric == e["metric"] else (e.get(metric) or {}).get("value") for e in (entry, other))
            mdd = _observed_mdd(t)
            # no MDD from paired prompts: too few answers changed for any difference to reach 80% power
            note = {"mdd_note": "too few changed"} if mdd is None and t["n_paired"] else {}
            rows.append(_row(f"{bench} {metric}", va, vb, test=t["test"], ci=t["ci"], p_value=t["p_value"],
                             n=t["n_paired"], n_dropped=t["n_dropped"], detail=detail, mdd=mdd, **note))
    return rows


def deliberation_rows(side_a: Path, side_b: Path, *, n_resamples: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """The deliberation scorecard's differences (none when a side has no deliberation metrics)."""
    da, db = side_a / "deliberation", side_b / "deliberation"
    sa, sb = _read(da / "metrics.json"), _read(db / "metrics.json")
    if not (sa and sb):
        return []
    pa_, pb_ = _read(da / "probe" / "probe.json"), _read(db / "probe" / "probe.json")
    rows = []
    # the decision before thinking (last prompt token) and the state after one sampled trace token; a
    # folder written before these keys (schema 1) holds first_token_* only, read as the latter
    for state, name in (("last_prompt", "decision before thinking: last-prompt AUROC (harmful pool)"),
                        ("first_sampled_token", "first-sampled-token AUROC (harmful pool)")):
        old = "first_token" if state == "first_sampled_token" else None
        va, vb = (m.get(f"{state}_auroc", m.get(f"{old}_auroc") if old else None) for m in (sa, sb))
        na, nb = (m.get(f"{state}_n", m.get(f"{old}_n") if old else None) for m in (sa, sb))
        if va is None and vb is None:
            continue
        rows.append(_bootstrap_row(name, va, vb, _auroc_of, _auroc_of, _auroc_units(pa_, state), _auroc_units(pb_, state),
                                   unit="prompts", n_resamples=n_resamples, seed=seed, n=[na, nb]))
    ta, tb = _truncation_units(da), _truncation_units(db)
    for which, name in (("commitment_fraction", "commitment fraction"), ("flip_rate_at_20", "flip rate at 20%"),
                        ("flip_rate_at_20_net", "flip rate at 20%, net of the full-trace floor")):
        if sa.get(which) is None and sb.get(which) is None:
            continue
        stat_a, stat_b = (_truncation_stat(which, ta[1]) if ta else None), (_truncation_stat(which, tb[1]) if tb else None)
        # each resample re-runs the truncation report: a quarter of the resamples
        rows.append(_bootstrap_row(name, sa.get(which), sb.get(which), stat_a, stat_b, ta[0] if ta else None,
                                   tb[0] if tb else None, unit="prompts", n_resamples=n_resamples // 4, seed=seed,
                                   n=[sa.get("truncation_n"), sb.get("truncation_n")]))
    pa = _stance_units(_read(da / "stance" / "stance.json"))
    pb = _stance_units(_read(db / "stance" / "stance.json"))
    res = (bootstrap_difference(_performative_of, _performative_of, pa, pb, n_resamples=n_resamples, seed=seed)
           if pa and pb else {"ci": None, "p_value": None})
    rows.append(_row("performative share of stance changes", sa.get("performative_share"), sb.get("performative_share"),
                     test="bootstrap of the difference, unpaired (traces: each model's own stance changes)",
                     paired=False, ci=res["ci"], p_value=res["p_value"],
                     n=[sa.get("performative_n"), sb.get("performative_n")]))
    return rows


def contrast(side_a: str | Path, side_b: str | Path, *, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every difference both sides have, ``b - a`` (rows as :func:`_row`), with ``p_holm`` and ``q_bh``
    adjusted across the table's rows (rows without a p-value are not in the family)."""
    side_a, side_b = Path(side_a), Path(side_b)
    rows = eval_rows(side_a, side_b, n_resamples=n_resamples, seed=seed)
    rows += deliberation_rows(side_a, side_b, n_resamples=n_resamples, seed=seed)
    adjust_family(rows)
    return {"a": str(side_a), "b": str(side_b), "rows": rows,
            "family": f"Holm and BH across the {sum(r['p_value'] is not None for r in rows)} rows with a p-value"}


# ------------------------------------------------------------------------------------------ seeds


def seeded_contrasts(run_dir: str | Path, arms: list[tuple[str, str, int | None]], *, n_resamples: int = 2000,
                     seed: int = 0) -> dict[str, Any] | None:
    """A seeded run's table (``seeds`` in its config): each recipe's headline on every evaluation set as the
    mean over its seeds with the between-seed spread, and its difference against the base and against the
    first recipe, tested across seeds and prompts (:func:`thinksafe.stats.seeded_paired_difference`: seeds
    resampled on each seeded side, prompts jointly, so the training noise between seeds is in the
    interval). Holm and BH across the table's rows. Only models whose evaluation finished are in it;
    None where no recipe has one yet."""
    from thinksafe.evals.compare import events_by_prompt
    from thinksafe.stats import seeded_paired_difference

    run_dir = Path(run_dir)
    base_dir = run_dir / "before" / "eval"
    if not (base_dir / "metrics.json").exists():
        return None
    by_recipe: dict[str, list[tuple[int | None, Path]]] = {}
    for label, recipe, s in arms:
        folder = run_dir / "after" / label / "eval"
        if (folder / "metrics.json").exists():
            by_recipe.setdefault(recipe, []).append((s, folder))
    if not by_recipe:
        return None
    first = next(r for _, r, _ in arms if r in by_recipe)
    base_metrics = read_metrics(base_dir / "metrics.json")
    benches = {folder: read_metrics(folder / "metrics.json")["benchmarks"] for seeded in by_recipe.values()
               for _, folder in seeded}  # each model's sets, read once for the whole table
    rows: list[dict[str, Any]] = []
    for bench, entry in base_metrics["benchmarks"].items():
        metric = entry["metric"]
        base = events_by_prompt(base_dir, bench, metric)
        events: dict[str, list[dict[str, list[bool]]]] = {}
        for recipe, seeded in by_recipe.items():
            ms = [benches[folder].get(bench) for _, folder in seeded]
            if any(m is None or m["metric"] != metric for m in ms):
                continue
            events[recipe] = [events_by_prompt(folder, bench, metric) for _, folder in seeded]
        for recipe, evs in events.items():
            against = [("base", [base])] + ([(first, events[first])] if recipe != first and first in events else [])
            for name, other in against:
                # every number of the row over the prompts all its sides answered: each seed's rate (the mean
                # over prompts of each prompt's mean over samples, as the headline), their mean and spread
                ids = sorted(set.intersection(*(set(e) for e in other + evs)))
                after = [[float(np.mean(e[i])) for i in ids] for e in evs]
                res = seeded_paired_difference([[float(np.mean(e[i])) for i in ids] for e in other], after,
                                               n_resamples=n_resamples, seed=seed)
                per_seed = [float(np.mean(a)) if ids else None for a in after]
                rows.append({"recipe": recipe, "metric": f"{bench} {metric}", "seeds": [s for s, _ in by_recipe[recipe]],
                             "per_seed": per_seed, "mean": float(np.mean(after)) if ids else None,
                             "seed_sd": float(np.std(per_seed, ddof=1)) if ids and len(per_seed) > 1 else None,
                             "against": name, "diff": res["value"], "ci": res["ci"], "p_value": res["p_value"],
                             "diff_per_seed": res["per_seed"], "n": len(ids), "n_seeds": res["n_seeds"]})
    adjust_family(rows)
    return {"rows": rows, "first": first,
            "family": f"Holm and BH across the {sum(r['p_value'] is not None for r in rows)} rows with a p-value",
            "test": "two-level bootstrap: seeds resampled on each seeded side, then prompts jointly (paired)"}
