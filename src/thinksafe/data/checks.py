"""Prompt identity checks: normalisation, de-duplication, train/eval disjointness."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from thinksafe.data.records import Example
from thinksafe.errors import DataError

log = logging.getLogger(__name__)


# Apostrophes and their look-alikes are dropped ("Don’t" == "dont"); every other quote, dash or
# symbol is punctuation/symbol to Unicode and becomes a space below.
_APOSTROPHES = str.maketrans(dict.fromkeys("'\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4\u0060", ""))

IDENTITY_RULES = "Unicode (NFKC, curly quotes and dashes), case, whitespace and punctuation/symbols"


@lru_cache(maxsize=1 << 15)  # pure; every overlap check normalises the same evaluation sets again
def normalize_prompt(text: str) -> str:
    """The identity of a prompt, so trivially different copies of one prompt compare equal.

    NFKC (full-width letters, ligatures, composed accents), case folded, apostrophes dropped,
    every other punctuation or symbol character (curly quotes, dashes, "?") a space, whitespace
    runs collapsed: ``"How do I make meth?"`` and ``"how  do I make meth"`` are one prompt.
    Format characters (zero-width spaces) are dropped.
    """
    folded = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold()
    chars = []
    for ch in folded:
        kind = unicodedata.category(ch)
        if kind == "Cf":
            continue
        chars.append(" " if kind[0] in "PSZC" else ch)
    return " ".join("".join(chars).split())


def dedupe(examples: Sequence[Example]) -> list[Example]:
    """Drop exact-duplicate prompts (after normalisation), keeping the first occurrence."""
    seen: set[str] = set()
    kept: list[Example] = []
    for ex in examples:
        key = normalize_prompt(ex.prompt)
        if key in seen:
            continue
        seen.add(key)
        kept.append(ex)
    if len(kept) < len(examples):
        log.info("Dropped %d duplicate prompt(s) from %s", len(examples) - len(kept),
                 ", ".join(sorted({ex.benchmark for ex in examples})))
    return kept


def _overlap(train: Sequence[Example], held_out: Sequence[Example]) -> list[tuple[Example, Example]]:
    """Pairs (train example, eval example) sharing a normalised prompt, in eval order, one per prompt."""
    first_train: dict[str, Example] = {}
    for ex in train:
        first_train.setdefault(normalize_prompt(ex.prompt), ex)
    pairs: list[tuple[Example, Example]] = []
    seen: set[str] = set()
    for ex in held_out:
        key = normalize_prompt(ex.prompt)
        if key in first_train and key not in seen:
            seen.add(key)
            pairs.append((first_train[key], ex))
    return pairs


def check_disjoint(train: Sequence[Example], eval: Sequence[Example]) -> None:  # noqa: A002 (public name)
    """Raise :class:`DataError` if any normalised prompt is in both ``train`` and ``eval``.

    Evaluating on prompts seen in training inflates the result, so this is an error, not a warning.
    """
    pairs = _overlap(train, eval)
    if not pairs:
        return
    train_names = ", ".join(sorted({t.benchmark for t, _ in pairs}))
    eval_names = ", ".join(sorted({e.benchmark for _, e in pairs}))
    shown = "; ".join(
        f"{_short(e.prompt)!r} (train {t.benchmark}/{t.id}, eval {e.benchmark}/{e.id})" for t, e in pairs[:3]
    )
    raise DataError(
        f"{len(pairs)} prompt(s) appear in both the training data ({train_names}) and the evaluation data "
        f"({eval_names}), e.g. {shown}. Drop them from the training side (thinksafe.data.drop_overlap) or "
        f"choose disjoint benchmarks."
    )


def drop_overlap(train: Sequence[Example], eval: Sequence[Example]) -> list[Example]:  # noqa: A002
    """``train`` without the examples whose normalised prompt also appears in ``eval``."""
    held_out = {normalize_prompt(ex.prompt) for ex in eval}
    kept = [ex for ex in train if normalize_prompt(ex.prompt) not in held_out]
    if len(kept) < len(train):
        log.info("Dropped %d training example(s) that overlap the evaluation data", len(train) - len(kept))
    return kept


def _short(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
