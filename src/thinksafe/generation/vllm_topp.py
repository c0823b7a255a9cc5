"""Top-p on CPU without sorting the vocabulary, for vLLM's sampler.

vLLM's CPU path applies top-p by sorting every row of logits over the whole vocabulary at every
decode step: for 62 rows of Qwen's 151,936 logits that is 0.7-1.4 s a step here, which made seeded
top-p sampling about 8x slower than greedy decoding (``bench/generation.py --sampled``). The nucleus
of a row lies within its ``WINDOW`` most likely tokens whenever those hold at least ``p`` of the
mass, which is nearly always; then ``torch.topk`` over the window gives the same kept set (the same
rule as vLLM's: keep a token while the mass strictly above it is below ``p``). Rows whose window
holds less than ``p`` go through vLLM's own code. Installed only for CPU engines.
"""

from __future__ import annotations

from typing import Any

WINDOW = 128
_INSTALLED = False


def windowed_top_k_top_p(original: Any) -> Any:
    """vLLM's ``apply_top_k_top_p_pytorch`` with top-p taken over a top-k window on CPU."""
    import torch

    def apply(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None, allow_cpu_sync: bool = False):
        if p is None or logits.device.type != "cpu":
            return original(logits, k, p, allow_cpu_sync)
        rows, vocab = logits.shape
        kk = k.to(torch.long) if k is not None else torch.full((rows,), vocab, dtype=torch.long)
        limited = kk < vocab
        width = min(vocab, max(int(kk[limited].max()) if bool(limited.any()) else 0,
                               WINDOW if not bool(limited.all()) else 0))
        vals, idx = logits.topk(width, dim=-1)  # sorted, most likely first
        vals = vals.masked_fill(torch.arange(width)[None, :] >= kk[:, None], float("-inf"))  # top-k
        norm = vals.logsumexp(-1)  # over what top-k left, when it all lies in the window
        wide = kk > width
        if bool(wide.any()):
            norm[wide] = logits[wide].logsumexp(-1)
        probs = (vals - norm[:, None]).exp()
        above = probs.cumsum(-1) - probs  # mass strictly above each token
        kept = vals.masked_fill(above >= p[:, None].to(probs.dtype), float("-inf"))
        short = probs.sum(-1) < p  # the window holds less than p: vLLM's full sort for these rows
        fallback = None
        if bool(short.any()):
            fallback = original(logits[short].clone(), k[short] if k is not None else None, p[short], allow_cpu_sync)
        logits.fill_(float("-inf")).scatter_(1, idx, kept)
        if fallback is not None:
            logits[short] = fallback
        return logits

    apply.__wrapped__ = original  # type: ignore[attr-defined]
    return apply


def install() -> None:
    """Swap vLLM's CPU top-k/top-p for :func:`windowed_top_k_top_p` (once per process)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from vllm.v1.sample.ops import topk_topp_sampler as mod

    mod.apply_top_k_top_p_pytorch = windowed_top_k_top_p(mod.apply_top_k_top_p_pytorch)
    _INSTALLED = True
