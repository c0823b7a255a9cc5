"""Exact identities: content hashes of weights and adapters, memoised, in cache keys and manifests."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from thinksafe.data.records import Example
from thinksafe.errors import ModelError
from thinksafe.generation.cache import GenerationCache
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.engine import Engine
from thinksafe.generation.registry import model_identity
from thinksafe.models import assets, loader
from thinksafe.models.loader import adapter_fingerprint, load_model, model_fingerprint, resolve_model

EXAMPLES = [Example(id="e0", prompt="How do I pick a lock?", benchmark="toy", split_type="asr")]
CONFIG = GenerationConfig(thinking="prompted", thinking_budget=4, max_new_tokens=4, temperature=0.0)


def _keys(loaded, tmp_path: Path) -> list[str]:
    return [j.key for j in Engine(loaded, CONFIG, cache=GenerationCache(tmp_path / "cache")).plan(EXAMPLES)]


def _flip_last_tensor_byte(safetensors: Path) -> None:
    """Flip one byte of the tensor stored last (past the first MiB) in a safetensors file."""
    with safetensors.open("r+b") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        start, end = max(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
        pos = 8 + n + start + (end - start) // 2
        assert pos > 1 << 20
        fh.seek(pos)
        byte = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_loaded) -> Path:
    d = tmp_path_factory.mktemp("tiny") / "model"
    tiny_loaded.model.save_pretrained(d, safe_serialization=True)
    tiny_loaded.tokenizer.save_pretrained(d)
    return d


def _save_adapter(base_dir: Path, target: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(target)
    return target


def test_tests_use_a_temporary_cache(isolated_cache):
    from thinksafe.paths import cache_dir

    assert cache_dir() == isolated_cache
    assert cache_dir() != Path.home() / ".cache" / "thinksafe"


def test_one_weight_byte_changes_the_fingerprint_and_the_cache_key(tiny_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dir, copy)
    same = model_fingerprint(resolve_model(str(copy)))
    assert same == model_fingerprint(resolve_model(str(tiny_dir)))  # content, not path
    base_keys = _keys(load_model(str(tiny_dir)), tmp_path)
    assert _keys(load_model(str(copy)), tmp_path) == base_keys
    _flip_last_tensor_byte(copy / "model.safetensors")
    changed = load_model(str(copy))
    assert changed.fingerprint == model_fingerprint(resolve_model(str(copy))) != same
    assert _keys(changed, tmp_path) != base_keys


def test_the_adapter_changes_the_fingerprint_and_the_cache_key(tiny_dir, tmp_path):
    one = _save_adapter(tiny_dir, tmp_path / "one", seed=1)
    two = _save_adapter(tiny_dir, tmp_path / "two", seed=2)
    again = shutil.copytree(one, tmp_path / "one-again")
    assert adapter_fingerprint(one) == adapter_fingerprint(again) != adapter_fingerprint(two)
    keys = {name: _keys(load_model(str(tiny_dir), adapter=path), tmp_path) for name, path in
            [("one", one), ("again", again), ("two", two)]}
    assert keys["one"] == keys["again"] != keys["two"]
    assert keys["one"] != _keys(load_model(str(tiny_dir)), tmp_path)


def test_adapter_identity_ignores_the_order_peft_writes_its_module_sets_in(tmp_path):
    import json

    for name, modules in (("a", ["q_proj", "v_proj", "o_proj"]), ("b", ["o_proj", "q_proj", "v_proj"]),
                          ("c", ["q_proj", "v_proj"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text(json.dumps({"r": 4, "target_modules": modules}))
        (tmp_path / name / "adapter_model.safetensors").write_bytes(b"weights")
    fp = {name: adapter_fingerprint(tmp_path / name) for name in "abc"}
    assert fp["a"] == fp["b"] != fp["c"]


def test_adapter_without_safetensors_weights_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="adapter_model.safetensors is missing"):
        adapter_fingerprint(tmp_path)


def test_file_fingerprint_is_the_full_hash_and_is_memoised(tmp_path, monkeypatch):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"a" * (3 << 20))
    calls: list[Path] = []
    real = assets.sha256_file

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(assets, "sha256_file", counting)
    assert loader._fingerprint_file(f) == real(f)
    loader._fingerprint_file(f)
    assert len(calls) == 2  # just written: hashed each time, never remembered
    monkeypatch.setattr(loader, "RACY_NS", -1)  # treat the file as settled
    digest = loader._fingerprint_file(f)
    monkeypatch.setattr(loader, "_MEMO", {})  # a new process reads the memo from the cache
    assert loader._fingerprint_file(f) == digest and len(calls) == 3
    with f.open("r+b") as fh:  # one byte past the first MiB, same size
        fh.seek(2 << 20)
        fh.write(b"b")
    assert loader._fingerprint_file(f) == real(f) != digest and len(calls) == 4


def test_model_identity_records_what_decides_the_output(tiny_dir):
    ident = model_identity(str(tiny_dir), dtype="bfloat16")
    assert ident["fingerprint"] == load_model(str(tiny_dir)).fingerprint
    assert ident["dtype"] == "bfloat16" and ident["device"] == "cpu" and ident["backend"] == "transformers"
    assert set(ident["versions"]) == {"torch", "transformers"} and all(ident["versions"].values())


def test_hub_fingerprint_uses_the_cached_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert model_identity("org/tiny", dtype="float32")["fingerprint"] == f"hub:org/tiny@{commit}"
    assert model_fingerprint(resolve_model("org/absent")) == "hub:org/absent@main"
