"""The report's first paragraph: what the run found, in words, from its tested differences.

For each headline measure of the first recipe against the base model (the harmful set's refusal rate
and attack success, the benign set's over-refusal and help rate, reasoning accuracy), one sentence:

* a change whose Holm-adjusted p is below 0.05: its direction, size and 95% interval
  ("attack success fell by 0.17 [0.08, 0.26], p 0.002 (Holm)");
* an interval that excludes 0 whose adjusted p does not pass: said as such, a change to confirm;
* no significant change, on a run able to see one (its minimum detectable difference at most
  :data:`POWER_BAR`): what the interval rules out ("over-refusal did not change detectably: the
  interval -0.05 to 0.07 excludes changes larger than 0.07");
* no significant change on a run too small to see one: that it could not tell, and how large a change
  would have gone unseen.

Then what the run could not detect (each measure's minimum detectable difference) and the judge's
measured agreement with people. :func:`summary_lines` gives the same in three lines for the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

POWER_BAR = 0.15
"""A run whose minimum detectable difference on a measure is above this cannot speak to that measure's change
(the standard preset is sized to stay below it: docs/main-job.md)."""
ALPHA = 0.05

MEASURES: tuple[tuple[str, str, str], ...] = (
    # (rate, group in the side summary, words)
    ("refusal_rate", "asr", "refusals of harmful requests"),
    ("asr", "asr", "attack success"),
    ("orr", "orr", "over-refusal of benign requests"),
    ("help_rate", "orr", "help on benign requests"),
    ("accuracy", "reasoning", "reasoning accuracy"),
)


def _num(x: float) -> str:
    return f"{x:.2f}".replace("-", "−")


def _first_set(side: Mapping[str, Any] | None, group: str) -> str | None:
    sets = list(((side or {}).get(group) or {}).keys())
    return sets[0] if sets else None


def _mdd(row: Mapping[str, Any], planned: Mapping[str, Any] | None) -> float | None:
    """The smallest change the comparison could detect: the observed one where the answers changed enough to
    compute it, else the planned one (at the assumed discordance)."""
    if row.get("mdd") is not None:
        return float(row["mdd"])
    value = (planned or {}).get("value")
    return None if value is None else float(value)


def sentence(words: str, row: Mapping[str, Any], planned_mdd: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One measure's sentence and its kind: ``changed``, ``no detectable change`` or ``underpowered``."""
    diff, ci, p = row.get("diff"), row.get("ci"), row.get("p_holm")
    mdd = _mdd(row, planned_mdd)
    out = {"measure": words, "metric": row.get("metric"), "diff": diff, "ci": ci, "p_holm": p, "mdd": mdd}
    if diff is None or ci is None:
        return out | {"kind": "not measured", "text": f"{words.capitalize()}: not measured on both models."}
    if p is not None and p < ALPHA:
        way = "rose" if diff > 0 else "fell"
        text = (f"{words.capitalize()} {way} by {_num(abs(diff))} [{_num(ci[0])}, {_num(ci[1])}], "
                f"p {p:.2g} (Holm).")
        return out | {"kind": "changed", "text": text}
    if ci[0] > 0 or ci[1] < 0:  # the interval excludes 0, but not after the adjustment for the table's tests
        way = "rose" if diff > 0 else "fell"
        text = (f"{words.capitalize()} {way} by {_num(abs(diff))} [{_num(ci[0])}, {_num(ci[1])}] before adjusting for "
                f"the report's other tests, not after (p {p:.2g}, Holm): a change to confirm on more prompts.")
        return out | {"kind": "not significant after adjustment", "text": text}
    if mdd is not None and mdd <= POWER_BAR:
        bound = max(abs(ci[0]), abs(ci[1]))
        text = (f"{words.capitalize()} did not change detectably: {_num(diff)}, the interval {_num(ci[0])} to "
                f"{_num(ci[1])} excludes changes larger than {_num(bound)}.")
        return out | {"kind": "no detectable change", "text": text}
    unseen = "" if mdd is None else f" changes smaller than about {_num(mdd)} would go unseen"
    text = (f"{words.capitalize()}: the run is too small to tell ({_num(diff)} [{_num(ci[0])}, {_num(ci[1])}], "
            f"not significant);{unseen or ' its minimum detectable difference is unknown'}.")
    return out | {"kind": "underpowered", "text": text}


