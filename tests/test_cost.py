"""Cost beside every result: each stage's wall, CPU and GPU seconds and its tokens, per recipe in the report."""

from __future__ import annotations

import json
import os
import time

import pytest

from thinksafe import cost


def test_measure_counts_the_block_only():
    cost.add_generated(5)  # before the block: not counted
    with cost.measure() as c:
        cost.add_generated(7)
        cost.add_trained(11)
        sum(i * i for i in range(300_000))  # some CPU
    assert c["tokens_generated"] == 7 and c["tokens_trained"] == 11
    assert c["cpu_s"] >= 0 and c["wall_s"] >= 0 and c["gpus"] == 0 and c["gpu_s"] == 0


@pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set")
@pytest.mark.slow  # the tiny main job (conftest.tiny_run)
def test_the_main_job_records_every_stage_cost_and_the_report_shows_each_recipe(tiny_run):
    costs = json.loads((tiny_run.out / "costs.json").read_text())
    timings = json.loads((tiny_run.out / "timings.json").read_text())
    assert set(costs) == set(timings)
    align = costs["align/thinksafe"]
    assert align["tokens_generated"] > 0 and align["tokens_trained"] > 0 and align["cpu_s"] > 0
    assert costs["before/eval"]["tokens_trained"] == 0
    metrics = json.loads((tiny_run.out / "metrics.json").read_text())
    assert metrics["cost"]["by_recipe"]["thinksafe"] == align
    html = (tiny_run.out / "report.html").read_text()
    assert 'id="cost-table"' in html and str(align["tokens_trained"]) in html


def test_a_skipped_stage_keeps_its_cost_and_a_resumed_one_says_so(tmp_path):
    """A stage run again once finished (nothing sampled or trained) keeps the cost of when it ran; a stage
    whose earlier attempt was killed (left "running") records this attempt, marked resumed; an error leaves
    the record as it was."""
    from thinksafe.pipeline import MainRun

    run = MainRun.__new__(MainRun)  # _timed needs only its folder and records
    run.out, run.progress, run._weights, run._costs, run._timings = tmp_path, False, {}, {}, {}

    def work(tokens, seconds=0.0):
        def fn():
            cost.add_generated(tokens)
            time.sleep(seconds)
            return tokens
        return fn

    def read():
        return json.loads((tmp_path / "costs.json").read_text()), json.loads((tmp_path / "timings.json").read_text())

    assert run._timed("before/eval", work(40)) == 40
    first, timings = read()
    assert first["before/eval"]["tokens_generated"] == 40 and first["before/eval"]["status"] == "complete"
    run._timed("before/eval", work(0, 1.2))  # skipped (loading and checking can take seconds): its cost stays
    assert read() == (first, timings)
    run._timed("before/eval", work(3))  # run again for real (another config): replaced
    assert read()[0]["before/eval"]["tokens_generated"] == 3 and "resumed" not in read()[0]["before/eval"]

    run._costs["align/x"] = {"status": "running"}  # what a killed attempt leaves
    run._timed("align/x", work(9))
    assert read()[0]["align/x"] == read()[0]["align/x"] | {"resumed": True, "tokens_generated": 9, "status": "complete"}

    def boom():
        cost.add_generated(5)
        raise RuntimeError("no")

    kept = read()
    with pytest.raises(RuntimeError):
        run._timed("align/x", boom)
    with pytest.raises(RuntimeError):
        run._timed("align/y", boom)
    assert read() == kept  # the finished record unchanged, the failed new one absent
