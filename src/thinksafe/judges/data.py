"""The human-labelled calibration data (XSTest v2 completions) and where to find it.

Gold label: ``final_label`` ``2_full_refusal`` and ``3_partial_refusal`` are *refusal* (1),
``1_full_compliance`` is *compliance* (0): a partial refusal withholds at least part of what was
asked, so for attack success and over-refusal it is not a successful answer.

Split by the model that wrote the completions: judges are fitted on ``FIT_MODELS`` and reported on
``HELDOUT_MODELS`` only, so the held-out figures measure transfer to unseen response styles.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from thinksafe.errors import DataError, ModelError
from thinksafe.paths import data_dir as _env_data_dir

FIT_MODELS: tuple[str, ...] = ("gpt4", "llama2new", "mistralguard")
HELDOUT_MODELS: tuple[str, ...] = ("llama2orig", "mistralinstruct")
SPLITS: dict[str, tuple[str, ...]] = {
    "fit": FIT_MODELS,
    "heldout": HELDOUT_MODELS,
    "all": FIT_MODELS + HELDOUT_MODELS,
}
FILE_TEMPLATE = "xstest_v2_completions_{}.csv"
LABEL_MAP: dict[str, int] = {"1_full_compliance": 0, "2_full_refusal": 1, "3_partial_refusal": 1}
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "prompt", "completion", "final_label")


@dataclass(frozen=True)
class CalibrationRow:
    """One human-labelled completion; ``refusal`` is the binary gold label (1 = refusal)."""

    file: str
    id: str
    prompt: str
    completion: str
    final_label: str
    refusal: int


def calibration_dir(data_dir: str | Path | None = None) -> Path:
    """``DATA_DIR/judge_calibration`` from the argument or ``$THINKSAFE_DATA_DIR``."""
    root = Path(data_dir).expanduser() if data_dir is not None else _env_data_dir()
    if root is None:
        raise DataError(
            "No data directory: set THINKSAFE_DATA_DIR to the shared data folder (the one holding "
            "judge_calibration/), or pass data_dir / explicit file paths."
        )
    folder = root / "judge_calibration" if (root / "judge_calibration").is_dir() else root
    if not folder.is_dir():
        raise DataError(f"Calibration folder not found: {folder}")
    return folder


def resolve_files(files: str | Path | Sequence[str | Path], data_dir: str | Path | None = None) -> list[Path]:
    """Turn a split name (``fit``/``heldout``/``all``), model names (``gpt4``) or paths into paths."""
    if isinstance(files, (str, Path)):
        files = [files]
    out: list[Path] = []
    for f in files:
        name = str(f)
        if name in SPLITS:
            folder = calibration_dir(data_dir)
            out.extend(folder / FILE_TEMPLATE.format(m) for m in SPLITS[name])
        elif name in SPLITS["all"]:
            out.append(calibration_dir(data_dir) / FILE_TEMPLATE.format(name))
        else:
            out.append(Path(name).expanduser())
    for p in out:
        if not p.is_file():
            raise DataError(
                f"Calibration file not found: {p}. Give a split ({', '.join(SPLITS)}), a model name "
                f"({', '.join(SPLITS['all'])}) or a path to an XSTest-style CSV."
            )
    if not out:
        raise DataError("No calibration files given.")
    return out


def model_name(path: str | Path) -> str:
    """``gpt4`` for ``xstest_v2_completions_gpt4.csv``; else the file stem."""
    stem = Path(path).stem
    prefix = FILE_TEMPLATE.split("{")[0]
    return stem[len(prefix):] if stem.startswith(prefix) else stem


def load_calibration(files: Sequence[str | Path]) -> list[CalibrationRow]:
    """Read XSTest-style CSVs; raise :class:`DataError` naming the file and row on bad input."""
    rows: list[CalibrationRow] = []
    for f in files:
        path = Path(f)
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(f"{path}: missing column(s) {missing}; expected {list(REQUIRED_COLUMNS)}.")
                for i, r in enumerate(reader, start=2):
                    label = (r["final_label"] or "").strip()
                    if label not in LABEL_MAP:
                        raise DataError(f"{path}, row {i}: final_label {label!r} is not one of {sorted(LABEL_MAP)}.")
                    rows.append(CalibrationRow(model_name(path), r["id"], r["prompt"], r["completion"] or "",
                                               label, LABEL_MAP[label]))
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"Cannot read calibration file {path}: {exc}") from exc
    if not rows:
        raise DataError(f"No rows in calibration files {[str(f) for f in files]}.")
    return rows


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


SUMS_FILE = "SHA256SUMS"


def _read_sums(sums: Path) -> dict[str, str]:
    """File name -> sha256 of a ``sha256sum``-style file."""
    entries = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        if name:
            entries[name] = digest
    return entries


def recorded_sha256(path: str | Path) -> str | None:
    """The sha256 recorded for ``path`` in the ``SHA256SUMS`` file beside it (the judges' shipped
    weights carry one), or None where there is no record."""
    path = Path(path)
    sums = path.parent / SUMS_FILE
    return _read_sums(sums).get(path.name) if sums.is_file() else None


def check_recorded_sha256(path: str | Path, what: str) -> str:
    """sha256 of ``path``, checked against its record in ``SHA256SUMS`` where one exists.

    Raises :class:`ModelError` naming both hashes when the file differs from its record (an edited or
    damaged copy of the shipped weights), so a judge never silently scores with other weights.
    """
    actual = sha256_file(path)
    expected = recorded_sha256(path)
    if expected is not None and expected != actual:
        raise ModelError(
            f"{what} {path} do not match their recorded hash (sha256 {actual}, recorded {expected} in "
            f"{Path(path).parent / SUMS_FILE}). The file was changed or damaged: reinstall thinksafe, or refit "
            "them with `thinksafe judge fit`, which records the new hash."
        )
    return actual


def record_sha256(path: str | Path) -> None:
    """Record ``path``'s sha256 in the ``SHA256SUMS`` beside it, where that file already exists (the
    shipped weights' folder); other folders are left as they are."""
    path = Path(path)
    sums = path.parent / SUMS_FILE
    if not sums.is_file():
        return
    entries = _read_sums(sums) | {path.name: sha256_file(path)}
    tmp = sums.with_name(SUMS_FILE + ".tmp")
    tmp.write_text("".join(f"{d}  {n}\n" for n, d in sorted(entries.items())), encoding="utf-8")
    tmp.replace(sums)


def describe_files(files: Sequence[str | Path]) -> list[dict[str, object]]:
    """Name, path and sha256 of each file, for manifests and weight files."""
    return [{"name": Path(f).name, "path": str(Path(f).resolve()), "sha256": sha256_file(f)} for f in files]


def prompt_key(text: str) -> str:
    """A prompt's identity across copies: sha256 of its normalised text (:func:`thinksafe.data.checks.normalize_prompt`), 16 hex."""
    from thinksafe.data.checks import normalize_prompt

    return hashlib.sha256(normalize_prompt(text).encode()).hexdigest()[:16]
