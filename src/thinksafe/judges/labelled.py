"""Human-labelled sets that judges are fitted on and measured against, each with a fixed fit/held-out split.

Every set yields :class:`LabelledRow` objects for one of two questions (``task``):

``refusal``
    Did the response refuse? Gold 1 = refusal (XSTest full *or* partial refusal).
``achieved``
    Did the response actually carry out the request? Gold 1 = achieved (PyRIT's ``achieved``;
    our own labels' ``complied``).

Sets (see ``docs/judges.md``):

``xstest``
    XSTest v2 completions of five models; split by the model that wrote them (fit: gpt4,
    llama2new, mistralguard; held out: llama2orig, mistralinstruct). Task ``refusal``.
``xstest-achieved``
    The same files as an ``achieved`` set: a full compliance achieved the request, a full
    refusal did not; partial refusals are left out (neither side of the question). Same split.
``pyrit``
    ``pyrit_objective_dev.jsonl`` (240 rows, a person's verdict ``achieved``); split by harm
    category (fit: bias, hate_speech, info_integrity; held out: exploits, privacy), fixed before
    any judge was fitted. Task ``achieved``.
``qwen05``
    The default model's own responses to harmful and benign prompts, with and without an alignment
    adapter (``side``: ``base`` or the adapter's recipe), labelled by reading each against the rubric
    in ``docs/judges.md`` (shipped in ``thinksafe/judges/labels/``; the prompts are looked up in the
    benchmark data by id, never stored here). Split by a hash of the prompt id, so every response to
    one prompt (steered, unsteered, every model side) falls on the same side. Task ``achieved``; the
    three-way label (``complied`` / ``refused`` / ``non_answer``) is in ``LabelledRow.label``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from thinksafe.errors import ConfigError, DataError
from thinksafe.judges.data import (
    FIT_MODELS,
    HELDOUT_MODELS,
    LABEL_MAP,
    FILE_TEMPLATE,
    calibration_dir,
    load_calibration,
    sha256_file,
)
from thinksafe.registry import Registry

SPLITS = ("fit", "heldout", "all")


@dataclass(frozen=True)
class LabelledRow:
    """One labelled (prompt, response); ``gold`` is 1 for the task's positive class."""

    set: str
    group: str  # the unit of the split: source model, harm category, or prompt id
    id: str
    prompt: str
    response: str
    gold: int
    task: str
    trace: str | None = None
    trace_closed: bool | None = None
    label: str | None = None  # the set's own label where it has more than two (qwen05: complied, refused, non_answer)
    split_type: str | None = None  # asr (harmful prompt) or orr (benign), where the set says
    side: str | None = None  # qwen05: "base", or the recipe of the adapter that wrote the response


@dataclass(frozen=True)
class LabelledSet:
    """A named labelled set: how to read its rows and how it is split."""

    name: str
    task: str
    description: str
    split_scheme: str
    read: Callable[[str, str | Path | None], tuple[list[LabelledRow], list[dict[str, object]]]]

    def rows(self, split: str = "heldout", data_dir: str | Path | None = None) -> list[LabelledRow]:
        return self.load(split, data_dir)[0]

    def load(self, split: str = "heldout",
             data_dir: str | Path | None = None) -> tuple[list[LabelledRow], list[dict[str, object]]]:
        """Rows of ``split`` and the files they came from (name, sha256)."""
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
        rows, files = self.read(split, data_dir)
        if not rows:
            raise DataError(f"Labelled set {self.name!r} has no rows in split {split!r}.")
        return rows, files


LABELLED_SETS: Registry[LabelledSet] = Registry("labelled set")


def _xstest_models(split: str) -> tuple[str, ...]:
    return {"fit": FIT_MODELS, "heldout": HELDOUT_MODELS, "all": FIT_MODELS + HELDOUT_MODELS}[split]


def _describe(paths: Sequence[Path]) -> list[dict[str, object]]:
    return [{"name": p.name, "sha256": sha256_file(p)} for p in paths]


def _xstest_rows(split: str, data_dir: str | Path | None) -> tuple[list[Any], list[dict[str, object]]]:
    folder = calibration_dir(data_dir)
    paths = [folder / FILE_TEMPLATE.format(m) for m in _xstest_models(split)]
    return load_calibration(paths), _describe(paths)


def _read_xstest(split: str, data_dir: str | Path | None) -> tuple[list[LabelledRow], list[dict[str, object]]]:
    raw, files = _xstest_rows(split, data_dir)
    return [LabelledRow("xstest", r.file, r.id, r.prompt, r.completion, r.refusal, "refusal") for r in raw], files


def _read_xstest_achieved(split: str,
                          data_dir: str | Path | None) -> tuple[list[LabelledRow], list[dict[str, object]]]:
    raw, files = _xstest_rows(split, data_dir)
    rows = [LabelledRow("xstest-achieved", r.file, r.id, r.prompt, r.completion, 1 - LABEL_MAP[r.final_label],
                        "achieved")
            for r in raw if r.final_label != "3_partial_refusal"]
    return rows, files


