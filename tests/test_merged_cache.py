"""The cache of merged checkpoints (vLLM on CPU runs an adapter merged into the weights): bounded."""

from __future__ import annotations

import os

import pytest

NOW = 2_000_000.0


def _fake(root, name, age):
    """A merged-checkpoint folder last used ``age`` seconds before NOW."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    os.utime(d, (NOW - age, NOW - age))
    return d


def test_the_merged_cache_keeps_the_most_recently_used_and_clears_old_merges(tmp_path):
    from thinksafe.generation.vllm_backend import MERGED_GRACE_S, prune_merged

    root = tmp_path / "merged"
    hour = 3600
    old, mid, new = _fake(root, "a-1", 3 * hour), _fake(root, "a-2", 2 * hour), _fake(root, "a-3", hour)
    current = _fake(root, "a-0", 4 * hour)  # just written or reused: its age is not what keeps it
    recent = _fake(root, "a-4", MERGED_GRACE_S / 2)  # another process may be loading it: kept past `keep`
    stale, live = _fake(root, "a-9.tmp123", 2 * hour), _fake(root, "a-8.tmp456", 60)  # a killed merge; one under way
    removed = prune_merged(root, 2, current, now=NOW)
    assert sorted(p.name for p in root.iterdir()) == sorted([current.name, recent.name, live.name])
    assert set(removed) == {old, mid, new, stale}
    assert prune_merged(root, 2, current, now=NOW) == []
    # with room for three, the most recently used older one stays
    root2 = tmp_path / "merged2"
    a, b, c = _fake(root2, "b-1", 3 * hour), _fake(root2, "b-2", 2 * hour), _fake(root2, "b-0", 5 * hour)
    assert set(prune_merged(root2, 3, c, now=NOW)) == set() and len(list(root2.iterdir())) == 3
    assert prune_merged(root2, 2, c, now=NOW) == [a]


def test_a_bad_keep_setting_is_named(monkeypatch):
    from thinksafe.errors import ConfigError
    from thinksafe.generation.vllm_backend import _merged_keep

    monkeypatch.setenv("THINKSAFE_MERGED_KEEP", "none")
    with pytest.raises(ConfigError, match="THINKSAFE_MERGED_KEEP"):
        _merged_keep()
    monkeypatch.setenv("THINKSAFE_MERGED_KEEP", "5")
    assert _merged_keep() == 5
