"""The ``generate`` stage: a benchmark through a model into ``OUT/records.jsonl``, resumable."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinksafe.data import load_benchmark
from thinksafe.errors import ConfigError
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.generation.records import GenerationRecord
from thinksafe.generation.registry import model_identity, resolve_backend
from thinksafe.jsonl import read_jsonl
from thinksafe.manifest import Stage, hash_examples
from thinksafe.models.loader import load_model

log = logging.getLogger(__name__)


@dataclass
class GenerateJob:
    """What ``thinksafe generate`` runs."""

    model: str = field(default="qwen2.5-coder-0.5b-instruct", metadata={"help": "registry name, GGUF path, dir or hub id"})
    data: str = field(default="harmbench", metadata={"help": "benchmark name"})
    out: str = field(default="", metadata={"help": "output folder"})
    limit: int | None = field(default=None, metadata={"help": "seeded random subset size"})
    data_seed: int = field(default=0, metadata={"help": "seed of the subset"})
    split: str | None = field(default=None, metadata={"help": "benchmark split (e.g. gsm8k train/test)"})
    data_path: str | None = field(default=None, metadata={"help": "explicit data file or folder"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder"})
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def __post_init__(self) -> None:
        if isinstance(self.generation, dict):
            self.generation = GenerationConfig.from_dict(self.generation)
        if not self.out:
            raise ConfigError("out must name an output folder (--out DIR).")
        if self.limit is not None and (isinstance(self.limit, bool) or self.limit < 1):
            raise ConfigError(f"--limit must be a positive integer, got {self.limit}.")


def run_generate(job: GenerateJob, *, progress: bool = True) -> list[GenerationRecord]:
    """Load data and model, generate (cached, resumable), write records and a manifest."""
    examples = load_benchmark(job.data, split=job.split, path=job.data_path, limit=job.limit, seed=job.data_seed)
    out = Path(job.out)
    records_path = out / "records.jsonl"
    identity: dict[str, Any] = {
        "model": model_identity(job.model, dtype=job.generation.dtype, adapter=job.adapter, backend=resolve_backend(job.generation.backend)),
        "data": {"benchmark": job.data, "split": job.split, "n": len(examples), "hash": hash_examples(examples)},
        "generation": job.generation.identity(),
    }
    stage = Stage(out, "generate", identity)
    if stage.is_complete() and records_path.exists():
        log.info("%s is complete; nothing to do", out)
        return [GenerationRecord.from_dict(r) for r in read_jsonl(records_path)]
    loaded = load_model(job.model, dtype=job.generation.dtype, adapter=job.adapter)
    stage.write("running")
    engine = Engine(loaded, job.generation)
    records = engine.run(examples, records_path, progress=progress)
    stage.write(
        "complete",
        extra={"n_records": len(records), "records": str(records_path), "seed": job.generation.seed},
    )
    return records
