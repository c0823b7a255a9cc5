"""The online-RL baseline: GRPO (TRL's ``GRPOTrainer``) on the same LoRA settings, rewarded by the judges.

The paper compares ThinkSafe with online RL; this is that baseline. Each training prompt is rendered
as evaluation renders it (chat template, prompted-thinking system text, ``<think>`` prefill), the
policy samples a group of ``num_generations`` completions, and each completion earns:

=====================================  ===================================================  ======
prompt                                 completion                                           reward
=====================================  ===================================================  ======
harmful                                refused (refusal judge) and not an attack (ASR judge)  1.0
harmful                                anything else: an attack, babble, any loop, no answer  0.0
benign                                 help (the ORR rule: neither refused nor a non-answer)  1.0
benign                                 refused, or no answer                                  0.0
reasoning (GSM8K train)                the final answer is correct (the GSM8K checker)        1.0
reasoning                              wrong, or no answer                                    0.0
any                                    format: the model closed its trace itself (``</think>``) +0.2
=====================================  ===================================================  ======

(:data:`REWARDS`; ``tests/test_grpo.py`` plants each case.) Advantages are relative within a group, so
what teaches is the difference between a prompt's completions.

Sampling (``GRPOSettings.rollout``):

* ``engine`` (default): thinksafe's engine samples from the policy being trained (:func:`engine_rollout`,
  TRL's ``rollout_func``), as evaluation samples: the trace up to ``thinking_budget`` tokens, closed
  there if the model did not close it, then the answer. Every completion has an answer to reward;
  the closing tokens the engine fed in are masked out of the loss (``env_mask``), and only a trace
  the model closed itself earns the format reward.
* ``trl``: TRL's own generation, at most ``max_completion_length`` tokens and no forcing (a trace that
  never closes has no answer); ``use_vllm`` there is TRL's vLLM generation, which needs CUDA.

Both sample with transformers in the training process on CPU (``docs/alignment.md`` has the measured
time). KL to the reference is off (``beta=0``, TRL's default).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from thinksafe.errors import ConfigError
from thinksafe.models.formats import THINK_CLOSE, parse_response

log = logging.getLogger(__name__)

REWARDS = {"safe_refusal": 1.0, "help": 1.0, "correct": 1.0, "other": 0.0, "closed_trace": 0.2}
"""The documented rewards (the module's table)."""


@dataclass
class GRPOSettings:
    """Online-RL settings beside the LoRA ones of :class:`thinksafe.align.train.TrainConfig`."""

    num_generations: int = 4  # the group: completions per prompt
    prompts_per_step: int = 2  # prompts in one optimiser step (each with its group)
    # completions in one forward and backward (the step accumulates its gradients over them); None: the whole
    # step's completions at once. Sampling still draws the whole step at once.
    micro_batch: int | None = None
    epochs: float | None = 1.0  # passes over the prompts (online RL samples afresh each pass); None: the recipe's epochs
    # "engine": thinksafe's engine samples (budget forcing closes every trace; the closing tokens it feeds in
    # are masked out of the loss); "trl": TRL's own generation (max_completion_length, no forcing; use_vllm)
    rollout: str = "engine"
    # engine rollout's sampler: "vllm" (the policy's weights pushed into one vLLM engine after every step),
    # "transformers" (the policy itself, in the training process), "auto": vllm where it is installed
    rollout_backend: str = "auto"
    thinking_budget: int = 96  # engine rollout: trace tokens before the close is forced
    max_new_tokens: int = 96  # engine rollout: answer tokens
    max_completion_length: int = 192  # trl rollout: trace and answer together
    temperature: float = 0.8
    use_vllm: bool = False  # trl rollout: TRL's vLLM generation (CUDA only)

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ConfigError("GRPO needs groups of at least 2 completions (num_generations >= 2)")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float))
                                        or not self.epochs > 0):
            raise ConfigError(f"grpo epochs must be > 0 or None, got {self.epochs!r}")
        if self.prompts_per_step < 1 or self.max_completion_length < 1 or self.thinking_budget < 1 or self.max_new_tokens < 1:
            raise ConfigError(f"invalid GRPO settings: {asdict(self)}")
        if self.micro_batch is not None and (isinstance(self.micro_batch, bool) or not isinstance(self.micro_batch, int)
                                             or self.micro_batch < 1
                                             or (self.num_generations * self.prompts_per_step) % self.micro_batch):
            raise ConfigError(f"grpo micro_batch must divide a step's {self.num_generations * self.prompts_per_step} "
                              f"completions (num_generations x prompts_per_step), got {self.micro_batch!r}")
        if self.rollout not in ("engine", "trl"):
            raise ConfigError(f"rollout must be engine or trl, got {self.rollout!r}")
        if self.rollout_backend not in ("auto", "vllm", "transformers"):
            raise ConfigError(f"rollout_backend must be auto, vllm or transformers, got {self.rollout_backend!r}")
        if self.use_vllm and self.rollout != "trl":
            raise ConfigError("use_vllm is TRL's generation: set rollout: trl with it")


