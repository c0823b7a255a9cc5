"""LoRA training throughput: thinksafe's trainer (``align.train.train_lora`` as the pipeline calls it) against TRL's
defaults (``SFTTrainer`` with a default ``SFTConfig``: 8 sequences a batch padded to the longest, gradient
checkpointing on, bf16, TRL's fused LM-head loss), on the same pairs, LoRA settings, learning rate, schedule,
effective batch (8) and seed, in one run on one machine. Prints each side's wall time, completion and total
tokens per second, the ratio, the final logged losses and their relative difference, and writes the loss curves.

    python bench/train.py --pairs RUN/align/thinksafe/train/train.jsonl [--rows 32] [--epochs 1] [--out bench-train]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import thinksafe.align.train as train
from thinksafe.models.loader import load_model


def _trl_defaults(model, tok, rows: list[dict[str, str]], cfg: train.TrainConfig, out: str) -> dict:  # noqa: ANN001
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=out, use_cpu=True, learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
                     lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_ratio, seed=cfg.seed, logging_steps=1,
                     report_to=[], save_strategy="no", completion_only_loss=True, max_length=cfg.max_length,
                     disable_tqdm=True)  # everything else TRL's default
    peft = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=peft)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    settings = {k: getattr(args, k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps",
                                              "gradient_checkpointing", "bf16", "padding_free", "packing")}
    return {"wall_s": wall, "losses": losses, "settings": settings}


def _ours(model, tok, rows: list[dict[str, str]], cfg: train.TrainConfig, out: str) -> dict:  # noqa: ANN001
    t0 = time.perf_counter()
    res = train.train_lora(model, tok, rows, out, cfg)
    wall = time.perf_counter() - t0
    args = res["trainer"].args
    settings = {k: getattr(args, k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps",
                                              "gradient_checkpointing", "bf16", "padding_free", "packing")}
    return {"wall_s": wall, "losses": res["losses"], "settings": settings}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--pairs", required=True, help="a train.jsonl written by the align stage")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--out", default="bench-train")
    ap.add_argument("--bf16", action="store_true", help="also run thinksafe's trainer in bf16 mixed precision")
    a = ap.parse_args()
    loaded = load_model(a.model)
    tok = loaded.tokenizer
    rows = [{"prompt": r["prompt"], "completion": r["completion"]}
            for r in map(json.loads, Path(a.pairs).read_text().splitlines()[: a.rows])]
    lengths = [(len(tok(r["prompt"] + r["completion"], add_special_tokens=False).input_ids),
                len(tok(r["completion"], add_special_tokens=False).input_ids)) for r in rows]
    total, completion = sum(x for x, _ in lengths), sum(y for _, y in lengths)
    cfg = train.TrainConfig(epochs=a.epochs, learning_rate=2e-4)
    out: dict = {"rows": len(rows), "epochs": a.epochs, "tokens": total, "completion_tokens": completion}
    sides = [("trl-defaults", _trl_defaults, cfg), ("thinksafe", _ours, cfg)]
    if a.bf16:  # thinksafe's trainer with bf16 mixed precision on this CPU too
        from dataclasses import replace

        sides.append(("thinksafe-bf16", _ours, replace(cfg, bf16=True)))
    for name, fn, side_cfg in sides:
        with tempfile.TemporaryDirectory() as d:
            res = fn(train.trainable_model(loaded), tok, rows, side_cfg, d)
        res["tokens_per_s"] = total * a.epochs / res["wall_s"]
        out[name] = res
        print(f"{name}: {res['wall_s']:.1f} s, {res['tokens_per_s']:.1f} tok/s, final loss {res['losses'][-1]:.4f}, "
              f"{res['settings']}", flush=True)
    base = out["trl-defaults"]
    for name, _, _ in sides[1:]:
        ratio = out[name]["tokens_per_s"] / base["tokens_per_s"]
        gap = abs(out[name]["losses"][-1] - base["losses"][-1]) / base["losses"][-1]
        out[name] |= {"throughput_ratio": ratio, "final_loss_rel_diff": gap}
        print(f"{name} / TRL defaults throughput: {ratio:.2f}x; final loss differs by {100 * gap:.1f}%")
    folder = Path(a.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_bench.json").write_text(json.dumps(out, indent=2, default=str))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in [n for n, _, _ in sides]:
        ax.plot(range(1, len(out[name]["losses"]) + 1), out[name]["losses"], marker="o", label=name)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "loss_curves.png", dpi=120)
    print(f"-> {folder / 'train_bench.json'}, {folder / 'loss_curves.png'}")


if __name__ == "__main__":
    main()
