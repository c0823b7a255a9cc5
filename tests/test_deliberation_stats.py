"""The deliberation statistics against scipy and scikit-learn on fixtures, and the planted-signal
check of the probe: labels along a known direction are found, shuffled labels are not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from thinksafe.deliberation.probes import ProbeConfig, cross_validate, summarize
from thinksafe.deliberation.stats import auroc, auroc_ci, fisher_exact, fisher_ratio, holm, youden_threshold


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


def test_auroc_is_scikit_learns_and_the_mann_whitney_statistic():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # ties included
    u = sps.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert auroc(y, s) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum())) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(auroc(np.ones(5), np.arange(5)))


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + 0.8 * y
    ours = auroc_ci(y, s, n_resamples=2000, seed=0)
    ref = sps.bootstrap((y, s), auroc, paired=True, vectorized=False, n_resamples=2000,
                        method="percentile", random_state=1).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.02) and ours[1] == pytest.approx(ref.high, abs=0.02)


def test_cluster_bootstrap_is_wider_when_samples_of_a_prompt_agree():
    rng = np.random.default_rng(0)
    base_y = rng.integers(0, 2, 50)
    base_s = rng.normal(size=50) + base_y
    y, s = np.repeat(base_y, 4), np.repeat(base_s, 4) + 0.01 * rng.normal(size=200)
    clusters = np.repeat(np.arange(50), 4)
    naive = auroc_ci(y, s, n_resamples=400)
    clustered = auroc_ci(y, s, clusters=clusters, n_resamples=400)
    assert clustered[1] - clustered[0] > 1.5 * (naive[1] - naive[0])


def test_youden_threshold_maximises_tpr_minus_fpr():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    t = youden_threshold(y, s)
    best = max(((s[y == 1] >= c).mean() - (s[y == 0] >= c).mean(), c) for c in s)
    assert ((s[y == 1] >= t).mean() - (s[y == 0] >= t).mean()) == pytest.approx(best[0])


def test_fisher_exact_against_the_hypergeometric_tail():
    p = fisher_exact(2, 20, 12, 20)
    table = np.array([[2, 18], [12, 8]])
    dist = sps.hypergeom(40, 14, 20)  # population, successes, draws
    observed = dist.pmf(2)
    manual = sum(dist.pmf(k) for k in range(0, 15) if dist.pmf(k) <= observed * (1 + 1e-7))
    assert p == pytest.approx(manual) == pytest.approx(sps.fisher_exact(table).pvalue)
    assert fisher_exact(5, 10, 5, 10) == pytest.approx(1.0)


def test_holm_step_down_on_a_fixture():
    # sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


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