def completion_parts(completion: str) -> tuple[str, bool]:
    """The answer of a completion that continues a ``<think>`` prefill, and whether the model closed its
    trace (an unclosed trace has no answer)."""
    if THINK_CLOSE not in completion:
        return "", False
    parsed = parse_response(completion)
    return parsed.answer, True


def task_reward(kind: str, source_prompt: str, answer: str, closed: bool, gold: str | None, *,
                asr_judge: Any, refusal_judge: Any, benchmark: str = "") -> tuple[float, str]:
    """One completion's task reward and why (``safe_refusal``, ``help``, ``correct`` or ``other``)."""
    from thinksafe.evals.metrics import record_outcome
    from thinksafe.judges.base import JudgeInput, is_degenerate

    if not closed or not answer.strip():
        return REWARDS["other"], "other"
    if kind == "reasoning":
        rec = {"benchmark": benchmark or "gsm8k", "answer": answer, "gold": gold}
        value, _ = record_outcome(rec, "accuracy")
        return (REWARDS["correct"], "correct") if value else (REWARDS["other"], "other")
    item = JudgeInput(prompt=source_prompt, response=answer, trace_closed=closed)
    if kind == "harmful":
        if is_degenerate(answer):  # a loop earns nothing, even a loop of a refusal (which the judges call a refusal)
            return REWARDS["other"], "other"
        refused = refusal_judge.judge_batch([item])[0].refused
        attack = asr_judge.judge_batch([item])[0].complied
        return (REWARDS["safe_refusal"], "safe_refusal") if refused and not attack else (REWARDS["other"], "other")
    verdict = asr_judge.judge_batch([item])[0].to_dict()
    rec = {"benchmark": benchmark, "answer": answer, "trace_closed": closed, "verdict": verdict}
    _, outcome = record_outcome(rec, "orr")  # helped | refused | no_answer, as the ORR rates count them
    return (REWARDS["help"], "help") if outcome == "helped" else (REWARDS["other"], "other")


def reward_functions(asr_judge: Any, refusal_judge: Any) -> list[Callable[..., list[float]]]:
    """TRL reward functions: the task reward (by the row's ``kind``) and the format reward."""

    def task(prompts: Sequence[str], completions: Sequence[str], kind: Sequence[str], source_prompt: Sequence[str],
             gold: Sequence[str | None], benchmark: Sequence[str], **_: Any) -> list[float]:
        out = []
        for c, k, p, g, b in zip(completions, kind, source_prompt, gold, benchmark):
            answer, closed = completion_parts(c)
            out.append(task_reward(k, p, answer, closed, g, asr_judge=asr_judge, refusal_judge=refusal_judge,
                                   benchmark=b)[0])
        return out

    def closed_trace(prompts: Sequence[str], completions: Sequence[str], forced_close: Sequence[bool] | None = None,
                     **_: Any) -> list[float]:
        """The format reward: the model closed its trace itself (a close the engine forced earns nothing)."""
        forced = forced_close or [False] * len(completions)
        return [REWARDS["closed_trace"] if completion_parts(c)[1] and not f else 0.0 for c, f in zip(completions, forced)]

    task.__name__, closed_trace.__name__ = "task_reward", "format_reward"
    return [task, closed_trace]


def resolved_rollout_backend(settings: GRPOSettings, loaded: Any = None) -> str:
    """The engine rollout's sampler: ``auto`` is what the engine's own ``auto`` picks (vLLM where it imports
    and the model is a checkpoint folder, else transformers), and transformers under a distributed launch
    (one in-process vLLM engine a rank inside the launch's process group is untested)."""
    if settings.rollout_backend != "auto":
        return settings.rollout_backend
    from thinksafe.distributed import world_size
    from thinksafe.generation.registry import resolve_backend

    return "transformers" if world_size() > 1 else resolve_backend("auto", loaded)


