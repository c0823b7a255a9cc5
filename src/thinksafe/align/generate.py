"""Self-generation of training candidates: the frozen reference model answers a harmful pool under a
refusal-steering template and a benign pool unchanged (THINKSAFE), or both unchanged (the
rejection-sampling baseline). Candidates are generation records plus ``pool``, ``harmful`` and
``category``; ``source_prompt`` is the pool's original prompt, which is what a training pair uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from thinksafe.align.templates import STEER_TEMPLATES
from thinksafe.data.records import Example
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.models.loader import LoadedModel

@dataclass(frozen=True)
class Pool:
    """A named prompt pool and whether its prompts are harmful (steered) or benign (sampled as is)."""

    name: str
    examples: Sequence[Example]
    harmful: bool
    dropped_for_overlap: int = 0  # prompts of the source set left out because an evaluation set holds them


def _category(ex: Example) -> str:
    meta = ex.metadata or {}
    return str(meta.get("category") or meta.get("semantic_category") or meta.get("functional_category") or "-")


def generate_candidates(
    loaded: LoadedModel,
    pools: Sequence[Pool],
    config: GenerationConfig,
    out_dir: str | Path,
    *,
    template: str | None = "prefix",
    progress: bool = True,
    prompt_fn: Callable[[Example], str] | None = None,
) -> list[dict[str, Any]]:
    """Generate one record per prompt of every pool (cached and resumable per pool, in
    ``out_dir/<pool>.jsonl``). ``template=None`` steers nothing (rejection sampling); ``prompt_fn``
    writes the user turn of unsteered prompts (e.g. a reasoning set's answer format)."""
    steer = STEER_TEMPLATES.get(template) if template else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates: list[dict[str, Any]] = []
    for pool in pools:
        steered = pool.harmful and steer is not None
        fn = (lambda ex: steer.apply(ex.prompt)) if steered else prompt_fn
        engine = Engine(loaded, replace(config, steer=False))
        records = engine.run(pool.examples, out_dir / f"{pool.name}.jsonl", prompt_fn=fn, progress=progress)
        by_id = {ex.id: ex for ex in pool.examples}
        for rec in records:
            ex = by_id[rec.id]
            candidates.append(rec.to_dict() | {
                "pool": pool.name, "harmful": pool.harmful, "category": _category(ex),
                "template": steer.name if steered else None,
            })
    return candidates
