"""The perplexity diagnostic: how far a recipe's responses are from the base model's own distribution.

THINKSAFE's argument for self-generation (paper: perplexity 1.55 on self-generated traces vs 7.35
on STAR-1 teacher traces, Qwen3-1.7B): the base model scores each response, trace included, after
the *original* prompt rendered as it will be trained on; the perplexity is over the response tokens
only (the prompt's tokens are context, never scored).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from thinksafe.align.train import split_pair
from thinksafe.generation.backend import Backend, ScoreRequest


def response_ids(tokenizer: Any, prompt: str, response: str, *, thinking: str = "prompted") -> tuple[list[int], list[int]]:
    """Token ids of the rendered original prompt and of the response that follows it, split as for
    training (:func:`thinksafe.align.train.split_pair`): the prefill is context, not response."""
    rendered, response = split_pair(tokenizer, prompt, response, thinking=thinking)
    return tokenizer(rendered, add_special_tokens=False).input_ids, tokenizer(response, add_special_tokens=False).input_ids


def response_perplexity(
    backend: Backend, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, thinking: str = "prompted",
    batch: int = 16,
) -> dict[str, Any]:
    """Perplexity of each (original prompt, response) pair under the backend's model, and overall
    (token-weighted: exp of the mean negative log-likelihood over all response tokens)."""
    per: list[float] = []
    total_lp, total_n = 0.0, 0
    requests = [ScoreRequest(*response_ids(tokenizer, p, r, thinking=thinking)) for p, r in pairs]
    requests = [r for r in requests if r.continuation_ids]
    for start in range(0, len(requests), batch):
        for res in backend.score(requests[start : start + batch]):
            n = len(res.token_logprobs)
            per.append(math.exp(-res.logprob / n))
            total_lp += res.logprob
            total_n += n
    if not total_n:
        raise ValueError("no response tokens to score")
    per_sorted = sorted(per)
    return {
        "n": len(per),
        "tokens": total_n,
        "perplexity": math.exp(-total_lp / total_n),
        "median_response_perplexity": per_sorted[len(per_sorted) // 2],
    }
