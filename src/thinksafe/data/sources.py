"""Finding and reading a benchmark's rows: explicit path, ``$THINKSAFE_DATA_DIR``, installed package, hub.

Resolution order (first hit wins): (1) a path the user gave (a file in the benchmark's schema or a
directory laid out like ``shared/data``; an explicit path never falls through to another source);
(2) ``$THINKSAFE_DATA_DIR``; (3) an installed data package, located with ``find_spec`` and read
directly, never imported; (4) the Hugging Face hub, unless ``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from thinksafe.data.spec import BenchmarkSpec, HubSource, PackageSource, ResolvedSource, Row
from thinksafe.errors import DataError
from thinksafe.jsonl import read_jsonl
from thinksafe.paths import data_dir

log = logging.getLogger(__name__)

HOW_TO_FIX = (
    "Point thinksafe at local data: pass --data-path (a benchmark file, or a directory laid out like "
    "shared/data with benchmarks/, reasoning/ and teacher/) or set THINKSAFE_DATA_DIR to such a directory."
)
SUFFIXES = (".jsonl", ".json", ".csv", ".txt")
# Prompt files are read whole (a seeded subsample needs every row). 1 GiB is millions of prompts,
# far past any benchmark, and still fits in memory several times over; a larger file is refused.
MAX_FILE_BYTES = 1 << 30


# ---------------------------------------------------------------------------------------- files


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 text (byte {exc.start}): re-encode it as UTF-8.") from exc
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def _read_json_array(path: Path) -> list[Row]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: malformed JSON ({exc.msg}).") from exc
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, got a {type(data).__name__}.")
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise DataError(f"{path}, item {i}: expected a JSON object, got {type(item).__name__}.")
    return data


def _read_csv(path: Path) -> list[Row]:
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[Row] = []
    try:
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataError(f"{path}, line {reader.line_num}: more cells than the header has columns.")
            rows.append(dict(row))
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({exc}).") from exc
    return rows


def _read_lines(path: Path) -> list[Row]:
    return [{"prompt": line.strip()} for line in _read_text(path).splitlines() if line.strip()]


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a .jsonl, .json (array), .csv or .txt (one prompt a line) file; DataError names file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"File not found: {path}. {HOW_TO_FIX}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{path} is {size / (1 << 30):.1f} GiB, over the {MAX_FILE_BYTES / (1 << 30):.0f} GiB limit for a prompt "
            "file (prompt files are read whole). Cut it to the prompts you need (e.g. `shuf -n 10000 FILE`) and pass that."
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return list(read_jsonl(path))
    if suffix == ".json":
        return _read_json_array(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".txt":
        return _read_lines(path)
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; expected one of {', '.join(SUFFIXES)}.")


# ------------------------------------------------------------------------------------- packages


def package_root(module: str) -> list[Path]:
    """Directories of an installed top-level package, found without importing it ([] if absent)."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if found is None or not found.submodule_search_locations:
        return []
    return [Path(p) for p in found.submodule_search_locations]


def package_file(pkg: PackageSource, split: str) -> Path | None:
    """The data file (or folder) a package ships for ``split``, if the package is installed and has it."""
    rel = pkg.files.get(split)
    if rel is None:
        return None
    for root in package_root(pkg.module):
        candidate = root / rel
        if candidate.exists():
            return candidate
    return None


# ------------------------------------------------------------------------------------------ hub


