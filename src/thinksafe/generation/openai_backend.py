"""The ``openai`` backend: generation through an OpenAI-compatible server (``vllm serve``, ...).

The engine renders prompts itself (chat template, thinking prefill, budget forcing), so a request
goes to the **completions** endpoint as prompt token ids, with vLLM's extra sampling fields
(``stop_token_ids``, ``min_tokens``, ``bad_words``, ``return_token_ids``, ...) in ``extra_body``.
Against a vLLM server a request then decodes as :class:`thinksafe.generation.vllm_backend.VLLMBackend`
decodes it, with these differences:

* bad words go as strings, and the server bans only their canonical spellings (the in-process
  backend bans every spelling, :func:`thinksafe.generation.backend.bad_word_sequences`);
* a CPU server samples top-p with vLLM's own sampler, not :mod:`thinksafe.generation.vllm_topp`;
* the served model is the model: a request may name only the loaded adapter (serve the adapted
  model, e.g. merged, under the served name);
* an endpoint that returns no token ids (not vLLM) has its text tokenized with the loaded tokenizer,
  which may differ from the sampled tokens by a token at boundaries (a stop string inside a token,
  text that the tokenizer merges differently).

Generation only: :meth:`OpenAIBackend.score` raises (log-likelihoods and hidden states need the
weights in this process).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from thinksafe.errors import ConfigError, ModelError
from thinksafe.generation.backend import Completion, GenerateRequest, ScoreRequest, ScoreResult, eos_token_ids

if TYPE_CHECKING:
    from thinksafe.models.loader import LoadedModel

log = logging.getLogger(__name__)

_OPTIONS = ("base_url", "model", "api_key_env", "timeout", "max_concurrency", "batch_size")


class OpenAIBackend:
    """Concurrent completions requests, one per :class:`GenerateRequest` (its ``n`` samples in one)."""

    name = "openai"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 600.0,
        max_concurrency: int = 8,
        batch_size: int | None = None,
        **unknown: Any,
    ) -> None:
        """``batch_size`` is the transformers backend's and unused here (the server batches)."""
        if unknown:
            raise ConfigError(
                f"The openai backend takes no option(s) {', '.join(sorted(unknown))}; its options are "
                f"{', '.join(_OPTIONS)}."
            )
        if not base_url:
            raise ConfigError("The openai backend needs the server's address: pass --backend-option base_url=http://HOST:PORT/v1.")
        from openai import OpenAI

        from thinksafe.models.loader import base_model

        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max(1, int(max_concurrency))
        self.client = OpenAI(base_url=self.base_url, api_key=os.environ.get(api_key_env) or "EMPTY",
                             timeout=float(timeout), max_retries=2)
        self.eos_ids = eos_token_ids(base_model(loaded.model), self.tokenizer)
        served = self._call(lambda: [m.id for m in self.client.models.list()])
        if model is None:
            if len(served) != 1:
                raise ConfigError(f"The server at {self.base_url} serves {', '.join(served) or 'no model'}; "
                                  "pick one with --backend-option model=NAME.")
            model = served[0]
        elif model not in served:
            raise ConfigError(f"The server at {self.base_url} does not serve {model!r}; it serves {', '.join(served)}.")
        self.model = model
        self.version = f"openai {model}{self._server_version()}"

    def _call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` with the client's connection and HTTP errors as :class:`ModelError`."""
        import openai

        try:
            return fn()
        except openai.APIStatusError as exc:
            raise ModelError(f"The server at {self.base_url} refused the request (HTTP {exc.status_code}): {exc.message}") from None
        except openai.APIError as exc:  # connection refused, timeout, a reply that is not JSON
            raise ModelError(f"Could not reach the server at {self.base_url}: {exc}. Is it running?") from None

    def _server_version(self) -> str:
        """`` vllm X`` where the server answers vLLM's ``/version``; empty for other servers."""
        import httpx

        root = self.base_url.removesuffix("/v1")
        try:
            reply = httpx.get(f"{root}/version", timeout=10, headers={"Authorization": f"Bearer {self.client.api_key}"})
            return f" vllm {reply.json()['version']}" if reply.status_code == 200 else ""
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return ""

    def _body(self, req: GenerateRequest) -> dict[str, Any]:
        if req.adapter is not None and req.adapter != self.loaded.adapter:
            raise ModelError(f"The openai backend runs the served model {self.model!r} only; the adapter {req.adapter} "
                             "needs a server that serves it (as its own model name) or --backend vllm.")
        s = req.sampling
        extra: dict[str, Any] = {
            "min_tokens": req.min_tokens,
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "stop_token_ids": sorted(self.eos_ids),  # every end-of-turn id, as the other backends stop on
            "return_token_ids": True,
        }
        if s.top_k > 0 and not s.greedy:
            extra["top_k"] = s.top_k
        if req.bad_words:
            extra["bad_words"] = list(req.bad_words)
        body: dict[str, Any] = dict(
            model=self.model, prompt=list(req.prompt_ids), max_tokens=req.max_tokens, temperature=s.temperature,
            top_p=1.0 if s.greedy else s.top_p, seed=req.seed,
            n=1 if s.greedy else req.n,  # vLLM refuses n > 1 with greedy decoding: one decode, copied n times
            extra_body=extra,
        )
        if req.stop:
            body["stop"] = list(req.stop)
        if req.logprobs:
            body["logprobs"] = 0
        return body

    def _completion(self, req: GenerateRequest, choice: Any) -> Completion:
        stop_reason = getattr(choice, "stop_reason", None)  # vLLM's: the stop string, or the stop token id
        if choice.finish_reason == "length":
            reason, stop = "length", None
        elif isinstance(stop_reason, str):
            reason, stop = "stop_string", stop_reason
        else:
            reason, stop = "stop", None
        ids = getattr(choice, "token_ids", None)
        if ids is None:  # not vLLM: may differ from the sampled tokens at boundaries (module docstring)
            ids = self.tokenizer(choice.text, add_special_tokens=False).input_ids
        ids = list(ids)
        if reason == "stop" and ids and ids[-1] in self.eos_ids:  # vLLM keeps the end-of-turn token
            ids.pop()
        lp = None
        if req.logprobs and choice.logprobs is not None and choice.logprobs.token_logprobs is not None:
            lp = [float(x) for x in choice.logprobs.token_logprobs[: len(ids)]]
        return Completion(ids, reason, stop, lp)

    def _one(self, req: GenerateRequest) -> list[Completion]:
        reply = self._call(lambda: self.client.completions.create(**self._body(req)))
        completions = [self._completion(req, c) for c in sorted(reply.choices, key=lambda c: c.index)]
        if req.sampling.greedy and req.n > 1:
            completions = [completions[0]] + [copy.deepcopy(completions[0]) for _ in range(req.n - 1)]
        return completions

    def generate(
        self, requests: Sequence[GenerateRequest], on_tokens: Callable[[int], None] | None = None
    ) -> list[list[Completion]]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            results = list(pool.map(self._one, requests))  # request order; the first error is raised here
        if on_tokens is not None:
            on_tokens(sum(len(c.token_ids) for cs in results for c in cs))
        return results

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        raise ModelError("the openai backend generates only; probes, perplexity and replays need --backend vllm or transformers")
