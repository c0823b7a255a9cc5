"""Evaluating a PEFT adapter: a tiny local safetensors model, a LoRA adapter trained a few steps,
then the eval runner with --adapter; the adapter changes outputs and enters the run identity."""

from __future__ import annotations

import json
import os

import pytest

from thinksafe.generation.config import GenerationConfig

pytestmark = pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")


@pytest.fixture(scope="module")
def tiny_dir_and_adapter(tmp_path_factory, tiny_loaded):
    import torch
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("tiny")
    model_dir, adapter_dir = root / "model", root / "adapter"
    tiny_loaded.model.save_pretrained(model_dir, safe_serialization=True)
    tiny_loaded.tokenizer.save_pretrained(model_dir)
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=5e-2)
    ids = tiny_loaded.tokenizer("I cannot help with that request.", return_tensors="pt").input_ids
    for _ in range(5):
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    changed = [n for n, p in peft_model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, "training must change the adapter parameters"
    peft_model.save_pretrained(adapter_dir)
    return model_dir, adapter_dir


def _job(out, model_dir, adapter=None):
    from thinksafe.evals.runner import EvalJob

    gen = GenerationConfig(thinking="prompted", thinking_budget=4, max_new_tokens=6, temperature=0.0, dtype="float32",
                           backend="transformers")
    return EvalJob(model=str(model_dir), suite="quick", out=str(out), adapter=str(adapter) if adapter else None,
                   judge="keyword", limit_scale=0.1, generation=gen, thinking_budget=4, max_new_tokens=6)  # GSM8K's too


def test_eval_with_adapter_differs_from_base_and_is_recorded(tiny_dir_and_adapter, tmp_path):
    from thinksafe.evals.runner import run_eval

    model_dir, adapter_dir = tiny_dir_and_adapter
    base = run_eval(_job(tmp_path / "base", model_dir), progress=False)
    tuned = run_eval(_job(tmp_path / "tuned", model_dir, adapter_dir), progress=False)
    assert base["adapter"] is None and tuned["adapter"] == str(adapter_dir)
    manifest = json.loads((tmp_path / "tuned" / "manifest.json").read_text())
    model = manifest["identity"]["model"]
    assert model["adapter_fingerprint"] and len(model["fingerprint"]) == 64
    assert model["backend"] == "transformers" and model["device"] in ("cpu", "cuda") and model["dtype"] == "float32"
    assert set(model["versions"]) == {"torch", "transformers"}
    records = [json.loads(x) for x in (tmp_path / "tuned" / "harmbench" / "records.jsonl").read_text().splitlines()]
    assert all(r["source_prompt"] and r["backend"] == "transformers" for r in records)
    read = lambda p: [json.loads(x)["text"] for x in p.read_text().splitlines()]  # noqa: E731
    assert read(tmp_path / "base" / "harmbench" / "records.jsonl") != read(tmp_path / "tuned" / "harmbench" / "records.jsonl")


def test_missing_adapter_is_a_clear_error(tiny_dir_and_adapter, tmp_path):
    from thinksafe.errors import ModelError
    from thinksafe.evals.runner import run_eval

    model_dir, _ = tiny_dir_and_adapter
    with pytest.raises(ModelError, match="not a PEFT adapter"):
        run_eval(_job(tmp_path / "x", model_dir, tmp_path / "no-adapter"), progress=False)


def test_deliberation_states_and_replays_run_with_the_adapter(tiny_dir_and_adapter, tmp_path, monkeypatch):
    """Base + adapter is analysed as base + adapter: its hidden states are not the base model's."""
    import numpy as np

    from thinksafe.deliberation.run import DeliberationConfig, DeliberationRun
    from thinksafe.deliberation.states import load_states
    from test_deliberation_run import _ParityJudge  # tests/ is on sys.path (pytest prepend mode)

    monkeypatch.setattr(DeliberationRun, "judge", lambda self, name, **options: _ParityJudge())
    model_dir, adapter_dir = tiny_dir_and_adapter
    gen = GenerationConfig(thinking="prompted", thinking_budget=6, max_new_tokens=4, temperature=0.0, dtype="float32",
                           backend="transformers")
    states = {}
    for name, adapter in (("base", None), ("tuned", str(adapter_dir))):
        cfg = DeliberationConfig(model=str(model_dir), adapter=adapter, limit=4, positions=4, generation=gen)
        states[name] = load_states(DeliberationRun(tmp_path / name, cfg).states(progress=False))
    common = sorted(set(states["base"].keys) & set(states["tuned"].keys))
    assert common
    a, b = states["base"].subset(common), states["tuned"].subset(common)
    assert not np.allclose(a.first_sampled_token, b.first_sampled_token)
