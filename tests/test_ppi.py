"""Prediction-powered rates (stats.prediction_powered_mean): checked against ppi-python where the two estimators
agree, and by simulation where a judge is badly biased (the labelling issue's acceptance).

ppi-python runs in a subprocess: it imports numba, whose llvmlite objects break vLLM's kernel dispatcher when
both share a process (vllm/triton_utils/dispatcher.py scans every loaded module), and the vLLM tests run later
in the same pytest process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from thinksafe.stats import prediction_powered_mean, wilson_interval


def planted(seed: int, n_labels: int = 100, size: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A population of ``size`` answers: 20% carried out, half non-answers, the rest refusals. The judge calls 30%
    of the non-answers carried out and misses 10% of the real ones; ``n_labels`` answers are drawn for people."""
    rng = np.random.default_rng(seed)
    n_carried, n_non = size // 5, size // 2
    truth = np.zeros(size)
    truth[:n_carried] = 1
    judge = truth.copy()
    judge[rng.choice(n_carried, n_carried // 10, replace=False)] = 0  # misses 10% of real ones
    judge[n_carried + rng.choice(n_non, int(0.3 * n_non), replace=False)] = 1  # 30% of non-answers
    lab = rng.choice(size, n_labels, replace=False)
    return truth[lab], judge[lab], judge, float(truth.mean())


def simulate(draws: int = 500, n_labels: int = 100, size: int = 400) -> dict[str, float]:
    cover_ppi = cover_judge = 0
    width_ppi, width_classical = [], []
    for seed in range(draws):
        y, f, f_all, true = planted(seed, n_labels, size)
        res = prediction_powered_mean(y, f, f_all, seed=seed)
        cover_ppi += res["ci"][0] <= true <= res["ci"][1]
        low, high = wilson_interval(f_all.sum(), size)  # the judge alone, as `metrics.json` reports it
        cover_judge += low <= true <= high
        width_ppi.append(res["ci"][1] - res["ci"][0])
        width_classical.append(res["classical"]["ci"][1] - res["classical"]["ci"][0])
    return {"ppi": cover_ppi / draws, "judge": cover_judge / draws, "width_ppi": float(np.mean(width_ppi)),
            "width_classical": float(np.mean(width_classical))}


def test_prediction_powered_intervals_cover_the_true_rate_where_the_judge_does_not():
    out = simulate()
    assert out["ppi"] >= 0.93, out
    assert out["judge"] < 0.5, out
    assert out["width_ppi"] <= out["width_classical"], out


def ppi_python(y: np.ndarray, f: np.ndarray, unlabelled: np.ndarray, lam: float | None) -> dict[str, float]:
    """ppi-python's point estimate and 95% interval, computed in a fresh interpreter."""
    code = ("import json, sys, numpy as np\n"
            "from ppi_py import ppi_mean_ci, ppi_mean_pointestimate\n"
            "a = json.load(sys.stdin); y, f, u = (np.array(a[k]) for k in ('y', 'f', 'u'))\n"
            "v = ppi_mean_pointestimate(y, f, u, lam=a['lam'])\n"
            "lo, hi = ppi_mean_ci(y, f, u, alpha=0.05, lam=a['lam'])\n"
            "print(json.dumps({'value': float(np.ravel(v)[0]), 'low': float(np.ravel(lo)[0]), 'high': float(np.ravel(hi)[0])}))\n")
    res = subprocess.run([sys.executable, "-c", code], input=json.dumps({"y": y.tolist(), "f": f.tolist(),
                         "u": unlabelled.tolist(), "lam": lam}), capture_output=True, text=True)
    if res.returncode and "No module named 'ppi_py'" in res.stderr:
        pytest.skip("ppi-python is not installed (make setup installs it with the test extra)")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_the_estimate_is_the_judges_rate_plus_the_samples_error_at_lam_one_as_ppi_python_computes_it():
    y, f, f_all, _ = planted(1)
    # lam = 1: our estimate equals ppi-python's with every unit as the unlabelled sample (the difference estimator)
    ours = 1.0 * f_all.mean() + (y - f).mean()
    assert ours == pytest.approx(ppi_python(y, f, f_all, lam=1.0)["value"], abs=1e-12)


def test_with_a_large_population_the_tuned_estimate_and_interval_are_ppi_pythons():
    rng = np.random.default_rng(7)
    size, n = 200_000, 150
    truth = rng.binomial(1, 0.3, size).astype(float)
    judge = np.where(rng.random(size) < 0.8, truth, 1 - truth)
    lab = rng.choice(size, n, replace=False)
    rest = np.setdiff1d(np.arange(size), lab)
    ours = prediction_powered_mean(truth[lab], judge[lab], judge)
    theirs = ppi_python(truth[lab], judge[lab], judge[rest], lam=None)
    value, low, high = theirs["value"], theirs["low"], theirs["high"]
    assert ours["value"] == pytest.approx(value, abs=2e-3)
    # our interval is a bootstrap, theirs the CLT one: the same up to resampling noise (a few % of the width)
    assert ours["ci"][0] == pytest.approx(low, abs=0.01) and ours["ci"][1] == pytest.approx(high, abs=0.01)
    assert ours["ci"][1] - ours["ci"][0] == pytest.approx(high - low, rel=0.1)


def test_a_judge_right_on_every_label_gives_its_own_rate_with_an_interval_that_does_not_collapse():
    f_all = np.array([1.0] * 29 + [0.0] * 51)
    lab = np.arange(0, 80, 2)
    res = prediction_powered_mean(f_all[lab], f_all[lab], f_all)
    assert res["value"] == pytest.approx(29 / 80) and res["lam"] == pytest.approx(1.0)
    assert 0.02 < res["ci"][1] - res["ci"][0] < res["classical"]["ci"][1] - res["classical"]["ci"][0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="same length"):
        prediction_powered_mean([1, 0], [1], [1, 0, 1])
    with pytest.raises(ValueError, match="at least 2 labelled"):
        prediction_powered_mean([1], [1], [1, 0])
