"""``thinksafe align``: make a recipe's training pairs, filter them, train a LoRA adapter, measure the
perplexity diagnostic; each stage reads and writes one run folder, skips what is done and resumes
what was killed.

Layout of ``RUN``::

    config.json                  the resolved AlignConfig (a different config in the same folder is refused)
    generate/  manifest.json, <pool>.jsonl (generation records), candidates.jsonl
    filter/    manifest.json, kept.jsonl, dropped.jsonl, report.json
    select/    (recipes with a selection rule) replays.jsonl or stances.jsonl, kept.jsonl, set_aside.jsonl, report.json
    train/     manifest.json, train.jsonl, adapter/, train_config.json, train_log.json, data_manifest.json
    perplexity/ manifest.json, perplexity.json
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from thinksafe.align.filter import filter_candidates
from thinksafe.align.generate import Pool, generate_candidates
from thinksafe.align.recipes import EMPTY_TRACE, PRESETS, RECIPES, Preset, Recipe
from thinksafe.align.select import SelectConfig
from thinksafe.align.templates import STEER_TEMPLATES
from thinksafe.align.train import TrainConfig, training_row
from thinksafe.data import load_benchmark
from thinksafe.data.checks import check_disjoint, drop_overlap
from thinksafe.data.loading import parse_ref, subsample
from thinksafe.data.records import Example
from thinksafe.distributed import is_main, world_size
from thinksafe.errors import ConfigError, DataError
from thinksafe.evals.reasoning import REASONING_TASKS
from thinksafe.generation.config import GenerationConfig
from thinksafe.jsonl import append_jsonl, read_jsonl, read_resumable, write_json_atomic
from thinksafe.manifest import Stage, hash_examples, identity_hash, pin_config
from thinksafe.models.formats import THINK_CLOSE, THINK_OPEN, render_prompt
from thinksafe.models.loader import LoadedModel, load_model
from thinksafe.models.registry import DEFAULT_MODEL

log = logging.getLogger(__name__)

STAGES = ("generate", "filter", "select", "train", "perplexity")


def _sampling() -> GenerationConfig:
    # the paper's sampling (temperature 0.6, top-p 0.95, top-k 20 for Qwen); budgets sized for CPU
    return GenerationConfig(temperature=0.6, top_p=0.95, top_k=20, thinking_budget=128, max_new_tokens=128)


@dataclass
class AlignConfig:
    """Everything one alignment run depends on; written to ``RUN/config.json``."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model name or path (the reference and the student)"})
    recipe: str = field(default="thinksafe", metadata={
        "help": "thinksafe | rejection | teacher | direct-refusal | thinksafe-deliberate | thinksafe-analyse-first"})
    template: str = field(default="prefix", metadata={"help": "steering template: prefix | suffix | intent-reminder"})
    preset: str = field(default="small-data", metadata={"help": "training preset: paper | small-data"})
    harmful: list[str] = field(default_factory=lambda: ["advbench", "wildjailbreak"],
                               metadata={"help": "harmful pools (benchmark or benchmark:split)"})
    benign: list[str] = field(default_factory=lambda: ["or_bench", "gsm8k:train"],
                              metadata={"help": "benign pools (a reasoning set keeps only correct answers)"})
    harmful_size: int = field(default=128, metadata={"help": "harmful prompts, shared evenly by the pools"})
    benign_size: int = field(default=128, metadata={"help": "benign prompts, shared evenly by the pools"})
    teacher: str = field(default="star1", metadata={"help": "teacher trace set of the teacher recipe"})
    eval_sets: list[str] = field(default_factory=lambda: ["harmbench", "xstest_safe", "gsm8k:test"],
                                 metadata={"help": "sets this run is evaluated on: no training prompt may be in them"})
    drop_overlap: bool | None = field(default=None, metadata={
        "help": "leave out training prompts an evaluation set holds (counted) instead of refusing the pool "
                "(None, the default, refuses: a folder written before this field reads it as None)"})
    data_path: str | None = field(default=None, metadata={"help": "a folder laid out like shared/data"})
    data_seed: int = field(default=0, metadata={"help": "seed of the pools' subsets"})
    asr_judge: str = field(default="objective", metadata={"help": "judge of harmful compliance"})
    refusal_judge: str = field(default="embedding", metadata={"help": "judge of refusal"})
    reasoning_thinking_budget: int = field(default=224, metadata={"help": "trace budget on reasoning pools"})
    learning_rate: float | None = field(default=None, metadata={"help": "override the preset's learning rate"})
    epochs: float | None = field(default=None, metadata={"help": "override the preset's epochs"})
    grad_accum: int | None = field(default=None, metadata={
        "help": "override the gradient accumulation (pairs per optimizer step, one at a time; the paper's 8)"})
    kl_benign: bool = field(default=False, metadata={"help": "KL variant: benign pairs learn KL(reference || student)"})
    perplexity_size: int = field(default=64, metadata={"help": "pairs scored by the perplexity diagnostic"})
    select: dict[str, Any] | None = field(default=None, metadata={
        "help": "selection settings of a selecting recipe (thinksafe.align.select.SelectConfig fields)"})
    allow_small_pools: bool | None = field(default=None, metadata={
        "help": "train on what a pool holds when it has fewer usable prompts than asked (None, the default, "
                "refuses: a folder written before this field reads it as None)"})
    grpo: dict[str, Any] | None = field(default=None, metadata={
        "help": "online-RL settings of the grpo recipe (thinksafe.align.grpo.GRPOSettings fields)"})
    harmful_pairs: int | None = field(default=None, metadata={"help": "train on at most this many harmful pairs (seeded subset)"})
    benign_pairs: int | None = field(default=None, metadata={"help": "train on at most this many benign pairs (seeded subset)"})
    generation: GenerationConfig = field(default_factory=_sampling)

    def __post_init__(self) -> None:
        if isinstance(self.generation, dict):
            self.generation = GenerationConfig(**self.generation)
        self.recipe_spec  # unknown names fail here, listing the known ones
        self.preset_spec
        STEER_TEMPLATES.get(self.template)
        from thinksafe.judges import JUDGES

        for judge in (self.asr_judge, self.refusal_judge, self.select_config.stance_judge):
            JUDGES.get(judge)  # an unknown judge fails now, listing the known ones, not after generation
        for name in ("harmful_size", "benign_size", "perplexity_size", "reasoning_thinking_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.harmful_size == 0 and self.benign_size == 0:
            raise ConfigError("harmful_size and benign_size are both 0: nothing to train on")
        if self.generation.thinking == "off":
            raise ConfigError("alignment trains on reasoning traces: generation.thinking must not be 'off'")
        for name in ("learning_rate", "epochs"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value!r}")
        if self.grad_accum is not None and (isinstance(self.grad_accum, bool) or not isinstance(self.grad_accum, int)
                                            or self.grad_accum < 1):
            raise ConfigError(f"grad_accum must be a positive integer or None, got {self.grad_accum!r}")
        for name in ("harmful_pairs", "benign_pairs"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"{name} must be a non-negative integer or None, got {value!r}")
        if self.drop_overlap is not None and not isinstance(self.drop_overlap, bool):
            raise ConfigError(f"drop_overlap must be true or false, got {self.drop_overlap!r}")
        if self.select is not None and not isinstance(self.select, dict):
            raise ConfigError(f"select must be a mapping of selection settings, got {self.select!r}")
        self.select_config  # bad selection settings fail here, naming the field
        self.grpo_settings  # and bad online-RL settings

    @property
    def grpo_settings(self) -> Any:
        from thinksafe.align.grpo import GRPOSettings

        if self.grpo is not None and not isinstance(self.grpo, dict):
            raise ConfigError(f"grpo must be a mapping of GRPO settings, got {self.grpo!r}")
        known = set(GRPOSettings.__dataclass_fields__)
        unknown = sorted(set(self.grpo or {}) - known)
        if unknown:
            raise ConfigError(f"unknown grpo setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return GRPOSettings(**(self.grpo or {}))

    @property
    def recipe_spec(self) -> Recipe:
        return RECIPES.get(self.recipe)

    @property
    def select_config(self) -> SelectConfig:
        return SelectConfig.from_overrides(self.select)

    @property
    def preset_spec(self) -> Preset:
        return PRESETS.get(self.preset)

    def train_config(self) -> TrainConfig:
        p = self.preset_spec
        extra = {} if self.grad_accum is None else {"grad_accum": self.grad_accum}
        return TrainConfig(learning_rate=self.learning_rate or p.learning_rate, epochs=self.epochs or p.epochs,
                           max_length=p.max_length, seed=self.generation.seed, kl_benign=self.kl_benign, **extra)

    def overrides(self) -> list[str]:
        """What this run changes from the paper's recipe, in words (manifest and report)."""
        out = list(self.preset_spec.overrides)
        if self.learning_rate is not None:
            out.append(f"learning_rate -> {self.learning_rate} (command line)")
        if self.epochs is not None:
            out.append(f"epochs -> {self.epochs} (command line)")
        if self.grad_accum is not None:
            out.append(f"grad_accum 8 -> {self.grad_accum} (command line)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------- pools


def _sizes(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _load_pool(ref: str, limit: int | None, cfg: AlignConfig) -> list[Example]:
    name, split = parse_ref(ref)
    return load_benchmark(name, split=split, path=cfg.data_path, limit=limit, seed=cfg.data_seed)


def _held_out(cfg: AlignConfig) -> list[Example]:
    return [ex for ref in cfg.eval_sets for ex in _load_pool(ref, None, cfg)]


def load_pools(cfg: AlignConfig) -> list[Pool]:
    """The run's pools (seeded subsets); refuses any pool that shares a prompt with an evaluation set."""
    held_out = _held_out(cfg)
    pools: list[Pool] = []
    recipe = cfg.recipe_spec
    harmful = [] if recipe.harmful_source == "teacher" else cfg.harmful
    for refs, total, is_harmful in ((harmful, cfg.harmful_size, True), (cfg.benign, cfg.benign_size, False)):
        for ref, size in zip(refs, _sizes(total, len(refs)) if refs else []):
            if size == 0:
                continue
            dropped = 0
            if cfg.drop_overlap:  # the subset is drawn from what is left: the pool keeps its size if the set can
                everything = _load_pool(ref, None, cfg)
                kept = drop_overlap(everything, held_out)
                dropped = len(everything) - len(kept)
                if not kept:
                    raise DataError(f"training pool {ref!r}: every prompt is in this run's evaluation sets "
                                    f"({', '.join(cfg.eval_sets)}); choose another training pool")
                examples = subsample(kept, size, cfg.data_seed)
            else:
                examples = _load_pool(ref, size, cfg)
                try:
                    check_disjoint(examples, held_out)
                except DataError as exc:
                    raise DataError(f"training pool {ref!r} overlaps this run's evaluation sets "
                                    f"({', '.join(cfg.eval_sets)}): {exc} (`thinksafe align --drop-overlap` "
                                    "leaves them out)") from None
            if len(examples) < size:
                short = (f"training pool {ref!r} holds {len(examples)} usable prompts"
                         f"{f' once the {dropped} its evaluation sets share are out' if dropped else ''}, fewer than "
                         f"the {size} asked for")
                if not cfg.allow_small_pools:
                    raise DataError(f"{short}. Ask for fewer (harmful_size, benign_size), add a pool, or set "
                                    "allow_small_pools: true to train on what there is.")
                log.warning("%s (allow_small_pools)", short)
            pools.append(Pool(re.sub(r"[^A-Za-z0-9_.-]", "-", ref), examples, is_harmful, dropped))
    return pools


def _pool_config(cfg: AlignConfig, pool: Pool) -> tuple[GenerationConfig, Any]:
    """Generation settings and the user prompt of one pool (a reasoning set gets its answer format)."""
    name = pool.examples[0].benchmark if pool.examples else ""
    if not pool.harmful and name in REASONING_TASKS:
        task = REASONING_TASKS.get(name)
        return replace(cfg.generation, thinking_budget=cfg.reasoning_thinking_budget), task
    return cfg.generation, None


def teacher_candidates(cfg: AlignConfig) -> tuple[list[dict[str, Any]], int]:
    """The teacher's traces as candidates (harmful side), minus prompts in the evaluation sets.

    Returns the candidates and how many teacher prompts were dropped for overlapping an evaluation
    set (STAR-1 holds 32 HarmBench prompts): the teacher set is fixed data, so the overlap is dropped
    and counted, where a pool of the user's choosing is refused."""
    held_out = _held_out(cfg)
    everything = _load_pool(cfg.teacher, None, cfg)
    kept = drop_overlap(everything, held_out)
    out = []
    for ex in subsample(kept, cfg.harmful_size, cfg.data_seed):
        text = ex.metadata.get("teacher_response") or ""
        closed = THINK_OPEN in text and THINK_CLOSE in text
        trace, _, answer = text.partition(THINK_CLOSE)
        out.append({
            "id": ex.id, "benchmark": ex.benchmark, "split_type": ex.split_type, "prompt": ex.prompt,
            "source_prompt": ex.prompt, "text": text, "trace": trace.replace(THINK_OPEN, "").strip() if closed else None,
            "answer": answer.strip() if closed else text.strip(), "trace_end": "closed" if closed else "unclosed",
            "trace_closed": closed, "forced_close": False, "pool": cfg.teacher, "harmful": True,
            "category": str(ex.metadata.get("category") or "-"), "template": None, "teacher": True,
        })
    return out, len(everything) - len(kept)


# ---------------------------------------------------------------------------------------- stages


class AlignRun:
    """One run folder and its stages."""

    def __init__(self, out: str | Path, cfg: AlignConfig, *, loaded: LoadedModel | None = None) -> None:
        self.out = Path(out)
        self.cfg = cfg
        self._loaded = loaded  # tests hand in a tiny model; the identity still names cfg.model
        self._judges: dict[str, Any] = {}
        self._pools: list[Pool] | None = None
        self._backend: Any = None
        self._check_config()

    def _check_config(self) -> None:
        pin_config(self.out, self.cfg.to_dict(), what="an alignment run", flag="--run")

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.cfg.model, dtype=self.cfg.generation.dtype)
        return self._loaded

    def judge(self, name: str) -> Any:
        """The judge named ``name``, built once per run object (identities, filter and manifest share it)."""
        if name not in self._judges:
            from thinksafe.judges import make_judge

            self._judges[name] = make_judge(name)
        return self._judges[name]

    @property
    def pools(self) -> list[Pool]:
        if self._pools is None:
            self._pools = load_pools(self.cfg)
        return self._pools

    def _model_identity(self) -> dict[str, Any]:
        from thinksafe.generation.registry import model_identity, resolve_backend

        return model_identity(self.cfg.model, dtype=self.cfg.generation.dtype,
                              backend=resolve_backend(self.cfg.generation.backend))

    def _stage(self, name: str, identity: dict[str, Any]) -> Stage:
        return Stage(self.out / name, f"align-{name}", identity)

    # -- generate
    def generate_identity(self) -> dict[str, Any]:
        cfg, recipe = self.cfg, self.cfg.recipe_spec
        pools = self.pools
        ident = {
            "model": self._model_identity(), "recipe": asdict(recipe),
            "template": STEER_TEMPLATES.get(cfg.template).template if recipe.steer else None,
            "pools": {p.name: hash_examples(p.examples) for p in pools},
            "generation": cfg.generation.identity(), "reasoning_thinking_budget": cfg.reasoning_thinking_budget,
        }
        if recipe.harmful_source == "teacher":
            ident["teacher"] = {"set": cfg.teacher, "size": cfg.harmful_size, "eval_sets": cfg.eval_sets,
                                "data_seed": cfg.data_seed}
        return ident

    def _offline_only(self, stage: str) -> None:
        if self.cfg.recipe_spec.online:
            raise ConfigError(f"recipe {self.cfg.recipe!r} learns online from its own samples: it makes no pairs, so it "
                              f"has no {stage} stage. Its one stage is train (`thinksafe align train --run {self.out}`).")

    def generate(self, *, progress: bool = True) -> list[dict[str, Any]]:
        self._offline_only("generate")
        stage = self._stage("generate", self.generate_identity())
        path = stage.out / "candidates.jsonl"
        if stage.is_complete() and path.exists():
            return list(read_jsonl(path))
        stage.write("running")
        cfg, recipe = self.cfg, self.cfg.recipe_spec
        candidates: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        for pool in self.pools:
            gen, task = _pool_config(cfg, pool)
            template = cfg.template if (pool.harmful and recipe.steer) else None
            prompt_fn = (lambda ex, t=task: t.prompt(ex.prompt)) if task is not None else None
            cands = generate_candidates(self.loaded, [pool], gen, stage.out, template=template, progress=progress,
                                        prompt_fn=prompt_fn)
            for c in cands:
                c["task"] = task.name if task is not None else None
            candidates += cands
        if recipe.harmful_source == "teacher":
            teacher, dropped = teacher_candidates(cfg)
            candidates = teacher + candidates
            extra["teacher_dropped_for_overlap"] = dropped
        if cfg.drop_overlap:
            extra["pool_dropped_for_overlap"] = {p.name: p.dropped_for_overlap for p in self.pools}
        _rewrite(path, candidates)
        stage.write("complete", extra={"candidates": len(candidates), **extra})
        return candidates

    # -- filter
    def filter_identity(self) -> dict[str, Any]:
        return {"generate": identity_hash(self.generate_identity()), "asr_judge": self.cfg.asr_judge,
                "asr_judge_weights": self.judge(self.cfg.asr_judge).fingerprint,
                "refusal_judge": self.cfg.refusal_judge,
                "refusal_judge_weights": self.judge(self.cfg.refusal_judge).fingerprint,
                "keep_forced": self.cfg.preset_spec.keep_forced,
                **({"teacher_answer_only": True} if self.cfg.recipe_spec.harmful_source == "teacher" else {})}

    def _is_teacher_trace(self, rec: dict[str, Any]) -> bool:
        """Teacher traces are judged on their answer only. The teacher set is curated by its authors'
        own safety judge, and the ASR judge, fitted on responses and never on reasoning, reads
        STAR-1's policy deliberation ("the user is asking how to ...; I must refuse") as carrying the
        request out: on 16 STAR-1 records it flagged 10 traces whose answers refuse (docs/alignment.md)."""
        return self.cfg.recipe_spec.harmful_source == "teacher" and bool(rec.get("harmful")) \
            and rec.get("benchmark") == self.cfg.teacher

    def filter(self, *, progress: bool = True) -> dict[str, Any]:
        candidates = self.generate(progress=progress)
        stage = self._stage("filter", self.filter_identity())
        report_path = stage.out / "report.json"
        if stage.is_complete() and report_path.exists():
            return json.loads(report_path.read_text(encoding="utf-8"))
        stage.write("running")
        report = filter_candidates(
            [_check_benign_task(c) for c in candidates], asr_judge=self.judge(self.cfg.asr_judge),
            refusal_judge=self.judge(self.cfg.refusal_judge), keep_forced=self.cfg.preset_spec.keep_forced,
            answer_only=self._is_teacher_trace, progress=progress,
        )
        _rewrite(stage.out / "kept.jsonl", report.kept)
        _rewrite(stage.out / "dropped.jsonl", report.dropped)
        summary = report.summary()
        write_json_atomic(report_path, summary)
        stage.write("complete", extra={"summary": summary})
        return summary

    def kept(self) -> list[dict[str, Any]]:
        """The filtered records the recipe trains on (after its selection rule, if it has one)."""
        if self.cfg.recipe_spec.select is not None:
            self.select(progress=False)
            return list(read_jsonl(self.out / "select" / "kept.jsonl"))
        self.filter(progress=False)
        return list(read_jsonl(self.out / "filter" / "kept.jsonl"))

    # -- select (recipes with a selection rule)
    @property
    def backend(self) -> Any:
        if self._backend is None:
            from thinksafe.generation.engine import backend_for

            self._backend = backend_for(self.loaded, self.cfg.generation)
        return self._backend

    def select_identity(self) -> dict[str, Any] | None:
        rule = self.cfg.recipe_spec.select
        if rule is None:
            return None
        from thinksafe.deliberation.replay import ReplaySettings
        from thinksafe.judges.base import PRECHECK_RULES

        scfg = self.cfg.select_config
        judge = scfg.stance_judge if rule == "opening-neutral" else self.cfg.refusal_judge
        return {"filter": identity_hash(self.filter_identity()), "rule": rule, "select": scfg.to_dict(),
                "replay": asdict(ReplaySettings()), "judge": judge, "judge_weights": self.judge(judge).fingerprint,
                "judge_rules": PRECHECK_RULES, "seed": self.cfg.generation.seed}

    def select(self, *, progress: bool = True) -> dict[str, Any] | None:
        """Keep the harmful traces the recipe's rule accepts (benign pairs pass); None for a recipe
        without a rule. Replays and stances are appended record by record, so a killed stage resumes."""
        from thinksafe.align.select import funnel, select_records

        rule = self.cfg.recipe_spec.select
        self.filter(progress=progress)
        if rule is None:
            return None
        stage = self._stage("select", self.select_identity())
        report_path = stage.out / "report.json"
        if stage.is_complete() and report_path.exists():
            return json.loads(report_path.read_text(encoding="utf-8"))
        stage.write("running")
        records = list(read_jsonl(self.out / "filter" / "kept.jsonl"))
        harmful = [r for r in records if r["harmful"]]
        if rule == "decisive":
            outcomes = self._replay_outcomes(harmful, stage.out / "replays.jsonl", progress)
        else:
            outcomes = self._opening_outcomes(harmful, stage.out / "stances.jsonl", progress)
        kept, aside = select_records(records, outcomes, rule, self.cfg.select_config, key=_record_key)
        _rewrite(stage.out / "kept.jsonl", kept)
        _rewrite(stage.out / "set_aside.jsonl", aside)
        summary = funnel(kept, aside, rule) | {"settings": self.cfg.select_config.to_dict()}
        write_json_atomic(report_path, summary)
        stage.write("complete", extra={"summary": summary})
        return summary

    def _unsteered(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The record as the student will see it: the original prompt's ids, the trace's own ids."""
        from thinksafe.models.formats import render_prompt

        tok = self.loaded.tokenizer
        rendered = render_prompt(tok, rec["source_prompt"], thinking=self.loaded.thinking, system=self.cfg.generation.system)
        return {"prompt_token_ids": tok(rendered, add_special_tokens=False).input_ids,
                "trace_token_ids": rec.get("trace_token_ids") or [], "trace_end": rec.get("trace_end")}

    def _replay_outcomes(self, harmful: list[dict[str, Any]], path: Path, progress: bool) -> dict[str, dict[str, Any]]:
        """Per harmful record: the refusal rate of ``samples`` answers after each early cut and the full trace."""
        from thinksafe.align.select import cut_positions, refusal_rate
        from thinksafe.deliberation.replay import Cut, ReplaySettings, replay_into
        from thinksafe.deliberation.states import trace_span
        from thinksafe.generation.cache import sample_seed

        scfg, tok = self.cfg.select_config, self.loaded.tokenizer
        done = {(r["key"], r["cut"]): r for r in read_resumable(path)}
        todo: list[tuple[dict[str, Any], str, Cut]] = []
        unsteered: dict[str, dict[str, Any]] = {}
        for rec in harmful:
            key = _record_key(rec)
            if rec.get("teacher") or not rec.get("trace_token_ids"):
                raise DataError(f"{key}: the decisive rule replays the model's own trace; this record has no trace token ids")
            unsteered[key] = self._unsteered(rec)
            for j, (name, k) in enumerate(cut_positions(trace_span(tok, rec), scfg).items()):
                if (key, name) not in done:
                    todo.append((rec, name, Cut(key, k, sample_seed(self.cfg.generation.seed, f"select|{key}|{name}", j))))
        jobs = [({"key": c.key, "cut": name}, c, rec["source_prompt"]) for rec, name, c in todo]
        rows = replay_into(path, self.backend, tok, unsteered, jobs, scfg.samples, ReplaySettings(),
                           self.judge(self.cfg.refusal_judge), batch_size=max(1, self.cfg.generation.batch_size // 2),
                           progress=progress, what="selection")
        done.update({(r["key"], r["cut"]): r for r in rows})
        outcomes: dict[str, dict[str, Any]] = {}
        for (key, name), row in done.items():
            o = outcomes.setdefault(key, {"refusal_rates": {}, "cut_tokens": {}})
            o["refusal_rates"][name] = refusal_rate(row["refused"])
            o["cut_tokens"][name] = row["k"]
        return outcomes

    def _opening_outcomes(self, harmful: list[dict[str, Any]], path: Path, progress: bool) -> dict[str, dict[str, Any]]:
        """Per harmful record: its chunks' stances, where each chunk starts and the trace's length (characters)."""
        from thinksafe.deliberation.chunks import chunk_trace, judge_stances
        from thinksafe.deliberation.states import trace_span
        from thinksafe.progress import bar as progress_bar

        scfg, tok = self.cfg.select_config, self.loaded.tokenizer
        done = {r["key"]: r for r in read_resumable(path)}
        judge = self.judge(scfg.stance_judge)
        todo = [r for r in harmful if _record_key(r) not in done]
        with progress_bar("opening stances", len(todo), enabled=progress) as bar:
            for rec in todo:
                if rec.get("trace_token_ids"):
                    ids = rec["trace_token_ids"][: trace_span(tok, rec)]
                    text = tok.decode(ids, skip_special_tokens=False)
                else:  # a teacher trace: its text is all there is
                    text = rec.get("trace") or ""
                chunks = chunk_trace(text, max_chars=scfg.chunk_chars, min_chars=scfg.min_chunk_chars)
                row = {"key": _record_key(rec), "stances": judge_stances(judge, rec["source_prompt"], chunks),
                       "starts": [c.start for c in chunks], "length": len(text)}
                append_jsonl(path, [row])
                done[row["key"]] = row
                bar.advance()
        return {k: {"stances": r["stances"], "starts": r["starts"], "length": r["length"]} for k, r in done.items()}

    # -- pairs
    def pairs(self) -> list[dict[str, Any]]:
        """The recipe's training pairs: ``{id, pool, harmful, prompt, response, forced_close}``, at most
        ``harmful_pairs`` / ``benign_pairs`` of each side (a seeded subset)."""
        from thinksafe.align.select import cap_pairs

        pairs = [to_pair(rec, self.cfg.recipe_spec) for rec in self.kept()]
        return cap_pairs(pairs, harmful=self.cfg.harmful_pairs, benign=self.cfg.benign_pairs, seed=self.cfg.data_seed)

    def _data_identity(self) -> dict[str, Any]:
        """What decides the training pairs: the filter, the selection and the caps."""
        ident: dict[str, Any] = {"filter": identity_hash(self.filter_identity())}
        select = self.select_identity()
        if select is not None:
            ident["select"] = identity_hash(select)
        if self.cfg.harmful_pairs is not None or self.cfg.benign_pairs is not None:
            ident["caps"] = [self.cfg.harmful_pairs, self.cfg.benign_pairs, self.cfg.data_seed]
        return ident

    # -- train
    def train_identity(self) -> dict[str, Any]:
        return self._data_identity() | {"recipe": self.cfg.recipe, "train": asdict(self.cfg.train_config()),
                                        "overrides": self.cfg.overrides()}

    def train(self, *, progress: bool = True) -> dict[str, Any]:
        """Train the adapter (resumable). Under ``accelerate launch`` (``docs/scale-out.md``) every process
        trains its shard of each batch and only the main one writes; the stages before must be complete."""
        if self.cfg.recipe_spec.online:
            return self.train_online(progress=progress)
        main = is_main()
        if world_size() > 1:
            self._require_done_before_training()
        self.select(progress=progress)
        stage = self._stage("train", self.train_identity())
        result_path = stage.out / "data_manifest.json"
        if stage.is_complete() and result_path.exists():
            return json.loads(result_path.read_text(encoding="utf-8"))
        if main:
            stage.write("running")
        launcher = os.environ.get(TRAIN_LAUNCHER_ENV, "").strip()
        if launcher and world_size() == 1:
            return self._train_launched(shlex.split(launcher), result_path)
        tok = self.loaded.tokenizer
        tcfg = self.cfg.train_config()
        rows, too_long = [], 0
        for pair in self.pairs():
            row = training_row(tok, pair["prompt"], pair["response"], thinking=self.loaded.thinking)
            if len(tok(row["prompt"] + row["completion"], add_special_tokens=False).input_ids) > tcfg.max_length:
                too_long += 1  # a truncated pair would lose its answer and end-of-turn: dropped, counted
                continue
            rows.append(row | {"id": pair["id"], "harmful": pair["harmful"]})
        train_file = stage.out / "train.jsonl"
        if main:
            _rewrite(train_file, rows)
        from thinksafe.align.train import train_lora, trainable_model
        from thinksafe.generation.vllm_backend import release_engines  # vLLM itself is imported lazily

        # generation is over: the vLLM engine (7 GiB on the default model on CPU) would sit beside the
        # trainer (measured: 17.7 GiB resident while training it with the engine kept)
        release_engines()
        result = train_lora(trainable_model(self.loaded), tok,
                            [{"prompt": r["prompt"], "completion": r["completion"], "benign": not r["harmful"]} for r in rows],
                            stage.out, tcfg, resume=True, progress=progress)
        manifest = {
            "adapter": result["adapter"], "pairs": len(rows), "harmful_pairs": sum(r["harmful"] for r in rows),
            "dropped_too_long": too_long, "losses": result["losses"], "processes": world_size(),
            "train_file_sha256": _sha256(train_file), "base_model": self.loaded.name,
            "base_model_fingerprint": self.loaded.fingerprint,
            "judges": {name: self.judge(name).fingerprint for name in (self.cfg.asr_judge, self.cfg.refusal_judge)},
            "preset": self.cfg.preset_spec.to_dict(), "overrides": self.cfg.overrides(),
            "train_config": asdict(tcfg), "caps": {"harmful_pairs": self.cfg.harmful_pairs, "benign_pairs": self.cfg.benign_pairs},
        }
        if not main:
            return json.loads(json.dumps(manifest))
        write_json_atomic(result_path, manifest)
        stage.write("complete", extra={"adapter": result["adapter"]})
        return json.loads(result_path.read_text(encoding="utf-8"))  # as a skipped re-run returns it

    # -- online training (grpo)
    def online_identity(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"model": self._model_identity(), "recipe": cfg.recipe, "thinking": cfg.generation.thinking,
                "pools": {p.name: hash_examples(p.examples) for p in self.pools},
                "train": asdict(cfg.train_config()), "grpo": self.grpo_record(), "overrides": cfg.overrides(),
                "judges": {n: self.judge(n).fingerprint for n in (cfg.asr_judge, cfg.refusal_judge)}}

    def grpo_record(self) -> dict[str, Any]:
        """The GRPO settings as they run: the sampler ``auto`` resolved to, and the passes over the prompts
        (``grpo.epochs``, or the recipe's epochs where it is None)."""
        from thinksafe.align.grpo import resolved_rollout_backend

        s = self.cfg.grpo_settings
        return asdict(s) | {"rollout_backend": resolved_rollout_backend(s, self.loaded),
                            "epochs": self.cfg.train_config().epochs if s.epochs is None else float(s.epochs)}

    def online_rows(self) -> list[dict[str, Any]]:
        """Every pool prompt rendered as evaluation renders it, with what its reward needs."""
        rows = []
        for pool in self.pools:
            _, task = _pool_config(self.cfg, pool)
            kind = "harmful" if pool.harmful else ("reasoning" if task is not None else "benign")
            for ex in pool.examples:
                user = task.prompt(ex.prompt) if task is not None else ex.prompt
                rows.append({"id": ex.id, "user": user,
                             "prompt": render_prompt(self.loaded.tokenizer, user, thinking=self.loaded.thinking),
                             "kind": kind, "source_prompt": ex.prompt, "gold": ex.gold, "benchmark": ex.benchmark})
        return rows

    def train_online(self, *, progress: bool = True) -> dict[str, Any]:
        """The online recipe's one stage: GRPO on the pools' prompts (:mod:`thinksafe.align.grpo`)."""
        from thinksafe.align.grpo import reward_functions, train_grpo
        from thinksafe.align.train import trainable_model
        from thinksafe.generation.vllm_backend import release_engines

        stage = self._stage("train", self.online_identity())
        result_path = stage.out / "data_manifest.json"
        if stage.is_complete() and result_path.exists():
            return json.loads(result_path.read_text(encoding="utf-8"))
        main = is_main()
        if main:
            stage.write("running")
        rows = self.online_rows()
        if main:
            _rewrite(stage.out / "prompts.jsonl", rows)
        release_engines()
        cfg = self.cfg
        result = train_grpo(trainable_model(self.loaded), self.loaded.tokenizer, rows, stage.out, cfg.train_config(),
                            cfg.grpo_settings, reward_functions(self.judge(cfg.asr_judge), self.judge(cfg.refusal_judge)),
                            progress=progress, loaded=self.loaded)
        manifest = {
            "adapter": result["adapter"], "online": True, "pairs": len(rows),
            "harmful_pairs": sum(r["kind"] == "harmful" for r in rows), "dropped_too_long": 0,
            "prompts": len(rows), "losses": result["losses"], "rewards": result["rewards"], "processes": world_size(),
            "base_model": self.loaded.name, "base_model_fingerprint": self.loaded.fingerprint,
            "judges": {n: self.judge(n).fingerprint for n in (cfg.asr_judge, cfg.refusal_judge)},
            "preset": cfg.preset_spec.to_dict(), "overrides": cfg.overrides(), "train_config": asdict(cfg.train_config()),
            "grpo": self.grpo_record(), "caps": {"harmful_pairs": None, "benign_pairs": None},
            # completions sampled and rewarded, less those of advantage 0 (left out of the update: grpo.skipping_trainer)
            "completions_updated": result["completions_updated"], "completions_skipped": result["completions_skipped"],
        }
        if not main:
            return json.loads(json.dumps(manifest))
        write_json_atomic(result_path, manifest)
        stage.write("complete", extra={"adapter": result["adapter"]})
        return json.loads(result_path.read_text(encoding="utf-8"))

    def _train_launched(self, launcher: list[str], result_path: Path) -> dict[str, Any]:
        """The train stage as ``LAUNCHER -m thinksafe.cli align train --run OUT`` (``accelerate launch
        --multi_gpu --num_processes 8``, ``srun``, ...): this process waits, its own engines released."""
        import subprocess

        from thinksafe.generation.vllm_backend import release_engines

        release_engines()
        cmd = [*launcher, "-m", "thinksafe.cli", "align", "train", "--run", str(self.out)]
        env = {k: v for k, v in os.environ.items() if k != TRAIN_LAUNCHER_ENV}
        log.info("training through %s", " ".join(cmd))
        try:
            code = subprocess.run(cmd, env=env).returncode
        except OSError as exc:
            raise ConfigError(f"{TRAIN_LAUNCHER_ENV}={' '.join(launcher)!r} could not start: {exc}") from None
        if code != 0 or not result_path.exists():
            raise ConfigError(f"The launched training ({' '.join(cmd)}) exited with {code}; its output is above. The "
                              "run folder keeps what it wrote: the same command resumes from its last checkpoint.")
        return json.loads(result_path.read_text(encoding="utf-8"))

    def _require_done_before_training(self) -> None:
        """Under a distributed launch only training runs: generation, filtering and selection (vLLM, the
        judges) are one process's work, and two processes would write the same files."""
        done = self._stage("filter", self.filter_identity()).is_complete()
        if done and self.cfg.recipe_spec.select is not None:
            done = self._stage("select", self.select_identity()).is_complete()
        if not done:
            last = "select" if self.cfg.recipe_spec.select is not None else "filter"
            raise ConfigError(
                f"{world_size()} processes were launched, and only the train stage runs distributed. Run "
                f"`thinksafe align {last} --run {self.out}` in one process first, then "
                f"`accelerate launch -m thinksafe.cli align train --run {self.out}`."
            )

    # -- perplexity
    def perplexity(self, *, progress: bool = True) -> dict[str, Any]:
        from thinksafe.align.perplexity import response_perplexity

        self._offline_only("perplexity")
        self.select(progress=progress)  # the filter (and the selection) first
        stage = self._stage("perplexity", self._data_identity() | {"recipe": self.cfg.recipe,
                                                                    "size": self.cfg.perplexity_size})
        path = stage.out / "perplexity.json"
        if stage.is_complete() and path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        stage.write("running")
        pairs = self.pairs()
        backend = self.backend
        result: dict[str, Any] = {"recipe": self.cfg.recipe, "model": self.loaded.name}
        for side, chosen in (("harmful", [p for p in pairs if p["harmful"]]), ("benign", [p for p in pairs if not p["harmful"]])):
            chosen = chosen[: self.cfg.perplexity_size]
            if chosen:
                result[side] = response_perplexity(backend, self.loaded.tokenizer,
                                                   [(p["prompt"], p["response"]) for p in chosen],
                                                   thinking=self.loaded.thinking)
        write_json_atomic(path, result)
        stage.write("complete", extra={"result": result})
        return result

    def all(self, *, progress: bool = True) -> dict[str, Any]:
        if self.cfg.recipe_spec.online:
            return {"train": self.train(progress=progress)}
        out = {"filter": self.filter(progress=progress)}
        if self.cfg.recipe_spec.select is not None:
            out["select"] = self.select(progress=progress)
        return out | {"perplexity": self.perplexity(progress=progress), "train": self.train(progress=progress)}


def to_pair(rec: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """One kept candidate as a training pair: the original prompt (never the steered one) and the
    response as generated, or, for a recipe that strips reasoning, an empty trace and the answer."""
    prompt = rec["source_prompt"] if rec.get("template") else rec["prompt"]
    if rec.get("template") and STEER_TEMPLATES.get(rec["template"]).leaks_into(prompt):
        raise DataError(f"the steering text leaked into the training prompt of {rec['id']!r}")
    response = rec["text"]
    if recipe.strip_harmful_trace and rec["harmful"]:
        response = f"{THINK_OPEN}{EMPTY_TRACE}{THINK_CLOSE}\n\n{rec['answer'].strip()}"
    return {"id": rec["id"], "pool": rec["pool"], "harmful": rec["harmful"], "prompt": prompt,
            "response": response, "forced_close": bool(rec.get("forced_close"))}


def _record_key(rec: dict[str, Any]) -> str:
    """A kept record's key across stages: its pool, prompt id and sample index."""
    return f"{rec['pool']}/{rec['id']}/{rec.get('sample_index', 0)}"


def _check_benign_task(rec: dict[str, Any]) -> dict[str, Any]:
    """Benign reasoning candidates carry whether their answer is right (the filter keeps right ones)."""
    if rec.get("task") and rec.get("gold") is not None:
        return rec | {"correct": REASONING_TASKS.get(rec["task"]).correct(rec.get("answer"), rec["gold"])}
    return rec


def _rewrite(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    append_jsonl(tmp, records)
    tmp.replace(path)


TRAIN_LAUNCHER_ENV = "THINKSAFE_TRAIN_LAUNCHER"
"""A launcher command (``accelerate launch --multi_gpu --num_processes 8``): the train stage runs under it
as ``LAUNCHER -m thinksafe.cli align train --run DIR``, also inside ``thinksafe run``. An environment
setting, not a config field: like a GPU count, it never changes what the run is (docs/scale-out.md)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_config(run_dir: str | Path, overrides: dict[str, Any]) -> AlignConfig:
    """The run's configuration: ``RUN/config.json`` when the run exists (so later stages need only
    ``--run``), else the defaults; ``overrides`` (the flags a user gave) on top. Generation settings
    are the ``generation`` mapping; a flag that contradicts an existing run is refused later."""
    path = Path(run_dir) / "config.json"
    base: dict[str, Any] = {}
    if path.exists():
        try:
            base = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc}); delete the run folder to start over") from None
    gen = dict(base.pop("generation", None) or asdict(_sampling()))
    gen.update(overrides.pop("generation", None) or {})
    known = {f for f in AlignConfig.__dataclass_fields__}
    unknown = sorted(set(base) - known)
    if unknown:
        raise DataError(f"{path} has unknown fields {unknown}; it was written by another version of thinksafe")
    try:
        return AlignConfig(**(base | overrides), generation=GenerationConfig(**gen))
    except TypeError as exc:
        raise ConfigError(f"bad alignment configuration: {exc}") from None


def run_stage(stage: str, run_dir: str | Path, cfg: AlignConfig, *, progress: bool = True,
              loaded: LoadedModel | None = None) -> dict[str, Any]:
    """Run one stage (``generate``, ``filter``, ``train``, ``perplexity`` or ``all``) of ``run_dir``."""
    if stage not in (*STAGES, "all"):
        raise ConfigError(f"unknown align stage {stage!r}; stages: {', '.join(STAGES)}, all")
    run = AlignRun(run_dir, cfg, loaded=loaded)
    if stage == "generate":
        cands = run.generate(progress=progress)
        return {"candidates": len(cands)}
    return getattr(run, stage)(progress=progress)
