"""The vLLM backend against the transformers reference, on SmolLM2-135M (slow: starts vLLM)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from thinksafe.generation.backend import GenerateRequest, Sampling, ScoreRequest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]

PROMPTS = ["How do I bake bread?", "Name three rivers.", "What is 2 + 2?", "Write a haiku about rain."]


@pytest.fixture(scope="module")
def smol():
    from thinksafe.models.loader import load_model

    return load_model("smollm2-135m-instruct", dtype="float32")


@pytest.fixture(scope="module")
def vllm_backend(smol):
    from thinksafe.generation.vllm_backend import VLLMBackend

    return VLLMBackend(smol, enable_lora=True, max_lora_rank=8, max_model_len=1024)


@pytest.fixture(scope="module")
def adapter(smol, tmp_path_factory):
    """A LoRA adapter with random (non-zero) weights on the attention and MLP projections."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smol.checkpoint, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    path = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(path)
    return str(path)


def _ids(smol, text):
    from thinksafe.models.formats import render_prompt

    return smol.tokenizer(render_prompt(smol.tokenizer, text, thinking="off"), add_special_tokens=False).input_ids


def test_vllm_greedy_matches_transformers(smol, vllm_backend):
    from thinksafe.generation.hf_backend import TransformersBackend

    reqs = [GenerateRequest(_ids(smol, p), 16, Sampling(0.0)) for p in PROMPTS]
    ours = [c[0] for c in vllm_backend.generate(reqs)]
    ref = [c[0] for c in TransformersBackend(smol).generate(reqs)]
    same = sum(a.token_ids == b.token_ids for a, b in zip(ours, ref))
    assert same >= len(PROMPTS) - 1, (ours, ref)  # fp32 both sides; a rare last-bit tie may flip one token
    for c in ours:
        assert c.finish_reason in ("stop", "length") and c.token_ids
        assert not set(c.token_ids) & vllm_backend.eos_ids  # the end-of-turn token is never kept


def test_vllm_same_seed_same_text_whatever_the_batch(smol, vllm_backend):
    sampling = Sampling(temperature=1.0, top_p=0.95)
    target = GenerateRequest(_ids(smol, PROMPTS[0]), 24, sampling, seed=1234, n=2)
    alone = vllm_backend.generate([target])[0]
    others = [GenerateRequest(_ids(smol, p), 24, sampling, seed=i) for i, p in enumerate(PROMPTS[1:])]
    batched = vllm_backend.generate([*others, target, *others])[len(others)]
    assert [c.token_ids for c in alone] == [c.token_ids for c in batched]
    assert alone[0].token_ids != alone[1].token_ids  # n samples of one request differ
    other_seed = vllm_backend.generate([GenerateRequest(target.prompt_ids, 24, sampling, seed=99)])[0][0]
    assert other_seed.token_ids != alone[0].token_ids


def test_seeded_requests_that_overflow_one_prefill_step_run(smol, vllm_backend):
    # 80 seeded, top-k sampled prompts of ~120 tokens are more than one scheduling step holds; a
    # chunked prefill would make vLLM rewind a CPU generator, which fails on CPU
    ids = smol.tokenizer("word " * 120).input_ids
    reqs = [GenerateRequest([10 + i % 50, *ids], 4, Sampling(0.6, 0.95, 20), seed=i) for i in range(80)]
    out = vllm_backend.generate(reqs)
    assert len(out) == 80 and all(len(c[0].token_ids) == 4 for c in out)


def test_vllm_stop_strings_min_tokens_and_bad_words(smol, vllm_backend):
    ids = _ids(smol, "Name three rivers.")
    free = vllm_backend.generate([GenerateRequest(ids, 48, Sampling(0.0))])[0][0]
    text = smol.tokenizer.decode(free.token_ids)
    word = next(w for w in text.split()[2:] if w.isalpha() and len(w) > 3)
    stopped = vllm_backend.generate([GenerateRequest(ids, 48, Sampling(0.0), stop=(word,))])[0][0]
    assert stopped.finish_reason == "stop_string" and stopped.stop_string == word
    assert smol.tokenizer.decode(stopped.token_ids).endswith(word)
    banned = vllm_backend.generate([GenerateRequest(ids, 48, Sampling(0.0), bad_words=(word,))])[0][0]
    assert word not in smol.tokenizer.decode(banned.token_ids)
    short = vllm_backend.generate([GenerateRequest(_ids(smol, "Say hi."), 64, Sampling(0.0))])[0][0]
    assert short.finish_reason == "stop" and len(short.token_ids) < 40
    longer = vllm_backend.generate([GenerateRequest(_ids(smol, "Say hi."), 64, Sampling(0.0), min_tokens=40)])[0][0]
    assert len(longer.token_ids) >= 40


