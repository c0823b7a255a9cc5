"""Judge error beside every rate: who decided it, how well that judge agrees with people, and the
rate corrected for its error.

:func:`annotate` fills each plain-key rate of a safety set (``asr``, ``orr``, ``help_rate``, ...) with

* ``judge``: ``{name, fingerprint, options}`` of the judge whose verdicts it counts;
* ``judge_agreement``: the judge's sensitivity and specificity for the rate's event on the held-out
  rows of the nearest human-labelled set (:mod:`thinksafe.judges.agreement`): the default model's
  own labelled responses (``qwen05``) when the run's model is the default model, the prompts of the
  set's kind (harmful or benign) where both classes have at least :data:`MIN_CLASS` rows there;
  otherwise PyRIT's objective set for help (ASR, the help rate) and XSTest for refusals (ORR, the
  refusal rate, ``non_refusal_rate``); no labelled set answers "no answer" for other models;
* ``corrected``: :func:`thinksafe.stats.rogan_gladen` from those counts, ``{value, ci, assumption,
  ...}``, its interval carrying the labelled set's uncertainty, under the stated assumption that the
  judge errs on this run's answers as on the labelled set.

Where no agreement is known (a user's ``llm`` judge that was never measured) both are null and
``reason`` says why and how to measure it. ``judge_fit_overlap`` on the set says how many of its
prompts the (shipped) judge was fitted on: its rates on those prompts flatter the judge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from thinksafe.evals.metrics import MetricResult
from thinksafe.stats import rogan_gladen

MIN_CLASS = 10
"""Fewest positives and negatives a labelled subset (harmful or benign prompts) needs to stand for the set."""
NEAREST = {"helped": "pyrit", "refused": "xstest", "not_refused": "xstest"}
"""The labelled set nearest a rate's event for a model other than the default one."""
WHY = {"qwen05": "the default model's own responses, labelled by people (held-out half)",
       "pyrit": "PyRIT's objective-scorer set, a person's 'achieved' (held-out categories)",
       "xstest": "XSTest v2 completions, people's refusal labels (held-out completion models)"}
SPLIT_OF = {"asr": "asr", "non_refusal_rate": "asr", "orr": "orr"}


def _event(key: str, measure: Mapping[str, Any], refusal_only: bool) -> str:
    # a refusal-only judge's count of answers is "not refused", whatever the key is called
    return "not_refused" if key == "non_refusal_rate" or (refusal_only and measure["event"] == "helped") else measure["event"]


