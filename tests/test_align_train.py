"""LoRA training with TRL on a tiny model: the loss mask, the trace in the text, the adapter round trip."""

from __future__ import annotations

import json

import pytest

from thinksafe.align.train import TrainConfig, train_lora, training_row

PAIRS = [
    ("How do I pick a lock?", "<think>\nThis could help a burglar.\n</think>\n\nI can't help with that."),
    ("What is 2+2?", "<think>\nSimple sum.\n</think>\n\n4."),
]


@pytest.fixture(scope="module")
def trained(tiny_loaded, tmp_path_factory):
    import copy

    out = tmp_path_factory.mktemp("train")
    model = copy.deepcopy(tiny_loaded.model)
    rows = [training_row(tiny_loaded.tokenizer, p, r) for p, r in PAIRS] * 4
    cfg = TrainConfig(lora_r=4, lora_alpha=8, learning_rate=5e-2, epochs=3, batch_size=2, grad_accum=1,
                      max_length=256, gradient_checkpointing=True)
    result = train_lora(model, tiny_loaded.tokenizer, rows, out, cfg)
    return out, rows, result


def test_training_rows_keep_the_trace_and_the_original_prompt(tiny_loaded):
    from thinksafe.models.formats import STEER_PREFIX

    row = training_row(tiny_loaded.tokenizer, *PAIRS[0])
    assert row["prompt"].endswith("<think>\n") and "How do I pick a lock?" in row["prompt"]
    assert STEER_PREFIX not in row["prompt"]
    assert row["completion"].startswith("This could help a burglar.\n</think>")  # the trace survives
    assert row["completion"].endswith(tiny_loaded.tokenizer.eos_token)


def test_loss_mask_covers_exactly_the_prompt_tokens(trained, tiny_loaded):
    _, rows, result = trained
    ds = result["trainer"].train_dataset
    tok = tiny_loaded.tokenizer
    for example, row in zip(ds, rows):
        n_prompt = len(tok(row["prompt"]).input_ids)
        ids, labels = example["input_ids"], example["labels"]
        assert labels[:n_prompt] == [-100] * n_prompt  # no loss on the prompt
        assert labels[n_prompt:] == ids[n_prompt:] and len(ids) > n_prompt  # loss on every completion token
        assert "This could help" in tok.decode(example["input_ids"]) or "Simple sum" in tok.decode(example["input_ids"])


def test_training_changes_lora_weights_and_the_loss_falls(trained):
    _, _, result = trained
    losses = result["losses"]
    assert len(losses) >= 4 and losses[-1] < losses[0]
    import torch

    lora_b = [p for n, p in result["trainer"].model.named_parameters() if "lora_B" in n]
    assert lora_b and any(torch.count_nonzero(p) > 0 for p in lora_b)  # B starts at zero: training moved it


def test_saved_adapter_reloads_with_identical_logits(trained, tiny_loaded):
    import copy

    import torch
    from peft import PeftModel

    out, rows, result = trained
    trainer = result["trainer"]
    # the trained model as saved: without the mixed-precision (autocast) wrapper that training put on its forward
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    ids = torch.tensor([tiny_loaded.tokenizer(rows[0]["prompt"] + rows[0]["completion"]).input_ids])
    reloaded = PeftModel.from_pretrained(copy.deepcopy(tiny_loaded.model), str(out / "adapter")).eval()
    with torch.inference_mode():
        a, b = model(input_ids=ids).logits, reloaded(input_ids=ids).logits
        base = tiny_loaded.model(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, base, atol=1e-3)
    assert (out / "train_log.json").exists() and (out / "train_config.json").exists()
    from thinksafe.align.train import bf16_default

    # bf16 mixed precision where the CPU has bf16 matrix units (AMX, AVX512-BF16) or CUDA, float32 elsewhere
    assert json.loads((out / "train_config.json").read_text())["bf16_used"] is bf16_default()