PYRIT_FILE = "pyrit_objective_dev.jsonl"
PYRIT_FIT_CATEGORIES = ("bias", "hate_speech", "info_integrity")
PYRIT_HELDOUT_CATEGORIES = ("exploits", "privacy")


def _read_jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read labelled file {path}: {exc}") from exc
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {i}: not JSON ({exc.msg}).") from exc
    return out


def _read_pyrit(split: str, data_dir: str | Path | None) -> tuple[list[LabelledRow], list[dict[str, object]]]:
    path = calibration_dir(data_dir) / PYRIT_FILE
    if not path.is_file():
        raise DataError(f"PyRIT labels not found: {path}")
    keep = {"fit": PYRIT_FIT_CATEGORIES, "heldout": PYRIT_HELDOUT_CATEGORIES,
            "all": PYRIT_FIT_CATEGORIES + PYRIT_HELDOUT_CATEGORIES}[split]
    rows = []
    for i, r in enumerate(_read_jsonl(path), start=1):
        missing = [k for k in ("id", "category", "prompt", "response", "achieved") if k not in r]
        if missing:
            raise DataError(f"{path}, line {i}: missing field(s) {missing}.")
        if r["category"] in keep:
            rows.append(LabelledRow("pyrit", str(r["category"]), str(r["id"]), str(r["prompt"]),
                                    str(r["response"] or ""), int(bool(r["achieved"])), "achieved"))
    return rows, _describe([path])


OWN_LABELS_MODEL = "qwen2.5-coder-0.5b-instruct"
"""The model whose responses ``qwen05`` labels (the default model)."""
QWEN05_FILE = f"{OWN_LABELS_MODEL}.jsonl"
QWEN_LABELS = {"complied": 1, "refused": 0, "non_answer": 0}


def own_labels_path() -> Path:
    """The default model's labelled responses shipped with the package."""
    return Path(str(resources.files("thinksafe.judges") / "labels" / QWEN05_FILE))


def heldout_by_id(key: str) -> bool:
    """A fixed half of prompt ids is held out (sha256 of the id, even first byte)."""
    return hashlib.sha256(key.encode()).digest()[0] % 2 == 0


def _read_qwen05(split: str, data_dir: str | Path | None) -> tuple[list[LabelledRow], list[dict[str, object]]]:
    from thinksafe.data import load_benchmark

    path = own_labels_path()
    records = _read_jsonl(path)
    prompts: dict[str, dict[str, str]] = {}
    rows = []
    for i, r in enumerate(records, start=1):
        missing = [k for k in ("uid", "benchmark", "id", "answer", "label") if k not in r]
        if missing:
            raise DataError(f"{path}, line {i}: missing field(s) {missing}.")
        bench, pid = r["benchmark"], str(r["id"])
        held = heldout_by_id(f"{bench}/{pid}")
        if (split == "fit" and held) or (split == "heldout" and not held):
            continue
        if bench not in prompts:
            prompts[bench] = {ex.id: ex.prompt for ex in load_benchmark(bench, path=data_dir)}
        if pid not in prompts[bench]:
            raise DataError(f"{path}: prompt {bench}/{pid} is not in the benchmark data; is THINKSAFE_DATA_DIR "
                            "the shared data folder?")
        if r["label"] not in QWEN_LABELS:
            raise DataError(f"{path}: label {r['label']!r} of {r['uid']} is not one of {sorted(QWEN_LABELS)}.")
        rows.append(LabelledRow("qwen05", f"{bench}/{pid}", r["uid"], prompts[bench][pid], r["answer"],
                                QWEN_LABELS[r["label"]], "achieved", trace=r.get("trace"),
                                trace_closed=r.get("trace_closed"), label=r["label"], split_type=r.get("split_type"),
                                side=r.get("side") or "base"))
    return rows, _describe([path])


LABELLED_SETS.register("xstest", LabelledSet(
    "xstest", "refusal", "XSTest v2 completions, human refusal labels (5 models x 450)",
    "by completion model: fit gpt4, llama2new, mistralguard; held out llama2orig, mistralinstruct", _read_xstest))
LABELLED_SETS.register("xstest-achieved", LabelledSet(
    "xstest-achieved", "achieved", "XSTest v2 completions as achieved / not (partial refusals left out)",
    "by completion model, as xstest", _read_xstest_achieved))
LABELLED_SETS.register("pyrit", LabelledSet(
    "pyrit", "achieved", "PyRIT objective-scorer dev set: did the response achieve the objective (240 rows)",
    "by harm category: fit bias, hate_speech, info_integrity; held out exploits, privacy", _read_pyrit))
LABELLED_SETS.register("qwen05", LabelledSet(
    "qwen05", "achieved", "the default model's own responses, labelled against the rubric in docs/judges.md",
    "by a hash of the prompt id (about half held out)", _read_qwen05))

REPORT_SETS: tuple[str, ...] = ("xstest", "pyrit", "qwen05")
"""The sets ``thinksafe judge calibrate`` reports on by default (held-out rows)."""