def test_lora_changes_vllm_output_as_it_changes_transformers(smol, vllm_backend, adapter):
    from thinksafe.generation.hf_backend import TransformersBackend

    base_reqs = [GenerateRequest(_ids(smol, p), 12, Sampling(0.0)) for p in PROMPTS]
    untouched = [c[0].token_ids for c in TransformersBackend(smol).generate(base_reqs)]  # before any adapter
    reference = TransformersBackend(smol)
    lora_reqs = [GenerateRequest(r.prompt_ids, 12, Sampling(0.0), adapter=adapter) for r in base_reqs]
    v_base = [c[0].token_ids for c in vllm_backend.generate(base_reqs)]
    v_lora = [c[0].token_ids for c in vllm_backend.generate(lora_reqs)]
    h_lora = [c[0].token_ids for c in reference.generate(lora_reqs)]
    h_base = [c[0].token_ids for c in reference.generate(base_reqs)]
    assert v_lora != v_base and h_lora != h_base  # the adapter changes both
    assert sum(a == b for a, b in zip(v_lora, h_lora)) >= len(PROMPTS) - 1  # ... the same way
    # the base model is untouched after an adapter request (per-request adapters, no leakage)
    assert h_base == untouched == [c[0].token_ids for c in TransformersBackend(smol).generate(base_reqs)]


def test_a_loaded_adapter_runs_merged_on_cpu(smol, adapter):
    """``--adapter`` on CPU: vLLM runs a merged checkpoint (LoRA decodes ~10x slower there), written
    once to the cache, and decodes as the transformers reference with the adapter does."""
    from thinksafe.generation.hf_backend import TransformersBackend
    from thinksafe.generation.vllm_backend import VLLMBackend
    from thinksafe.models.loader import load_model
    from thinksafe.paths import cache_dir

    loaded = load_model("smollm2-135m-instruct", dtype="float32", adapter=adapter)
    backend = VLLMBackend(loaded, max_model_len=1024)
    assert backend.merge_adapter and not backend.enable_lora and "merged-adapter" in backend.version
    reqs = [GenerateRequest(_ids(smol, p), 12, Sampling(0.0), adapter=loaded.adapter) for p in PROMPTS]
    ours = [c[0].token_ids for c in backend.generate(reqs)]
    ref = [c[0].token_ids for c in TransformersBackend(loaded).generate(reqs)]
    base = [c[0].token_ids for c in TransformersBackend(smol).generate([GenerateRequest(r.prompt_ids, 12, Sampling(0.0))
                                                                        for r in reqs])]
    assert sum(a == b for a, b in zip(ours, ref)) >= len(PROMPTS) - 1
    assert ours != base  # the merged weights carry the adapter
    merged = backend.merged_checkpoint()
    assert Path(merged).is_relative_to(cache_dir() / "merged") and (Path(merged) / "config.json").exists()
    assert Path(merged).name.endswith("-float32")  # saved in the run's dtype, which is in the key
    # a second backend reuses the merged checkpoint rather than writing it again
    stamp = (Path(merged) / "config.json").stat().st_mtime_ns
    assert VLLMBackend(loaded, max_model_len=1024).merged_checkpoint() == merged
    assert (Path(merged) / "config.json").stat().st_mtime_ns == stamp


def test_vllm_score_matches_the_reference(smol, vllm_backend):
    prompt, cont = _ids(smol, PROMPTS[2]), smol.tokenizer("2 + 2 = 4.", add_special_tokens=False).input_ids
    ours = vllm_backend.score([ScoreRequest(prompt, cont)])[0]
    ref = vllm_backend.reference().score([ScoreRequest(prompt, cont, layers=(0, -1), positions=(-1,))])[0]
    assert len(ours.token_logprobs) == len(cont)
    assert abs(ours.logprob - ref.logprob) < 0.05 * abs(ref.logprob) + 0.05
    assert ref.hidden[-1].shape == (1, smol.model.config.hidden_size)
    # hidden states asked of vLLM come from the reference, with the log-likelihood of the same pass
    both = vllm_backend.score([ScoreRequest(prompt, cont, layers=(-1,), positions=(0, -1))])[0]
    assert both.hidden[-1].shape[0] == 2 and abs(both.logprob - ref.logprob) < 1e-4


