"""A judge's measured agreement with people, per kind of answer, and the prompts it was fitted on.

A rate of an evaluation counts one *event* per response: ``helped`` (ASR, the help rate),
``refused`` (ORR, the refusal rate), ``no_answer`` (the no-answer share) or ``not_refused``
(``non_refusal_rate``, a refusal-only judge's count of answers that are not refusals). The judge's
error on that event is its sensitivity (real events it finds) and specificity (non-events it
clears) on human labels; :func:`thinksafe.stats.rogan_gladen` corrects a rate with them.

:func:`measure` judges the **held-out** rows of the labelled sets (``thinksafe.judges.labelled``;
never the fit rows) and counts, per set and event, ``true_pos`` of ``n_pos`` and ``true_neg`` of
``n_neg``. Which set's gold answers which event:

==========  =================================  ============================  ==========================
set         helped                             refused                       no_answer / not_refused
==========  =================================  ============================  ==========================
``qwen05``  label ``complied``                 label ``refused``             ``non_answer`` / not ``refused``
``pyrit``   ``achieved``                       --                            --
``xstest``  --                                 full or partial refusal       -- / full compliance
==========  =================================  ============================  ==========================

The counts of the shipped judges (``objective``, ``embedding``, ``keyword``, default options) are
measured once and shipped in ``weights/agreement.json`` (``thinksafe judge agreement --ship``), with
the prompts each was fitted on (:func:`fit_prompts`, by id and by a hash of the normalised text). Any
other judge or option set is measured by ``thinksafe judge agreement --judge NAME`` into the cache
(``$THINKSAFE_CACHE/judge_agreement/``), keyed by the judge's name, weights fingerprint and options;
:func:`lookup` finds either, or says why there is nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thinksafe.errors import ConfigError
from thinksafe.judges.base import PRECHECK_RULES, Judge, JudgeInput, make_judge, verdict_kind
from thinksafe.judges.data import prompt_key, record_sha256, sha256_file  # noqa: F401  (prompt_key: re-exported)
from thinksafe.jsonl import write_json_atomic
from thinksafe.paths import cache_dir

log = logging.getLogger(__name__)

FORMAT = "thinksafe-judge-agreement/1"
SHIPPED_JUDGES: tuple[str, ...] = ("qwen-cls", "objective", "embedding", "keyword")
"""The judges whose agreement is measured once and shipped (default options)."""
AGREEMENT_SETS: tuple[str, ...] = ("qwen05", "pyrit", "xstest")
EVENTS: tuple[str, ...] = ("helped", "refused", "no_answer", "not_refused")
NEUTRAL_OPTIONS: frozenset[str] = frozenset({"batch_size", "device", "cache_features"})
"""Judge options that never change a verdict, left out of the key of a measurement."""
FIT_SETS: dict[str, tuple[str, ...]] = {
    "qwen-cls": ("qwen05", "pyrit", "xstest", "pyrit-harm"),  # less every prompt a preset evaluates (head meta)
    "objective": ("pyrit", "xstest-achieved", "qwen05"),  # = objective.FIT_SETS; its refusal logit: xstest fit
    "embedding": ("xstest",),
    "keyword": (),  # rules written by hand, nothing fitted
}
"""The labelled sets whose ``fit`` rows each shipped judge was fitted on (``docs/judges.md``)."""


def shipped_path() -> Path:
    """The shipped measurements: ``thinksafe/judges/weights/agreement.json``."""
    return Path(__file__).parent / "weights" / "agreement.json"


# ------------------------------------------------------------------------------------- events


def predicted(kind: str, event: str) -> bool:
    """Whether a response of ``kind`` counts for ``event`` (``not_refused`` counts what
    ``non_refusal_rate`` counts: an answer that is neither a refusal nor a non-answer)."""
    return kind == ("helped" if event == "not_refused" else event)


def gold(row: Any, event: str) -> bool | None:
    """The human label of ``row`` for ``event``; None where its set does not answer that question."""
    if row.set == "qwen05":
        return {"helped": row.label == "complied", "refused": row.label == "refused",
                "no_answer": row.label == "non_answer", "not_refused": row.label != "refused"}[event]
    if row.set == "pyrit":
        return bool(row.gold) if event == "helped" else None
    if row.set == "xstest":
        return {"refused": bool(row.gold), "not_refused": not row.gold}.get(event)
    return None


def counts(rows: Sequence[Any], kinds: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per event the set answers: ``{true_pos, n_pos, true_neg, n_neg}``."""
    out: dict[str, dict[str, int]] = {}
    for event in EVENTS:
        pairs = [(g, predicted(k, event)) for r, k in zip(rows, kinds) if (g := gold(r, event)) is not None]
        if not pairs:
            continue
        out[event] = {"true_pos": sum(g and p for g, p in pairs), "n_pos": sum(g for g, _ in pairs),
                      "true_neg": sum(not g and not p for g, p in pairs), "n_neg": sum(not g for g, _ in pairs)}
    return out


