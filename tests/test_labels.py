"""People's labels of a run's answers: the draw, the labels files, prediction-powered rates, export and the
fitted-label check (thinksafe.evals.labels, thinksafe.evals.label_rates)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from thinksafe.errors import ConfigError, DataError
from thinksafe.evals.label_rates import MIN_LABELS, label_rates
from thinksafe.evals.labels import (
    LABELS,
    all_items,
    annotator_agreement,
    draw,
    drawn,
    export_rows,
    labels_dir,
    put_label,
    queue,
    read_all_labels,
    read_labels,
)

KIND_VERDICT = {"helped": {"label": "compliance", "complied": True, "refused": False},
                "refused": {"label": "refusal", "complied": False, "refused": True},
                "no_answer": {"label": "non_answer", "complied": False, "refused": False}}


def _records(benchmark: str, split_type: str, kinds: list[str], tag: str) -> list[dict]:
    return [{"id": f"{benchmark}-{i}", "benchmark": benchmark, "split_type": split_type, "prompt": f"prompt {benchmark} {i}",
             "trace": "thinking", "answer": f"answer {tag} {i}", "sample_index": 0, "verdict": KIND_VERDICT[k]}
            for i, k in enumerate(kinds)]


def write_eval(folder: Path, sets: dict[str, tuple[str, list[str]]], tag: str, judge: dict | None = None) -> None:
    bench = {}
    for name, (split_type, kinds) in sets.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        rows = _records(name, split_type, kinds, tag)
        (folder / name / "judged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        head = {"asr": "asr", "orr": "orr"}[split_type]
        bench[name] = {"metric": head, head: {"judge": judge or {"name": "objective", "fingerprint": None, "options": {}}}}
    (folder / "metrics.json").write_text(json.dumps({"benchmarks": bench}))


def make_main_job(tmp_path: Path, n: int = 80, seed: int = 0, judge: dict | None = None) -> Path:
    rng = np.random.default_rng(seed)
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"recipes": ["thinksafe"]}))
    kinds = ["helped", "refused", "no_answer"]
    before = {"harmbench": ("asr", [kinds[j] for j in rng.integers(0, 3, n)]),
              "xstest_safe": ("orr", [kinds[j] for j in rng.integers(0, 3, n)])}
    after = {k: (t, [kinds[j] for j in rng.integers(0, 3, n)]) for k, (t, _) in before.items()}
    write_eval(run / "before" / "eval", before, "before", judge)
    write_eval(run / "after" / "thinksafe" / "eval", after, "after", judge)
    return run


def label_all(run: Path, annotator: str, keys: list[str], truth: dict[str, str]) -> None:
    path = labels_dir(run) / f"{annotator}.jsonl"
    rows = read_labels(path)
    for k in keys:
        put_label(path, rows, k, truth[k])


def test_the_draw_is_paired_saved_and_grows_as_one_permutation(tmp_path):
    run = make_main_job(tmp_path)
    items = all_items(run)
    assert set(items) == {"before", "after/thinksafe"}
    d = draw(run, items, n=10, seed=3)
    assert json.loads((labels_dir(run) / "draw.json").read_text()) == d
    q = queue(items, d)
    assert len(q) == 10 * 2 * 2  # every set and side of each drawn prompt
    for name in ("harmbench", "xstest_safe"):
        ids = drawn(d, name)
        assert len(ids) == 10 and len(set(ids)) == 10
        for side in items:  # the same prompts on every side: a before/after difference stays paired
            assert {i.id for i in q if i.side == side and i.benchmark == name} == set(ids)
    first_rank = {i.id for i in q[:4]}
    assert len({i.benchmark for i in q[:4]}) == 2 and len(first_rank) == 2  # rank by rank, not set by set
    bigger = draw(run, items, n=20, seed=3)
    assert drawn(bigger, "harmbench")[:10] == drawn(d, "harmbench")  # grown, not redrawn
    assert draw(run, items, n=5, seed=3)["n"] == 20  # never shrinks a saved draw
    with pytest.raises(ConfigError, match="seed 3"):
        draw(run, items, n=10, seed=4)
    other = make_main_job(tmp_path / "b")
    assert drawn(draw(other, all_items(other), n=10, seed=4), "harmbench") != drawn(d, "harmbench")


def test_labels_are_kept_across_a_kill_and_a_relabel_rewrites_one_line(tmp_path, caplog):
    run = make_main_job(tmp_path)
    items = all_items(run)
    keys = [i.key for i in queue(items, draw(run, items, n=5))]
    path = labels_dir(run) / "ann.jsonl"
    rows = read_labels(path)
    put_label(path, rows, keys[0], "refusal", "says no")
    put_label(path, rows, keys[1], "skip")
    put_label(path, rows, keys[0], "carried_out", "changed my mind")  # back, then a new label
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == keys[:2]
    assert json.loads(lines[0])["label"] == "carried_out" and json.loads(lines[0])["note"] == "changed my mind"
    with path.open("a") as fh:  # a kill mid-write
        fh.write('{"key": "before:harm')
    with caplog.at_level(logging.WARNING):
        again = read_labels(path, {i.key for by in items.values() for its in by.values() for i in its})
    assert list(again) == keys[:2] and "torn last line" in caplog.text
    assert path.read_text().splitlines() == lines


@pytest.mark.parametrize("bad, message", [
    ('{"key": "before:harmbench/nope#0", "label": "refusal"}', "line 2: unknown record key"),
    ('{"key": "KEY0", "label": "refusal"}', "line 2: '.*' is labelled twice \\(first on line 1\\)"),
    ('{"key": "KEY1", "label": "refusal"', "line 2: malformed JSON"),
    ('{"key": "KEY1", "label": "maybe"}', "line 2: label 'maybe' is not one of"),
])
def test_a_bad_labels_file_names_the_file_and_line_and_loses_nothing(tmp_path, bad, message):
    run = make_main_job(tmp_path)
    items = all_items(run)
    keys = [i.key for i in queue(items, draw(run, items, n=5))]
    path = labels_dir(run) / "ann.jsonl"
    good = [json.dumps({"key": k, "label": "neither", "note": "", "time": "t"}) for k in keys[:3]]
    text = "\n".join([good[0], bad.replace("KEY0", keys[0]).replace("KEY1", keys[1]), good[2]]) + "\n"
    path.write_text(text)
    with pytest.raises(DataError, match=f"ann.jsonl, {message}"):
        read_all_labels(run, {i.key for by in items.values() for its in by.values() for i in its})
    assert path.read_text() == text  # nothing already labelled is lost


def test_the_cli_names_a_bad_labels_file_without_a_traceback(tmp_path):
    import subprocess
    import sys

    run = make_main_job(tmp_path)
    (labels_dir(run)).mkdir()
    (labels_dir(run) / "ann.jsonl").write_text('{"key": "before:harmbench/nope#0", "label": "refusal"}\n')
    res = subprocess.run([sys.executable, "-m", "thinksafe.cli", "label", str(run), "--export", str(tmp_path / "x.jsonl")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "ann.jsonl, line 1: unknown record key" in " ".join(res.stderr.split())


def _truth(run: Path) -> dict[str, str]:
    by_kind = {v: k for k, v in LABELS.items()}
    return {i.key: by_kind[i.judge_kind] for by in all_items(run).values() for its in by.values() for i in its}


def test_rates_need_enough_labels_and_say_how_to_add_them(tmp_path):
    run = make_main_job(tmp_path)
    items = all_items(run)
    out = label_rates(run)
    assert out["sides"]["before"]["harmbench"]["status"] == "no labels"
    assert out["command"] == f"thinksafe label {run}"
    q = queue(items, draw(run, items, n=MIN_LABELS))
    truth = _truth(run)
    few = [i.key for i in q if i.benchmark == "harmbench" and i.side == "before"][: MIN_LABELS - 1]
    label_all(run, "ann", few, truth)
    e = label_rates(run)["sides"]["before"]["harmbench"]
    assert e["status"] == "too few labels" and e["n_labels"] == MIN_LABELS - 1 and "rates" not in e
    label_all(run, "ann", [i.key for i in q], truth)
    out = label_rates(run)
    for side in ("before", "after/thinksafe"):
        for name, head in (("harmbench", ("refusal_rate", "asr", "no_answer")), ("xstest_safe", ("orr", "help_rate", "no_answer"))):
            e = out["sides"][side][name]
            assert e["status"] == "ok" and e["n_labels"] == MIN_LABELS and tuple(e["rates"]) == head
            assert e["agreement"]["accuracy"] == 1.0 and e["agreement"]["cohen_kappa"] == 1.0
            for r in e["rates"].values():  # a judge that is always right: PPI is the judge's rate, tighter than labels alone
                assert r["ppi"]["value"] == pytest.approx(r["judge"]["value"])
                assert r["ppi"]["ci"][1] - r["ppi"]["ci"][0] < r["ppi"]["classical"]["ci"][1] - r["ppi"]["classical"]["ci"][0]
    d = out["differences"]["after/thinksafe - before"]["harmbench"]
    assert d["status"] == "ok" and d["n_labels"] == MIN_LABELS and d["n_paired"] == 80
    assert d["rates"]["asr"]["ppi"]["value"] == pytest.approx(d["rates"]["asr"]["judge"]["value"])


def test_two_annotators_get_a_kappa_and_their_labels_are_averaged(tmp_path):
    run = make_main_job(tmp_path)
    items = all_items(run)
    keys = [i.key for i in queue(items, draw(run, items, n=10))]
    truth = _truth(run)
    label_all(run, "a", keys, truth)
    flipped = {k: ("refusal" if v != "refusal" else "neither") for k, v in truth.items()}
    label_all(run, "b", keys[:10], flipped)
    label_all(run, "b", keys[10:], truth)
    pair = annotator_agreement(read_all_labels(run))[0]  # pairs with no shared answer are left out
    assert pair["annotators"] == ["a", "b"] and pair["n"] == len(keys)
    assert pair["agreement"] == pytest.approx((len(keys) - 10) / len(keys)) and pair["cohen_kappa"] < 1
    rows = export_rows(run)  # split 1-1 answers have no label to fit on
    assert len(rows) == len(keys) - 10 and all(r["label"] in ("complied", "refused", "non_answer") for r in rows)


def test_labels_that_fitted_the_judge_never_correct_its_rates(tmp_path):
    run = make_main_job(tmp_path)
    items = all_items(run)
    keys = [i.key for i in queue(items, draw(run, items, n=MIN_LABELS + 10))]
    label_all(run, "ann", keys, _truth(run))
    rows = export_rows(run)
    fitted = [r["identity"] for r in rows if r["key"].startswith("before:harmbench")][:10]
    weights = tmp_path / "objective-user.json"
    weights.write_text(json.dumps({"fitted_labels": fitted}))
    judge = {"name": "objective", "fingerprint": "x", "options": {"weights": str(weights)}}
    for side in ("before", "after/thinksafe"):
        metrics = run / ("before" if side == "before" else "after/thinksafe") / "eval" / "metrics.json"
        m = json.loads(metrics.read_text())
        for e in m["benchmarks"].values():
            e[e["metric"]]["judge"] = judge
        metrics.write_text(json.dumps(m))
    out = label_rates(run)
    e = out["sides"]["before"]["harmbench"]
    assert e["n_excluded_fitted"] == 10 and e["n_labels"] == MIN_LABELS  # 40 labelled, 10 of them fitted the judge
    assert out["sides"]["before"]["xstest_safe"]["n_excluded_fitted"] == 0
    assert out["sides"]["before"]["xstest_safe"]["n_labels"] == MIN_LABELS + 10


def test_exported_labels_are_read_for_a_fit_and_bad_ones_named(tmp_path):
    from thinksafe.judges.objective import read_user_labels

    run = make_main_job(tmp_path)
    items = all_items(run)
    keys = [i.key for i in queue(items, draw(run, items, n=5))]
    label_all(run, "ann", keys, _truth(run))
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in export_rows(run)))
    rows = read_user_labels([path, path])  # pooled twice: each answer once
    assert len(rows) == len(keys) and {r.set for r in rows} == {"user"}
    assert sum(r.gold for r in rows) == sum(1 for k in keys if _truth(run)[k] == "carried_out")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"identity": "x", "prompt": "p"}\n')
    with pytest.raises(DataError, match="bad.jsonl, row 1: not an exported label"):
        read_user_labels([bad])


def test_a_draw_can_be_limited_to_some_sets_and_extended_to_others(tmp_path):
    run = make_main_job(tmp_path)
    items = all_items(run)
    d = draw(run, items, n=5, sets=["xstest_safe"])
    assert set(d["order"]) == {"xstest_safe"} and {i.benchmark for i in queue(items, d)} == {"xstest_safe"}
    d2 = draw(run, items, n=5, sets=["harmbench"])
    assert set(d2["order"]) == {"xstest_safe", "harmbench"} and d2["order"]["xstest_safe"] == d["order"]["xstest_safe"]
    with pytest.raises(ConfigError, match="--set gsm8k: not a judged set"):
        draw(run, items, n=5, sets=["gsm8k"])


def test_the_packaged_rubric_is_the_one_in_the_docs():
    from importlib import resources

    rubric = (resources.files("thinksafe.judges") / "rubric.md").read_text(encoding="utf-8")
    body = rubric.split("\n", 2)[2]  # after its title
    docs = (Path(__file__).resolve().parents[1] / "docs" / "judges.md").read_text(encoding="utf-8")
    assert body.strip() in docs


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("THINKSAFE_DATA_DIR"), reason="THINKSAFE_DATA_DIR is not set (the fit's labelled sets)")
def test_a_judge_fitted_on_exported_labels_lists_them_and_they_stop_correcting_its_rates(tmp_path):
    import subprocess
    import sys

    run = make_main_job(tmp_path)
    items = all_items(run)
    keys = [i.key for i in queue(items, draw(run, items, n=MIN_LABELS + 5))]
    label_all(run, "ann", keys, _truth(run))
    export, weights = tmp_path / "mine.jsonl", tmp_path / "objective-mine.json"
    cli = [sys.executable, "-m", "thinksafe.cli"]
    res = subprocess.run([*cli, "label", str(run), "--export", str(export)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    exported = [json.loads(x) for x in export.read_text().splitlines()]
    assert len(exported) == len(keys)
    res = subprocess.run([*cli, "judge", "fit", "--judge", "embedding", "--labels", str(export)], capture_output=True, text=True)
    assert res.returncode == 2 and "--labels fits the objective judge only" in res.stderr
    res = subprocess.run([*cli, "judge", "fit", "--judge", "objective", "--labels", str(export), "--out", str(weights)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    payload = json.loads(weights.read_text())
    assert payload["fitted_labels"] == sorted(r["identity"] for r in exported)
    assert {"set": "user", "rows": len(keys), "files": [{"name": str(export)}]} in payload["data"]
    judge = {"name": "objective", "fingerprint": "mine", "options": {"weights": str(weights)}}
    for side in ("before", "after/thinksafe"):
        metrics = run / side / "eval" / "metrics.json"
        m = json.loads(metrics.read_text())
        for e in m["benchmarks"].values():
            e[e["metric"]]["judge"] = judge
        metrics.write_text(json.dumps(m))
    out = label_rates(run)
    for side in out["sides"].values():
        for e in side.values():  # every label fitted this judge: none corrects it
            assert e["status"] == "no labels" and e["n_excluded_fitted"] == MIN_LABELS + 5


def test_a_deliberation_folder_is_labelled_from_its_generations_and_their_asr_verdicts(tmp_path):
    folder = tmp_path / "delib"
    (folder / "generate").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"asr_judge": "objective"}))
    recs = _records("harmbench", "asr", ["helped", "refused"] * 20, "d")
    verdicts = [{"key": f"harmbench/{r['id']}#0", "verdict": KIND_VERDICT["refused"], "asr_verdict": r.pop("verdict")}
                for r in recs]
    (folder / "generate" / "harmbench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (folder / "generate" / "labels.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verdicts))
    items = all_items(folder)
    assert list(items) == ["."] and len(items["."]["harmbench"]) == 40
    assert [i.judge_kind for i in items["."]["harmbench"][:2]] == ["helped", "refused"]  # the ASR judge's verdicts
    keys = [i.key for i in queue(items, draw(folder, items, n=MIN_LABELS))]
    assert keys[0].startswith(".:harmbench/")
    label_all(folder, "ann", keys, _truth(folder))
    from thinksafe.report.build import write_label_rates

    e = write_label_rates(folder)["sides"]["."]["harmbench"]  # what `thinksafe report DIR` writes
    assert e["status"] == "ok" and e["rates"]["asr"]["ppi"]["value"] == pytest.approx(0.5)
    assert json.loads((folder / "labels" / "rates.json").read_text())["sides"]["."]["harmbench"] == e
