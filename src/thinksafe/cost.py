"""What a stage cost: wall seconds, CPU seconds, GPU seconds, tokens generated and tokens trained.

The engine and the trainers add to this process's token counters (:func:`add_generated`,
:func:`add_trained`); :func:`measure` reads everything around a stage. CPU seconds are this
process's and its waited-for children's (``getrusage``: user + system), so a training launched
under ``THINKSAFE_TRAIN_LAUNCHER`` counts too. GPU seconds are wall seconds times the GPUs this
process can see (a GPU held is a GPU paid for); 0 on a CPU machine.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_TOKENS = {"generated": 0, "trained": 0}


def add_generated(n: int) -> None:
    """Count ``n`` tokens sampled by a model (trace, forced close and answer)."""
    _TOKENS["generated"] += int(n)


def add_trained(n: int) -> None:
    """Count ``n`` tokens a training step read (prompt and completion, every epoch)."""
    _TOKENS["trained"] += int(n)


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _gpus() -> int:
    torch = sys.modules.get("torch")  # never import torch just to find none
    try:
        return int(torch.cuda.device_count()) if torch is not None and torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA set-up: no GPU to count
        return 0


@contextmanager
def measure() -> Iterator[dict[str, Any]]:
    """``with measure() as cost: ...``; afterwards ``cost`` holds ``wall_s``, ``cpu_s``, ``gpu_s``, ``gpus``,
    ``tokens_generated`` and ``tokens_trained`` of the block."""
    cost: dict[str, Any] = {}
    t0, c0, tokens = time.monotonic(), _cpu_seconds(), dict(_TOKENS)
    try:
        yield cost
    finally:
        wall = time.monotonic() - t0
        gpus = _gpus()
        cost.update(wall_s=round(wall, 1), cpu_s=round(_cpu_seconds() - c0, 1), gpus=gpus, gpu_s=round(wall * gpus, 1),
                    tokens_generated=_TOKENS["generated"] - tokens["generated"],
                    tokens_trained=_TOKENS["trained"] - tokens["trained"])
