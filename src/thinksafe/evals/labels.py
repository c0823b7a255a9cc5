"""People's labels of a run's answers: which answers to label (a seeded random draw, saved), the labels
files, and agreement between annotators.

A *labellable folder* is an ``eval`` folder (``SET/judged.jsonl``), a ``deliberation`` folder
(``generate/SET.jsonl`` with the verdicts in ``generate/labels.jsonl``) or a main-job folder, whose
*sides* are ``before`` and ``after/RECIPE`` (their ``eval`` folders). Only judged sets are labelled
(harmful and benign prompts); a reasoning set is scored by its answer checker.

Everything lives in the folder's ``labels/``:

``draw.json``
    The seeded permutation of each set's prompt ids (those every side has) and how many of them are
    drawn (``n``, the first ``n`` of the permutation). The same ids are drawn on every side, so a
    before/after difference stays paired; a larger ``--n`` later extends the same permutation, so the
    labels stay a uniform random sample.
``ANNOTATOR.jsonl``
    One line per labelled answer: ``{key, label, note, time}``; ``label`` is one of :data:`LABELS` or
    ``skip``. A label is appended and flushed to disk when it is given; changing one rewrites the file
    through a temporary file and a rename. A torn last line (a kill mid-write) is cut with a warning.

A record key is ``SIDE:SET/ID#SAMPLE`` (``SIDE`` is ``.`` for an eval or deliberation folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thinksafe.errors import ConfigError, DataError
from thinksafe.jsonl import read_jsonl, repair_torn_tail, write_json_atomic

log = logging.getLogger(__name__)

LABELS: dict[str, str] = {"refusal": "refused", "carried_out": "helped", "neither": "no_answer"}
"""A person's label -> the response kind it means (:func:`thinksafe.judges.base.verdict_kind`'s words)."""
SKIP = "skip"
LABEL_DIR = "labels"
DRAW_FILE = "draw.json"
DEFAULT_N = 60
_ANNOTATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED = {"draw", "rates", "export"}


@dataclass(frozen=True)
class Item:
    """One answer to label: where it is, what was asked, what came back, and what the judge said."""

    key: str
    side: str
    benchmark: str
    id: str
    sample_index: int
    split_type: str
    prompt: str
    trace: str
    answer: str
    judge_kind: str  # helped | refused | no_answer

    @property
    def identity(self) -> str:
        """The answer's identity across runs: a hash of the prompt and the answer (what a judge fitted on it saw)."""
        return answer_identity(self.prompt, self.answer)


def answer_identity(prompt: str, answer: str) -> str:
    return hashlib.sha256(f"{prompt}\x00{answer}".encode()).hexdigest()[:20]


def record_key(side: str, benchmark: str, pid: str, sample_index: int) -> str:
    return f"{side}:{benchmark}/{pid}#{sample_index}"


# --------------------------------------------------------------------------------------- the folder


def main_job_config(run_dir: Path) -> dict[str, Any] | None:
    """The ``config.json`` of a main-job folder (it names its recipes); None for any other folder."""
    path = Path(run_dir) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return config if isinstance(config, dict) and "recipes" in config else None


def sides(run_dir: Path) -> dict[str, tuple[str, Path]]:
    """``{side: (kind, folder)}`` of a labellable folder; kind is ``eval`` or ``deliberation``."""
    run_dir = Path(run_dir)
    config = main_job_config(run_dir)
    if config is not None:
        found = {"before": ("eval", run_dir / "before" / "eval")}
        from thinksafe.manifest import run_arms

        arms = run_arms(list(config.get("recipes") or []), config.get("seeds"))  # a seeded run: one model a seed
        found |= {f"after/{label}": ("eval", run_dir / "after" / label / "eval") for label, _, _ in arms}
        found = {s: v for s, v in found.items() if (v[1] / "metrics.json").exists()}
        if not found:
            raise DataError(f"{run_dir}: no side of this main job has finished its evaluation yet; label it once one has.")
        return found
    if (run_dir / "generate" / "labels.jsonl").exists():
        return {".": ("deliberation", run_dir)}
    if any(run_dir.glob("*/judged.jsonl")):
        return {".": ("eval", run_dir)}
    if not run_dir.is_dir():
        raise DataError(f"{run_dir} is not a folder: give an eval folder, a deliberation folder or a main-job folder.")
    raise DataError(f"{run_dir} holds no judged answers: give an eval folder, a deliberation folder or a main-job "
                    "folder (thinksafe run --out DIR).")


def _verdict_kind(verdict: Mapping[str, Any] | None) -> str:
    from thinksafe.judges.base import verdict_kind

    return verdict_kind(verdict or {})


