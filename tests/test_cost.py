"""Cost beside every result: each stage's wall, CPU and GPU seconds and its tokens, per recipe in the report."""

from __future__ import annotations

import json
import os

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
