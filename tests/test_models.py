"""Model registry, asset verification and GGUF integrity errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinksafe.errors import ModelError, UnknownNameError
from thinksafe.models import assets
from thinksafe.models.loader import model_rows, resolve_model
from thinksafe.models.registry import DEFAULT_MODEL, MODELS


def test_registry_has_both_embedded_models():
    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b-instruct"
    assert set(MODELS.names()) >= {"qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"}


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownNameError) as info:
        resolve_model("qwen-9000")
    msg = str(info.value)
    assert "qwen-9000" in msg and "qwen2.5-coder-0.5b-instruct" in msg and "smollm2-135m-instruct" in msg


def test_resolve_kinds(tmp_path):
    assert resolve_model("smollm2-135m-instruct").kind == "registry"
    assert resolve_model("Qwen/Qwen3-0.6B").kind == "hub"
    assert resolve_model(str(tmp_path)).kind == "local"
    with pytest.raises(ModelError, match="not found"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_local_dir_without_safetensors_is_refused(tmp_path):
    from thinksafe.models.loader import load_model

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="safetensors"):
        load_model(str(tmp_path))


def test_the_llm_judge_refuses_a_model_folder_without_safetensors(tmp_path):
    from thinksafe.judges.llm import load_llm

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="safetensors only"):
        load_llm(str(tmp_path))


def test_model_rows_report_installation():
    rows = {r["name"]: r for r in model_rows()}
    assert rows["smollm2-135m-instruct"]["installed"] is True
    assert rows["smollm2-135m-instruct"]["resolves_to"].endswith(".gguf")
    for row in rows.values():
        assert row["licence"] == "Apache-2.0" and row["format"].startswith("gguf")


def test_sha_mismatch_names_both_hashes(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello")
    with pytest.raises(ModelError) as info:
        assets.verify_sha256(f, "0" * 64)
    msg = str(info.value)
    assert "0" * 64 in msg and assets.sha256_file(f) in msg


def test_verify_stamp_is_invalidated_by_change(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello")
    good = assets.sha256_file(f)
    assets.verify_sha256(f, good)
    f.write_bytes(b"hellO")  # same size, new content and mtime
    with pytest.raises(ModelError, match="mismatch"):
        assets.verify_sha256(f, good)


@pytest.fixture(scope="module")
def smollm_gguf() -> Path:
    return assets.ensure_gguf(MODELS.get("smollm2-135m-instruct"))


def test_real_gguf_header_is_valid(smollm_gguf):
    assets.check_gguf_header(smollm_gguf)


def test_truncated_gguf_gives_clear_error(tmp_path, smollm_gguf):
    bad = tmp_path / "truncated.gguf"
    with smollm_gguf.open("rb") as fh:
        bad.write_bytes(fh.read(4 << 20))
    with pytest.raises(ModelError, match="truncated|not a readable GGUF"):
        assets.check_gguf_header(bad)


def test_corrupted_gguf_gives_clear_error(tmp_path):
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"NOPE" + b"\x00" * 100)
    with pytest.raises(ModelError, match="not a GGUF file"):
        assets.check_gguf_header(bad)
    worse = tmp_path / "header.gguf"
    worse.write_bytes(b"GGUF" + b"\xff" * 64)
    with pytest.raises(ModelError, match="GGUF"):
        assets.check_gguf_header(worse)


def test_loading_a_corrupted_gguf_path_is_a_model_error(tmp_path, monkeypatch):
    from thinksafe.models.loader import load_model

    monkeypatch.setenv("THINKSAFE_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 32)
    with pytest.raises(ModelError):
        load_model(str(bad))


def test_join_detects_wrong_parts(tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.setenv("THINKSAFE_CACHE", str(tmp_path))
    spec = replace(MODELS.get("qwen2.5-coder-0.5b-instruct"), sha256="f" * 64, name="fake-join")
    a, b = tmp_path / "p1.bin", tmp_path / "p2.bin"
    a.write_bytes(b"part one")
    b.write_bytes(b"part two")
    monkeypatch.setattr(assets, "asset_parts", lambda s: [a, b])
    with pytest.raises(ModelError, match="expected f{64}, actual"):
        assets.ensure_gguf(spec)
    # nothing half-written is left behind
    assert not list((tmp_path / "models" / "fake-join").glob("*"))


def test_join_is_atomic_and_verified(tmp_path, monkeypatch):
    import hashlib
    from dataclasses import replace

    monkeypatch.setenv("THINKSAFE_CACHE", str(tmp_path))
    a, b = tmp_path / "p1.bin", tmp_path / "p2.bin"
    a.write_bytes(b"part one|")
    b.write_bytes(b"part two")
    digest = hashlib.sha256(b"part one|part two").hexdigest()
    spec = replace(MODELS.get("qwen2.5-coder-0.5b-instruct"), sha256=digest, name="fake-ok")
    monkeypatch.setattr(assets, "asset_parts", lambda s: [a, b])
    path = assets.ensure_gguf(spec)
    assert path.read_bytes() == b"part one|part two"
    assert assets.ensure_gguf(spec) == path  # second call reuses the verified join


@pytest.mark.slow  # the real SmolLM2, de-quantised twice
def test_the_first_bfloat16_load_of_a_gguf_computes_as_every_later_one(tmp_path, monkeypatch):
    """The first load de-quantises the GGUF and caches a conversion; later loads read the conversion.
    In bfloat16 both must give the same numbers (a cast of the whole de-quantised model also cast the
    float32 rotary frequencies, and the first process's hidden states differed from every later one's),
    and so must a load whose cache cannot be written. Two loads started together on a fresh cache
    de-quantise once: the second waits for the first one's conversion and reads it."""
    import threading

    import torch

    from thinksafe.models import loader

    def logits(cache: Path) -> torch.Tensor:
        monkeypatch.setenv("THINKSAFE_CACHE", str(cache))
        loaded = loader.load_model("smollm2-135m-instruct", dtype="bfloat16")
        assert next(loaded.model.parameters()).dtype == torch.bfloat16
        ids = loaded.tokenizer("Explain, step by step, how a lock works. " * 4, return_tensors="pt").input_ids
        with torch.inference_mode():
            return loaded.model(ids).logits.float()

    conversions, convert = [], loader._convert_gguf

    def counted(*args, **kwargs):
        conversions.append(args[1])
        return convert(*args, **kwargs)

    monkeypatch.setattr(loader, "_convert_gguf", counted)
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401  (lazy imports are not thread-safe)

    together: dict[str, object] = {}

    def load(key: str) -> None:
        try:
            together[key] = logits(tmp_path / "a")
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            together[key] = exc

    threads = [threading.Thread(target=load, args=(k,)) for k in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert all(isinstance(v, torch.Tensor) for v in together.values()) and set(together) == {"x", "y"}, together
    assert len(conversions) == 1  # one de-quantised, the other waited for it and read its conversion
    first = together["x"]
    assert torch.equal(first, together["y"])
    assert (loader._converted_dir("smollm2-135m-instruct", MODELS.get("smollm2-135m-instruct").sha256)
            / "model.safetensors").exists()
    assert torch.equal(first, logits(tmp_path / "a"))  # read from the cached conversion

    def unwritable(*args, **kwargs):
        raise OSError("read-only file system")

    monkeypatch.setattr(loader, "_save_dequantised", unwritable)
    assert torch.equal(first, logits(tmp_path / "b"))  # no cache: the weights cast in place
