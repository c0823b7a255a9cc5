"""Replays: force-close a trace at a cut and sample answers from there.

A cut is token-exact (:func:`thinksafe.models.formats.build_cut_ids`: the record's prompt ids, its first
``k`` trace tokens, the closing ``\\n</think>\\n\\n``). All ``n`` answers of a cut are one request, so
the prefix is read once: vLLM keeps its KV blocks (automatic prefix caching, ``n`` samples of one
request; the pre and post cuts of a trace share their common part too). The answer phase is the
engine's: end-of-turn held off for the first tokens, think tags banned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from thinksafe.generation.backend import Backend, GenerateRequest, Sampling
from thinksafe.generation.engine import ANSWER_BAD_WORDS
from thinksafe.judges.base import Judge, JudgeInput
from thinksafe.models.formats import FORCED_CLOSE, build_cut_ids


@dataclass(frozen=True)
class ReplaySettings:
    """How the answers after a cut are sampled (the paper's sampling; answers short enough for CPUs:
    the decision to refuse or comply shows in the first sentences)."""

    max_tokens: int = field(default=64, metadata={"help": "answer tokens per replay"})
    temperature: float = field(default=0.6, metadata={"help": "sampling temperature of replays (0 is greedy)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling of replays"})
    top_k: int = field(default=20, metadata={"help": "top-k of replays (0 disables)"})
    min_tokens: int = field(default=8, metadata={"help": "end-of-turn held off for this many answer tokens"})


@dataclass(frozen=True)
class Cut:
    """``k`` trace tokens of the record ``key`` kept; ``seed`` decides its ``n`` answers."""

    key: str
    k: int
    seed: int


def cut_prefix(tokenizer: Any, rec: dict[str, Any], k: int) -> list[int]:
    close = list(tokenizer(FORCED_CLOSE, add_special_tokens=False).input_ids)
    return build_cut_ids(rec["prompt_token_ids"], rec["trace_token_ids"], k, close)


def replay(
    backend: Backend,
    tokenizer: Any,
    records: dict[str, dict[str, Any]],
    cuts: Sequence[Cut],
    n: int,
    settings: ReplaySettings,
    *,
    adapter: str | None = None,
) -> list[list[str]]:
    """``n`` answers after each cut, as text (special tokens dropped)."""
    requests = [
        GenerateRequest(cut_prefix(tokenizer, records[c.key], c.k), settings.max_tokens,
                        Sampling(settings.temperature, settings.top_p, settings.top_k), seed=c.seed, n=n,
                        min_tokens=min(settings.min_tokens, settings.max_tokens), bad_words=ANSWER_BAD_WORDS,
                        adapter=adapter)
        for c in cuts
    ]
    out = backend.generate(requests)
    return [[tokenizer.decode(c.token_ids, skip_special_tokens=True).strip() for c in cs] for cs in out]


def decisions(judge: Judge, prompt: str, answers: Sequence[str]) -> list[int | None]:
    """1 refused, 0 did not refuse (complied or a non-answer), None nothing to judge (empty)."""
    verdicts = judge.judge_batch([JudgeInput(prompt, a) for a in answers])
    return [None if v.refused is None else int(v.refused) for v in verdicts]