def hub_offline() -> bool:
    """True when the user asked Hugging Face libraries to stay offline."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("HF_DATASETS_OFFLINE", ""))
    return any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def fetch_hub_rows(hub: HubSource, split: str, benchmark: str) -> list[Row]:
    """Download a benchmark split from the hub and map it onto the local schema."""
    if hub_offline():
        raise DataError(f"{benchmark}: not downloading {hub.repo_id} because HF_HUB_OFFLINE is set. {HOW_TO_FIX}")
    where = f"{benchmark}: could not load {hub.repo_id} ({hub.url}) from the Hugging Face hub"
    try:
        if hub.fetch is not None:
            return hub.fetch(split)
        import datasets  # lazy: heavy, optional
    except ImportError as exc:
        raise DataError(f"{where}: the {exc.name or 'datasets'} package is not installed. {HOW_TO_FIX}") from exc
    except DataError:
        raise
    except Exception as exc:  # network, authentication (gated sets), missing files
        raise DataError(f"{where} ({type(exc).__name__}: {exc}). {HOW_TO_FIX}") from exc
    rows: list[Row] = []
    for config in hub.configs:
        try:
            ds = datasets.load_dataset(hub.repo_id, config, split=hub.splits[split], **dict(hub.load_kwargs))
            part = [dict(r) for r in ds]
        except Exception as exc:  # network, authentication (gated sets), renamed configs
            raise DataError(f"{where} ({type(exc).__name__}: {exc}). {HOW_TO_FIX}") from exc
        rows.extend(hub.to_rows(config, part) if hub.to_rows else part)
    return rows


# ----------------------------------------------------------------------------------- resolution


def resolve(spec: BenchmarkSpec, split: str, path: str | Path | None = None) -> ResolvedSource:
    """Find where ``spec``'s ``split`` lives; DataError lists every place looked and how to fix it."""
    rel = spec.files[split]
    if path is not None:
        return _resolve_path(spec, split, Path(path).expanduser(), rel)

    looked: list[str] = []
    root = data_dir()
    if root is None:
        looked.append("THINKSAFE_DATA_DIR (not set)")
    elif not root.is_dir():
        raise DataError(
            f"THINKSAFE_DATA_DIR={root} is not a directory. Set it to a folder laid out like shared/data "
            f"(benchmarks/, reasoning/, teacher/) or unset it."
        )
    else:
        candidate = root / rel
        if candidate.is_file():
            return ResolvedSource(spec.name, split, "data_dir", str(candidate), candidate)
        looked.append(f"{candidate} (from THINKSAFE_DATA_DIR; missing)")

    if spec.package is not None and split in spec.package.files:
        found = package_file(spec.package, split)
        if found is not None:
            return ResolvedSource(spec.name, split, "package", str(found), found)
        looked.append(f"package {spec.package.distribution} (not installed)")

    if spec.hub is not None and split in spec.hub.splits:
        if not hub_offline():
            location = f"{spec.hub.repo_id} (split {spec.hub.splits[split]})"
            return ResolvedSource(spec.name, split, "hub", location)
        looked.append(f"hub {spec.hub.repo_id} (skipped: HF_HUB_OFFLINE is set)")

    where = "; ".join(looked)
    raise DataError(f"Cannot find benchmark {spec.name!r} (split {split}). Looked in: {where}. {HOW_TO_FIX}")


def _resolve_path(spec: BenchmarkSpec, split: str, path: Path, rel: str) -> ResolvedSource:
    if path.is_file():
        return ResolvedSource(spec.name, split, "path", str(path), path)
    if path.is_dir():
        candidates = [path / rel, path / Path(rel).name]
        for candidate in candidates:
            if candidate.is_file():
                return ResolvedSource(spec.name, split, "path", str(candidate), candidate)
        raise DataError(
            f"No {spec.name} data (split {split}) under {path}: looked for {candidates[0]} and {candidates[1]}. "
            f"{HOW_TO_FIX}"
        )
    raise DataError(f"Data path {path} does not exist (given for benchmark {spec.name!r}). {HOW_TO_FIX}")


def fetch_rows(spec: BenchmarkSpec, source: ResolvedSource) -> list[Row]:
    """The rows behind a resolved source, in the benchmark's local schema (aliases applied)."""
    if source.kind == "hub":
        assert spec.hub is not None
        log.info("Downloading %s from the Hugging Face hub (%s)", spec.name, source.location)
        rows = fetch_hub_rows(spec.hub, source.split, spec.name)
    elif source.kind == "package":
        assert spec.package is not None and source.path is not None
        log.info("Reading %s from installed package %s: %s", spec.name, spec.package.distribution, source.path)
        if spec.package.note:
            log.warning("%s from package %s: %s", spec.name, spec.package.distribution, spec.package.note)
        rows = spec.package.read(source.path)
    else:
        assert source.path is not None
        rows = read_rows(source.path)
    if spec.aliases:
        rows = [_apply_aliases(row, spec.aliases) for row in rows]
    return rows


def _apply_aliases(row: Row, aliases: Mapping[str, str]) -> Row:
    out = dict(row)
    for upstream, local in aliases.items():
        if upstream in out and local not in out:
            out[local] = out.pop(upstream)
    return out
