"""Placement options (vLLM's parallel sizes, an endpoint's address) reach the backend and the manifest,
never the run identity: a job resumed on another GPU count continues."""

from __future__ import annotations

import pytest

from thinksafe.errors import ConfigError
from thinksafe.generation.config import GenerationConfig
from thinksafe.manifest import identity_hash, pin_config


def test_parallel_sizes_stay_out_of_the_identity_and_other_options_stay_in():
    base = GenerationConfig(backend="vllm", backend_options={"enforce_eager": True})
    tp = GenerationConfig(backend="vllm", backend_options={"enforce_eager": True, "tensor_parallel_size": 4,
                                                           "data_parallel_size": 2, "gpu_memory_utilization": 0.8})
    assert identity_hash(base.identity()) == identity_hash(tp.identity())
    assert tp.placement() == {"tensor_parallel_size": 4, "data_parallel_size": 2, "gpu_memory_utilization": 0.8}
    eager_off = GenerationConfig(backend="vllm", backend_options={"enforce_eager": False})
    assert identity_hash(base.identity()) != identity_hash(eager_off.identity())  # kernels change the text


def test_a_pinned_run_resumes_with_another_gpu_count_but_not_other_settings(tmp_path):
    def cfg(**options):
        return {"model": "m", "generation": GenerationConfig(backend="vllm", backend_options=options).to_dict()}

    pin_config(tmp_path, cfg(tensor_parallel_size=8), what="a run", flag="--out")
    pin_config(tmp_path, cfg(tensor_parallel_size=2, pipeline_parallel_size=2), what="a run", flag="--out")
    with pytest.raises(ConfigError, match="enforce_eager"):
        pin_config(tmp_path, cfg(tensor_parallel_size=2, enforce_eager=False), what="a run", flag="--out")


def test_the_engine_passes_placement_to_the_backend_and_keys_its_cache_without_it(tiny_loaded, monkeypatch):
    from thinksafe.generation import engine as engine_mod

    seen = []

    def fake_backend(name, loaded, **options):
        seen.append(options)
        from thinksafe.generation.hf_backend import TransformersBackend

        backend = TransformersBackend(loaded)
        return backend

    monkeypatch.setattr(engine_mod, "make_backend", fake_backend)
    one = engine_mod.Engine(tiny_loaded, GenerationConfig(backend="vllm", backend_options={"tensor_parallel_size": 1}))
    four = engine_mod.Engine(tiny_loaded, GenerationConfig(backend="vllm", backend_options={"tensor_parallel_size": 4}))
    assert [o["tensor_parallel_size"] for o in seen] == [1, 4]
    assert one.identity == four.identity
