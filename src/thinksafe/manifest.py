"""Run manifests: what ran, with what, on which data, and whether it finished.

Every stage writes ``manifest.json`` in its output folder: the resolved config, package versions,
the git revision of thinksafe, seeds, model and data hashes, and a status. A stage whose manifest
says ``complete`` with the same identity is skipped on re-run; one that says ``running`` resumes.
A folder holding a different run is refused rather than overwritten.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from thinksafe.errors import ConfigError, DataError, ThinksafeError
from thinksafe.jsonl import write_json_atomic

PACKAGES = ("thinksafe", "torch", "transformers", "peft", "trl", "accelerate", "scikit-learn", "sentence-transformers")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """The git commit of the thinksafe source tree, when it is a checkout (``+dirty`` if modified)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hash_examples(examples: Any) -> str:
    """A hash of the exact prompts a stage ran on (ids and text, in order)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(f"{ex.benchmark}\x00{ex.id}\x00{ex.prompt}\x01".encode())
    return h.hexdigest()


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Stage:
    """A stage's output folder and its manifest."""

    out: Path
    name: str
    identity: dict[str, Any]

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.json"

    def existing(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def check_compatible(self) -> dict[str, Any] | None:
        """Return the existing manifest if it is this run; refuse a folder that holds another run."""
        old = self.existing()
        if old is None:
            return None
        if old.get("stage") != self.name or old.get("identity_hash") != identity_hash(self.identity):
            diffs = _diff(old.get("identity", {}), self.identity)
            raise ThinksafeError(
                f"{self.out} already holds a different {old.get('stage', 'unknown')} run "
                f"({'; '.join(diffs[:4]) or 'different stage'}). Nothing was changed: pick another --out, "
                "or delete that folder to start over."
            )
        return old

    def is_complete(self) -> bool:
        old = self.check_compatible()
        return bool(old and old.get("status") == "complete")

    def write(self, status: str, *, extra: dict[str, Any] | None = None) -> None:
        old = self.existing() or {}
        manifest = {
            "stage": self.name,
            "status": status,
            "identity": self.identity,
            "identity_hash": identity_hash(self.identity),
            "started": old.get("started", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": sys.argv,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(),
            "git_revision": git_revision(),
            **(extra or {}),
        }
        write_json_atomic(self.manifest_path, manifest)


PLACEMENT_OPTIONS = frozenset({
    "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "distributed_executor_backend",
    "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "swap_space", "cpu_offload_gb",
    "base_url", "api_key_env", "timeout", "max_concurrency",
})
"""Backend options that decide where a model runs and how many requests go at once, never a request's
text: vLLM's parallel sizes and memory settings, an endpoint's address. Manifests record them; run
identities, cache keys and pinned configs leave them out, so a job resumed on another GPU count (or
another server of the same model) continues."""


def placement_free(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less the :data:`PLACEMENT_OPTIONS`."""
    return {k: v for k, v in options.items() if k not in PLACEMENT_OPTIONS}


def _pinned(config: Any) -> Any:
    """``config`` less the settings that never change what a run writes: a generation's batch size
    (sampling is seeded per sample, so records do not depend on their batch: tests/test_generation.py,
    tests/test_vllm_backend.py) and its placement options (:data:`PLACEMENT_OPTIONS`). A run may resume
    with others (a smaller batch after running out of memory, another GPU count)."""
    if not isinstance(config, dict):
        return config
    out = {}
    for k, v in config.items():
        if k == "generation" and isinstance(v, dict):
            v = {kk: (placement_free(vv) if kk == "backend_options" and isinstance(vv, dict) else vv)
                 for kk, vv in v.items() if kk != "batch_size"}
        out[k] = _pinned(v)
    return out


def pin_config(out: Path, config: dict[str, Any], *, what: str, flag: str) -> None:
    """A run folder's ``config.json``: written on first use; a folder whose config differs is refused
    (nothing changed) with what differs, so later stages can read the run's own configuration.
    Settings that never change a record (:func:`_pinned`) may differ."""
    path = out / "config.json"
    mine = json.loads(json.dumps(config, default=str))
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, mine)
        return
    try:
        theirs = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); delete the folder to start over") from None
    # a field added by a later version reads as None (its "not set") in a folder written before it
    theirs, mine = _pinned(theirs), _pinned(mine)
    diffs = [f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} now" for k in sorted(set(theirs) | set(mine))
             if theirs.get(k) != mine.get(k)]
    if diffs:
        raise ConfigError(f"{out} holds {what} with another configuration ({'; '.join(diffs[:4])}). "
                          f"Nothing was changed: pick another {flag}, or delete it.")


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_diff(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} now")
    return out


def run_arms(recipes: list[str], seeds: list[int] | None) -> list[tuple[str, str, int | None]]:
    """The models a main job trains: ``(label, recipe entry, seed)``, recipe by recipe in the order given.
    Without ``seeds`` a recipe is one model labelled by its entry, trained under the stage's own seed;
    with ``seeds`` (the between-seed spread of a recipe) it is one model a seed, labelled
    ``<entry>-seed<N>`` (its folders ``align/<label>`` and ``after/<label>``)."""
    if seeds is None:
        return [(r, r, None) for r in recipes]
    return [(f"{r}-seed{s}", r, s) for r in recipes for s in seeds]
