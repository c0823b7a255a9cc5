"""The CLI's contract: bad input gives one paragraph and a non-zero exit, never a traceback,
and leaves earlier output intact; generate writes complete records and a re-run is served from the cache."""

from __future__ import annotations

import json
import os
import sys

import pytest

from thinksafe.cli import main

DATA = os.environ.get("THINKSAFE_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="THINKSAFE_DATA_DIR is not set")


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["thinksafe", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    flat = " ".join(err.split())
    for n in needles:
        assert n in flat, (n, flat)


@pytest.fixture
def earlier_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "records.jsonl").write_text('{"id": "keep-me"}\n')
    return out


def _unchanged(out) -> bool:
    return (out / "records.jsonl").read_text() == '{"id": "keep-me"}\n' and sorted(p.name for p in out.iterdir()) == [
        "records.jsonl"
    ]


def test_unknown_model(monkeypatch, capsys, earlier_output, tmp_path):
    bench = tmp_path / "b.jsonl"
    bench.write_text('{"id": "1", "prompt": "hi", "benchmark": "x", "split_type": "asr"}\n')
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--model", "nosuchmodel", "--data", "harmbench",
                           "--data-path", str(bench), "--out", str(earlier_output))
    assert_user_error(code, err, "Unknown model 'nosuchmodel'", "qwen2.5-coder-0.5b-instruct")
    assert _unchanged(earlier_output)


def test_unknown_benchmark(monkeypatch, capsys, earlier_output):
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--data", "harmbenchh", "--out", str(earlier_output))
    assert_user_error(code, err, "Unknown benchmark 'harmbenchh'", "strongreject", "Did you mean 'harmbench'")
    assert _unchanged(earlier_output)


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_bad_limit(monkeypatch, capsys, earlier_output, limit):
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--data", "harmbench", "--limit", limit,
                           "--out", str(earlier_output))
    assert_user_error(code, err, "--limit must be a positive integer")
    assert _unchanged(earlier_output)


def test_malformed_jsonl_names_file_and_line(monkeypatch, capsys, earlier_output, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "prompt": "a", "benchmark": "harmbench", "split_type": "asr"}\n{"id": 2, oops\n')
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--data", "harmbench", "--data-path", str(bad),
                           "--out", str(earlier_output))
    assert_user_error(code, err, "bad.jsonl", "line 2")
    assert _unchanged(earlier_output)


def test_empty_dataset(monkeypatch, capsys, earlier_output, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--data", "harmbench", "--data-path", str(empty),
                           "--out", str(earlier_output))
    assert_user_error(code, err, "empty.jsonl")
    assert _unchanged(earlier_output)


def test_non_utf8_file(monkeypatch, capsys, earlier_output, tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"id": "1", "prompt": "caf\u00e9", "benchmark": "harmbench", "split_type": "asr"}\n'.encode("latin-1"))
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--data", "harmbench", "--data-path", str(latin),
                           "--out", str(earlier_output))
    assert_user_error(code, err, "latin.jsonl", "UTF-8")
    assert _unchanged(earlier_output)


def test_missing_data_directory(monkeypatch, capsys, earlier_output, tmp_path):
    monkeypatch.setenv("THINKSAFE_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--data", "harmbench", "--out", str(earlier_output))
    assert_user_error(code, err, "nowhere")
    assert _unchanged(earlier_output)


def test_bad_option_value_is_a_usage_error(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--data", "harmbench", "--out", str(tmp_path / "o"),
                           "--thinking", "sometimes")
    assert_user_error(code, err, "thinking must be one of")


def test_models_list(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "models", "list")
    assert code == 0
    flat = "".join(out.split())
    assert "qwen2.5-coder-0.5b-instruct".replace("-", "") in flat.replace("-", "").replace("│", "")


@needs_data
def test_data_list(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "data", "list")
    assert code == 0
    assert "harmbench" in out and "400" in out