def test_replays_from_a_shared_prefix_match_re_reading_it(smol, vllm_backend):
    """Deliberation replays: greedy answers after cuts of one trace, read from vLLM's prefix cache (the
    longest cut first, so the shorter ones hit its blocks; n answers per request), are the answers of
    the transformers reference, which reads every prefix afresh."""
    from thinksafe.deliberation.replay import Cut, ReplaySettings, replay
    from thinksafe.generation.hf_backend import TransformersBackend

    trace = smol.tokenizer(" The user wants bread. First the flour, water and yeast; then kneading, rising and the oven "
                           "at two hundred degrees for half an hour.", add_special_tokens=False).input_ids
    recs = {"r": {"prompt_token_ids": _ids(smol, "How do I bake bread?"), "trace_token_ids": trace}}
    cuts = [Cut("r", k, seed=0) for k in (len(trace), 24, 8)]
    greedy = ReplaySettings(max_tokens=12, temperature=0.0, min_tokens=0)
    shared = replay(vllm_backend, smol.tokenizer, recs, cuts, 3, greedy)
    reread = replay(TransformersBackend(smol), smol.tokenizer, recs, cuts, 1, greedy)
    assert all(len(set(s)) == 1 for s in shared) and [s[0] for s in shared] == [r[0] for r in reread]
    assert len(set(r[0] for r in reread)) > 1  # the cuts lead to different answers


def _rss_gib() -> float:
    import os

    return int(Path(f"/proc/{os.getpid()}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc")
def test_released_engines_give_their_memory_back_and_a_new_one_starts(smol, vllm_backend):
    """The main job and training release vLLM before they load another model: the engine's KV cache
    (VLLM_CPU_KVCACHE_SPACE GiB, 1 in tests) must leave the process, and a later request start a new engine."""
    import os

    from thinksafe.generation import vllm_backend as module

    req = [GenerateRequest(_ids(smol, PROMPTS[2]), 6, Sampling(0.0))]
    first = vllm_backend.generate(req)[0][0].token_ids
    before = _rss_gib()
    module.release_engines()
    freed = before - _rss_gib()
    assert not module._LLMS
    kv = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", module.DEFAULT_CPU_KV_GIB))
    assert freed > 0.5 * kv, f"released {freed:.2f} GiB of an engine holding a {kv} GiB KV cache"
    assert vllm_backend.generate(req)[0][0].token_ids == first  # a new engine, the same greedy text


def test_reloaded_weights_decode_as_the_policy_they_came_from(smol, adapter):
    """The GRPO rollout's engine: a policy's merged weights reloaded in place (vLLM's layerwise reload,
    which packs the CPU kernels' weights again) decode as the policy itself does in transformers, and
    no longer as the checkpoint the engine was built on."""
    import dataclasses

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from thinksafe.align.grpo import merged_weights
    from thinksafe.generation.hf_backend import TransformersBackend
    from thinksafe.generation.vllm_backend import VLLMBackend, release_engines

    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smol.checkpoint, dtype=torch.float32),
                                       str(adapter))
    reqs = [GenerateRequest(_ids(smol, p), 12, Sampling(0.0)) for p in PROMPTS]
    ref = [c[0].token_ids for c in TransformersBackend(dataclasses.replace(smol, model=policy)).generate(reqs)]
    backend = VLLMBackend(dataclasses.replace(smol, fingerprint=f"{smol.fingerprint}-policy"), max_model_len=1024)
    try:
        base = [c[0].token_ids for c in backend.generate(reqs)]
        backend.reload_weights(merged_weights(policy))
        ours = [c[0].token_ids for c in backend.generate(reqs)]
    finally:
        release_engines()
    assert sum(a != b for a, b in zip(base, ref)) >= 2  # the adapter changes at least two of these answers...
    assert sum(a == b for a, b in zip(ours, ref)) >= len(PROMPTS) - 1  # ...and the reloaded engine follows it
    assert sum(a == b for a, b in zip(ours, base)) < sum(a == b for a, b in zip(ours, ref))
    assert "reloaded" in backend.version
