"""The ``transformers`` backend: batched ``model.generate`` for generation, a forward pass for scoring.

The reference backend: it runs wherever transformers does, on tiny test models as on real ones,
and it is the one that returns hidden states.

Per-request seeds without giving up batching: a sampled row draws its token from its own
``torch.Generator`` inside a logits processor (temperature, top-k, top-p, then one draw), and hands
``generate`` a one-hot row that greedy search picks. A sample therefore depends on its seed, not on
the batch it landed in (up to the last bits that batched matrix products may round differently for
different batch shapes). Greedy requests are decoded the same way, without the processor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from importlib import metadata
from typing import TYPE_CHECKING, Any

from thinksafe.generation.backend import (
    Completion,
    GenerateRequest,
    Sampling,
    ScoreRequest,
    ScoreResult,
    bad_word_sequences,
    eos_token_ids,
)

if TYPE_CHECKING:
    from thinksafe.models.loader import LoadedModel


def row_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a request (sample 0 uses the request's own seed)."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def filter_logits(logits: Any, sampling: Sampling) -> Any:
    """Temperature, then top-k, then top-p (the token that crosses ``p`` is kept), as vLLM does."""
    import torch

    logits = logits.float() / max(sampling.temperature, 1e-6)
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs > sampling.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


class SeededSampler:
    """A logits processor that samples each row from its own generator and returns one-hot scores."""

    def __init__(self, sampling: Sampling, generators: Sequence[Any]) -> None:
        self.sampling = sampling
        self.generators = list(generators)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probs = torch.softmax(filter_logits(scores, self.sampling), dim=-1).cpu()  # CPU generators, any device
        chosen = [int(torch.multinomial(probs[j], 1, generator=g).item()) for j, g in enumerate(self.generators)]
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(chosen)), torch.tensor(chosen)] = 0.0
        return out


class TransformersBackend:
    """Generation with ``model.generate`` on left-padded batches; scoring with one forward pass."""

    name = "transformers"

    def __init__(self, loaded: LoadedModel, *, batch_size: int = 32, **options: Any) -> None:
        if options:
            from thinksafe.errors import ConfigError

            raise ConfigError(f"The transformers backend takes no option(s) {', '.join(sorted(options))} (only vLLM does).")
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.batch_size = batch_size
        self.version = f"transformers {metadata.version('transformers')}"
        self._peft: Any = loaded.model if loaded.adapter is not None else None
        self._adapter_names: dict[str, str] = {loaded.adapter: "default"} if loaded.adapter is not None else {}
        from thinksafe.models.loader import base_model

        self.eos_ids = eos_token_ids(base_model(loaded.model), self.tokenizer)
        self._bad_words: dict[tuple[str, ...], list[list[int]]] = {}

    # ---- adapters ----------------------------------------------------------------------------
    def _model_for(self, adapter: str | None) -> tuple[Any, Any]:
        """The model to run for ``adapter`` and a context that makes it active."""
        if adapter is None:
            if self.loaded.adapter is None:  # adapters loaded here are switched off after each use
                return self.loaded.model, nullcontext()
            return self._peft, self._peft.disable_adapter()  # the model's own adapter, off for this block
        if adapter not in self._adapter_names:
            from peft import PeftModel

            from thinksafe.models.loader import adapter_fingerprint

            key = "a" + adapter_fingerprint(adapter)[:16]
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.loaded.model, adapter, adapter_name=key)
                self._peft.eval()
            else:
                self._peft.load_adapter(adapter, adapter_name=key)
            self._adapter_names[adapter] = key
        return self._peft, _ActiveAdapter(self._peft, self._adapter_names[adapter], self.loaded.adapter is not None)

    # ---- generate ----------------------------------------------------------------------------
    def generate(
        self, requests: Sequence[GenerateRequest], on_tokens: Callable[[int], None] | None = None
    ) -> list[list[Completion]]:
        self._check_context(requests)
        rows: list[tuple[int, int, GenerateRequest]] = [(i, s, r) for i, r in enumerate(requests) for s in range(r.n)]
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        groups: dict[tuple[Any, ...], list[tuple[int, int, GenerateRequest]]] = {}
        for row in rows:
            r = row[2]
            groups.setdefault((r.sampling, r.max_tokens, r.stop, r.min_tokens, r.bad_words, r.adapter, r.logprobs), []).append(row)
        for group in groups.values():
            group.sort(key=lambda row: -len(row[2].prompt_ids))  # similar lengths batch together
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                for (i, s, _), completion in zip(chunk, self._generate_batch(chunk)):
                    results[i][s] = completion
                if on_tokens is not None:
                    on_tokens(sum(len(results[i][s].token_ids) for i, s, _ in chunk))  # type: ignore[union-attr]
        return results  # type: ignore[return-value]

    def _check_context(self, requests: Sequence[GenerateRequest]) -> None:
        """Refuse (do not silently truncate) a request whose prompt and new tokens exceed the model's
        context, before any of the batch is generated, as vLLM refuses past its max_model_len."""
        from thinksafe.errors import ModelError
        from thinksafe.models.loader import base_model

        limit = getattr(base_model(self.loaded.model).config, "max_position_embeddings", None)
        if not limit or not requests:
            return
        worst = max(requests, key=lambda r: len(r.prompt_ids) + r.max_tokens)
        if len(worst.prompt_ids) + worst.max_tokens > limit:
            raise ModelError(
                f"A prompt of {len(worst.prompt_ids)} tokens plus {worst.max_tokens} new tokens does not fit the "
                f"model's context of {limit} tokens. Shorten the prompts, or lower --thinking-budget / --max-new-tokens."
            )

    def _bad_words_ids(self, words: tuple[str, ...]) -> list[list[int]] | None:
        if words not in self._bad_words:
            self._bad_words[words] = bad_word_sequences(self.tokenizer, words)
        return self._bad_words[words] or None

    def _generate_batch(self, chunk: list[tuple[int, int, GenerateRequest]]) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList

        req = chunk[0][2]
        model, active = self._model_for(req.adapter)
        device = next(model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(r.prompt_ids) for _, _, r in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, (_, _, r) in enumerate(chunk):
            ids[j, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[j, width - len(r.prompt_ids) :] = 1
        processors = LogitsProcessorList()
        if not req.sampling.greedy:
            gens = [torch.Generator().manual_seed(row_seed(r.seed, s)) for _, s, r in chunk]
            processors.append(SeededSampler(req.sampling, gens))
        # neutral values for what a model's generation_config may set (vLLM ignores those defaults too)
        kwargs: dict[str, Any] = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
        if req.stop and not req.min_tokens:  # with min_tokens, stop strings are applied after (see _finish)
            kwargs |= {"stop_strings": list(req.stop), "tokenizer": self.tokenizer}
        if req.min_tokens:
            kwargs["min_new_tokens"] = req.min_tokens
        bad = self._bad_words_ids(req.bad_words)
        if bad:
            kwargs["bad_words_ids"] = bad
        with active, torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=req.max_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=processors,
                eos_token_id=sorted(self.eos_ids),
                pad_token_id=pad,
                return_dict_in_generate=True,
                output_logits=req.logprobs,
                **kwargs,
            )
        sequences = out.sequences[:, width:].tolist()
        completions = []
        for j, (_, _, r) in enumerate(chunk):
            completion = self._finish(sequences[j], r)
            if r.logprobs:
                steps = torch.stack([step[j] for step in out.logits[: len(completion.token_ids)]]).float()
                lp = torch.log_softmax(steps, dim=-1).gather(-1, torch.tensor(completion.token_ids)[:, None])
                completion.logprobs = lp[:, 0].tolist()
            completions.append(completion)
        return completions

    def _finish(self, tokens: list[int], req: GenerateRequest) -> Completion:
        """Cut a padded output row at its end: a stop string, an end-of-turn token, or the limit."""
        first_eos = next((k for k, t in enumerate(tokens) if t in self.eos_ids), len(tokens))
        body = tokens[:first_eos]
        decode = self.tokenizer.decode
        text = decode(body) if req.stop else ""
        if any(s in text for s in req.stop):  # the first token that completes a stop string, after min_tokens
            for k in range(max(req.min_tokens - 1, 0), len(body)):
                window = body[max(0, k - 15) : k + 1]
                now, before = decode(window), decode(window[:-1])
                hit = next((s for s in req.stop if now.count(s) > before.count(s)), None)
                if hit is not None:
                    return Completion(body[: k + 1], "stop_string", hit)
        if first_eos < len(tokens):
            return Completion(body, "stop")
        return Completion(body, "length")

    # ---- score -------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """One forward pass per request: continuation log-likelihood and the asked hidden states."""
        import torch

        results = []
        for req in requests:
            model, active = self._model_for(req.adapter)
            device = next(model.parameters()).device
            ids = list(req.prompt_ids) + list(req.continuation_ids)
            if not ids:
                raise ValueError("a score request needs at least one token")
            with active, torch.inference_mode():
                out = model(input_ids=torch.tensor([ids], device=device), output_hidden_states=bool(req.layers))
            p, c = len(req.prompt_ids), len(req.continuation_ids)
            token_lp: list[float] = []
            if c:
                if p == 0:
                    raise ValueError("scoring a continuation needs at least one prompt token")
                logits = out.logits[0, p - 1 : p + c - 1].float()
                target = torch.tensor(req.continuation_ids, device=logits.device)[:, None]
                token_lp = torch.log_softmax(logits, dim=-1).gather(-1, target)[:, 0].tolist()
            hidden = {}
            if req.layers:
                positions = [q if q >= 0 else len(ids) + q for q in req.positions]
                for layer in req.layers:
                    hidden[layer] = out.hidden_states[layer][0, positions].float().cpu().numpy()
            results.append(ScoreResult(token_lp, hidden))
        return results


class _ActiveAdapter:
    """Activate one adapter of a PeftModel for a block; afterwards restore what the model had loaded
    (its own adapter, or none), so code using the model directly never runs a stray adapter."""

    def __init__(self, peft: Any, name: str, model_has_own: bool) -> None:
        self.peft, self.name, self.model_has_own = peft, name, model_has_own

    def __enter__(self) -> None:
        self.peft.base_model.enable_adapter_layers()
        self.peft.set_adapter(self.name)

    def __exit__(self, *exc: Any) -> None:
        if self.model_has_own:
            self.peft.set_adapter("default")
        else:
            self.peft.base_model.disable_adapter_layers()
