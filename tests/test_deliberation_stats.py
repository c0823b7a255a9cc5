"""The probe's planted-signal check (labels along a known direction are found, shuffled labels are
not), its folds, and the Fisher ratio against an independent computation. The statistics it uses
(AUROC, its interval, Youden, Fisher's exact test, Holm) are tested in ``test_stats.py``."""

from __future__ import annotations

import numpy as np
import pytest

from thinksafe.deliberation.probes import ProbeConfig, cross_validate, fisher_ratio, summarize


def _planted(n: int = 240, dim: int = 64, seed: int = 0, strength: float = 1.5):
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, dim)) + strength * np.outer(2 * y - 1, direction)
    pools = np.where(np.arange(n) % 2 == 0, "harmful", "benign")
    groups = [f"p{i // 2}" for i in range(n)]  # two samples per prompt
    return x, y, groups, pools


def test_a_planted_direction_is_found_and_shuffled_labels_are_not():
    x, y, groups, pools = _planted()
    cfg = ProbeConfig(pca=20, bootstrap=100)
    found = summarize(cross_validate(x, y, groups, pools, cfg), y, groups, pools, cfg)
    assert found["all"]["auroc"] > 0.95 and found["harmful"]["auroc"] > 0.95 and found["benign"]["auroc"] > 0.95
    lo, hi = found["all"]["auroc_ci"]
    assert lo <= found["all"]["auroc"] <= hi and hi - lo < 0.1
    assert found["all"]["balanced_accuracy"] > 0.85

    shuffled = np.random.default_rng(1).permutation(y)
    null = summarize(cross_validate(x, shuffled, groups, pools, cfg), shuffled, groups, pools, cfg)
    assert abs(null["all"]["auroc"] - 0.5) < 0.1


def test_folds_keep_the_samples_of_a_prompt_together():
    from thinksafe.deliberation.probes import folds

    x, y, groups, pools = _planted(n=60)
    strata = np.array([f"{p}:{v}" for p, v in zip(pools, y)])
    for train, test in folds(y, groups, strata, ProbeConfig()):
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_few_samples_over_two_pools_get_fewer_folds_not_an_error():
    """Six refusals and six compliances split over two pools: every (pool, label) stratum holds three,
    fewer than the five folds asked for (sklearn refuses that); three folds are used instead."""
    from thinksafe.deliberation.probes import folds

    y = np.array([0, 1] * 6)
    pools = ["harmful"] * 6 + ["benign"] * 6
    groups = list(range(12))
    strata = np.array([f"{p}:{v}" for p, v in zip(pools, y)])
    split = folds(y, groups, strata, ProbeConfig(folds=5))
    assert len(split) == 3 and sorted(np.concatenate([t for _, t in split]).tolist()) == list(range(12))
    x = np.random.default_rng(0).normal(size=(12, 4))
    assert cross_validate(x, y, groups, pools, ProbeConfig(bootstrap=10)).n_folds == 3


def test_one_class_gives_no_auroc_but_says_why():
    x, y, groups, pools = _planted(n=40)
    y = np.zeros_like(y)
    cfg = ProbeConfig(bootstrap=10)
    out = summarize(cross_validate(x, y, groups, pools, cfg), y, groups, pools, cfg)
    assert out["all"]["auroc"] is None and "why" in out["all"]


def test_a_lone_answer_of_the_other_class_leaves_its_fold_unscored_not_an_error():
    """A model that complies on two prompts only, one in each pool (the GRPO adapter of a 64 + 64 run,
    2026-12-07): the grouped folds put both in one held-out fold, whose training rows are refusals alone;
    that fold is left unscored and the rest summarised, where sklearn refused to fit."""
    x, y, groups, pools = _planted(n=16)
    y = np.ones_like(y)
    y[[0, 11]] = 0  # prompts p0 (harmful) and p5 (benign): the split that holds both out together
    cfg = ProbeConfig(bootstrap=10)
    result = cross_validate(x, y, groups, pools, cfg)
    assert np.isnan(result.scores).any() and not np.isnan(result.scores).all()
    out = summarize(result, y, groups, pools, cfg)
    assert out["all"]["n"] == int((~np.isnan(result.scores)).sum()) and out["all"]["auroc"] is None


def test_fisher_ratio_against_an_independent_computation():
    from scipy.spatial.distance import cdist
    from sklearn.preprocessing import StandardScaler

    x, y, *_ = _planted(n=120, dim=8)
    z = StandardScaler().fit_transform(x)
    a, b = z[y == 1], z[y == 0]
    between = cdist(a.mean(0, keepdims=True), b.mean(0, keepdims=True), "sqeuclidean")[0, 0]
    within = cdist(a, a.mean(0, keepdims=True), "sqeuclidean").mean() + cdist(b, b.mean(0, keepdims=True), "sqeuclidean").mean()
    assert fisher_ratio(x, y) == pytest.approx(between / within)
    assert fisher_ratio(*_planted(strength=0.0, n=400, dim=8)[:2]) < 0.05 < fisher_ratio(x, y)
    assert np.isnan(fisher_ratio(x, np.zeros(len(x))))
