"""Statistics of the deliberation analysis: AUROC with a (cluster) bootstrap interval, Youden's
threshold, the Fisher separability ratio, Fisher's exact test and Holm's correction.

The well-kept libraries do the arithmetic (scikit-learn's ``roc_auc_score`` and ``roc_curve``,
scipy's ``fisher_exact``); what is written here is the resampling by prompt (several samples of one
prompt are not independent), Holm's step-down (scipy has no Holm) and the Fisher ratio of the paper's
"valley"; each is checked against an independent computation in ``tests/test_deliberation_stats.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic from mid-ranks, as scikit-learn's
    ``roc_auc_score`` but ~20x cheaper inside a bootstrap); NaN when only one class is present."""
    from scipy.stats import rankdata

    y = np.asarray(labels) == 1
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def youden_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The score threshold that maximises Youden's J (TPR - FPR); predict 1 at ``score >= threshold``."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(np.asarray(labels), np.asarray(scores, dtype=float))
    return float(thresholds[int(np.argmax(tpr - fpr))])


def auroc_ci(
    labels: Sequence[int],
    scores: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    n_resamples: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the AUROC; with ``clusters`` (the prompt of each sample) whole
    prompts are resampled. Resamples holding one class only are skipped (NaN when all are)."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if clusters is None:
        clusters = list(range(len(y)))
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(c, len(index)) for c in clusters), dtype=np.int64, count=len(y))
    members = [np.flatnonzero(codes == k) for k in range(len(index))]
    rng = np.random.default_rng(seed)
    stats = np.full(n_resamples, np.nan)
    for r in range(n_resamples):
        pick = np.concatenate([members[k] for k in rng.integers(0, len(members), size=len(members))])
        stats[r] = auroc(y[pick], s[pick])
    if np.all(np.isnan(stats)):
        return float("nan"), float("nan")
    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def fisher_ratio(states: np.ndarray, labels: Sequence[int]) -> float:
    """Separability of two classes of states: every dimension z-scored across samples, then
    ``||mu_1 - mu_0||^2 / (mean_i∈1 ||x_i - mu_1||^2 + mean_i∈0 ||x_i - mu_0||^2)``. NaN without both classes."""
    x = np.asarray(states, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"states must be (samples, dims) matching {len(y)} labels, got {x.shape}")
    if (y == 1).sum() == 0 or (y == 0).sum() == 0:
        return float("nan")
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    a, b = z[y == 1], z[y == 0]
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    within = ((a - mu_a) ** 2).sum(axis=1).mean() + ((b - mu_b) ** 2).sum(axis=1).mean()
    between = float(((mu_a - mu_b) ** 2).sum())
    return between / within if within > 0 else float("inf")


def fisher_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value of two success counts (scipy)."""
    from scipy.stats import fisher_exact as _fisher

    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    return float(_fisher(table, alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def bootstrap_ci(
    units: Sequence[object],
    statistic: Callable[[list[object]], float | None],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``statistic`` over resamples of ``units`` (prompts, traces: each
    unit carries all of its rows, so rows of one prompt stay together). Resamples where the statistic
    is undefined (None or NaN) are skipped; None when most are, or when there are no units."""
    if not units:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        v = statistic([units[i] for i in rng.integers(0, len(units), len(units))])
        if v is not None and np.isfinite(v):
            values.append(float(v))
    if len(values) < n_resamples // 2:
        return None
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