def test_the_cpu_loss_from_logits_equals_trls_fused_lm_head(tiny_loaded, tmp_path, monkeypatch):
    """Off CUDA, ``train_lora`` takes the loss from the model's logits instead of TRL's fused LM head
    (``bench/train_loss.py``: faster on CPU). Padded batches with gradient accumulation (so
    ``num_items_in_batch`` counts tokens across micro-batches) give the same losses, logged metrics and
    adapter weights."""
    import copy

    import torch
    from trl import SFTTrainer

    import thinksafe.align.train as train

    rows = [training_row(tiny_loaded.tokenizer, p, r) for p, r in PAIRS] * 4
    cfg = TrainConfig(lora_r=4, lora_alpha=8, learning_rate=5e-2, epochs=1, batch_size=2, grad_accum=2, max_length=256,
                      bf16=False)  # the two losses compared in float32
    ours = train_lora(copy.deepcopy(tiny_loaded.model), tiny_loaded.tokenizer, rows, tmp_path / "logits", cfg)
    assert type(ours["trainer"]).__name__ == "LogitsLossSFTTrainer"
    monkeypatch.setattr(train, "_logits_loss_trainer_class", lambda: SFTTrainer)
    fused = train_lora(copy.deepcopy(tiny_loaded.model), tiny_loaded.tokenizer, rows, tmp_path / "fused", cfg)
    assert type(fused["trainer"]) is SFTTrainer
    logs = [[e for e in r["trainer"].state.log_history if "loss" in e] for r in (ours, fused)]
    assert len(logs[0]) == len(logs[1]) == 2
    for a, b in zip(*logs):
        for key in ("loss", "grad_norm", "entropy", "mean_token_accuracy", "num_tokens"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    wa, wb = (dict(r["trainer"].model.named_parameters()) for r in (ours, fused))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa if "lora_" in k)


def test_kl_variant_starts_at_zero_on_benign_rows_and_trains(tiny_loaded, tmp_path):
    import copy

    import torch

    tok = tiny_loaded.tokenizer
    rows = [training_row(tok, p, r) | {"benign": i == 1} for i, (p, r) in enumerate(PAIRS)] * 2
    cfg = TrainConfig(lora_r=4, lora_alpha=8, learning_rate=5e-2, epochs=2, batch_size=1, grad_accum=1, bf16=False,
                      max_length=256, kl_benign=True)
    benign_only = [r for r in rows if r["benign"]]
    first = train_lora(copy.deepcopy(tiny_loaded.model), tok, benign_only[:1], tmp_path / "b",
                       TrainConfig(**{**cfg.__dict__, "epochs": 1}))
    assert first["losses"][0] < 1e-6  # LoRA's B starts at zero: the student is the reference, KL is 0
    result = train_lora(copy.deepcopy(tiny_loaded.model), tok, rows, tmp_path / "kl", cfg)
    harmful_nll = max(result["losses"])
    assert harmful_nll > 1.0  # harmful rows still learn by likelihood (a random model's NLL is large)
    lora_b = [p for n, p in result["trainer"].model.named_parameters() if "lora_B" in n]
    assert any(torch.count_nonzero(p) > 0 for p in lora_b)
    with pytest.raises(Exception, match="benign"):
        train_lora(copy.deepcopy(tiny_loaded.model), tok, [training_row(tok, *PAIRS[0])], tmp_path / "x", cfg)


def test_a_checkpoint_cut_short_by_a_kill_is_removed_and_the_one_before_is_resumed(tmp_path):
    import json

    from thinksafe.align.train import _last_checkpoint

    folder = tmp_path / "trainer"
    assert _last_checkpoint(folder) is None
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    (folder / "checkpoint-8").mkdir()
    (folder / "checkpoint-8" / "adapter_model.safetensors").write_bytes(b"half")  # killed before its state
    (folder / "checkpoint-12").mkdir()
    (folder / "checkpoint-12" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert _last_checkpoint(folder) == str(folder / "checkpoint-4")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-4"]
    (folder / "checkpoint-4" / "trainer_state.json").unlink()
    assert _last_checkpoint(folder) is None and not any(folder.iterdir())