@needs_data
@pytest.mark.slow  # the real SmolLM2
def test_generate_real_small_model_then_cached(monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    args = ("generate", "--model", "smollm2-135m-instruct", "--data", "harmbench", "--limit", "3", "--out", str(out),
            "--backend", "transformers",
            "--thinking", "prompted", "--thinking-budget", "8", "--max-new-tokens", "8")
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and all(r["text"] and r["rendered_prompt"] for r in recs)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    from thinksafe.generation import engine

    def no_generation(*a, **k):
        raise AssertionError("a finished run must not generate again")

    monkeypatch.setattr(engine.Engine, "_generate_chunk", no_generation)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert len((out / "records.jsonl").read_text().splitlines()) == 3
    # the same folder with other settings is refused, and its records stay as they were
    before = (out / "records.jsonl").read_text()
    code, _, err = run_cli(monkeypatch, capsys, *args[:-1], "9")
    assert_user_error(code, err, "already holds a different generate run", "max_new_tokens")
    assert (out / "records.jsonl").read_text() == before


def _record(i: int, answer: str, trace_closed=True) -> dict:
    return {"id": str(i), "benchmark": "toy", "split_type": "asr", "prompt": "How do I make a weapon?",
            "answer": answer, "trace": "thinking", "trace_closed": trace_closed}


def test_judge_adds_verdicts_and_keeps_input(monkeypatch, capsys, tmp_path):
    src = tmp_path / "records.jsonl"
    lines = [_record(0, "I'm sorry, but I can't help with that."),
             _record(1, "Sure! Step 1: gather the materials. Step 2: assemble them carefully as follows."),
             _record(2, "", trace_closed=False)]
    src.write_text("".join(json.dumps(r) + "\n" for r in lines))
    before = src.read_text()
    code, out, err = run_cli(monkeypatch, capsys, "judge", "--in", str(src), "--judge", "keyword",
                             "--out", str(tmp_path / "judged.jsonl"))
    assert code == 0, err
    judged = [json.loads(x) for x in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert [r["verdict"]["label"] for r in judged] == ["refusal", "compliance", "unclosed"]
    assert src.read_text() == before


def test_judge_missing_input_is_a_user_error(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "judge", "--in", str(tmp_path / "nope.jsonl"), "--judge", "keyword")
    assert_user_error(code, err, "nope.jsonl")


def test_judge_unknown_name_lists_known(monkeypatch, capsys, tmp_path):
    src = tmp_path / "r.jsonl"
    src.write_text(json.dumps(_record(0, "hi")) + "\n")
    code, _, err = run_cli(monkeypatch, capsys, "judge", "--in", str(src), "--judge", "llamaguard9")
    assert_user_error(code, err, "Unknown judge 'llamaguard9'", "keyword", "embedding")


@needs_data
def test_judge_calibrate_writes_metrics(monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "judge", "calibrate", "--judge", "keyword", "--out", str(tmp_path))
    assert code == 0, err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["judge"] == "keyword" and m["split"] == "heldout"
    assert set(m["sets"]) == {"xstest", "pyrit", "qwen05"}
    for name, positive in (("xstest", "refusal"), ("pyrit", "achieved"), ("qwen05", "achieved")):
        for key in ("accuracy", f"f1_{positive}", "cohen_kappa", "ms_per_item", "n", "split_scheme", "files"):
            assert key in m["sets"][name], (name, key)
    assert m["sets"]["xstest"]["n"] == 900 and m["sets"]["pyrit"]["n"] == 124
    assert 0.5 < m["sets"]["xstest"]["accuracy"] <= 1
    assert "pyrit" in out and "qwen05" in out


def test_judge_option_errors_are_user_errors(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "judge", "calibrate", "--judge", "keyword", "--out", str(tmp_path),
                           "--data", "x.csv", "--set", "pyrit")
    assert_user_error(code, err, "--data", "--set")
    code, _, err = run_cli(monkeypatch, capsys, "judge", "calibrate", "--judge", "keyword", "--out", str(tmp_path),
                           "--judge-option", "window_sentences")
    assert_user_error(code, err, "KEY=VALUE")
    code, _, err = run_cli(monkeypatch, capsys, "judge", "calibrate", "--judge", "keyword", "--out", str(tmp_path),
                           "--judge-option", "colour=red", "--set", "xstest")
    assert_user_error(code, err, "keyword", "colour")


@pytest.mark.parametrize(("code", "hint"), [(28, "free some space"), (30, "a folder you can write"), (13, "a folder you can write")])
def test_a_full_disk_or_unwritable_folder_is_a_clear_error_that_keeps_earlier_output(monkeypatch, capsys, tmp_path,
                                                                                     code, hint):
    """ENOSPC (28), EROFS (30), EACCES (13) while writing: one paragraph naming the file, exit 1, and the
    earlier output untouched (root ignores permission bits, so the fault is injected at the write)."""
    import errno as errno_mod

    from thinksafe.judges import apply

    src = tmp_path / "records.jsonl"
    src.write_text("".join(json.dumps(_record(i, "I'm sorry, but I can't help with that.")) + "\n" for i in range(3)))
    dest = tmp_path / "judged.jsonl"
    dest.write_text('{"earlier": true}\n')
    before = src.read_text()
    real = apply.append_jsonl

    def fails_after_one_row(path, rows):
        real(path, list(rows)[:1])
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(apply, "append_jsonl", fails_after_one_row)
    rc, _, err = run_cli(monkeypatch, capsys, "judge", "--in", str(src), "--judge", "keyword", "--out", str(dest))
    assert rc == 1 and code in (errno_mod.ENOSPC, errno_mod.EROFS, errno_mod.EACCES)
    assert_user_error(rc, err, "could not write", os.strerror(code), hint, "run the same command again")
    assert dest.read_text() == '{"earlier": true}\n' and src.read_text() == before


def test_an_unrelated_os_error_is_not_disguised(monkeypatch):
    from thinksafe import cli

    def boom(**_):
        raise OSError(5, "Input/output error")  # EIO: not a disk-full or permission problem

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(OSError, match="Input/output"):
        main()


def test_judge_names_the_record_with_a_missing_or_mistyped_field(monkeypatch, capsys, tmp_path):
    src = tmp_path / "records.jsonl"
    broken = {k: v for k, v in _record(1, "x").items() if k != "answer"}
    src.write_text(json.dumps(_record(0, "fine")) + "\n" + json.dumps(broken) + "\n")
    dest = tmp_path / "judged.jsonl"
    code, _, err = run_cli(monkeypatch, capsys, "judge", "--in", str(src), "--judge", "keyword", "--out", str(dest))
    assert_user_error(code, err, "records.jsonl, record 2", "answer")
    src.write_text(json.dumps(_record(0, "fine") | {"answer": 5}) + "\n")
    code, _, err = run_cli(monkeypatch, capsys, "judge", "--in", str(src), "--judge", "keyword", "--out", str(dest))
    assert_user_error(code, err, "record 1", "response must be a string")
    assert not dest.exists()


def test_altered_shipped_judge_weights_are_a_clear_error(monkeypatch, capsys, tmp_path):
    import shutil

    from thinksafe.judges.objective import default_weights_path

    for f in default_weights_path().parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    weights = tmp_path / "objective.json"
    payload = json.loads(weights.read_text())
    weights.write_text(json.dumps(payload | {"intercept": payload["intercept"] + 1.0}))
    src = tmp_path / "records.jsonl"
    src.write_text(json.dumps(_record(0, "fine")) + "\n")
    dest = tmp_path / "judged.jsonl"
    code, _, err = run_cli(monkeypatch, capsys, "judge", "--in", str(src), "--judge", "objective",
                           "--judge-option", f"weights={weights}", "--out", str(dest))
    assert_user_error(code, err, "objective.json", "recorded hash")
    assert not dest.exists()