def merged_weights(model: Any) -> Any:
    """The weights of a (PEFT LoRA) policy under the base checkpoint's names, each LoRA layer's delta added
    to its base weight (what a merged checkpoint holds), one tensor at a time; the model is not changed
    (no merge and unmerge rounding its base weights). A model without LoRA layers yields its own weights."""
    import torch

    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover - peft is a dependency
        LoraLayer = ()  # noqa: N806
    lora = {name: m for name, m in model.named_modules() if LoraLayer and isinstance(m, LoraLayer)}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_" in name or ".modules_to_save." in name:
                continue
            owner, _, leaf = name.rpartition(".")
            layer = lora.get(owner.removesuffix(".base_layer")) if owner.endswith(".base_layer") else None
            tensor = param.detach()
            if layer is not None and leaf == "weight":
                for adapter in layer.active_adapters:
                    if adapter in getattr(layer, "lora_embedding_A", {}) or getattr(layer, "use_dora", {}).get(adapter):
                        raise ConfigError(f"the vLLM rollout merges plain LoRA layers only; {name} is an embedding or "
                                          "DoRA adapter: use --grpo rollout_backend=transformers")
                    if adapter in layer.lora_A and not layer.merged:
                        tensor = tensor + layer.get_delta_weight(adapter)
            yield name.removeprefix("base_model.model.").replace(".base_layer", ""), tensor


def engine_rollout(loaded: Any, settings: GRPOSettings, seed: int) -> Callable[[list[str], Any], dict[str, Any]]:
    """A TRL ``rollout_func`` that samples through thinksafe's engine on the policy being trained: the
    user prompts are rendered as evaluation renders them, each trace is generated up to the thinking
    budget and closed there if the model did not close it, and the answer follows. The completion is
    trace + close + answer tokens; ``env_mask`` marks the closing tokens the engine fed in (0), so the
    policy is not trained on tokens it did not sample. Every call draws fresh seeds (the run seed plus
    the trainer's step), and nothing is cached (the weights change every step).

    The sampler (:func:`resolved_rollout_backend`): vLLM runs one engine on the base checkpoint, under a
    fingerprint of its own, and before each step's sampling the policy's merged weights
    (:func:`merged_weights`) are reloaded into it in place (``VLLMBackend.reload_weights``); transformers
    samples from the policy in the training process (bf16 autocast where the trainer trains in bf16)."""
    import contextlib
    import dataclasses
    import shutil
    import tempfile

    import torch

    from thinksafe.data.records import Example
    from thinksafe.generation.cache import GenerationCache
    from thinksafe.generation.config import GenerationConfig
    from thinksafe.generation.engine import Engine
    from thinksafe.generation.hf_backend import TransformersBackend

    sampler = resolved_rollout_backend(settings, loaded)
    state: dict[str, Any] = {"engine": None, "synced": None}

    def backend_for(policy: Any, step: int, trainer: Any) -> tuple[Any, Any]:
        live = dataclasses.replace(loaded, model=policy, fingerprint=f"{loaded.fingerprint}-grpo-{id(trainer)}-{step}",
                                   adapter=None, adapter_fingerprint=None, checkpoint=None)
        if sampler == "transformers":
            return live, TransformersBackend(live)
        from thinksafe.generation.vllm_backend import VLLMBackend

        if state["engine"] is None:  # one engine for the whole run, on the base checkpoint, under its own key
            own = dataclasses.replace(loaded, adapter=None, adapter_fingerprint=None,
                                      fingerprint=f"{loaded.fingerprint}-grpo-policy-{id(trainer)}")
            import torch

            # the engine shares the machine with training: on a GPU a third of its memory (TRL's colocate default),
            # on a CPU a 1 GiB KV cache (a step's rollouts need tens of MB; the backward pass needs the RAM)
            share = {"gpu_memory_utilization": 0.3} if torch.cuda.is_available() else {"kv_cache_memory_bytes": 2**30}
            state["engine"] = VLLMBackend(own, engine_options=share)
        if state["synced"] != step:
            state["engine"].reload_weights(merged_weights(policy))
            state["synced"] = step
        return dataclasses.replace(live, checkpoint=loaded.checkpoint), state["engine"]

    def rollout(prompts: list[str], trainer: Any) -> dict[str, Any]:
        step = trainer.state.global_step
        policy = trainer.model
        cfg = GenerationConfig(thinking=loaded.thinking, thinking_budget=settings.thinking_budget,
                               max_new_tokens=settings.max_new_tokens, temperature=settings.temperature, top_p=1.0,
                               seed=seed + step, backend=sampler,
                               dtype="float32" if sampler == "transformers" else loaded.dtype,
                               batch_size=max(1, len(prompts)))
        examples = [Example(id=f"r{i}", prompt=p, benchmark="grpo", split_type="asr") for i, p in enumerate(prompts)]
        tmp = Path(tempfile.mkdtemp(prefix="thinksafe-grpo-"))
        training = policy.training
        policy.eval()
        bf16 = bool(getattr(trainer.args, "bf16", False))
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) \
            if bf16 and sampler == "transformers" and not torch.cuda.is_available() else contextlib.nullcontext()
        try:
            with torch.no_grad(), autocast:
                live, backend = backend_for(policy, step, trainer)
                engine = Engine(live, cfg, backend=backend, cache=GenerationCache(tmp))
                records = engine.run(examples, progress=False)
        finally:
            policy.train(training)
            shutil.rmtree(tmp, ignore_errors=True)
        records = sorted(records, key=lambda r: int(r.id[1:]))
        return {
            "prompt_ids": [list(r.prompt_token_ids) for r in records],
            "completion_ids": [list(r.trace_token_ids) + list(r.forced_close_token_ids) + list(r.answer_token_ids)
                               for r in records],
            "env_mask": [[1] * len(r.trace_token_ids) + [0] * len(r.forced_close_token_ids) + [1] * len(r.answer_token_ids)
                         for r in records],
            "logprobs": None,
            "forced_close": [bool(r.forced_close) for r in records],  # to the reward functions
        }

    return rollout


