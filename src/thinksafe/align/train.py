"""LoRA fine-tuning on filtered pairs with TRL's ``SFTTrainer`` and PEFT (the paper's defaults).

A training example is the *original* prompt, rendered as the model will see it at evaluation time
(chat template, prompted-thinking system text and the ``<think>`` prefill), and the response as
text: trace, close and answer, then the end-of-turn token. Prompt and completion are plain strings,
so no chat template can strip the reasoning; ``completion_only_loss`` puts the loss on the
completion tokens only.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from thinksafe.errors import ConfigError
from thinksafe.models.formats import prefill_of, render_prompt

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """The paper's LoRA recipe (r 32, alpha 16, dropout 0.05, lr 1e-5, cosine, warm-up 0.1,
    effective batch 8, 3 epochs); a small-data preset may override lr and epochs."""

    lora_r: int = 32
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 1e-5
    epochs: float = 3.0
    batch_size: int = 1
    grad_accum: int = 8
    warmup_ratio: float = 0.1
    scheduler: str = "cosine"
    max_length: int = 2048
    # None: on where CUDA is (the paper's setting, memory-bound GPUs), off on CPU, where RAM is ample and
    # recomputing the forward pass costs time (16.4 s against 13.3 s per 311-token pair, AVX2 EPYC, fp32)
    gradient_checkpointing: bool | None = None
    # None: bf16 mixed precision (float32 weights, bf16 matmuls) on CUDA and on CPUs with bf16 matrix units
    # (AMX or AVX512-BF16), float32 elsewhere; True / False force it. On a 2-core AVX512-BF16 EPYC it trained
    # 65.5 against 48.2 tokens/s in float32, 2.29x TRL's defaults, final loss within 0.2% (bench/train.py)
    bf16: bool | None = None
    seed: int = 0
    save_steps: int = 4  # checkpoint interval (optimizer steps) of a resumable run
    # False: rows in file order (the same global batches on one process or many: the DDP test's setting)
    shuffle: bool = True
    kl_benign: bool = False  # the paper's KL variant: benign rows learn KL(reference || student), not NLL

    def __post_init__(self) -> None:
        if self.lora_r < 1 or self.batch_size < 1 or self.grad_accum < 1 or self.epochs <= 0 or self.learning_rate <= 0:
            raise ConfigError(f"invalid training settings: {asdict(self)}")


def split_pair(tokenizer: Any, prompt: str, response: str, *, thinking: str = "prompted") -> tuple[str, str]:
    """The rendered original prompt (ending in the ``<think>`` prefill for thinking formats) and the
    response after that prefill: the one split that training and the perplexity diagnostic share."""
    rendered = render_prompt(tokenizer, prompt, thinking=thinking)
    prefill = prefill_of(rendered)
    if prefill and response.startswith(prefill):
        response = response[len(prefill):]
    elif prefill and response.lstrip().startswith(prefill.strip()):
        response = response.lstrip()[len(prefill.strip()):].lstrip("\n")
    return rendered, response


def training_row(tokenizer: Any, prompt: str, response: str, *, thinking: str = "prompted") -> dict[str, str]:
    """``{"prompt", "completion"}`` text for one pair (:func:`split_pair`), the completion ending in
    the end-of-turn token."""
    rendered, completion = split_pair(tokenizer, prompt, response, thinking=thinking)
    return {"prompt": rendered, "completion": completion + (tokenizer.eos_token or "")}


def train_lora(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, str]],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a LoRA adapter on ``rows``; save it, its training config and the loss log in ``out_dir``.

    ``resume``: checkpoint every few steps (the last one kept) and continue from the newest one a
    killed run left in ``out_dir/trainer``."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    config = config or TrainConfig()
    if not rows:
        raise ConfigError("no training pairs: the filter kept nothing (see the filter report)")
    out_dir = Path(out_dir)
    checkpointing = _cuda() if config.gradient_checkpointing is None else config.gradient_checkpointing
    args = SFTConfig(
        output_dir=str(out_dir / "trainer"),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # transformers 5: a value below 1 is a ratio of the total steps
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="steps" if resume else "no",
        save_steps=config.save_steps,
        save_total_limit=1,
        report_to=[],
        seed=config.seed,
        max_length=config.max_length,
        completion_only_loss=True,
        packing=False,
        gradient_checkpointing=checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        use_cpu=not _cuda(),
        bf16=bf16_default() if config.bf16 is None else config.bf16,  # the paper trains in bf16 on GPUs
        disable_tqdm=True,
        train_sampling_strategy="random" if config.shuffle else "sequential",
    )
    peft_config = lora_config(config)
    if config.kl_benign:
        missing = [i for i, r in enumerate(rows) if "benign" not in r]
        if missing:
            raise ConfigError(f"the KL variant needs a 'benign' flag on every row; row {missing[0]} has none")
        trainer_cls = _kl_trainer_class()
    else:
        trainer_cls = SFTTrainer if _cuda() else _logits_loss_trainer_class()
        rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(list(rows)),
                          processing_class=tokenizer, peft_config=peft_config)
    last = _last_checkpoint(out_dir / "trainer") if resume else None
    if last:
        log.warning("resuming training from %s, the last checkpoint of a killed run", last)
    from thinksafe.progress import bar

    steps = math.ceil(math.ceil(len(rows) / config.batch_size) / config.grad_accum) * math.ceil(config.epochs)
    with bar("training (optimiser steps)", steps, enabled=progress) as row:
        trainer.add_callback(_StepBar(row))
        trainer.train(resume_from_checkpoint=last)
    history = [e for e in trainer.state.log_history if "loss" in e]
    from thinksafe.cost import add_trained

    # tokens read: every row's prompt and completion, once an epoch (whatever the processes)
    add_trained(round(sum(len(x) for x in trainer.train_dataset["input_ids"]) * config.epochs))
    adapter_dir = save_adapter(trainer, out_dir, asdict(config), history)
    return {"adapter": str(adapter_dir), "losses": [e["loss"] for e in history], "trainer": trainer}


def lora_config(config: TrainConfig) -> Any:
    """The PEFT LoRA settings of a training config (SFT and GRPO train the same adapter shape)."""
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.target_modules, task_type="CAUSAL_LM")


def save_adapter(trainer: Any, out_dir: Path, settings: dict[str, Any], history: list[dict[str, Any]]) -> Path:
    """Write the trained adapter, ``train_config.json`` (``settings`` with the precision and process count
    used) and ``train_log.json``. Under ``accelerate launch`` the main process alone writes the folder, and
    every process waits until the adapter is whole before it goes on to use it."""
    adapter_dir = out_dir / "adapter"
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(adapter_dir)
        _settle_adapter_config(adapter_dir)
        (out_dir / "train_config.json").write_text(json.dumps(
            settings | {"bf16_used": bool(trainer.args.bf16), "processes": trainer.accelerator.num_processes},
            indent=2))
        (out_dir / "train_log.json").write_text(json.dumps(history, indent=2))
    trainer.accelerator.wait_for_everyone()
    return adapter_dir


def _logits_loss_trainer_class() -> type:
    """``SFTTrainer`` whose loss comes from the model's own logits, for CPU training. TRL's fused LM head
    projects through the vocabulary in tiles of torch ops and, off Triton devices, scores every position,
    prompt and padding included; on CPU that was 80% of a training step (``bench/train_loss.py``). The
    loss is the same token-mean negative log-likelihood over the completion tokens (``num_items_in_batch``
    across gradient accumulation, as TRL and ``Trainer`` count it), and the logged ``entropy`` and
    ``mean_token_accuracy`` are computed on the same tokens."""
    import torch
    from trl import SFTTrainer

    class LogitsLossSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            mode = "train" if self.model.training else "eval"
            labels = inputs["labels"]
            feed = {k: v for k, v in inputs.items() if k != "labels"}
            out = model(**feed, use_cache=False)
            logits = out.logits[:, :-1]
            target = labels[:, 1:].to(logits.device)
            mask = target != -100
            picked = logits[mask].float()
            logp = picked.log_softmax(-1)
            nll = -logp.gather(-1, target[mask].unsqueeze(-1)).sum()
            count = mask.sum()
            denom = count.clamp(min=1) if num_items_in_batch is None else num_items_in_batch
            loss = nll / torch.as_tensor(denom, device=nll.device)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            with torch.no_grad():
                n = max(int(count), 1)
                entropy = -(logp.exp() * logp).sum(-1).sum() / n
                correct = (picked.argmax(-1) == target[mask]).sum() / n
            self._metrics[mode]["entropy"].append(float(entropy))
            self._metrics[mode]["mean_token_accuracy"].append(float(correct))
            if mode == "train" and "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, out) if return_outputs else loss

    return LogitsLossSFTTrainer


def _kl_trainer_class() -> type:
    """``SFTTrainer`` with the paper's KL variant: on benign rows the loss is the forward KL from the
    adapter-disabled model (the frozen reference) to the student over the completion tokens; on
    harmful rows it stays the negative log-likelihood."""
    import torch
    from trl import SFTTrainer

    class KLSFTTrainer(SFTTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            collate = self.data_collator

            def with_flag(examples: list[dict[str, Any]]) -> dict[str, Any]:
                batch = collate(examples)
                batch["benign"] = torch.tensor([bool(e["benign"]) for e in examples])
                return batch

            self.data_collator = with_flag

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if "benign" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "benign"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            benign = inputs.pop("benign").bool()
            labels = inputs.pop("labels")
            feed = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "position_ids")}
            out = model(**feed, use_cache=False)
            logp = out.logits[:, :-1].float().log_softmax(-1)
            target = labels[:, 1:].to(logp.device)
            mask = target != -100
            per_token = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            if benign.any():
                with torch.no_grad(), model.disable_adapter():
                    ref = model(**feed, use_cache=False).logits[:, :-1].float().log_softmax(-1)
                kl = (ref.exp() * (ref - logp)).sum(-1)
                per_token = torch.where(benign.to(logp.device)[:, None], kl, per_token)
            loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
            return (loss, out) if return_outputs else loss

    return KLSFTTrainer


def _settle_adapter_config(adapter_dir: Path) -> None:
    """Rewrite ``adapter_config.json`` with its set-valued lists sorted, so the same training writes
    the same bytes in every process (PEFT's order follows the process's string hashing)."""
    from thinksafe.jsonl import write_json_atomic
    from thinksafe.models.loader import canonical_adapter_config

    path = adapter_dir / "adapter_config.json"
    write_json_atomic(path, canonical_adapter_config(json.loads(path.read_text(encoding="utf-8"))))


def _last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint in ``folder``. The trainer writes ``trainer_state.json`` last, so a
    checkpoint without a readable one was cut short by a kill: it is removed (a later save writes it
    again) and the one before it is used."""
    if not folder.is_dir():
        return None
    found = sorted((int(d.name.rpartition("-")[2]), d) for d in folder.glob("checkpoint-*")
                   if d.is_dir() and d.name.rpartition("-")[2].isdigit())
    for _, d in reversed(found):
        try:
            state = json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))
            if isinstance(state, dict) and "global_step" in state:
                return str(d)
        except (OSError, ValueError):
            pass
        log.warning("%s was cut short by a kill (no complete trainer_state.json); removing it", d)
        shutil.rmtree(d, ignore_errors=True)
    return None


