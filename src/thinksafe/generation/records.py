"""The record a generation writes: one JSON line per (prompt, sample)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "stop_string"]


@dataclass
class GenerationRecord:
    """One sampled response and everything needed to judge, score or replay it.

    ``text`` is everything the model produced after the rendered prompt (including a prefilled
    ``<think>`` when thinking is prompted, so the text always parses on its own). ``trace`` is the
    reasoning between ``<think>`` and ``</think>`` (``None`` when thinking is off); ``answer`` is what
    follows ``</think>`` (the whole text when thinking is off). ``trace_closed`` says whether the
    model closed its trace itself; ``forced_close`` that the engine appended ``</think>`` at the
    thinking budget (budget forcing) and generated the answer from there.

    Prompts: ``source_prompt`` is the benchmark's own prompt (``Example.prompt``), never steered or
    wrapped; ``prompt`` is the user turn as the model saw it (steering prefix or task instruction
    included); ``rendered_prompt`` is the full text the model continued from.

    Token ids, exactly as fed to the model, in order: ``prompt_token_ids`` (the tokenized
    ``rendered_prompt``), then ``trace_token_ids`` (tokens the model sampled inside the trace, up to
    and including those that spell its own ``</think>``), then ``forced_close_token_ids`` (the
    closing tokens the engine fed in at the budget; empty unless ``forced_close``), then
    ``answer_token_ids`` (tokens sampled after the trace). The end-of-turn token that stopped
    decoding is in none of them. With thinking off every sampled token is an answer token.
    ``len(trace_token_ids) == n_trace_tokens`` and ``len(answer_token_ids) == n_answer_tokens``.
    Records written before these fields existed read back with ``source_prompt=None`` and empty ids.
    """

    id: str
    benchmark: str
    split_type: str
    prompt: str
    rendered_prompt: str
    text: str
    trace: str | None
    answer: str
    trace_closed: bool | None
    forced_close: bool
    finish_reason: str
    n_prompt_tokens: int
    n_trace_tokens: int
    n_answer_tokens: int
    n_completion_tokens: int
    sample_index: int = 0
    seed: int = 0
    model: str = ""
    adapter: str | None = None
    thinking: str = "off"
    steered: bool = False
    gold: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""
    backend: str = ""
    backend_version: str = ""
    trace_end: str | None = None  # closed (by the model) | forced (closing text fed in) | unclosed; None: no trace
    source_prompt: str | None = None
    prompt_token_ids: list[int] = field(default_factory=list)
    trace_token_ids: list[int] = field(default_factory=list)
    forced_close_token_ids: list[int] = field(default_factory=list)
    answer_token_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerationRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})
