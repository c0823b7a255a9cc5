"""The objective judge's cost on answers whose prompts repeat (samples, replays, injected variants):
``embed`` encodes each distinct text once; against encoding every text, in one run on one machine.

    python bench/judge_embed.py [--prompts 124] [--copies 9]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=124)
    ap.add_argument("--copies", type=int, default=9, help="times each prompt is judged (the injection probe: 9)")
    args = ap.parse_args()
    from thinksafe.judges.embedding import EmbeddingRecipe, embed, load_encoder
    from thinksafe.judges.objective import ObjectiveJudge, ObjectiveJudgeConfig

    rng = random.Random(0)
    words = "how do i make build find get the a an at home with tools safely quickly without anyone noticing".split()
    prompts = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 60))) for _ in range(args.prompts)]
    texts = prompts * args.copies
    recipe = EmbeddingRecipe(max_seq_length=128)
    path = ObjectiveJudge(ObjectiveJudgeConfig()).refusal._encoder_path()
    model = load_encoder(str(path), recipe.dtype, "cpu")
    embed(texts[:64], recipe, encoder_path=path)  # warm up

    t0 = time.perf_counter()
    model.max_seq_length = recipe.max_seq_length
    every = model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    t_every = time.perf_counter() - t0
    t0 = time.perf_counter()
    once = embed(texts, recipe, encoder_path=path)
    t_once = time.perf_counter() - t0
    print(f"{len(texts)} texts ({args.prompts} distinct): {t_every:.1f} s encoding each, {t_once:.1f} s each distinct "
          f"one once ({t_every / t_once:.1f}x); largest difference {np.abs(every - once).max():.4f}")


if __name__ == "__main__":
    main()
