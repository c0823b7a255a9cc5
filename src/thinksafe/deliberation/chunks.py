"""A trace as a sequence of stances: sentences packed into chunks, each chunk's lean (refuse, neutral,
comply) by a judge, and the cuts where the lean flips.

The reproduction's rule: sentences packed into chunks of at most 200 characters, chunks of 20
characters or fewer dropped; stance -1 (leaning to refuse), 0 (neutral), +1 (leaning to comply), the
zeros forward-filled; a stance change is a boundary between adjacent segments of opposite sign, with
a "pre" cut at the end of the first segment and a "post" cut at the end of the second. Oscillation is
the number of stance changes in a trace; traces of more than 120 chunks are loops and left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thinksafe.judges.base import Judge, JudgeInput

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Chunk:
    """``text`` is ``trace[start:end]``."""

    start: int
    end: int
    text: str


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of ``text`` (split after . ! ? and at newlines)."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if text[start : m.start()].strip():
            spans.append((start, m.start()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def chunk_trace(text: str, *, max_chars: int = 200, min_chars: int = 20) -> list[Chunk]:
    """Sentences packed greedily into chunks of at most ``max_chars`` characters (a longer sentence is
    a chunk of its own); chunks of ``min_chars`` or fewer characters are dropped."""
    chunks: list[Chunk] = []
    cur: tuple[int, int] | None = None
    for s, e in sentences(text):
        if cur is not None and e - cur[0] <= max_chars:
            cur = (cur[0], e)
            continue
        if cur is not None:
            chunks.append(Chunk(cur[0], cur[1], text[cur[0] : cur[1]]))
        cur = (s, e)
    if cur is not None:
        chunks.append(Chunk(cur[0], cur[1], text[cur[0] : cur[1]]))
    return [c for c in chunks if len(c.text.strip()) > min_chars]


def judge_stances(judge: Judge, prompt: str, chunks: Sequence[Chunk]) -> list[int]:
    """Each chunk's lean by a registered judge reading it as a response to ``prompt``: a refusal is
    -1, compliance +1, anything else (a non-answer) 0."""
    if not chunks:
        return []
    verdicts = judge.judge_batch([JudgeInput(prompt, c.text) for c in chunks])
    return [-1 if v.label == "refusal" else 1 if v.label == "compliance" else 0 for v in verdicts]


def forward_fill(stances: Sequence[int]) -> list[int]:
    """Zeros take the last non-zero stance before them (leading zeros stay 0)."""
    out, last = [], 0
    for s in stances:
        last = s if s != 0 else last
        out.append(last)
    return out


@dataclass(frozen=True)
class StanceChange:
    """A flip between two adjacent segments: ``pre_chunk`` is the last chunk of the first segment,
    ``post_chunk`` the last chunk of the second; ``to`` is the new stance (+1 comply, -1 refuse)."""

    index: int
    pre_chunk: int
    post_chunk: int
    to: int


def stance_changes(stances: Sequence[int]) -> list[StanceChange]:
    """The flips of a (raw) stance sequence, after forward-filling its zeros."""
    filled = forward_fill(stances)
    segments: list[tuple[int, int, int]] = []  # (sign, first chunk, last chunk)
    for i, s in enumerate(filled):
        if s == 0:
            continue
        if segments and segments[-1][0] == s:
            segments[-1] = (s, segments[-1][1], i)
        else:
            segments.append((s, i, i))
    return [StanceChange(k, a[2], b[2], b[0]) for k, (a, b) in enumerate(zip(segments, segments[1:]))]


def char_to_tokens(tokenizer: Any, token_ids: Sequence[int], chars: int) -> int:
    """The most tokens of ``token_ids`` whose decoded text is at most ``chars`` characters long:
    the token position of a cut made in the decoded text (never re-tokenised)."""
    lo, hi = 0, len(token_ids)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(tokenizer.decode(list(token_ids[:mid]), skip_special_tokens=False)) <= chars:
            lo = mid
        else:
            hi = mid - 1
    return lo
