"""Coverage and width of the prediction-powered interval (stats.prediction_powered_mean) against the judge alone
and the labels alone, at several numbers of labels, on two planted populations:

* biased: the labelling issue's (400 answers, 20% carried out, half non-answers; the judge calls 30% of
  non-answers carried out and misses 10% of real ones);
* accurate: 120 answers at a rate of 0.18, a judge that misses 5% of real ones and calls 2% of the others
  (as accurate as the objective judge on the worked example's refusals, docs/labelling.md), where a bootstrap
  alone would see one error or none in the labels.

    python bench/ppi_coverage.py [--draws 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
from test_ppi import planted  # noqa: E402

from thinksafe.stats import prediction_powered_mean, wilson_interval  # noqa: E402


def accurate(seed: int, n: int, size: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    truth = (rng.random(size) < 0.18).astype(float)
    judge, r = truth.copy(), rng.random(size)
    judge[(truth == 1) & (r < 0.05)] = 0
    judge[(truth == 0) & (r < 0.02)] = 1
    lab = rng.choice(size, n, replace=False)
    return truth[lab], judge[lab], judge, float(truth.mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=500)
    args = ap.parse_args()
    for name, population, sizes in (("biased", planted, (10, 20, 30, 60, 100)), ("accurate", accurate, (30, 60))):
        print(f"{name} judge")
        table(population, sizes, args.draws)


def table(population, sizes, draws: int) -> None:  # noqa: ANN001
    print("labels  PPI++ covers  judge-only covers  labels-only covers  PPI++ width  labels-only width")
    for n in sizes:
        cover = {"ppi": 0, "judge": 0, "classical": 0}
        width = {"ppi": 0.0, "classical": 0.0}
        for seed in range(draws):
            y, f, f_all, true = population(seed, n)
            res = prediction_powered_mean(y, f, f_all, seed=seed)
            lo, hi = wilson_interval(f_all.sum(), len(f_all))
            cover["ppi"] += res["ci"][0] <= true <= res["ci"][1]
            cover["judge"] += lo <= true <= hi
            cover["classical"] += res["classical"]["ci"][0] <= true <= res["classical"]["ci"][1]
            width["ppi"] += res["ci"][1] - res["ci"][0]
            width["classical"] += res["classical"]["ci"][1] - res["classical"]["ci"][0]
        d = draws
        print(f"{n:6d}  {cover['ppi'] / d:12.3f}  {cover['judge'] / d:17.3f}  {cover['classical'] / d:18.3f}"
              f"  {width['ppi'] / d:11.3f}  {width['classical'] / d:17.3f}")


if __name__ == "__main__":
    main()
