"""The windowed top-p keeps exactly the tokens vLLM's own top-k/top-p keeps."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")


@pytest.mark.parametrize("temperature", [0.3, 1.0, 4.0])
def test_windowed_top_p_keeps_the_same_tokens_as_vllm(temperature):
    import torch
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    from thinksafe.generation.vllm_topp import windowed_top_k_top_p

    original = getattr(apply_top_k_top_p_pytorch, "__wrapped__", apply_top_k_top_p_pytorch)
    fast = windowed_top_k_top_p(original)
    g = torch.Generator().manual_seed(0)
    vocab = 5000
    logits = torch.randn(12, vocab, generator=g) * 3 / temperature
    logits[:6, :30] += 6 / temperature  # peaked rows and flat rows (the flat ones need the fallback)
    p = torch.tensor([0.95, 0.5, 0.99, 0.1] * 3)
    for k in (None, torch.full((12,), 20, dtype=torch.int32), torch.tensor([7, vocab] * 6, dtype=torch.int32)):
        want = original(logits.clone(), k, p, True)
        got = fast(logits.clone(), None if k is None else k.clone(), p, True)
        assert torch.equal(torch.isinf(want), torch.isinf(got))
        assert torch.allclose(want[~torch.isinf(want)], got[~torch.isinf(got)])
    assert fast(logits.clone(), None, None, True).equal(logits)  # no top-p: vLLM's own path
