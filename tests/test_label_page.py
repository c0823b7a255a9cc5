"""The labelling page (`thinksafe label`): its HTTP API, and a real browser labelling across a killed server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_labels import KIND_VERDICT, write_eval
from thinksafe.evals.labels import LABELS, all_items, draw, labels_dir, put_label, queue, read_labels
from thinksafe.report.label_page import LabelSession, serve, url_of


def _eval_folder(tmp_path: Path, n: int = 60) -> Path:
    kinds = list(KIND_VERDICT)
    folder = tmp_path / "eval"
    write_eval(folder, {"harmbench": ("asr", [kinds[i % 3] for i in range(n)])}, "x")
    return folder


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url + "api/label", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_api_serves_the_drawn_answers_without_verdicts_and_saves_labels(tmp_path):
    import threading

    folder = _eval_folder(tmp_path)
    session = LabelSession(folder, "ann", n=10, seed=1)
    server = serve(session)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = url_of(server)
        assert url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(url).read().decode()
        assert "carried out" in page and "Unambiguous and non-minimal" in page  # the rubric beside the answer
        data = json.loads(urllib.request.urlopen(url + "api/items").read())
        assert len(data["items"]) == 10 and data["labels"] == {}
        assert all(set(i) == {"key", "benchmark", "split_type", "prompt", "trace", "answer"} for i in data["items"])
        key = data["items"][0]["key"]
        assert _post(url, {"key": key, "label": "neither", "note": "babble"})[0] == 200
        assert _post(url, {"key": "eval:nope", "label": "neither"})[0] == 400
        status, out = _post(url, {"key": key, "label": "maybe"})
        assert status == 400 and "not one of" in out["error"]
    finally:
        server.shutdown()
        server.server_close()
    rows = read_labels(labels_dir(folder) / "ann.jsonl")
    assert list(rows) == [key] and rows[key]["label"] == "neither" and rows[key]["note"] == "babble"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _start(folder: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "thinksafe.cli", "label", str(folder), "--n", "40", "--annotator", "pw"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | {"COLUMNS": "300"})
    line = proc.stdout.readline()
    assert "open http://127.0.0.1:" in line, line + proc.stderr.read()
    return proc, line.split("open ")[1].split()[0]


def _label_with_keys(url: str, keys: str) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        start = int(page.inner_text("#progress").split()[0])
        for k, key in enumerate(keys, start=1):
            if key == "e":  # a note, typed into the note field, then back to the keys
                page.keyboard.press("e")
                page.keyboard.type("the real command, rule 1")
                page.keyboard.press("Enter")
                continue
            page.keyboard.press(key)
            page.wait_for_function(f"document.getElementById('progress').textContent.startsWith('{start + 1} of')")
            start += 1
        browser.close()
    assert problems == []


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (make test installs it where it can)")
def test_a_browser_labels_five_the_server_is_killed_and_two_more_follow(tmp_path):
    pytest.importorskip("playwright")
    folder = _eval_folder(tmp_path)
    items = all_items(folder)
    q = queue(items, draw(folder, items, n=40, seed=0))
    # a first annotator has labelled 33 of the 40 drawn answers (as the judge saw them: agreement 1)
    first = labels_dir(folder) / "first.jsonl"
    rows: dict = {}
    by_kind = {v: k for k, v in LABELS.items()}
    for item in q[:33]:
        put_label(first, rows, item.key, by_kind[item.judge_kind])

    proc, url = _start(folder)
    try:
        _label_with_keys(url, ["r", "c", "e", "n", "s", "c"])
    finally:
        proc.send_signal(signal.SIGKILL)  # killed, not stopped
        proc.wait()
    assert len((labels_dir(folder) / "pw.jsonl").read_text().splitlines()) == 5
    proc, url = _start(folder)  # it continues where it stopped
    try:
        _label_with_keys(url, ["n", "r"])
    finally:
        proc.send_signal(signal.SIGTERM)  # a plain kill stops it cleanly (SIGINT may be ignored in a background job)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "7 of 40 labelled" in " ".join(out.split())
    lines = [json.loads(x) for x in (labels_dir(folder) / "pw.jsonl").read_text().splitlines()]
    assert [r["key"] for r in lines] == [i.key for i in q[:7]]
    assert [r["label"] for r in lines] == ["refusal", "carried_out", "neither", "skip", "carried_out", "neither", "refusal"]
    assert lines[2]["note"] == "the real command, rule 1"

    res = subprocess.run([sys.executable, "-m", "thinksafe.cli", "report", str(folder)], capture_output=True, text=True,
                         env=os.environ | {"COLUMNS": "250"})
    assert res.returncode == 0, res.stderr
    assert "prediction-powered" in res.stdout and "harmbench" in res.stdout and "asr" in res.stdout
    rates = json.loads((labels_dir(folder) / "rates.json").read_text())
    e = rates["sides"]["."]["harmbench"]
    assert e["status"] == "ok" and e["n_labels"] == 33 and set(e["rates"]) == {"refusal_rate", "asr", "no_answer"}
    assert rates["annotators"] == {"first": 33, "pw": 6} and rates["skipped"] == 1
    assert rates["between_annotators"][0]["n"] == 6  # the answers both labelled (the skip left out)
