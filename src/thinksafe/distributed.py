"""Which process of a distributed launch this one is (``accelerate launch``, ``torchrun``, SLURM's
``srun`` through either): read from the environment the launcher sets, so nothing here imports torch.

Only training runs distributed (``docs/scale-out.md``): every process trains its shard of each global
batch, and only the main process writes the run folder.
"""

from __future__ import annotations

import os


def world_size() -> int:
    """How many processes train together (1 outside a distributed launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 outside a distributed launch)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes the run folder (rank 0)."""
    return rank() == 0
