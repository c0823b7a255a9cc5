"""Resolve a model name or path and load it as a plain PyTorch causal LM with its tokenizer.

Accepted: a registry name, a GGUF file path, a local directory (safetensors only: pickle
checkpoints are refused), or a hub id (real code; offline it fails with a message saying how to use
a local model). A GGUF model is de-quantised by transformers on first load, then saved once as
safetensors in the cache so later loads take seconds instead of most of a minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinksafe.errors import ModelError
from thinksafe.models import assets
from thinksafe.models.registry import MODELS, ModelSpec
from thinksafe.paths import cache_dir

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


def base_model(model: Any) -> Any:
    """The plain transformers model under a PEFT wrapper (the model itself when unwrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def resolve_dtype(dtype: str) -> str:
    """``auto`` -> ``bfloat16`` on a GPU or a CPU with native bf16 (AVX512-BF16 or AMX), else ``float32``."""
    if dtype != "auto":
        return dtype
    import torch

    if torch.cuda.is_available():
        return "bfloat16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model comes from: ``kind`` is one of registry, gguf, local, hub."""

    name: str
    kind: str
    location: str
    spec: ModelSpec | None = None


@dataclass
class LoadedModel:
    """A loaded model, its tokenizer and the identity used in cache keys and manifests."""

    model: Any
    tokenizer: Any
    name: str
    fingerprint: str
    thinking: str
    resolved: ResolvedModel
    dtype: str
    adapter: str | None = None
    adapter_fingerprint: str | None = None
    device: str = "cpu"
    info: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None  # a folder (or hub id) other runtimes (vLLM) load the same weights from

    @property
    def identity(self) -> dict[str, Any]:
        """What decides this model's outputs (the engine adds its backend and chat template)."""
        return {
            "model": self.name,
            "fingerprint": self.fingerprint,
            "adapter": self.adapter,
            "adapter_fingerprint": self.adapter_fingerprint,
            "dtype": self.dtype,
            "device": self.device,
            "versions": runtime_versions(),
        }


def resolve_model(name_or_path: str) -> ResolvedModel:
    """Map a user's ``--model`` to a source without loading anything."""
    if name_or_path in MODELS:
        spec = MODELS.get(name_or_path)
        return ResolvedModel(spec.name, "registry", spec.hub_id, spec)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        return ResolvedModel(path.stem, "gguf", str(path.resolve()))
    if path.is_dir():
        return ResolvedModel(path.name, "local", str(path.resolve()))
    looks_like_hub = name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/", "~"))
    if looks_like_hub:
        return ResolvedModel(name_or_path, "hub", name_or_path)
    MODELS.get(name_or_path)  # raises UnknownNameError listing the known names
    raise AssertionError("unreachable")


CHECKPOINT_SUFFIXES = frozenset({".json", ".safetensors", ".model", ".txt", ".jinja", ".tiktoken"})
RACY_NS = 2_000_000_000  # a file changed this recently may change again within one timestamp tick
_MEMO: dict[tuple[str, int, int, int, int], str] = {}


def _fingerprint_file(path: Path) -> str:
    """Full-content sha256 of a file, remembered by (resolved path, inode, size, mtime, ctime).

    The memo lives in this process and in ``cache_dir()/fingerprints``, so a large file is hashed
    once, not per load. Any rewrite changes the ctime (which copying tools cannot set back), so a
    changed file is hashed again. File timestamps are coarse (a few ms), so a file changed in the
    last ``RACY_NS`` is hashed but not remembered: a second same-size write within the same tick
    could otherwise keep its key (git's "racy clean" problem).
    """
    resolved = path.resolve()
    st = resolved.stat()
    memo_key = (str(resolved), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    name = hashlib.sha256("|".join(map(str, memo_key)).encode()).hexdigest()
    memo = cache_dir() / "fingerprints" / f"{name}.txt"
    try:
        digest = memo.read_text().strip()
    except OSError:
        digest = ""
    if len(digest) == 64:
        _MEMO[memo_key] = digest
        return digest
    digest = assets.sha256_file(resolved)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS:
        _MEMO[memo_key] = digest
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(digest)
        except OSError as exc:  # an unwritable cache only costs speed
            log.debug("Could not remember the fingerprint of %s: %s", resolved, exc)
    return digest


def _fingerprint_files(files: list[Path]) -> str:
    """One hash over the names and full-content hashes of ``files``."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{_fingerprint_file(f)}\n".encode())
    return h.hexdigest()


def _fingerprint_dir(path: Path) -> str:
    """Content identity of a local checkpoint: every weight, config, tokenizer and template file."""
    files = sorted(f for f in path.iterdir() if f.suffix in CHECKPOINT_SUFFIXES and f.is_file())
    return _fingerprint_files(files)


def adapter_fingerprint(adapter_dir: str | Path) -> str:
    """Content hash of a PEFT adapter: its config and every ``.safetensors`` weight file in it."""
    d = Path(adapter_dir)
    for required in ("adapter_config.json", "adapter_model.safetensors"):
        if not (d / required).is_file():
            raise ModelError(f"{d} is not a PEFT adapter directory: {required} is missing.")
    h = hashlib.sha256()
    config = canonical_adapter_config(json.loads((d / "adapter_config.json").read_text(encoding="utf-8")))
    h.update(b"adapter_config.json\0" + json.dumps(config, sort_keys=True).encode() + b"\n")
    h.update(_fingerprint_files(sorted(d.glob("*.safetensors"))).encode())
    return h.hexdigest()


# PEFT keeps these as sets and writes them in the order of the process's string hashing, so one
# adapter's config differs byte for byte between processes; their order means nothing.
_SET_VALUED = ("target_modules", "modules_to_save", "exclude_modules")


def canonical_adapter_config(config: dict[str, Any]) -> dict[str, Any]:
    """``adapter_config.json``'s content with its set-valued lists sorted."""
    return {k: sorted(v) if k in _SET_VALUED and isinstance(v, list) else v for k, v in config.items()}


def _hub_commit(repo_id: str, revision: str = "main") -> str | None:
    """The commit ``revision`` resolves to: from the local hub cache, else asked of the hub when
    online; ``None`` when neither can tell."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
        if isinstance(cached, str) and Path(cached).parent.parent.name == "snapshots":
            return Path(cached).parent.name
        if constants.HF_HUB_OFFLINE:
            return None
        from huggingface_hub import HfApi

        return HfApi().model_info(repo_id, revision=revision).sha
    except Exception as exc:  # no network, no such repo: the revision string stands in
        log.debug("Could not resolve the hub revision of %s: %s", repo_id, exc)
        return None


def hub_fingerprint(repo_id: str, revision: str = "main", commit: str | None = None) -> str:
    """``hub:<repo>@<commit>`` when the commit is known, else ``hub:<repo>@<revision>``."""
    return f"hub:{repo_id}@{commit or _hub_commit(repo_id, revision) or revision}"


def runtime_versions() -> dict[str, str | None]:
    """The versions of the packages that compute a model's outputs."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("torch", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def default_device() -> str:
    """Where :func:`load_model` puts a model: ``cuda`` when available, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(dtype: str) -> Any:
    import torch

    dtype = resolve_dtype(dtype)
    if dtype not in DTYPES:
        raise ModelError(f"dtype must be one of auto, {', '.join(DTYPES)}, got {dtype!r}.")
    return getattr(torch, dtype)


def _converted_dir(name: str, sha256: str) -> Path:
    return cache_dir() / "models" / name / f"hf2-{sha256[:16]}"  # hf2: tied embeddings saved under their input name


def _load_gguf(gguf: Path, name: str, sha256: str, dtype: str) -> tuple[Any, Any]:
    """Load a GGUF via transformers, keeping a safetensors conversion in the cache for next time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    converted = _converted_dir(name, sha256)

    def cached() -> tuple[Any, Any] | None:
        if (converted / "model.safetensors").exists() or (converted / "model.safetensors.index.json").exists():
            tok = AutoTokenizer.from_pretrained(converted)
            return AutoModelForCausalLM.from_pretrained(converted, dtype=_torch_dtype(dtype), use_safetensors=True), tok
        return None

    if (hit := cached()) is not None:
        return hit
    with _conversion_lock(converted):  # another process converting the same GGUF: wait, then read its result
        if (hit := cached()) is not None:
            return hit
        return _convert_gguf(gguf, converted, sha256, dtype, cached)


@contextmanager
def _conversion_lock(converted: Path) -> Iterator[None]:
    """An inter-process lock beside ``converted``, so that commands started together on a fresh cache
    de-quantise a model once (each conversion is about a minute of CPU for the 0.5B model); without a
    writable cache, no lock (the conversion is not kept anyway)."""
    from filelock import FileLock

    try:
        converted.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(converted.with_name(converted.name + ".lock")))
        lock.acquire()
    except OSError as exc:
        log.debug("no conversion lock in %s: %s", converted.parent, exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _convert_gguf(gguf: Path, converted: Path, sha256: str, dtype: str, cached: Any) -> tuple[Any, Any]:
    """De-quantise ``gguf`` with transformers and keep a safetensors copy in ``converted``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with assets.one_gguf_parse():  # the header's metadata parsed once, not once per reader
        assets.check_gguf_header(gguf)
        log.info("De-quantising %s (first load only; later loads use the cached conversion)", gguf.name)
        try:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        except Exception as exc:
            raise ModelError(f"transformers could not load GGUF {gguf}: {exc}") from exc
    tmp = converted.with_name(converted.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _save_dequantised(model, tok, tmp)
        (tmp / "thinksafe_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": sha256}))
        if converted.exists():
            shutil.rmtree(converted)
        tmp.rename(converted)
    except OSError as exc:  # a cache we cannot write only costs speed
        log.warning("Could not cache the converted model in %s: %s", converted, exc)
        shutil.rmtree(tmp, ignore_errors=True)
    if dtype == "float32":
        return model, tok
    if (hit := cached()) is not None:
        # the first load is the conversion's reload, so it computes as every later load: ``model.to``
        # would also cast the float32 rotary frequencies, which ``from_pretrained(dtype=...)`` keeps
        # (measured: bfloat16 hidden states of the first process differed from every later one's)
        return hit
    for param in model.parameters():  # no cache to reload from: the weights alone, as a cached load has them
        param.data = param.data.to(_torch_dtype(dtype))
    model.config.dtype = _torch_dtype(dtype)
    return model, tok


def _save_dequantised(model: Any, tokenizer: Any, target: Path) -> None:
    """Save a GGUF-loaded model as plain safetensors (transformers refuses ``save_pretrained`` on it)."""
    from safetensors.torch import save_file

    target.mkdir(parents=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]  # vLLM picks its model class from this
    (target / "config.json").write_text(json.dumps(config, indent=2))
    model.generation_config.save_pretrained(target)
    # one copy of tied weights, under the input-embedding name: vLLM reads the embedding and ties the
    # head to it (safetensors' save_model may keep only ``lm_head.weight``, leaving vLLM a zero embedding)
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(target / "model.safetensors"),
              metadata={"format": "pt"})
    tokenizer.save_pretrained(target)


def _detect_thinking(tokenizer: Any) -> str:
    """``native`` when the tokenizer knows ``<think>``/``</think>`` as tokens of their own."""
    vocab = tokenizer.get_vocab()
    return "native" if "<think>" in vocab and "</think>" in vocab else "prompted"


def model_fingerprint(resolved: ResolvedModel) -> str:
    """The identity of a model's weights, computed without loading them: the sha256 of a GGUF, a
    hash over a local checkpoint's files, or a hub id at its resolved commit."""
    if resolved.kind == "registry":
        assert resolved.spec is not None
        return resolved.spec.sha256
    if resolved.kind == "gguf":
        return _fingerprint_file(Path(resolved.location))
    if resolved.kind == "local":
        return _fingerprint_dir(Path(resolved.location))
    return hub_fingerprint(resolved.location)


def load_model(
    name_or_path: str,
    *,
    dtype: str = "float32",
    adapter: str | Path | None = None,
) -> LoadedModel:
    """Load a model for generation, probing and training (CPU by default; CUDA if available)."""
    dtype = resolve_dtype(dtype)
    resolved = resolve_model(name_or_path)
    if resolved.kind == "registry":
        assert resolved.spec is not None
        gguf = assets.ensure_gguf(resolved.spec)
        model, tok = _load_gguf(gguf, resolved.spec.name, resolved.spec.sha256, dtype)
        fingerprint = resolved.spec.sha256
        thinking = resolved.spec.thinking
        checkpoint: Path | str | None = _converted_dir(resolved.spec.name, fingerprint)
    elif resolved.kind == "gguf":
        gguf = Path(resolved.location)
        fingerprint = _fingerprint_file(gguf)
        model, tok = _load_gguf(gguf, f"gguf-{gguf.stem}", fingerprint, dtype)
        thinking = _detect_thinking(tok)
        checkpoint = _converted_dir(f"gguf-{gguf.stem}", fingerprint)
    elif resolved.kind == "local":
        fingerprint = _fingerprint_dir(Path(resolved.location))
        model, tok = _load_transformers(resolved, dtype)
        thinking = _detect_thinking(tok)
        checkpoint = resolved.location
    else:  # hub: the commit transformers actually loaded, when it says
        model, tok = _load_transformers(resolved, dtype)
        fingerprint = hub_fingerprint(resolved.location, commit=getattr(model.config, "_commit_hash", None))
        thinking = _detect_thinking(tok)
        checkpoint = resolved.location
    if isinstance(checkpoint, Path) and not (checkpoint / "config.json").is_file():
        checkpoint = None  # the conversion could not be cached
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    adapter_fp = None
    if adapter is not None:
        model, adapter_fp = _attach_adapter(model, Path(adapter))
    device = default_device()
    if device != "cpu":
        model = model.to(device)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tok,
        name=resolved.name,
        fingerprint=fingerprint,
        thinking=thinking,
        resolved=resolved,
        dtype=dtype,
        adapter=str(adapter) if adapter is not None else None,
        adapter_fingerprint=adapter_fp,
        device=device,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
    )


def require_safetensors(path: Path) -> None:
    """Refuse a model folder that holds no ``.safetensors`` weights (a pickle checkpoint can run code
    when it is loaded); callers then load with ``use_safetensors=True``."""
    if not any(path.glob("*.safetensors")):
        raise ModelError(
            f"{path} holds no .safetensors weights. thinksafe loads safetensors only (pickle checkpoints "
            "such as pytorch_model.bin can run code when loaded); convert it with save_pretrained(..., "
            "safe_serialization=True)."
        )


def _load_transformers(resolved: ResolvedModel, dtype: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if resolved.kind == "local":
        require_safetensors(Path(resolved.location))
    try:
        tok = AutoTokenizer.from_pretrained(resolved.location)
        model = AutoModelForCausalLM.from_pretrained(
            resolved.location, dtype=_torch_dtype(dtype), use_safetensors=True
        )
    except OSError as exc:
        if resolved.kind == "hub":
            raise ModelError(
                f"Could not load {resolved.location!r} from the hub ({exc}). Offline, pass a local directory "
                "with safetensors weights, a .gguf file, or one of the embedded models (`thinksafe models list`)."
            ) from exc
        raise ModelError(f"Could not load the model in {resolved.location}: {exc}") from exc
    return model, tok


def _attach_adapter(model: Any, adapter_dir: Path) -> tuple[Any, str]:
    from peft import PeftModel

    fp = adapter_fingerprint(adapter_dir)
    try:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    except Exception as exc:
        raise ModelError(f"Could not attach the adapter in {adapter_dir}: {exc}") from exc
    return model, fp


def model_rows() -> list[dict[str, Any]]:
    """Rows for ``thinksafe models list``."""
    rows = []
    for name, spec in MODELS.items():
        installed = assets.is_installed(spec)
        where = "not installed (run `make setup`)"
        if installed:
            parts = assets.asset_parts(spec)
            if len(parts) == 1:
                where = str(parts[0])
            else:
                joined = cache_dir() / "models" / spec.name / spec.gguf_filename
                where = str(joined) if joined.exists() else f"{len(parts)} parts; joined on first use into {joined}"
        rows.append(
            {
                "name": name,
                "parameters": spec.parameters,
                "format": spec.format,
                "licence": spec.licence,
                "installed": installed,
                "resolves_to": where,
                "thinking": spec.thinking,
                "hub_id": spec.hub_id,
            }
        )
    return rows
