"""LoRA training on CPU: the loss from the model's own logits (what ``train_lora`` uses off CUDA)
against TRL's fused, tiled LM head (its default), in one run on one machine, same rows and seed.

    python bench/train_loss.py [--model qwen2.5-coder-0.5b-instruct] [--rows 6] [--words 120]

Prints the trainer's runtime of each, their ratio and the largest difference of the logged losses
(the two compute the same token-mean negative log-likelihood over the completion tokens).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import thinksafe.align.train as train


def _run(loaded, rows: list[dict[str, str]], fused: bool) -> tuple[float, list[float]]:
    from trl import SFTTrainer

    original = train._logits_loss_trainer_class
    if fused:
        train._logits_loss_trainer_class = lambda: SFTTrainer
    try:
        model = train.trainable_model(loaded)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            out = train.train_lora(model, loaded.tokenizer, rows, d, train.TrainConfig(epochs=1, grad_accum=1))
            return time.perf_counter() - t0, out["losses"]
    finally:
        train._logits_loss_trainer_class = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--words", type=int, default=120, help="words of each completion")
    args = ap.parse_args()
    from thinksafe.models.loader import load_model

    loaded = load_model(args.model, dtype="float32")
    text = "I should think about whether this request is safe before I answer it. "
    rows = [train.training_row(loaded.tokenizer, f"Question {i}: how do I keep my bicycle from rusting?",
                               "<think>\n" + " ".join((text * 20).split()[: args.words]) + "\n</think>\n\nOil the chain.")
            for i in range(args.rows)]
    _run(loaded, rows[:1], fused=False)  # warm up: imports and first allocation
    plain, lp = _run(loaded, rows, fused=False)
    fused, lf = _run(loaded, rows, fused=True)
    gap = max(abs(a - b) for a, b in zip(lp, lf, strict=True))
    print(f"{args.model}, {args.rows} rows: logits loss {plain:.1f} s, fused LM head {fused:.1f} s "
          f"({fused / plain:.2f}x); largest loss difference {gap:.2e}")


if __name__ == "__main__":
    main()