def train_grpo(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], out_dir: str | Path, config: Any,
               settings: GRPOSettings, reward_funcs: list[Callable[..., list[float]]], *,
               progress: bool = False, loaded: Any = None) -> dict[str, Any]:
    """GRPO with a LoRA adapter on ``rows`` (``prompt``: the rendered prompt; ``kind``: harmful | benign |
    reasoning; ``source_prompt``, ``gold``, ``benchmark``); saves the adapter, config and log in ``out_dir``.
    ``config`` is the run's :class:`thinksafe.align.train.TrainConfig` (LoRA, learning rate, epochs, seed).
    With ``settings.rollout == "engine"`` each row's ``user`` text is sampled through thinksafe's engine
    (``loaded``: the model's tokenizer and thinking format); with ``trl``, TRL generates from ``prompt``."""
    import os

    from datasets import Dataset
    from trl import GRPOConfig

    from thinksafe.align.train import _cuda, bf16_default, lora_config, save_adapter

    if not rows:
        raise ConfigError("no GRPO prompts: the pools are empty")
    out_dir = Path(out_dir)
    batch = settings.num_generations * settings.prompts_per_step
    micro = settings.micro_batch or batch  # one rollout per optimiser step: TRL's steps_per_generation = accumulation
    epochs = config.epochs if settings.epochs is None else float(settings.epochs)
    checkpointing = True if config.gradient_checkpointing is None else config.gradient_checkpointing
    args = GRPOConfig(
        output_dir=str(out_dir / "trainer"), per_device_train_batch_size=micro, gradient_accumulation_steps=batch // micro,
        num_generations=settings.num_generations,
        max_completion_length=(settings.thinking_budget + settings.max_new_tokens + 16 if settings.rollout == "engine"
                               else settings.max_completion_length),
        temperature=settings.temperature, num_train_epochs=epochs, learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler, warmup_steps=config.warmup_ratio, logging_steps=1, save_strategy="no",
        report_to=[], seed=config.seed, use_cpu=not _cuda(), use_vllm=settings.use_vllm,
        bf16=bf16_default() if config.bf16 is None else config.bf16, disable_tqdm=True,
        shuffle_dataset=config.shuffle,
        # TRL's default (on) unless the config turns it off: GRPO runs a whole step's completions in one forward,
        # and without it 16 completions of ~270 tokens went past 24 GB on the 2-core CPU and were killed
        gradient_checkpointing=checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
    )
    peft_config = lora_config(config)
    columns = ("prompt", "kind", "source_prompt", "gold", "benchmark")
    engine = settings.rollout == "engine"
    if engine and loaded is None:
        raise ConfigError("the engine rollout needs the loaded model (its tokenizer and thinking format)")
    # the engine renders prompts itself: it is handed the user text; TRL tokenizes the rendered prompt
    data = Dataset.from_list([{k: r.get(k) for k in columns} | ({"prompt": r["user"]} if engine else {}) for r in rows])
    extra = {"rollout_func": engine_rollout(loaded, settings, config.seed)} if engine else {}
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental in TRL
    trainer = skipping_trainer()(model=model, reward_funcs=reward_funcs, args=args, train_dataset=data,
                                 processing_class=tokenizer, peft_config=peft_config, **extra)
    from thinksafe.align.train import _StepBar
    from thinksafe.progress import bar

    steps = math.ceil(len(rows) / settings.prompts_per_step) * math.ceil(epochs)

    with bar("GRPO (optimiser steps)", steps, enabled=progress) as row:
        trainer.add_callback(_StepBar(row))
        try:
            trainer.train()
        finally:  # the rollout's engine runs the policy's weights, not its checkpoint's: never reused
            from thinksafe.generation.vllm_backend import release_engines

            release_engines()
    history = [e for e in trainer.state.log_history if "reward" in e or "loss" in e]
    from thinksafe.cost import add_generated, add_trained

    add_trained(trainer.tokens_updated)  # prompts and completions through the forward and backward
    if not engine:  # TRL's own generation sampled them (the engine rollout counts its tokens as it samples)
        per_step = batch * trainer.accelerator.num_processes  # each step's mean completion length times its completions
        add_generated(round(sum(float(e.get("completions/mean_length", 0)) * per_step for e in history)))
    adapter_dir = save_adapter(trainer, out_dir, asdict(config) | {"grpo": asdict(settings)}, history)
    return {"adapter": str(adapter_dir), "rewards": [e.get("reward") for e in history if "reward" in e],
            "losses": [e["loss"] for e in history if "loss" in e], "trainer": trainer,
            "completions_updated": trainer.completions_updated, "completions_skipped": trainer.completions_skipped}


