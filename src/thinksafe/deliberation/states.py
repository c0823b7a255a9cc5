"""Hidden states of a model's own responses, from one teacher-forced forward pass per record.

The positions come from the record's token ids (never re-tokenised text): the prompt as the model saw
it, then the trace tokens it sampled. Two states at every layer (1..L, block outputs; the last is
after the final norm): ``last_prompt`` (the last prompt token, after the chat template and
``<think>\\n``: the decision before any trace token is sampled, the headline) and
``first_sampled_token`` (the first trace token the model sampled: it has read one token of its own
thinking; stored as ``first_token`` before it was renamed, and still read under that name). Along
the trace, the last layer at ``floor(linspace(0, L-1, P))`` of the trace span (``</think>`` left out).

Stored in float16 safetensors shards (``part-00000.safetensors``, ...) with the record keys in the
shard's metadata, so a killed extraction resumes at the next shard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thinksafe.generation.backend import Backend, ScoreRequest
from thinksafe.models.formats import THINK_CLOSE

log = logging.getLogger(__name__)

_OLD_NAMES = {"first_sampled_token": "first_token"}  # the name a state had in shards written before a rename


def record_key(rec: Mapping[str, Any]) -> str:
    """The key of one (prompt, sample) record across a run's pools."""
    return f"{rec['benchmark']}/{rec['id']}#{rec.get('sample_index', 0)}"


def prompt_of(key: str) -> str:
    """The prompt of a record key (``benchmark/id``): the unit an interval resamples."""
    return key.rsplit("#", 1)[0]


def trace_span(tokenizer: Any, rec: Mapping[str, Any]) -> int:
    """How many of the record's trace tokens are reasoning: all of them, less those that spell the
    model's own ``</think>`` when it closed the trace itself (a token that carries text before the tag,
    such as ``.</``, goes with it: a cut never splits a token)."""
    from thinksafe.deliberation.chunks import char_to_tokens

    ids = list(rec.get("trace_token_ids") or [])
    if rec.get("trace_end") != "closed":
        return len(ids)
    at = tokenizer.decode(ids, skip_special_tokens=False).find(THINK_CLOSE)
    return len(ids) if at < 0 else char_to_tokens(tokenizer, ids, at)


def trace_points(length: int, n_points: int) -> list[int]:
    """Offsets into a trace of ``length`` tokens: ``floor(linspace(0, length - 1, n_points))``."""
    if length < 1:
        return []
    return np.floor(np.linspace(0, length - 1, n_points)).astype(int).tolist()


@dataclass
class StateSet:
    """States of ``keys`` (in order): ``first_sampled_token`` and ``last_prompt`` are (N, layers, H),
    ``trace`` is (N, points, H) at the last layer; ``layers`` names the layer axis."""

    keys: list[str]
    layers: list[int]
    first_sampled_token: np.ndarray
    last_prompt: np.ndarray
    trace: np.ndarray

    def subset(self, keys: Sequence[str]) -> StateSet:
        where = {k: i for i, k in enumerate(self.keys)}
        idx = [where[k] for k in keys]
        return StateSet(list(keys), self.layers, self.first_sampled_token[idx], self.last_prompt[idx], self.trace[idx])


def extract_states(
    backend: Backend,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    layers: Sequence[int],
    trace_layer: int | None = None,
    n_points: int = 100,
    shard_size: int = 32,
    adapter: str | None = None,
    progress: bool = True,
) -> tuple[int, int]:
    """Write the states of every record with a non-empty trace; returns (extracted now, skipped empty).
    ``trace_layer`` (one of ``layers``; default the last listed) gives the states along the trace.
    Shards already on disk are kept (resume)."""
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    usable = [r for r in records if trace_span(tokenizer, r) > 0]
    skipped = len(records) - len(usable)
    layers = list(layers)
    along = layers.index(trace_layer) if trace_layer is not None else len(layers) - 1
    done = 0
    from thinksafe.progress import bar as progress_bar

    with progress_bar("hidden states", len(usable), enabled=progress) as bar:
        for s, start in enumerate(range(0, len(usable), shard_size)):
            path = out / f"part-{s:05d}.safetensors"
            part = usable[start : start + shard_size]
            if path.exists():
                bar.advance(len(part))
                continue
            first, last, trace = [], [], []
            for rec in part:
                n_prompt = len(rec["prompt_token_ids"])
                span = trace_span(tokenizer, rec)
                points = trace_points(span, n_points)
                ids = list(rec["prompt_token_ids"]) + list(rec["trace_token_ids"][:span])
                positions = (n_prompt - 1, n_prompt, *[n_prompt + p for p in points])
                res = backend.score([ScoreRequest(ids, layers=tuple(layers), positions=positions, adapter=adapter)])[0]
                stack = np.stack([res.hidden[layer] for layer in layers])  # (layers, positions, H)
                last.append(stack[:, 0])
                first.append(stack[:, 1])
                trace.append(stack[along, 2:])
                bar.advance()
            tensors = {"first_sampled_token": np.stack(first).astype(np.float16),
                       "last_prompt": np.stack(last).astype(np.float16),
                       "trace": np.stack(trace).astype(np.float16)}
            meta = {"keys": json.dumps([record_key(r) for r in part]), "layers": json.dumps(layers),
                    "trace_layer": json.dumps(layers[along])}
            tmp = path.with_suffix(".tmp")
            save_file(tensors, str(tmp), metadata=meta)
            tmp.replace(path)
            done += len(part)
    return done, skipped


def load_states(out_dir: str | Path) -> StateSet:
    """Every shard of a states folder, concatenated (float32). Shards written before the rename hold
    ``first_token``: read as ``first_sampled_token``."""
    from safetensors import safe_open

    parts = sorted(Path(out_dir).glob("part-*.safetensors"))
    keys: list[str] = []
    layers: list[int] = []
    arrays: dict[str, list[np.ndarray]] = {"first_sampled_token": [], "last_prompt": [], "trace": []}
    for path in parts:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata()
            keys += json.loads(meta["keys"])
            layers = json.loads(meta["layers"])
            stored = set(f.keys())
            for name in arrays:
                arrays[name].append(f.get_tensor(_OLD_NAMES.get(name, name) if name not in stored else name)
                                    .astype(np.float32))
    if not keys:
        raise FileNotFoundError(f"no hidden states under {out_dir}")
    return StateSet(keys, layers, *(np.concatenate(arrays[n]) for n in ("first_sampled_token", "last_prompt", "trace")))
