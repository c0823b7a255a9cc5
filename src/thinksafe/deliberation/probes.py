"""Probes: does a hidden state predict the model's own refuse/comply decision?

The reproduction's probe: StandardScaler -> PCA(100) -> LogisticRegression(C=0.03, balanced classes),
out-of-fold scores from stratified 5-fold cross-validation, AUROC and balanced accuracy (threshold by
Youden's J on each training fold), a 500-resample bootstrap interval. One probe is fit on both pools
(harmful and benign) and scored per pool. Folds keep every sample of a prompt together
(``StratifiedGroupKFold``): with several samples per prompt, a probe must not be tested on a prompt it
was trained on. A TF-IDF probe of the prompt text is the baseline: what the prompt alone gives away.
The Fisher ratio is the untrained measure of the same separability, cheap enough for every position of
a trace (the paper's "valley").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from thinksafe.errors import ConfigError
from thinksafe.stats import auroc, auroc_ci, youden_threshold


@dataclass(frozen=True)
class ProbeConfig:
    """The reproduction's probe settings."""

    pca: int = field(default=100, metadata={"help": "PCA components (capped by the training fold's size)"})
    C: float = field(default=0.03, metadata={"help": "inverse L2 strength of the logistic regression"})
    folds: int = field(default=5, metadata={"help": "cross-validation folds (fewer when a class has fewer prompts)"})
    bootstrap: int = field(default=500, metadata={"help": "bootstrap resamples of the AUROC interval"})
    seed: int = field(default=0, metadata={"help": "fold shuffling and bootstrap seed"})

    def __post_init__(self) -> None:
        if self.pca < 1 or self.C <= 0 or self.folds < 2 or self.bootstrap < 1:
            raise ConfigError(f"invalid probe settings: {asdict(self)} (pca >= 1, C > 0, folds >= 2, bootstrap >= 1)")


def state_probe(cfg: ProbeConfig, n_train: int, n_features: int) -> Any:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    k = max(1, min(cfg.pca, n_train - 1, n_features))
    return make_pipeline(StandardScaler(), PCA(n_components=k, random_state=cfg.seed),
                         LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=2000))


def text_probe(cfg: ProbeConfig, n_train: int, n_features: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                         LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))


def folds(labels: np.ndarray, groups: Sequence[Hashable], strata: np.ndarray, cfg: ProbeConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, shuffled folds that keep a prompt's samples together; fewer folds when a class has
    fewer prompts than ``cfg.folds``; none when a class has fewer than two prompts."""
    from sklearn.model_selection import StratifiedGroupKFold

    per_class = [len({g for g, y in zip(groups, labels) if y == c}) for c in (0, 1)]
    # sklearn refuses more folds than the largest stratum (pool x label) has samples
    k = min(cfg.folds, *per_class, int(np.unique(strata, return_counts=True)[1].max()) if len(strata) else 0)
    if k < 2:
        return []
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
    return list(splitter.split(np.zeros(len(labels)), strata, groups))


@dataclass
class ProbeScores:
    """Out-of-fold scores and thresholded predictions (NaN / -1 where a sample was never tested)."""

    scores: np.ndarray
    predictions: np.ndarray
    n_folds: int


def cross_validate(
    features: Any, labels: Sequence[int], groups: Sequence[Hashable], pools: Sequence[str], cfg: ProbeConfig,
    make: Callable[[ProbeConfig, int, int], Any] = state_probe,
) -> ProbeScores:
    """Fit ``make(...)`` on each training fold, score the held-out fold; the threshold of each fold's
    predictions is Youden's J on its own training scores. A fold whose training rows hold one class only
    (a model that refuses all but a prompt or two) has nothing to fit: its held-out rows stay unscored (NaN),
    and the summaries count only scored rows."""
    y = np.asarray(labels, dtype=int)
    strata = np.array([f"{p}:{v}" for p, v in zip(pools, y)])
    split = folds(y, groups, strata, cfg)
    scores = np.full(len(y), np.nan)
    preds = np.full(len(y), -1)
    n_features = features.shape[1] if hasattr(features, "shape") and len(getattr(features, "shape", ())) > 1 else 0
    for train, test in split:
        if len(np.unique(y[train])) < 2:
            continue
        x_train = features[train] if hasattr(features, "shape") else [features[i] for i in train]
        x_test = features[test] if hasattr(features, "shape") else [features[i] for i in test]
        model = make(cfg, len(train), n_features)
        model.fit(x_train, y[train])
        threshold = youden_threshold(y[train], model.predict_proba(x_train)[:, 1])
        scores[test] = model.predict_proba(x_test)[:, 1]
        preds[test] = (scores[test] >= threshold).astype(int)
    return ProbeScores(scores, preds, len(split))


def summarize(
    result: ProbeScores, labels: Sequence[int], groups: Sequence[Hashable], pools: Sequence[str], cfg: ProbeConfig,
) -> dict[str, Any]:
    """AUROC (with its bootstrap interval by prompt), balanced accuracy and counts, for every pool and all."""
    from sklearn.metrics import balanced_accuracy_score

    y = np.asarray(labels, dtype=int)
    pool_arr = np.asarray(pools)
    out: dict[str, Any] = {}
    for name in [*sorted(set(pools)), "all"]:
        mask = (pool_arr == name) if name != "all" else np.ones(len(y), bool)
        mask &= ~np.isnan(result.scores)
        yy, ss = y[mask], result.scores[mask]
        gg = [g for g, m in zip(groups, mask) if m]
        entry: dict[str, Any] = {"n": int(mask.sum()), "n_refuse": int((yy == 1).sum()), "n_comply": int((yy == 0).sum()),
                                 "n_prompts": len(set(gg)), "folds": result.n_folds}
        if len(np.unique(yy)) == 2:
            entry["auroc"] = auroc(yy, ss)
            entry["auroc_ci"] = list(auroc_ci(yy, ss, clusters=gg, n_resamples=cfg.bootstrap, seed=cfg.seed))
            entry["balanced_accuracy"] = float(balanced_accuracy_score(yy, result.predictions[mask]))
        else:
            entry |= {"auroc": None, "auroc_ci": None, "balanced_accuracy": None,
                      "why": "one class only: the decision never varies here" if len(yy) else "no tested samples"}
        out[name] = entry
    return out


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