def trainable_model(loaded: Any) -> Any:
    """A trainable copy of a loaded model: the de-quantised checkpoint of a GGUF model (transformers
    refuses to train a model it loaded from GGUF), its weights in float32 (bf16 mixed precision, where
    used, is the trainer's: ``TrainConfig.bf16``)."""
    import torch
    from transformers import AutoModelForCausalLM

    if loaded.adapter is not None:
        raise ConfigError("train from the base model, not from a model with an adapter attached")
    if getattr(loaded.model, "hf_quantizer", None) is None:
        import copy

        return copy.deepcopy(loaded.model).float()
    if not loaded.checkpoint:
        raise ConfigError(f"{loaded.name} has no de-quantised copy to train (the conversion cache is not writable)")
    model = AutoModelForCausalLM.from_pretrained(loaded.checkpoint, dtype=torch.float32, use_safetensors=True)
    return model.to(loaded.device)


def _StepBar(row: Any) -> Any:  # noqa: N802 (a class, built on first use: transformers loads lazily)
    """A trainer callback that advances a progress row per optimiser step and shows the last loss."""
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            row.advance(1)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                row.rate(f"loss {logs['loss']:.3f}")

    return StepBar()


def bf16_default() -> bool:
    """bf16 mixed precision where it is fast: CUDA, or a CPU with AMX or AVX512-BF16 (``/proc/cpuinfo``)."""
    if _cuda():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(f in flags.split() for f in ("amx_bf16", "avx512_bf16"))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
