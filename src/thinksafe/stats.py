"""The statistics of thinksafe, one implementation of each: intervals of a rate, bootstraps (of a mean
over clusters, of any statistic over units, of a difference between two models, paired or not, with
its percentile-bootstrap p-value), paired and two-sample tests (McNemar; the paired clustered
bootstrap of a rate's difference when prompts have several samples; Fisher), multiple-testing
corrections (Holm, Benjamini-Hochberg), the ROC helpers of the probes and the prediction-powered mean
of a finite set of units (PPI++ from a labelled random sample).

Why one module: every number of an evaluation, a deliberation analysis or a report goes through
these functions, so a fix lands everywhere at once. The well-kept libraries do the arithmetic where
they give the same floats as the numbers already written (statsmodels' ``multipletests`` and
``proportion_confint``, scipy's ``binomtest`` and ``fisher_exact``, scikit-learn's ``roc_curve``);
what is written here is the resampling by prompt (several samples of one prompt are not
independent) and two formulas kept by hand because the library differs from them in the last bits
(Wilson, McNemar; both checked against statsmodels in ``tests/test_stats.py``).

A bottom layer: it imports numpy, scipy, statsmodels and scikit-learn only (the last three lazily),
nothing else of thinksafe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

Statistic = Callable[[list[Any]], float | None]
"""A statistic of a resample of units; None (or NaN) where it is undefined, e.g. one class only."""


# ------------------------------------------------------------------------------------- intervals


def _check_interval_args(n: int, alpha: float) -> None:
    if n < 1:
        raise ValueError("cannot compute an interval from zero observations")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def wilson_interval(successes: float, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` (``successes`` may be fractional).

    Honest at 0 and 1 (20 of 20 gives a lower end of 0.84, not 1). statsmodels'
    ``proportion_confint(method="wilson")`` agrees to ~1e-16; the formula stays here so that the
    numbers already written keep their last bits and the ends are exactly 0 and 1.
    """
    from scipy.stats import norm

    _check_interval_args(n, alpha)
    z = float(norm.ppf(1 - alpha / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends, free of rounding
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return min(low, p), max(high, p)


def clopper_pearson_interval(successes: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for ``successes`` out of ``n``: never below the nominal
    coverage, wider than Wilson (statsmodels' ``proportion_confint(method="beta")``)."""
    from statsmodels.stats.proportion import proportion_confint

    _check_interval_args(n, alpha)
    low, high = proportion_confint(successes, n, alpha=alpha, method="beta")
    return float(low), float(high)


# ------------------------------------------------------------------------ bootstrap of a mean


def cluster_means(values: Sequence[float], clusters: Sequence[Hashable] | None) -> np.ndarray:
    """The mean of each cluster's values, in order of first appearance (``values`` when ``clusters``
    is None): a prompt with several samples counts once."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    if clusters is None:
        return x
    if len(clusters) != len(x):
        raise ValueError(f"clusters has {len(clusters)} entries but values has {len(x)}")
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(c, len(index)) for c in clusters), dtype=np.int64, count=len(x))
    sums = np.bincount(codes, weights=x, minlength=len(index))
    counts = np.bincount(codes, minlength=len(index))
    return sums / counts


def clustered_mean(values: Sequence[float], clusters: Sequence[Hashable] | None = None) -> float:
    """The mean over clusters of each cluster's mean (the plain mean when ``clusters`` is None)."""
    means = cluster_means(values, clusters)
    if means.size == 0:
        raise ValueError("cannot average zero values")
    return float(means.mean())


def bootstrap_ci(
    values: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile-bootstrap ``(low, high)`` interval of the mean of ``values``.

    With ``clusters`` (one id per value, e.g. the prompt id of each sample), whole clusters are
    resampled and the statistic is the mean of cluster means, matching :func:`clustered_mean`.
    Deterministic for a given ``seed`` (``numpy.random.default_rng``).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    means = cluster_means(values, clusters)
    k = means.size
    if k == 0:
        raise ValueError("cannot bootstrap zero values")
    if k == 1:
        v = float(means[0])
        return v, v
    stats = _resampled_means(means, n_resamples, seed)
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _resampled_means(means: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """The mean of ``n_resamples`` resamples (with replacement) of ``means``, vectorised in chunks."""
    k = means.size
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=float)
    chunk = max(1, 2_000_000 // k)  # bound memory at ~16 MB of indices per chunk
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, k, size=(stop - start, k))
        stats[start:stop] = means[idx].mean(axis=1)
    return stats


# ------------------------------------------------------------------- bootstrap of a statistic


def _defined(v: float | None) -> bool:
    return v is not None and bool(np.isfinite(v))


def _percentile_interval(values: list[float], n_resamples: int, alpha: float) -> tuple[float, float] | None:
    """The percentile interval of the defined resamples; None when fewer than half are defined
    (e.g. one class only in most resamples: no honest interval)."""
    if len(values) < n_resamples // 2:
        return None
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_statistic_ci(
    units: Sequence[Any],
    statistic: Statistic,
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
        if _defined(v):
            values.append(float(v))
    return _percentile_interval(values, n_resamples, alpha)


def bootstrap_p_value(diffs: Sequence[float]) -> float | None:
    """Two-sided percentile-bootstrap p-value of "the difference is 0" from resampled differences:
    ``2 * min(share <= 0, share >= 0)``, at most 1 (None without any resample). The test that the
    percentile interval inverts: p < alpha when 0 lies outside the 1 - alpha interval; every resample
    at exactly 0 (nothing differs) gives 1."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return None
    return float(min(1.0, 2.0 * min(np.mean(d <= 0.0), np.mean(d >= 0.0))))


def bootstrap_difference(
    stat_a: Statistic,
    stat_b: Statistic,
    units_a: Sequence[Any] | Mapping[Hashable, Any],
    units_b: Sequence[Any] | Mapping[Hashable, Any],
    *,
    paired: bool = False,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Percentile bootstrap of ``stat_b(resample of b) - stat_a(resample of a)``: ``{ci, p_value}``,
    the 1 - ``alpha`` interval and the two-sided :func:`bootstrap_p_value`, from the same resamples.

    ``paired=False``: ``units_a`` and ``units_b`` are sequences resampled on their own (two models'
    own traces). ``paired=True``: they are mappings keyed by a shared id (the prompt id) with the same
    keys; one draw of ids resamples both sides, so what the two have in common cancels and the
    interval is as narrow as the pairing allows. Resamples where either statistic is undefined
    (None or NaN) are skipped; both are None when most are, or when a side has no units. Where only
    the interval is wanted: ``bootstrap_difference(...)["ci"]``.
    """
    if paired:
        if not isinstance(units_a, Mapping) or not isinstance(units_b, Mapping):
            raise TypeError("a paired bootstrap needs units_a and units_b as mappings keyed by a shared id")
        keys = list(units_a)
        if set(keys) != set(units_b):
            raise ValueError(f"a paired bootstrap needs the same ids on both sides: {len(set(keys) - set(units_b))} "
                             f"only in a, {len(set(units_b) - set(keys))} only in b")
        side_a, side_b = [units_a[k] for k in keys], [units_b[k] for k in keys]
    elif isinstance(units_a, Mapping) or isinstance(units_b, Mapping):
        raise TypeError("mappings of units are for paired=True; pass sequences to resample each side on its own")
    else:
        side_a, side_b = list(units_a), list(units_b)
    if not side_a or not side_b:
        return {"ci": None, "p_value": None}
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_resamples):
        pick_a = rng.integers(0, len(side_a), len(side_a))
        pick_b = pick_a if paired else rng.integers(0, len(side_b), len(side_b))
        x = stat_a([side_a[i] for i in pick_a])
        y = stat_b([side_b[i] for i in pick_b])
        if _defined(x) and _defined(y):
            diffs.append(y - x)
    ci = _percentile_interval(diffs, n_resamples, alpha)
    return {"ci": ci, "p_value": None if ci is None else bootstrap_p_value(diffs)}


def seeded_paired_difference(
    base: Sequence[float] | Sequence[Sequence[float]],
    after: Sequence[Sequence[float]],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """A difference between two models on the same prompts when a side was trained under several seeds.

    ``after[s][i]`` is prompt ``i``'s outcome (0/1, or a mean over samples) under the adapter trained
    with seed ``s``; ``base[i]`` the same under the base model, or ``base[t][i]`` under another recipe's
    adapter trained with seed ``t`` (both sides seeded: recipe against recipe). The estimate is the
    mean over seeds and prompts of ``after`` less that of ``base``. The interval is a two-level
    percentile bootstrap: each resample draws each seeded side's seeds with replacement, then the
    prompts (one draw of prompts shared by every drawn seed of both sides, so the pairing by prompt
    holds), so it carries the training noise between seeds as well as the prompts' sampling. With one
    seed a side it is the paired prompt bootstrap. Returns ``{value, ci, p_value, per_seed, seed_sd,
    n_seeds, n}``: ``per_seed`` is each ``after`` seed's difference from the base's mean over its seeds,
    ``seed_sd`` their standard deviation (the between-seed spread of ``after``). With few seeds (3) the
    seed level is coarse (27 distinct draws a side): read ``per_seed`` beside the interval.
    """
    a = np.asarray(after, dtype=float)
    b = np.asarray(base, dtype=float)
    b2 = b[None, :] if b.ndim == 1 else b
    if a.ndim != 2 or b2.ndim != 2 or a.shape[1] != b2.shape[1]:
        raise ValueError(f"after must be seeds x prompts and base prompts or seeds x prompts over the same prompts, "
                         f"got shapes {a.shape} and {b.shape}")
    n_seeds, n = a.shape
    if n == 0 or n_seeds == 0 or b2.shape[0] == 0:
        return {"value": None, "ci": None, "p_value": None, "per_seed": [], "seed_sd": None, "n_seeds": n_seeds, "n": n}
    per_seed = a.mean(axis=1) - b2.mean()
    rng = np.random.default_rng(seed)
    seeds_a = rng.integers(0, n_seeds, (n_resamples, n_seeds))
    seeds_b = rng.integers(0, b2.shape[0], (n_resamples, b2.shape[0]))
    prompts = rng.integers(0, n, (n_resamples, n))
    # one draw of prompts a resample, shared by the drawn seeds of both sides
    diffs = np.array([a[np.ix_(seeds_a[r], prompts[r])].mean() - b2[np.ix_(seeds_b[r], prompts[r])].mean()
                      for r in range(n_resamples)])
    ci = _percentile_interval(diffs.tolist(), n_resamples, alpha)
    return {"value": float(a.mean() - b2.mean()), "ci": ci, "p_value": bootstrap_p_value(diffs),
            "per_seed": per_seed.tolist(), "seed_sd": float(per_seed.std(ddof=1)) if n_seeds > 1 else None,
            "n_seeds": n_seeds, "n": n}


# --------------------------------------------------------------------------------------- tests


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs (events only in a,
    only in b) against 1/2; 1.0 when there are none (scipy's ``binomtest``, which statsmodels'
    ``mcnemar(exact=True)`` matches to ~1e-15)."""
    from scipy.stats import binomtest

    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0


def paired_rate_difference(
    a: Mapping[Hashable, Sequence[float]],
    b: Mapping[Hashable, Sequence[float]],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """``b`` against ``a`` for an event recorded per prompt id as 0/1 (or any values) per sample: the
    difference of the clustered means on the ids both have, with its interval and a paired p-value.

    Each prompt counts once, as the mean of its samples (as the headline rate does); the prompt ids are
    resampled jointly, so the interval is a paired clustered bootstrap of the mean per-prompt
    difference. The p-value: with exactly one sample per prompt on both sides, exact McNemar on the
    discordant prompts; with more, :func:`bootstrap_p_value` of the same resamples. Returns
    ``{test, n_paired, n_dropped, only_a, only_b, a, b, diff, ci, p_value}``: ``n_dropped`` counts
    ids on one side only (left out), ``only_a`` / ``only_b`` the prompts whose rate is higher in a /
    in b; ``ci`` and ``p_value`` are None (and ``a``, ``b``, ``diff`` too) when no id is shared.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    shared = [k for k in a if k in b]
    dropped = len(a) + len(b) - 2 * len(shared)
    empty = [k for k in shared if not len(a[k]) or not len(b[k])]
    if empty:
        raise ValueError(f"prompt id {empty[0]!r} has no samples on one side")
    single = all(len(a[k]) == 1 and len(b[k]) == 1 for k in shared)
    out: dict[str, Any] = {"test": "McNemar (exact)" if single else "paired clustered bootstrap (prompts)",
                           "n_paired": len(shared), "n_dropped": dropped}
    if not shared:
        return out | {"only_a": 0, "only_b": 0, "a": None, "b": None, "diff": None, "ci": None, "p_value": None}
    mean_a = np.array([float(np.mean(a[k])) for k in shared])
    mean_b = np.array([float(np.mean(b[k])) for k in shared])
    d = mean_b - mean_a
    only_a, only_b = int((d < 0).sum()), int((d > 0).sum())
    boot = _resampled_means(d, n_resamples, seed)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    p_value = mcnemar_exact(only_a, only_b) if single else bootstrap_p_value(boot)
    return out | {"only_a": only_a, "only_b": only_b, "a": float(mean_a.mean()), "b": float(mean_b.mean()),
                  "diff": float(d.mean()), "ci": (float(low), float(high)), "p_value": p_value}


def fisher_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value of two success counts (scipy): two independent samples."""
    from scipy.stats import fisher_exact as _fisher

    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    return float(_fisher(table, alternative="two-sided").pvalue)


def _adjust(pvalues: Sequence[float | None], method: str) -> list[float | None]:
    """Adjusted p-values in the input order; a None (a row with no test) stays None and is not counted
    in the family."""
    from statsmodels.stats.multitest import multipletests

    where = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if where:
        adjusted = multipletests(np.asarray([pvalues[i] for i in where], dtype=float), method=method)[1]
        for i, q in zip(where, adjusted.tolist()):
            out[i] = q
    return out


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (controls the family-wise error), in the input order; None
    entries (no test) stay None and do not count in the family."""
    return _adjust(pvalues, "holm")


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (controls the false discovery rate), in the input order;
    None entries stay None and do not count in the family."""
    return _adjust(pvalues, "fdr_bh")


# ----------------------------------------------------------------------------------------- ROC


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


def youden_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The score threshold that maximises Youden's J (TPR - FPR); predict 1 at ``score >= threshold``."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(np.asarray(labels), np.asarray(scores, dtype=float))
    return float(thresholds[int(np.argmax(tpr - fpr))])


# ------------------------------------------------------------- two proportions: effect and power


def newcombe_difference_interval(
    successes_a: float, n_a: int, successes_b: float, n_b: int, *, alpha: float = 0.05
) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) of ``p_b - p_a`` for two independent rates,
    built from the two :func:`wilson_interval` s: honest at 0 and 1 and with few samples (statsmodels'
    ``confint_proportions_2indep(method="newcomb")``; Newcombe 1998, 56/70 - 48/80: 0.0524 to 0.3339)."""
    low_a, high_a = wilson_interval(successes_a, n_a, alpha=alpha)
    low_b, high_b = wilson_interval(successes_b, n_b, alpha=alpha)
    p_a, p_b = successes_a / n_a, successes_b / n_b
    d = p_b - p_a
    return d - math.hypot(p_b - low_b, high_a - p_a), d + math.hypot(high_b - p_b, p_a - low_a)


def fisher_exact_power(p_a: float, n_a: int, p_b: float, n_b: int, *, alpha: float = 0.05) -> float:
    """Exact power of the two-sided :func:`fisher_exact` test at level ``alpha`` when the true rates
    are ``p_a`` (``n_a`` trials) and ``p_b`` (``n_b`` trials): the probability of every pair of
    outcomes of the two binomials whose table the test rejects, summed. The test's p-value of each
    table is the hypergeometric tail of tables no more likely (given the margins), as scipy computes
    it; the rejection region equals scipy's table by table (``tests/test_stats.py``)."""
    from scipy.stats import binom, hypergeom

    if n_a < 1 or n_b < 1:
        raise ValueError(f"the power of a two-sample test needs trials on both sides, got {n_a} and {n_b}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    total = n_a + n_b
    reject = np.zeros((n_a + 1, n_b + 1), dtype=bool)
    for successes in range(total + 1):  # tables with this many successes in all: one hypergeometric
        xs = np.arange(max(0, successes - n_b), min(n_a, successes) + 1)
        pmf = hypergeom.pmf(xs, total, n_a, successes)
        p_values = (pmf[None, :] <= pmf[:, None] * (1 + 1e-7)) @ pmf  # relative tolerance for ties, as R's
        reject[xs, successes - xs] = p_values <= alpha
    weight = np.outer(binom.pmf(np.arange(n_a + 1), n_a, p_a), binom.pmf(np.arange(n_b + 1), n_b, p_b))
    return float(weight[reject].sum())


# ---------------------------------------------------------------------- minimum detectable difference


def paired_mdd(n: int, discordance: float, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest difference of two paired rates (``b - a`` on the same ``n`` prompts) that a two-sided
    McNemar test at ``alpha`` detects with ``power``, when a share ``discordance`` of the prompts change
    their answer (Connor 1987: ``n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2``, solved for ``d``).

    The difference can be no larger than the discordance (every changed prompt moving one way), so a
    design whose ``n`` cannot reach power even then has no detectable difference: None."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < discordance <= 1.0:
        raise ValueError(f"discordance must be in (0, 1], got {discordance}")
    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))

    def needed(d: float) -> float:
        return (z_a * math.sqrt(discordance) + z_b * math.sqrt(max(discordance - d * d, 0.0))) ** 2 / (d * d) - n

    if needed(discordance) > 0:  # even a one-way change of every discordant prompt is not enough
        return None
    return float(brentq(needed, 1e-9, discordance))


def observed_paired_mdd(n_paired: int, n_changed: int, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest difference a finished paired comparison could have detected: :func:`paired_mdd` at its
    own ``n_paired`` prompts and the share of them whose answer changed (``n_changed``; at least one is
    assumed, so a comparison in which none changed still says what it could see). None without prompts."""
    if n_paired < 1:
        return None
    return paired_mdd(n_paired, max(n_changed, 1) / n_paired, alpha=alpha, power=power)


# ----------------------------------------------------------------------------- judge error correction


def rogan_gladen(
    positives: int,
    n: int,
    *,
    true_pos: int,
    n_pos: int,
    true_neg: int,
    n_neg: int,
    n_resamples: int = 4000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """A rate corrected for its judge's error (Rogan and Gladen 1978): the judge called ``positives`` of
    ``n`` items positive; on a labelled set it found ``true_pos`` of ``n_pos`` real positives
    (sensitivity) and cleared ``true_neg`` of ``n_neg`` real negatives (specificity), so
    ``(observed + specificity - 1) / (sensitivity + specificity - 1)``, clipped to [0, 1].

    The interval is a parametric bootstrap that draws the observed rate, the sensitivity and the
    specificity from their Jeffreys posteriors (Beta(k + 1/2, m - k + 1/2)), so it carries the labelled
    set's uncertainty as well as the run's and does not collapse to a point where a count is 0 or all
    (a binomial draw at an observed 0 of 8 is always 0: a zero-width interval). It assumes the judge
    errs on this data as on the labelled set. ``None`` estimate (and interval) when the judge is no
    better than chance there (sensitivity + specificity <= 1)."""
    for name, k, m in (("positives", positives, n), ("true_pos", true_pos, n_pos), ("true_neg", true_neg, n_neg)):
        if m < 1 or not 0 <= k <= m:
            raise ValueError(f"{name} must be a count between 0 and its total, got {k} of {m}")
    sens, spec, obs = true_pos / n_pos, true_neg / n_neg, positives / n
    out: dict[str, Any] = {"observed": obs, "sensitivity": sens, "specificity": spec, "value": None, "ci": None,
                           "assumption": "the judge errs on these items as on its labelled set"}
    if sens + spec <= 1:
        return out
    rng = np.random.default_rng(seed)
    o = rng.beta(positives + 0.5, n - positives + 0.5, n_resamples)
    se = rng.beta(true_pos + 0.5, n_pos - true_pos + 0.5, n_resamples)
    sp = rng.beta(true_neg + 0.5, n_neg - true_neg + 0.5, n_resamples)
    youden = se + sp - 1
    ok = youden > 0
    draws = np.clip((o[ok] + sp[ok] - 1) / youden[ok], 0.0, 1.0)
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return out | {"value": float(np.clip((obs + spec - 1) / (sens + spec - 1), 0.0, 1.0)),
                  "ci": (float(low), float(high))}


# ------------------------------------------------------------------------ prediction-powered means


def _tuned_lam(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """PPI++'s variance-minimising weight of the judge, ``cov(y, f) / var(f)`` clipped to [0, 1], per row."""
    fc, yc = f - f.mean(axis=-1, keepdims=True), y - y.mean(axis=-1, keepdims=True)
    var = (fc**2).sum(axis=-1)
    return np.where(var > 0, np.clip((yc * fc).sum(axis=-1) / np.where(var > 0, var, 1.0), 0.0, 1.0), 0.0)


def prediction_powered_mean(
    labelled: Sequence[float],
    predicted_labelled: Sequence[float],
    predicted_all: Sequence[float],
    *,
    alpha: float = 0.05,
    bounds: tuple[float, float] = (0.0, 1.0),
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The mean over a finite set of units (a run's prompts) of a quantity that people labelled on a
    uniform random sample of them and a judge predicted on all: the power-tuned prediction-powered
    estimate (PPI++, Angelopoulos, Duchi and Zrnic 2023), with its interval, beside the labels-only
    (classical) estimate and interval.

    ``labelled`` and ``predicted_labelled`` are the people's and the judge's values on the labelled units,
    ``predicted_all`` the judge's on every unit, the labelled ones included. The estimate is
    ``lam * mean(predicted_all) + mean(labelled - lam * predicted_labelled)``: with ``lam = 1`` the
    survey-sampling difference estimator (the judge's rate plus the sample's mean error), unbiased under the
    random draw however biased the judge is; ``lam`` is tuned to ``cov(y, f) / var(f)`` on the labelled units
    (clipped to [0, 1]), the variance-minimising choice; ``lam = 0`` is the labels alone.

    The interval is a percentile bootstrap of the labelled units that tunes ``lam`` again in every resample
    (no finite-population correction: conservative), widened where needed to the normal interval whose error
    variance is floored at that of one disagreement among the ``n`` (``1/n``): a judge right on all, or all
    but one, of 60 labelled answers would otherwise get an interval that only the observed errors can widen
    (a resample holds that one error or none). On a planted population of 400 whose judge calls 30% of
    non-answers carried out and misses 10% of real ones it covered the true rate in 94% of 500 draws at 30
    labels and 96% at 100, where a CLT interval of ``ppi-python``'s form covered it in 90% / 93.5% of 1,000
    (``python bench/ppi_coverage.py`` prints the current figures). The labels-only interval: Wilson's for 0/1
    labels, else the CLT one.

    Why not ``ppi-python``'s ``ppi_mean_ci``: it is written for an *independent* unlabelled sample, and its
    tuning, ``cov / ((1 + n/N) var)``, does not fit a labelled sample drawn from the units themselves: on 80
    prompts with a judge right on all 30 labelled ones it gave 0.327 where the prompts' rate (and the judge's)
    was 0.3625. ``tests/test_ppi.py`` checks this function against it where the two agree.
    Returns ``{value, ci, lam, method, classical: {value, ci}, n_labelled, n}``."""
    from scipy.stats import norm

    y = np.asarray(labelled, dtype=float)
    f = np.asarray(predicted_labelled, dtype=float)
    f_all = np.asarray(predicted_all, dtype=float)
    if y.ndim != 1 or y.shape != f.shape:
        raise ValueError(f"labelled and predicted_labelled must be 1-d and the same length, got {y.shape} and {f.shape}")
    n, big_n = len(y), len(f_all)
    if n < 2 or f_all.ndim != 1 or big_n < n:
        raise ValueError(f"need at least 2 labelled units among the predicted ones, got {n} of {f_all.size}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    low, high = bounds
    lam = float(_tuned_lam(y, f))
    err = y - lam * f
    value = lam * float(f_all.mean()) + float(err.mean())
    # the normal interval with the error variance floored at one disagreement in n: the least the interval
    # may be, so that a judge right on (nearly) every labelled answer does not get a (nearly) zero-width one
    half = float(norm.ppf(1 - alpha / 2)) * math.sqrt(max(float(np.var(err, ddof=1)), 1.0 / n) / n)
    ci, method = (value - half, value + half), "normal, error variance floored at 1/n"
    if np.ptp(err) > 0.0:
        idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
        ys, fs = y[idx], f[idx]
        lams = _tuned_lam(ys, fs)
        draws = lams * f_all.mean() + (ys - lams[:, None] * fs).mean(axis=1)
        q_low, q_high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
        ci = (min(ci[0], float(q_low)), max(ci[1], float(q_high)))
        method = "percentile bootstrap of the labelled units (lam re-tuned), widened to the floored normal interval"
    c_value = float(y.mean())
    if set(y.tolist()) <= {0.0, 1.0}:
        c_ci = wilson_interval(float(y.sum()), n, alpha=alpha)
    else:
        c_half = float(norm.ppf(1 - alpha / 2)) * float(np.std(y, ddof=1)) / math.sqrt(n)
        c_ci = (c_value - c_half, c_value + c_half)
    return {"value": float(min(high, max(low, value))), "ci": (float(max(low, ci[0])), float(min(high, ci[1]))),
            "lam": lam, "method": method, "n_labelled": n, "n": big_n,
            "classical": {"value": c_value, "ci": (float(max(low, c_ci[0])), float(min(high, c_ci[1])))}}
