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
        """Read a record back; a missing field or one of the wrong type is a :class:`DataError` naming
        the record and the fields (a hand-edited or foreign file, never a traceback)."""
        from dataclasses import MISSING, fields

        from thinksafe.errors import DataError

        where = f"record {d.get('id')!r}" if isinstance(d, dict) and "id" in d else "a record"
        if not isinstance(d, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(d).__name__}.")
        fs = fields(cls)
        missing = [f.name for f in fs if f.default is MISSING and f.default_factory is MISSING and f.name not in d]
        if missing:
            raise DataError(f"{where} lacks field(s) {missing}: not a generation record of this version.")
        wrong = [f"{f.name} (expected {_TYPES[f.name][1]}, got {type(d[f.name]).__name__})" for f in fs
                 if f.name in d and f.name in _TYPES and not _TYPES[f.name][0](d[f.name])]
        if wrong:
            raise DataError(f"{where} has field(s) of the wrong type: {', '.join(wrong)}.")
        return cls(**{f.name: d[f.name] for f in fs if f.name in d})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_ids(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(x) for x in v)


_STR = (lambda v: isinstance(v, str), "a string")
_OPT_STR = (lambda v: v is None or isinstance(v, str), "a string or null")
_INT = (_is_int, "an integer")
_IDS = (_is_ids, "a list of token ids")
_TYPES: dict[str, tuple[Any, str]] = {
    "id": _STR, "benchmark": _STR, "prompt": _STR, "rendered_prompt": _STR, "text": _STR, "answer": _STR,
    "trace": _OPT_STR, "source_prompt": _OPT_STR, "trace_closed": (lambda v: v is None or isinstance(v, bool), "a boolean or null"),
    "forced_close": (lambda v: isinstance(v, bool), "a boolean"), "n_prompt_tokens": _INT, "n_trace_tokens": _INT,
    "n_answer_tokens": _INT, "n_completion_tokens": _INT, "sample_index": _INT, "seed": _INT,
    "prompt_token_ids": _IDS, "trace_token_ids": _IDS, "forced_close_token_ids": _IDS, "answer_token_ids": _IDS,
}