def _by_split_type(rows: Sequence[Any], kinds: Sequence[str]) -> dict[str, Any]:
    return {st: counts([r for r in rows if r.split_type == st], [k for r, k in zip(rows, kinds) if r.split_type == st])
            for st in ("asr", "orr")}


# ----------------------------------------------------------------------------------- measuring


def judge_key(name: str, fingerprint: str | None, options: Mapping[str, Any]) -> str:
    """What identifies a measurement: the judge's name, weights, verdict-changing options and the
    rules every judge applies first (:data:`thinksafe.judges.base.PRECHECK_RULES`)."""
    kept = {k: repr(v) if not isinstance(v, (str, int, float, bool, type(None))) else v
            for k, v in sorted(options.items()) if k not in NEUTRAL_OPTIONS}
    blob = json.dumps({"judge": name, "fingerprint": fingerprint, "options": kept, "rules": PRECHECK_RULES},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def measure(judge: Judge | str, *, sets: Sequence[str] = AGREEMENT_SETS, data_dir: str | Path | None = None,
            options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Judge the held-out rows of ``sets`` and count the judge's agreement per set and event; the
    ``qwen05`` counts also per prompt kind (``by_split_type``: ``asr`` harmful, ``orr`` benign) and per
    model side (``by_side``: ``base``, and ``adapter`` for the answers of aligned models, each with its
    own ``by_split_type``)."""
    from thinksafe.judges.labelled import LABELLED_SETS

    options = dict(options or {})
    if isinstance(judge, str):
        judge = make_judge(judge, **options)
    judge.warmup()
    out: dict[str, Any] = {"judge": judge.name, "fingerprint": judge.fingerprint, "options": options,
                           "key": judge_key(judge.name, judge.fingerprint, options), "split": "heldout",
                           "include_trace": False, "sets": {}}
    for name in sets:
        rows, files = LABELLED_SETS.get(name).load("heldout", data_dir)
        verdicts = judge.judge_batch([JudgeInput(r.prompt, r.response, trace=r.trace, trace_closed=r.trace_closed)
                                      for r in rows])
        kinds = [verdict_kind(v.to_dict()) for v in verdicts]
        entry: dict[str, Any] = {"files": files, "rows": len(rows), "events": counts(rows, kinds)}
        if name == "qwen05":
            entry["by_split_type"] = _by_split_type(rows, kinds)
            entry["by_side"] = {}  # base answers, and answers of the model with an alignment adapter
            for side in ("base", "adapter"):
                pick = [i for i, r in enumerate(rows) if ((r.side or "base") == "base") == (side == "base")]
                if pick:
                    sub_rows, sub_kinds = [rows[i] for i in pick], [kinds[i] for i in pick]
                    entry["by_side"][side] = {"rows": len(pick), "events": counts(sub_rows, sub_kinds),
                                              "by_split_type": _by_split_type(sub_rows, sub_kinds)}
        out["sets"][name] = entry
        log.info("judge %s on %s held out (%d rows): %s", judge.name, name, len(rows), entry["events"])
    return out


def fit_prompts(name: str, *, data_dir: str | Path | None = None) -> dict[str, Any]:
    """The prompts a shipped judge was fitted on: ``{sets: {set: rows}, ids: {set: [id, ...]}, prompt_keys}``.
    An id is a qwen05 row's ``benchmark/prompt id``, an XSTest or PyRIT row's own id."""
    from thinksafe.judges.labelled import LABELLED_SETS

    if name not in FIT_SETS:
        raise ConfigError(f"no fit record for judge {name!r}; known: {', '.join(FIT_SETS)}")
    if name == "qwen-cls":  # fitted on a subset of the fit rows (no preset's prompts): the head says which
        from thinksafe.judges.qwen_cls import load_head

        meta = load_head()[1]
        return {"sets": meta["rows"], "ids": meta["fit_prompts"]["ids"],
                "prompt_keys": meta["fit_prompts"]["prompt_keys"]}
    sets, ids, keys = {}, {}, set()
    for s in FIT_SETS[name]:
        rows = LABELLED_SETS.get(s).rows("fit", data_dir)
        sets[s] = len(rows)
        ids[s] = sorted({r.group if s == "qwen05" else r.id for r in rows})
        keys |= {prompt_key(r.prompt) for r in rows}
    return {"sets": sets, "ids": ids, "prompt_keys": sorted(keys)}


def ship(judges: Sequence[str] = SHIPPED_JUDGES, *, out: str | Path | None = None,
         data_dir: str | Path | None = None) -> dict[str, Any]:
    """Measure the shipped judges (default options) and write ``weights/agreement.json`` (or ``out``)."""
    import thinksafe

    payload: dict[str, Any] = {"format": FORMAT, "thinksafe": thinksafe.__version__,
                               "command": "thinksafe judge agreement --ship", "judges": {}}
    for name in judges:
        entry = measure(name, data_dir=data_dir)
        entry["fit_prompts"] = fit_prompts(name, data_dir=data_dir)
        payload["judges"][name] = entry
    path = Path(out) if out is not None else shipped_path()
    write_json_atomic(path, payload)
    record_sha256(path)
    return payload | {"path": str(path)}


def cache_path(key: str) -> Path:
    return cache_dir() / "judge_agreement" / f"{key}.json"


def measure_into_cache(judge: str, *, data_dir: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Measure a judge (any options) and cache the counts where :func:`lookup` finds them."""
    entry = measure(judge, data_dir=data_dir, options=options)
    path = cache_path(entry["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, entry)
    return entry | {"path": str(path)}


# ------------------------------------------------------------------------------------- lookup


def _shipped() -> dict[str, Any]:
    path = shipped_path()
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"judges": {}}


def lookup(name: str, fingerprint: str | None, options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any] | None, str]:
    """``(measurement, where)`` of a judge: the shipped one when name, weights and options match, else a
    cached one; ``(None, reason)`` when neither exists (the reason names the command that measures it)."""
    key = judge_key(name, fingerprint, options or {})
    shipped = _shipped()["judges"].get(name)
    if shipped is not None and shipped.get("key") == key:
        return shipped, "shipped"
    cached = cache_path(key)
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8")), str(cached)
    why = ("its weights or options differ from the measured ones" if shipped is not None
           else "it has not been measured")
    return None, (f"no measured agreement with human labels for judge {name!r} ({why}); "
                  f"measure it with `thinksafe judge agreement --judge {name}` (with the same --judge-option)")


def shipped_fit_prompts(name: str, fingerprint: str | None) -> dict[str, Any] | None:
    """The fit prompts recorded for a shipped judge with these weights; None for any other judge."""
    entry = _shipped()["judges"].get(name)
    if entry is None or entry.get("fingerprint") != fingerprint:
        return None
    return entry.get("fit_prompts")


def labels_changed(entry: Mapping[str, Any]) -> list[str]:
    """The shipped labelled files (``qwen05``) whose content differs from the one measured."""
    from thinksafe.judges.labelled import own_labels_path

    path = own_labels_path()
    recorded = {f["name"]: f["sha256"] for f in entry.get("sets", {}).get("qwen05", {}).get("files", [])}
    if path.name in recorded and recorded[path.name] != sha256_file(path):
        return [path.name]
    return []
