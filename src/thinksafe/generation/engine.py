"""The generation engine: prompts in, judged-ready records out; cached, resumable, budget-forced.

Thinking is generated in two phases through the backend: first the trace, up to the thinking
budget and stopping at ``</think>``; then the answer, from prompt + trace, with the closing text
appended when the trace did not close by itself (budget reached, or the model ended its turn
inside it: budget forcing). The answer phase must answer (end-of-turn held off for its first
tokens, think tags banned). Each sample carries its own seed.

Records are appended to ``records.jsonl`` as each chunk finishes and stored in the
content-addressed cache, so a killed run resumes and a repeated run is free. Jobs that share a
cache key (greedy samples of one prompt, the same rendered prompt under two ids) are decoded once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinksafe.cost import add_generated
from thinksafe.data.records import Example
from thinksafe.errors import DataError
from thinksafe.generation.backend import Backend, Completion, GenerateRequest, Sampling
from thinksafe.generation.cache import GenerationCache, cache_key, sample_seed
from thinksafe.generation.config import GenerationConfig
from thinksafe.generation.records import GenerationRecord
from thinksafe.generation.registry import make_backend
from thinksafe.jsonl import append_jsonl, read_resumable, settle_jsonl
from thinksafe.manifest import placement_free
from thinksafe.models.formats import FORCED_CLOSE, THINK_CLOSE, THINK_OPEN, parse_response, prefill_of, render_prompt, steer
from thinksafe.models.loader import LoadedModel

log = logging.getLogger(__name__)

PromptFn = Callable[[Example], str]


@dataclass
class _Job:
    example: Example
    sample_index: int
    seed: int
    user_prompt: str
    rendered: str
    key: str


@dataclass
class RunStats:
    """Where the samples of the last :meth:`Engine.run` came from."""

    samples: int = 0
    in_output: int = 0
    from_cache: int = 0
    generated: int = 0
    decoded: int = 0  # distinct cache keys decoded (fewer than ``generated`` when jobs share a key)


def backend_for(loaded: LoadedModel, config: GenerationConfig, name: str | None = None) -> Backend:
    """The backend a generation config asks for (``name`` overrides its ``backend``), with its batch
    size and backend options."""
    return make_backend(name or config.backend, loaded, batch_size=config.batch_size, **config.backend_options)


def resolve_thinking(config: GenerationConfig, loaded: LoadedModel) -> str:
    return loaded.thinking if config.thinking == "auto" else config.thinking


class Engine:
    """Generates :class:`GenerationRecord` objects for examples with one loaded model."""

    def __init__(
        self,
        loaded: LoadedModel,
        config: GenerationConfig,
        *,
        backend: str | Backend | None = None,
        cache: GenerationCache | None = None,
    ) -> None:
        self.loaded = loaded
        self.config = config
        self.thinking = resolve_thinking(config, loaded)
        self.cache = cache if cache is not None else GenerationCache()
        if backend is None or isinstance(backend, str):
            backend = backend_for(loaded, config, backend)
        self.backend: Backend = backend
        self.identity = self._identity()
        self.tokens_generated = 0
        self.last_run = RunStats()

    def _identity(self) -> dict[str, Any]:
        """Everything outside the prompt and decoding settings that decides the output."""
        ident = dict(self.loaded.identity)
        try:
            ident["device"] = next(self.loaded.model.parameters()).device.type
        except (AttributeError, StopIteration, TypeError):
            pass
        template = getattr(self.loaded.tokenizer, "chat_template", None)
        if template is not None and not isinstance(template, str):  # named templates
            template = json.dumps(template, sort_keys=True)
        ident |= {
            "backend": self.backend.name,
            "backend_version": self.backend.version,
            "backend_options": placement_free(self.config.backend_options),
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
            "system": self.config.system,
        }
        ident.pop("model", None)  # a name, not content: a renamed copy of the same weights is the same model
        ident.pop("adapter", None)  # likewise the adapter's path
        return ident

    # ---- planning -------------------------------------------------------------------------
    def plan(self, examples: Sequence[Example], prompt_fn: PromptFn | None = None) -> list[_Job]:
        """One job per (example, sample), with its seed, rendered prompt and cache key."""
        cfg = self.config
        sampling = cfg.sampling_key(self.thinking)
        jobs = []
        for ex in examples:
            user = prompt_fn(ex) if prompt_fn else ex.prompt
            if cfg.steer:
                user = steer(user)
            rendered = render_prompt(self.loaded.tokenizer, user, thinking=self.thinking, system=cfg.system)
            for s in range(cfg.samples):
                seed = sample_seed(cfg.seed, ex.id, s)
                key = cache_key(
                    identity=self.identity,
                    rendered_prompt=rendered,
                    seed=seed if cfg.uses_seed() else None,
                    sampling=sampling,
                )
                jobs.append(_Job(ex, s, seed, user, rendered, key))
        return jobs

    # ---- running --------------------------------------------------------------------------
    def run(
        self,
        examples: Sequence[Example],
        out_path: str | Path | None = None,
        *,
        prompt_fn: PromptFn | None = None,
        progress: bool = True,
    ) -> list[GenerationRecord]:
        """Generate every (example, sample); skip what ``out_path`` or the cache already holds.

        :attr:`last_run` says afterwards how many samples came from each place.
        """
        jobs = self.plan(examples, prompt_fn)
        done: dict[tuple[str, str, int], dict[str, Any]] = {}
        if out_path is not None:
            out_path = Path(out_path)
            for rec in read_resumable(out_path):
                done[(rec.get("cache_key", ""), rec.get("id", ""), rec.get("sample_index", 0))] = rec
        results: list[GenerationRecord | None] = [None] * len(jobs)
        pending: list[tuple[int, _Job]] = []
        from_cache: list[dict[str, Any]] = []
        in_output = 0
        for i, job in enumerate(jobs):
            old = done.get((job.key, job.example.id, job.sample_index))
            if old is not None:
                try:
                    results[i] = GenerationRecord.from_dict(old)
                except DataError as exc:
                    raise DataError(f"{out_path}: {exc} Move the file away to generate it again.") from None
                in_output += 1
                continue
            cached = self.cache.get(job.key)
            if cached is not None:
                rec = self._relabel(GenerationRecord.from_dict(cached), job)
                results[i] = rec
                from_cache.append(rec.to_dict())
            else:
                pending.append((i, job))
        if out_path is not None and from_cache:
            append_jsonl(out_path, from_cache)
        log.info(
            "%d samples: %d already in the output, %d from the cache, %d to generate",
            len(jobs), in_output, len(from_cache), len(pending),
        )
        self.last_run = RunStats(len(jobs), in_output, len(from_cache), len(pending))
        if pending:
            self.last_run.decoded = self._generate(pending, out_path, results, progress)
        assert all(r is not None for r in results)
        wanted = {(job.key, job.example.id, job.sample_index) for job in jobs}
        if out_path is not None and set(done) <= wanted:
            # records in job order: the same bytes whatever the batches, kills and resumes (a file that
            # also holds other jobs' records is left as it is)
            settle_jsonl(out_path, (r.to_dict() for r in results))  # type: ignore[union-attr]
        return results  # type: ignore[return-value]

    def _relabel(self, rec: GenerationRecord, job: _Job) -> GenerationRecord:
        """A generation under this job's example identity (same text, possibly a new id or sample)."""
        rec.id, rec.benchmark, rec.split_type = job.example.id, job.example.benchmark, job.example.split_type
        rec.prompt, rec.source_prompt = job.user_prompt, job.example.prompt
        rec.gold, rec.metadata = job.example.gold, dict(job.example.metadata)
        rec.sample_index, rec.seed, rec.cache_key = job.sample_index, job.seed, job.key
        rec.model, rec.adapter = self.loaded.name, self.loaded.adapter
        return rec

    def _generate(
        self,
        pending: list[tuple[int, _Job]],
        out_path: Path | None,
        results: list[GenerationRecord | None],
        progress: bool,
    ) -> int:
        """Decode each distinct key once, fill ``results``; returns how many were decoded."""
        from thinksafe.progress import bar

        sharing: dict[str, list[tuple[int, _Job]]] = {}
        for i, job in pending:
            sharing.setdefault(job.key, []).append((i, job))
        unique = sorted((group[0][1] for group in sharing.values()), key=lambda j: len(j.rendered))
        # a chunk's records reach the output (and the cache) when the chunk ends: what a killed run keeps
        chunk = getattr(self.backend, "requests_at_once", None) or max(self.config.batch_size * 2, 1)
        start = time.perf_counter()
        with bar("generating", len(unique), enabled=progress) as row:

            def on_token(n: int) -> None:
                self.tokens_generated += n
                add_generated(n)
                elapsed = time.perf_counter() - start
                row.rate(f"{self.tokens_generated / max(elapsed, 1e-9):.1f} tok/s")

            for c in range(0, len(unique), chunk):
                part = unique[c : c + chunk]
                written: list[dict[str, Any]] = []
                for job, rec in zip(part, self._generate_chunk(part, on_token)):
                    self.cache.put(job.key, rec.to_dict())
                    for i, other in sharing[job.key]:
                        results[i] = rec if other is job else self._relabel(copy.deepcopy(rec), other)
                        written.append(results[i].to_dict())  # type: ignore[union-attr]
                if out_path is not None:
                    append_jsonl(out_path, written)
                row.advance(len(part))
        return len(unique)

    def _generate_chunk(self, jobs: list[_Job], on_token: Callable[[int], None]) -> list[GenerationRecord]:
        """Two-phase budget forcing: traces first, then every answer from prompt + trace (+ close)."""
        tok = self.loaded.tokenizer
        cfg = self.config
        sampling = Sampling(cfg.temperature, cfg.top_p, cfg.top_k)
        prompt_ids = [tok(j.rendered, add_special_tokens=False).input_ids for j in jobs]
        thinking = self.thinking != "off"
        forced_ids = list(tok(FORCED_CLOSE, add_special_tokens=False).input_ids)
        traces: list[Completion | None] = [None] * len(jobs)
        if thinking:
            phase_one = [
                GenerateRequest(p, cfg.thinking_budget, sampling, seed=j.seed, stop=(THINK_CLOSE,), adapter=self.loaded.adapter)
                for p, j in zip(prompt_ids, jobs)
            ]
            traces = [c[0] for c in self.backend.generate(phase_one, on_token)]
        ends = [trace_end(t, cfg.force_close) for t in traces]
        answer_rows = [i for i, end in enumerate(ends) if end != "unclosed"]
        answer_prefix = {
            i: prompt_ids[i] + (traces[i].token_ids + (forced_ids if ends[i] == "forced" else []) if thinking else [])  # type: ignore[union-attr]
            for i in answer_rows
        }
        phase_two = [self._answer_request(answer_prefix[i], jobs[i].seed, after_trace=thinking) for i in answer_rows]
        answers: dict[int, Completion] = dict(zip(answer_rows, (c[0] for c in self.backend.generate(phase_two, on_token))))
        records = []
        for i, job in enumerate(jobs):
            trace, answer, end = traces[i], answers.get(i), ends[i]
            trace_ids = trace.token_ids if trace is not None else []
            answer_ids = answer.token_ids if answer is not None else []
            forced = end == "forced"
            trace_text = tok.decode(trace_ids, skip_special_tokens=True) if thinking else ""
            text = prefill_of(job.rendered) + trace_text + (FORCED_CLOSE if forced else "")
            text += tok.decode(answer_ids, skip_special_tokens=True)
            parsed = parse_response(text)
            finish = answer if answer is not None else trace
            assert finish is not None
            records.append(
                GenerationRecord(
                    id=job.example.id,
                    benchmark=job.example.benchmark,
                    split_type=job.example.split_type,
                    prompt=job.user_prompt,
                    rendered_prompt=job.rendered,
                    text=text,
                    trace=parsed.trace,
                    answer=parsed.answer,
                    trace_closed=(end == "closed") if thinking else None,
                    forced_close=forced,
                    finish_reason=finish.finish_reason,
                    n_prompt_tokens=len(prompt_ids[i]),
                    n_trace_tokens=len(trace_ids),
                    n_answer_tokens=len(answer_ids),
                    n_completion_tokens=len(trace_ids) + len(answer_ids),
                    sample_index=job.sample_index,
                    seed=job.seed,
                    model=self.loaded.name,
                    adapter=self.loaded.adapter,
                    thinking=self.thinking,
                    steered=cfg.steer,
                    gold=job.example.gold,
                    metadata=dict(job.example.metadata),
                    cache_key=job.key,
                    backend=self.backend.name,
                    backend_version=self.backend.version,
                    trace_end=end if thinking else None,
                    source_prompt=job.example.prompt,
                    prompt_token_ids=list(prompt_ids[i]),
                    trace_token_ids=list(trace_ids),
                    forced_close_token_ids=list(forced_ids) if forced else [],
                    answer_token_ids=list(answer_ids),
                )
            )
        return records

    def _answer_request(self, prefix_ids: list[int], seed: int, *, after_trace: bool) -> GenerateRequest:
        """The answer phase. After a trace the answer must answer: end-of-turn is suppressed for its
        first ``answer_min_tokens`` tokens and the think tags are banned (no second trace, no stray tag)."""
        cfg = self.config
        return GenerateRequest(
            prefix_ids,
            cfg.max_new_tokens,
            Sampling(cfg.temperature, cfg.top_p, cfg.top_k),
            seed=answer_seed(seed),
            stop=cfg.stop,
            min_tokens=min(cfg.answer_min_tokens, cfg.max_new_tokens) if after_trace else 0,
            bad_words=ANSWER_BAD_WORDS if after_trace else (),
            adapter=self.loaded.adapter,
        )


# banned in answers after a trace, in every spelling (see backend.bad_word_sequences)
ANSWER_BAD_WORDS = (THINK_OPEN, THINK_CLOSE)


def answer_seed(seed: int) -> int:
    """The answer phase's seed: derived from the sample's, so the two phases draw independent streams."""
    return (seed * 6364136223846793005 + 1442695040888963407) & ((1 << 63) - 1)


def trace_end(trace: Completion | None, force_close: bool) -> str:
    """How a trace ended: ``closed`` (the model wrote ``</think>``), ``forced`` (budget reached or
    end-of-turn inside the trace, closing text fed in) or ``unclosed`` (no forced close)."""
    if trace is None:
        return "none"
    if trace.finish_reason == "stop_string":
        return "closed"
    return "forced" if force_close else "unclosed"