def side_items(side: str, kind: str, folder: Path) -> dict[str, list[Item]]:
    """``{set: [Item]}`` of one side's judged answers, in file order."""
    out: dict[str, list[Item]] = {}
    if kind == "eval":
        files = sorted(folder.glob("*/judged.jsonl"))
        verdicts: dict[str, Any] = {}
    else:
        files = sorted(p for p in (folder / "generate").glob("*.jsonl") if p.name != "labels.jsonl")
        verdicts = {r["key"]: r.get("asr_verdict") or r.get("verdict") for r in read_jsonl(folder / "generate" / "labels.jsonl")}
    for path in files:
        for rec in read_jsonl(path):
            if rec.get("split_type") not in ("asr", "orr"):
                continue
            k = int(rec.get("sample_index") or 0)
            bench, pid = str(rec["benchmark"]), str(rec["id"])
            verdict = rec.get("verdict") if kind == "eval" else verdicts.get(f"{bench}/{pid}#{k}")
            if verdict is None:
                continue
            out.setdefault(bench, []).append(Item(
                key=record_key(side, bench, pid, k), side=side, benchmark=bench, id=pid, sample_index=k,
                split_type=str(rec["split_type"]), prompt=str(rec.get("source_prompt") or rec.get("prompt") or ""),
                trace=str(rec.get("trace") or ""), answer=str(rec.get("answer") or ""), judge_kind=_verdict_kind(verdict)))
    return out


def all_items(run_dir: Path) -> dict[str, dict[str, list[Item]]]:
    """``{side: {set: [Item]}}`` of a labellable folder."""
    return {side: side_items(side, kind, folder) for side, (kind, folder) in sides(run_dir).items()}


# ----------------------------------------------------------------------------------------- the draw


def draw(run_dir: Path, items: Mapping[str, Mapping[str, list[Item]]], *, n: int = DEFAULT_N, seed: int = 0,
         sets: Sequence[str] | None = None, save: bool = True) -> dict[str, Any]:
    """The saved draw of ``run_dir`` (made, or grown to ``n``, when asked): ``{seed, n, order: {set: [ids]}}``.
    A set's order is a seeded permutation of the prompt ids every side has; the drawn ids are its first ``n``.
    ``sets`` limits a new draw to some sets (default: every judged set); a later call may add others."""
    if not (isinstance(n, int) and n >= 1):
        raise ConfigError(f"--n must be a positive whole number of prompts a set, got {n!r}")
    have = sorted({s for by_set in items.values() for s in by_set})
    unknown = sorted(set(sets or ()) - set(have))
    if unknown:
        raise ConfigError(f"--set {', '.join(unknown)}: not a judged set of this folder (it has {', '.join(have)})")
    path = Path(run_dir) / LABEL_DIR / DRAW_FILE
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    if saved is not None and saved.get("seed") != seed:
        raise ConfigError(f"{path} was drawn with seed {saved.get('seed')}; labels must stay one random sample, so "
                          f"use --seed {saved.get('seed')} (or label into a copy of the folder).")
    order: dict[str, list[str]] = dict((saved or {}).get("order") or {})
    for name in sorted(sets) if sets else have:
        if name in order:
            continue
        ids = sorted(set.intersection(*({i.id for i in by_set.get(name, [])} for by_set in items.values())))
        rng = np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])
        order[name] = [ids[j] for j in rng.permutation(len(ids))]
    out = {"seed": seed, "n": max(n, int((saved or {}).get("n") or 0)), "order": order,
           "sides": sorted(items), "note": "the drawn ids of a set are the first n of its order"}
    if save and out != saved:
        write_json_atomic(path, out)
    return out


def drawn(d: Mapping[str, Any], benchmark: str) -> list[str]:
    return list((d.get("order") or {}).get(benchmark, []))[: int(d["n"])]


def queue(items: Mapping[str, Mapping[str, list[Item]]], d: Mapping[str, Any]) -> list[Item]:
    """The drawn items in labelling order: rank by rank of the draw (every set and side of the first drawn
    prompt, then the second, ...), shuffled within a rank with the draw's seed so that a side is never
    recognisable by its place. A session stopped early has labelled a random sample of every set and side."""
    rng = np.random.default_rng(int(d["seed"]) + 1)
    sets = sorted(d.get("order") or {})
    out: list[Item] = []
    for rank in range(int(d["n"])):
        block = []
        for name in sets:
            ids = drawn(d, name)
            if rank >= len(ids):
                continue
            for side in sorted(items):
                block += [i for i in items[side].get(name, []) if i.id == ids[rank]]
        out += [block[j] for j in rng.permutation(len(block))]
    return out


# --------------------------------------------------------------------------------------- the labels


def labels_dir(run_dir: Path) -> Path:
    return Path(run_dir) / LABEL_DIR


def check_annotator(name: str) -> str:
    if not _ANNOTATOR.match(name or "") or name in RESERVED:
        raise ConfigError(f"--annotator {name!r}: use letters, digits, '.', '_' or '-' (up to 64), not "
                          f"{', '.join(sorted(RESERVED))}; it names the labels file labels/NAME.jsonl.")
    return name


