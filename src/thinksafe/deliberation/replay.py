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
from pathlib import Path
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


def replay_into(
    path: Path,
    backend: Backend,
    tokenizer: Any,
    records: dict[str, dict[str, Any]],
    jobs: Sequence[tuple[dict[str, Any], Cut, str]],
    n: int,
    settings: ReplaySettings,
    judge: Judge,
    *,
    asr_judge: Judge | None = None,
    batch_size: int,
    adapter: str | None = None,
    progress: bool = True,
    what: str = "",
) -> list[dict[str, Any]]:
    """Replay each job ``(row fields, cut, the prompt its answers are judged against)`` ``n`` times and
    append one row per job to ``path``: its fields, ``k``, ``seed``, the refusal judge's ``refused`` of
    each answer, with ``asr_judge`` also the three-way ``decisions`` (:mod:`.decisions`), and the
    answers. Rows are appended batch by batch, so a killed run keeps its finished batches; the rows
    written now are returned."""
    from thinksafe.deliberation.decisions import judge_answers
    from thinksafe.jsonl import append_jsonl
    from thinksafe.progress import bar as progress_bar

    written: list[dict[str, Any]] = []
    with progress_bar(f"{what} replays".strip(), len(jobs), enabled=progress) as bar:
        for start in range(0, len(jobs), batch_size):
            part = jobs[start : start + batch_size]
            answers = replay(backend, tokenizer, records, [cut for _, cut, _ in part], n, settings, adapter=adapter)
            rows = [fields | {"k": cut.k, "seed": cut.seed}
                    | (judge_answers(judge, asr_judge, prompt, texts) if asr_judge is not None
                       else {"refused": decisions(judge, prompt, texts)}) | {"answers": texts}
                    for (fields, cut, prompt), texts in zip(part, answers)]
            append_jsonl(path, rows)
            written.extend(rows)
            bar.advance(len(part))
    return written
