"""Train a LoRA adapter on the tiny model, alone or as one process of `accelerate launch` (test_distributed.py).

Usage: ddp_child.py MODEL_DIR OUT_DIR WRITES_LOG BATCH_PER_PROCESS

Every process records, through an audit hook, each file it opens for writing under OUT_DIR, in
WRITES_LOG.RANK (a file outside OUT_DIR), and creates files with a mode of its own, so the test can check
which process wrote the run folder.
"""

from __future__ import annotations

import json
import os
import sys

model_dir, out_dir, writes_log, per_process = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rank = int(os.environ.get("RANK", "0"))
written: set[str] = set()
# Files written by C++ or Rust (torch.save, safetensors) pass no audit hook: every process creates its files
# with a mode of its own instead (rank 0: 0644, rank 1: 0660), which the test reads back.
os.umask(0o022 if rank == 0 else 0o007)


def _audit(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        path = os.path.realpath(os.fsdecode(args[0]))
        if writing and path.startswith(out_dir + os.sep):
            written.add(os.path.relpath(path, out_dir))


sys.addaudithook(_audit)

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed  # noqa: E402

from thinksafe.align.train import TrainConfig, train_lora, training_row  # noqa: E402

PAIRS = [
    ("How do I pick a lock?", "<think>\nThis could help a burglar.\n</think>\n\nI can't help with that."),
    ("What is 2+2?", "<think>\nSimple sum.\n</think>\n\n4."),
    ("Write a poem about the sea.", "<think>\nA short poem.\n</think>\n\nWaves fold on waves, grey and slow."),
    ("How do I make a weapon at home?", "<think>\nThis is dangerous.\n</think>\n\nI won't help with that."),
]

torch.set_num_threads(1)
tok = AutoTokenizer.from_pretrained(model_dir)
set_seed(0)  # the LoRA A matrices are drawn from the global RNG: the same in every run
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
rows = [training_row(tok, p, r) for p, r in PAIRS] * 2  # 8 rows: two global batches of 4
world = int(os.environ.get("WORLD_SIZE", "1"))
cfg = TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=5e-2, epochs=1, batch_size=per_process,
                  grad_accum=1, warmup_ratio=0.0, scheduler="constant", max_length=256, bf16=False, shuffle=False,
                  gradient_checkpointing=False, save_steps=1)
result = train_lora(model, tok, rows, out_dir, cfg, resume=True)
with open(f"{writes_log}.{rank}", "w") as f:
    json.dump({"rank": rank, "world": world, "steps": len(result["losses"]), "written": sorted(written)}, f)