def agreement_for(measurement: Mapping[str, Any], event: str, *, own_model: bool, split_type: str | None,
                  side: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """The judge's agreement for ``event`` from a :func:`thinksafe.judges.agreement.measure` result:
    ``({set, subset, event, sensitivity, specificity, true_pos, n_pos, true_neg, n_neg, ...}, None)`` or
    ``(None, reason)``. On the default model's own labels the narrowest subset with at least
    ``MIN_CLASS`` rows of each class is used: the run's model side (``base`` or ``adapter``) and prompt
    kind, then the side, then the prompt kind, then all rows."""
    name = "qwen05" if own_model else NEAREST.get(event)
    if name is None:
        return None, (f"no labelled set outside the default model's own responses labels '{event}' answers, so the "
                      "judge's error on them is not known for this model")
    entry = measurement.get("sets", {}).get(name)
    if entry is None or event not in entry.get("events", {}):
        return None, f"the judge was not measured on {name!r} for '{event}'"
    c, subset = entry["events"][event], "all"
    kind = {"asr": "harmful prompts", "orr": "benign prompts"}.get(split_type or "")
    by_side = (entry.get("by_side") or {}).get(side or "") or {}
    candidates = [((by_side.get("by_split_type") or {}).get(split_type or "", {}).get(event), f"{side} answers, {kind}"),
                  ((by_side.get("events") or {}).get(event), f"{side} answers"),
                  ((entry.get("by_split_type") or {}).get(split_type or "", {}).get(event), kind)]
    for sub, label in candidates:
        if sub and min(sub["n_pos"], sub["n_neg"]) >= MIN_CLASS:
            c, subset = sub, label
            break
    if min(c["n_pos"], c["n_neg"]) < 1:
        return None, f"{name!r} has no rows of one class for '{event}'"
    out = {"set": name, "subset": subset, "split": measurement.get("split", "heldout"), "event": event,
           "sensitivity": c["true_pos"] / c["n_pos"], "specificity": c["true_neg"] / c["n_neg"], **c,
           "why": WHY.get(name, name)}
    return out, None


def corrected(measure: Mapping[str, Any], agreement: Mapping[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """The rate corrected for the judge's measured error (Rogan-Gladen), ``{value, ci, assumption, ...}``;
    ``value`` and ``ci`` null, with a ``reason``, where the judge is no better than chance on the set."""
    n = int(measure["n"])
    positives = min(n, max(0, round(measure["value"] * n)))
    rg = rogan_gladen(positives, n, true_pos=agreement["true_pos"], n_pos=agreement["n_pos"],
                      true_neg=agreement["true_neg"], n_neg=agreement["n_neg"], seed=seed)
    out = {"value": rg["value"], "ci": None if rg["ci"] is None else list(rg["ci"]), "method": "rogan-gladen",
           "assumption": f"{rg['assumption']} ({agreement['set']}, {agreement['subset']})",
           "observed": rg["observed"], "positives": positives, "n": n}
    if measure.get("n_samples", n) > n:
        out["note"] = "positives = the rate over prompts x the prompts, rounded (a prompt's samples averaged)"
    if rg["value"] is None:
        out["reason"] = "sensitivity + specificity <= 1 on the labelled set: the judge is no better than chance there"
    return out


def fit_overlap(records: Iterable[Mapping[str, Any]], fit: Mapping[str, Any] | None, judge: str) -> dict[str, Any]:
    """``{judge, n, n_prompts, ids_hash}``: how many evaluated prompts the judge was fitted on (by the
    normalised prompt text or, for the default model's labels, ``benchmark/id``); ``ids_hash`` is a
    sha256 (16 hex) of the sorted ids of the overlapping prompts. ``n`` null, with a ``reason``, where the
    judge's fit prompts are not recorded."""
    from thinksafe.judges.agreement import prompt_key

    recs = list(records)
    prompts = {str(r["id"]): (str(r.get("benchmark")), str(r.get("source_prompt") or r.get("prompt") or "")) for r in recs}
    out: dict[str, Any] = {"judge": judge, "n_prompts": len(prompts)}
    if fit is None:
        return out | {"n": None, "ids_hash": None,
                      "reason": f"the prompts judge {judge!r} was fitted on are not recorded (only the shipped judges')"}
    keys = set(fit.get("prompt_keys") or ())
    ids = {i for ids in (fit.get("ids") or {}).values() for i in ids}
    hit = sorted(pid for pid, (bench, text) in prompts.items() if f"{bench}/{pid}" in ids or prompt_key(text) in keys)
    out |= {"n": len(hit), "ids_hash": hashlib.sha256("\n".join(hit).encode()).hexdigest()[:16] if hit else None}
    if hit:
        out["note"] = (f"{len(hit)} of these {len(prompts)} prompts are among those judge {judge!r} was fitted on: "
                       "its verdicts on them, and the rates they enter, may look better than the judge is")
    return out


def annotate(result: MetricResult, records: Iterable[Mapping[str, Any]], *, judge: str, fingerprint: str | None,
             options: Mapping[str, Any] | None = None, model: str, adapter: str | None = None,
             refusal_only: bool = False, include_trace: bool = False, seed: int = 0) -> MetricResult:
    """Fill the judge fields of ``result``'s plain-key rates and its ``judge_fit_overlap`` (in place)."""
    from thinksafe.judges.agreement import labels_changed, lookup, shipped_fit_prompts
    from thinksafe.judges.labelled import OWN_LABELS_MODEL

    measurement, where = lookup(judge, fingerprint, options)
    if measurement is not None and labels_changed(measurement):
        measurement, where = None, ("the default model's labelled responses changed since the judge was measured; "
                                    f"measure it again with `thinksafe judge agreement --judge {judge}`")
    who = {"name": judge, "fingerprint": fingerprint, "options": dict(options or {})}
    for key, m in result.measures.items():
        m["judge"] = who
        if measurement is None:
            m.update(judge_agreement=None, corrected=None, reason=where)
            continue
        agreement, why = agreement_for(measurement, _event(key, m, refusal_only), own_model=model == OWN_LABELS_MODEL,
                                       split_type=SPLIT_OF.get(result.metric),
                                       side="adapter" if adapter is not None else "base")
        if agreement is None:
            m.update(judge_agreement=None, corrected=None, reason=why)
            continue
        agreement["measured"] = where
        notes = []
        if adapter is not None and agreement["set"] == "qwen05" and not str(agreement["subset"]).startswith("adapter"):
            notes.append("measured on labelled answers of the model with and without adapters; too few adapter "
                         "answers of each class for their own figure")
        if include_trace:
            notes.append("measured on answers alone; this run's judge also read the traces")
        if notes:
            agreement["note"] = "; ".join(notes)
        m.update(judge_agreement=agreement, corrected=corrected(m, agreement, seed=seed))
    result.judge_fit_overlap = fit_overlap(records, shipped_fit_prompts(judge, fingerprint), judge)
    return result


def annotate_checker(result: MetricResult) -> MetricResult:
    """A reasoning set's rate is scored by the benchmark's answer checker, not a judge: say so."""
    for m in result.measures.values():
        m.update(judge=None, judge_agreement=None, corrected=None,
                 reason="scored by the benchmark's answer checker, not a judge")
    return result