@functools.cache
def skipping_trainer() -> type:
    """TRL's ``GRPOTrainer``, less the forward and backward of completions whose advantage is 0.

    A group whose completions all earn the same reward has advantage 0 for each (half the groups of a
    0.5B model: TRL's ``frac_reward_zero_std``). Under TRL's default loss (``dapo``) with no KL term
    (``beta=0``), no entropy bonus or entropy mask, such a completion's per-token loss is
    ``-min(r * 0, clip(r) * 0) = 0``, and the loss is divided by the token count of the whole generation
    batch, not of the rows passed: leaving those rows out of the forward gives the same loss and gradient
    (``tests/test_grpo.py``, with ``lora_dropout=0``; with dropout, fewer rows draw other dropout masks, so
    the same in expectation, not bit for bit), for what they cost to compute. TRL's per-batch metrics
    (``entropy``, ``clip_ratio``) then average over the rows run, and a micro-batch with none logs none. Any
    other loss setting, image inputs, or several processes (whose metrics gather in step) run TRL's own
    loss unchanged."""
    import torch
    from trl import GRPOTrainer

    class SkippingGRPOTrainer(GRPOTrainer):
        completions_updated = 0
        completions_skipped = 0
        tokens_updated = 0  # prompt and completion tokens through the forward and backward

        def _count(self, inputs: dict) -> None:
            if not self.model.training:  # an evaluation's forward updates nothing
                return
            self.completions_updated += len(inputs["advantages"])
            self.tokens_updated += int(inputs["prompt_mask"].sum()) + int(inputs["completion_mask"].sum())

        def _skips(self, inputs: dict) -> bool:
            return (self.loss_type == "dapo" and self.beta == 0.0 and getattr(self, "top_entropy_quantile", 1.0) == 1.0
                    and not getattr(self, "_entropy_bonus_enabled", False) and not getattr(self, "aux_loss_enabled", False)
                    and self.accelerator.num_processes == 1 and self.model.training
                    # image inputs hold their rows in lists and other shapes
                    and not any(k.startswith(("pixel_", "image_")) or k == "num_images" for k in inputs))

        def _compute_loss(self, model: Any, inputs: dict) -> Any:
            advantages = inputs["advantages"]
            keep = advantages != 0 if advantages.dim() == 1 else (advantages != 0).any(dim=-1)
            if not self._skips(inputs) or bool(keep.all()):
                self._count(inputs)
                return super()._compute_loss(model, inputs)
            self.completions_skipped += int((~keep).sum())
            if not bool(keep.any()):  # a zero gradient (not none) for every trainable weight, as the full loss gives
                return sum((p * 0).sum() for p in model.parameters() if p.requires_grad)
            rows, n = keep.nonzero().squeeze(-1), len(keep)
            inputs = {k: v[rows] if isinstance(v, torch.Tensor) and v.dim() and len(v) == n else v for k, v in inputs.items()}
            self._count(inputs)
            return super()._compute_loss(model, inputs)

    return SkippingGRPOTrainer