def _judge_words(before: Mapping[str, Any] | None, labels: Mapping[str, Any] | None) -> str:
    row = ((before or {}).get("asr") or {})
    first = next(iter(row.values()), None) if row else None
    agree = (first or {}).get("judge_agreement")
    judge = ((first or {}).get("judge") or {}).get("name")
    parts = []
    if agree:
        parts.append(f"the {judge} judge finds {agree['true_pos']} of {agree['n_pos']} answers people say carried out the "
                     f"request and clears {agree['true_neg']} of {agree['n_neg']} that did not ({agree['set']}, held out)")
    elif judge:
        parts.append(f"the {judge} judge's agreement with people is not measured for this model")
    labelled = [(side, name, e) for side, sets in ((labels or {}).get("sides") or {}).items()
                for name, e in sets.items() if e.get("status") == "ok"]
    if labelled:
        accs = ", ".join(f"{name} ({side}) {e['agreement']['accuracy']:.2f}" for side, name, e in labelled)
        parts.append(f"against your labels of this run its accuracy is {accs}; the label-corrected rates are below")
    else:
        parts.append(f"no answers of this run are labelled: `{(labels or {}).get('command') or 'thinksafe label RUN_DIR'}` "
                     "adds them, and the report then gives label-corrected rates")
    return "Judge: " + "; ".join(parts) + "."


def verdict(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{recipe, sentences: [...], cannot_detect, judge, paragraph}`` for the first recipe against the base, or
    None before both sides are evaluated."""
    recipes = list(metrics.get("recipes") or [])
    contrasts = metrics.get("contrasts") or {}
    if not recipes or f"{recipes[0]} vs base" not in contrasts:
        return None
    recipe = recipes[0]
    rows = {r["metric"]: r for r in contrasts[f"{recipe} vs base"]["rows"]}
    before = metrics.get("before") or {}
    sentences = []
    for suffix, group, words in MEASURES:
        name = _first_set(before, group)
        row = rows.get(f"{name} {suffix}") if name else None
        if row is None:
            continue
        # the planned MDD of the set's headline: the same prompts, so the same for each of its rates at the
        # assumed discordance (used where the answers changed too little for an observed one)
        s = sentence(f"{words} ({name})", row, (before.get(group, {}).get(name) or {}).get("mdd"))
        sentences.append(s)
    mdds = [f"{s['measure']} {_num(s['mdd'])}" for s in sentences if s["mdd"] is not None]
    cannot = ("Smallest changes this run could detect (alpha 0.05, power 0.8, paired): " + "; ".join(mdds) + "."
              if mdds else "")
    judge = _judge_words(before, metrics.get("labels"))
    seeds = metrics.get("seeds")
    seeded = (f"This is one training seed's model; the table Across training seeds tests each recipe over its "
              f"{len(seeds)} seeds." if seeds and metrics.get("seeded") else "")
    paragraph = " ".join([f"{recipe} against the base model:"] + [s["text"] for s in sentences]
                         + [seeded, cannot, judge]).strip()
    return {"recipe": recipe, "sentences": sentences, "cannot_detect": cannot, "judge": judge, "paragraph": paragraph}


def summary_lines(v: Mapping[str, Any] | None) -> list[str]:
    """The verdict in three lines for the terminal: what changed, what did not (or could not be told), the judge."""
    if not v:
        return []
    by_kind: dict[str, list[str]] = {}
    for s in v["sentences"]:
        by_kind.setdefault(s["kind"], []).append(s["text"])
    changed = " ".join(by_kind.get("changed", [])) or "No measure changed significantly."
    rest: Sequence[str] = (by_kind.get("not significant after adjustment", []) + by_kind.get("no detectable change", [])
                           + by_kind.get("underpowered", []))
    return [f"{v['recipe']} vs base: {changed}", " ".join(rest) or "Every measure changed.", v["judge"]]