def read_labels(path: Path, known: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{key: row}`` of one annotator's file. A torn last line is cut (with a warning); anything else that
    is wrong (bad JSON in the middle, an unknown key, a key labelled twice, an unknown label) raises
    :class:`DataError` naming the file and line, and the file is left as it is."""
    path = Path(path)
    if not path.exists():
        return {}
    cut = repair_torn_tail(path)
    if cut:
        log.warning("%s: cut a torn last line (%d bytes) left by a killed labelling session; the labels before it are kept",
                    path, cut)
    out: dict[str, dict[str, Any]] = {}
    first: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {lineno}: malformed JSON ({exc.msg}); fix or delete that line, the others "
                            "are kept.") from exc
        key = row.get("key") if isinstance(row, dict) else None
        if not isinstance(key, str):
            raise DataError(f"{path}, line {lineno}: expected an object with a 'key'.")
        if known is not None and key not in known:
            raise DataError(f"{path}, line {lineno}: unknown record key {key!r}: no answer of this folder has it "
                            "(a labels file of another run?).")
        if key in first:
            raise DataError(f"{path}, line {lineno}: {key!r} is labelled twice (first on line {first[key]}); keep one.")
        if row.get("label") not in (*LABELS, SKIP):
            raise DataError(f"{path}, line {lineno}: label {row.get('label')!r} is not one of "
                            f"{', '.join((*LABELS, SKIP))}.")
        first[key] = lineno
        out[key] = row
    return out


def read_all_labels(run_dir: Path, known: set[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{annotator: {key: row}}`` of every labels file of the folder."""
    folder = labels_dir(run_dir)
    return {p.stem: read_labels(p, known) for p in sorted(folder.glob("*.jsonl")) if p.stem not in RESERVED}


def _fsync_append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def put_label(path: Path, labels: dict[str, dict[str, Any]], key: str, label: str, note: str = "") -> dict[str, Any]:
    """Give ``key`` a label (in ``labels``, the file's rows, and on disk): a new key is appended and synced; a
    changed one rewrites the file whole through a temporary file and a rename, so a kill loses nothing."""
    if label not in (*LABELS, SKIP):
        raise ConfigError(f"label {label!r} is not one of {', '.join((*LABELS, SKIP))}")
    row = {"key": key, "label": label, "note": str(note or "")[:500], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.parent.mkdir(parents=True, exist_ok=True)
    if key not in labels:
        _fsync_append(path, json.dumps(row, ensure_ascii=False) + "\n")
    else:
        labels[key] = row
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in labels.values())
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    labels[key] = row
    return row


def consensus(all_labels: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float]]:
    """``{key: {kind: share}}``: for each labelled answer, the share of its annotators (skips left out) who
    gave each response kind. With one annotator the shares are 0 or 1."""
    votes: dict[str, list[str]] = {}
    for rows in all_labels.values():
        for key, row in rows.items():
            if row["label"] in LABELS:
                votes.setdefault(key, []).append(LABELS[row["label"]])
    return {k: {kind: v.count(kind) / len(v) for kind in LABELS.values()} for k, v in votes.items()}


def annotator_agreement(all_labels: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Agreement and Cohen's kappa (three labels) of every pair of annotators who labelled some of the same
    answers (skips left out); kappa is None where the shared answers hold one label only."""
    from sklearn.metrics import cohen_kappa_score

    names, out = sorted(all_labels), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(k for k, r in all_labels[a].items()
                            if r["label"] in LABELS and all_labels[b].get(k, {}).get("label") in LABELS)
            if not shared:
                continue
            la = [all_labels[a][k]["label"] for k in shared]
            lb = [all_labels[b][k]["label"] for k in shared]
            agree = sum(x == y for x, y in zip(la, lb))
            kappa = float(cohen_kappa_score(la, lb, labels=list(LABELS))) if len(set(la + lb)) > 1 else None
            out.append({"annotators": [a, b], "n": len(shared), "agreement": agree / len(shared),
                        "cohen_kappa": kappa})
    return out


def export_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The folder's labelled answers as rows a judge can be fitted on (``thinksafe judge fit --labels``): the
    prompt, the answer, the label where the annotators' majority is clear, and the answer's identity."""
    items = {i.key: i for by_set in all_items(run_dir).values() for its in by_set.values() for i in its}
    labels = read_all_labels(run_dir, set(items))
    out = []
    for key, shares in sorted(consensus(labels).items()):
        best = max(shares.values())
        winners = [k for k, v in shares.items() if v == best]
        if len(winners) > 1:
            continue  # annotators split evenly: no label to fit on
        item = items[key]
        out.append({"identity": item.identity, "key": key, "run": str(Path(run_dir).resolve()), "benchmark": item.benchmark,
                    "id": item.id, "split_type": item.split_type, "prompt": item.prompt, "answer": item.answer,
                    "label": {"helped": "complied", "refused": "refused", "no_answer": "non_answer"}[winners[0]],
                    "annotators": sorted(a for a, rows in labels.items() if key in rows)})
    return out
