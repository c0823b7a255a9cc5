"""The cache of merged checkpoints (vLLM on CPU runs an adapter merged into the weights): bounded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _fake(root, name, age):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    os.utime(d, (1_000_000 + age, 1_000_000 + age))
    return d


def test_the_merged_cache_keeps_the_most_recently_used_and_clears_dead_merges(tmp_path):
    from thinksafe.generation.vllm_backend import prune_merged

    root = tmp_path / "merged"
    old, mid, new = _fake(root, "a-1", 1), _fake(root, "a-2", 2), _fake(root, "a-3", 3)
    current = _fake(root, "a-0", 0)  # just written (its mtime is not what keeps it)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = _fake(root, f"a-9.tmp{dead.pid}", 9), _fake(root, f"a-8.tmp{os.getpid()}", 8)
    removed = prune_merged(root, 2, current)
    assert sorted(p.name for p in root.iterdir()) == sorted([current.name, new.name, live.name])
    assert set(removed) == {old, mid, stale}
    assert prune_merged(root, 2, current) == []


def test_a_bad_keep_setting_is_named(monkeypatch):
    from thinksafe.errors import ConfigError
    from thinksafe.generation.vllm_backend import _merged_keep

    monkeypatch.setenv("THINKSAFE_MERGED_KEEP", "none")
    with pytest.raises(ConfigError, match="THINKSAFE_MERGED_KEEP"):
        _merged_keep()
    monkeypatch.setenv("THINKSAFE_MERGED_KEEP", "5")
    assert _merged_keep() == 5
