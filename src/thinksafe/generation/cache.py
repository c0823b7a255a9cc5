"""Content-addressed cache of generations.

The key covers everything that changes a sample's text and nothing else:

* the engine's identity: the weights' content hash (or hub commit), the adapter's content hash, the
  backend and its version (RNG streams and kernels differ between runtimes), device and dtype, the
  chat template and system text, and the torch and transformers versions (see
  :meth:`thinksafe.generation.engine.Engine.identity`);
* the rendered prompt (which carries the reasoning format, steering and system prompt);
* the decoding settings that matter (:meth:`GenerationConfig.sampling_key`);
* the sample seed, only when sampling (greedy decoding ignores it, so it stays out).

Batch size, output folder, progress display and example ids never enter it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thinksafe.paths import cache_dir

ENGINE_VERSION = 5  # 5: two-phase budget forcing, answers that must answer


def cache_key(
    *,
    identity: Mapping[str, Any],
    rendered_prompt: str,
    seed: int | None,
    sampling: Mapping[str, Any],
) -> str:
    """sha256 of the engine identity, rendered prompt, seed (``None`` when greedy) and sampling."""
    payload = {
        "engine": ENGINE_VERSION,
        "identity": dict(identity),
        "prompt": rendered_prompt,
        "seed": seed,
        "sampling": dict(sampling),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def sample_seed(run_seed: int, example_id: str, sample_index: int) -> int:
    """A sample's own seed: fixed by the run seed, the prompt id and the sample index, never the batch."""
    digest = hashlib.sha256(f"{run_seed}|{example_id}|{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


class GenerationCache:
    """One small JSON file per generation, written atomically; safe to share between runs."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_dir()) / "generations"

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, record: dict[str, Any]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
