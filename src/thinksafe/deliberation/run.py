"""``thinksafe deliberation``: is the refuse/comply decision made before the model thinks, and does
the thinking ever change it? One run folder, one stage per sub-folder, each skipped when done and
resumed when killed.

Layout of ``OUT``::

    config.json        the resolved DeliberationConfig (another config in the same folder is refused)
    generate/          records of both pools (<pool>.jsonl), labels.jsonl (both judges' verdicts of each record)
    states/            hidden states (float16 safetensors shards)
    probe/             probe.json: probes before thinking by layer and state, the text baseline, the valley
    truncation/        replays.jsonl (answers after each cut and after the whole trace), truncation.json
    stance/            stances.jsonl (chunks and their lean), replays.jsonl, stance.json
    metrics.json       the scorecard; plots/ auroc_by_layer.png, valley.png, truncation.png

Each response is read three ways (refuse, comply, non-answer: :mod:`.decisions`); the measures are in
:mod:`.scorecard` (probes), :mod:`.truncation` (the curve and its floor) and :mod:`.stance` (effects and
the power rule).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from thinksafe.data import load_benchmark
from thinksafe.data.loading import parse_ref
from thinksafe.data.records import Example
from thinksafe.deliberation.chunks import char_to_tokens, chunk_trace, judge_stances, stance_changes
from thinksafe.deliberation.decisions import BINARY, THREE_WAY
from thinksafe.deliberation.probes import ProbeConfig
from thinksafe.deliberation.replay import Cut, ReplaySettings, replay_into
from thinksafe.deliberation.scorecard import STATES, probe_report, scorecard
from thinksafe.deliberation.stance import stance_report
from thinksafe.deliberation.states import extract_states, load_states, record_key, trace_span
from thinksafe.deliberation.truncation import FLOOR, truncation_cis, truncation_report
from thinksafe.errors import ConfigError, DataError
from thinksafe.generation.config import GenerationConfig
from thinksafe.jsonl import append_jsonl, read_jsonl, read_resumable, write_json_atomic
from thinksafe.judges.base import PRECHECK_RULES
from thinksafe.manifest import Stage, hash_examples, pin_config
from thinksafe.models.loader import LoadedModel, load_model
from thinksafe.models.registry import DEFAULT_MODEL

__all__ = ["STAGES", "DeliberationConfig", "DeliberationRun", "resolve_config", "run_stage", "probe_report",
           "scorecard", "stance_report", "truncation_cis", "truncation_report"]

log = logging.getLogger(__name__)

STAGES = ("generate", "states", "probe", "truncation", "stance", "scorecard")


def _sampling() -> GenerationConfig:
    # the paper's sampling; a trace budget sized for CPU (the default model rarely closes its own trace)
    return GenerationConfig(temperature=0.6, top_p=0.95, top_k=20, thinking_budget=256, max_new_tokens=96)


@dataclass
class DeliberationConfig:
    """Everything one deliberation analysis depends on; written to ``OUT/config.json``."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model name or path"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder (base + adapter is analysed)"})
    harmful: list[str] = field(default_factory=lambda: ["harmbench"], metadata={"help": "harmful pools"})
    benign: list[str] = field(default_factory=lambda: ["xstest_safe"], metadata={"help": "benign pools"})
    limit: int = field(default=100, metadata={"help": "prompts per side (harmful, benign), split over its pools"})
    samples: int = field(default=1, metadata={"help": "sampled responses per prompt (more where a decision is rare)"})
    layers: str = field(default="all", metadata={"help": "probe layers: all | comma list (1 = first block)"})
    positions: int = field(default=100, metadata={"help": "states along each trace (linspace over its tokens)"})
    label_judge: str = field(default="embedding", metadata={"help": "the judge of refusals (records, replays)"})
    stance_judge: str = field(default="embedding", metadata={"help": "the judge of each chunk's lean"})
    stance_judge_options: dict[str, Any] = field(default_factory=dict,
                                                 metadata={"help": "options of the stance judge (e.g. an LLM judge's model)"})
    asr_judge: str = field(default="objective",
                           metadata={"help": "the judge of ASR and ORR, and of a real attempt (comply) against a non-answer"})
    fractions: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8],
                                   metadata={"help": "truncation points (share of trace tokens kept)"})
    truncation_samples: int = field(default=8, metadata={"help": "answers sampled after each truncation"})
    truncation_limit: int | None = field(default=None, metadata={"help": "records per side replayed (None: all)"})
    replays: int = field(default=49, metadata={"help": "answers sampled at each stance-change cut (K; 49 gives the "
                                                          "power the performative share needs)"})
    stance_limit: int | None = field(default=None, metadata={"help": "records per side chunked (None: all)"})
    chunk_chars: int = field(default=200, metadata={"help": "most characters of a chunk"})
    min_chunk_chars: int = field(default=20, metadata={"help": "chunks this short or shorter are dropped"})
    max_chunks: int = field(default=120, metadata={"help": "traces with more chunks are loops: no oscillation count"})
    alpha: float = field(default=0.05, metadata={"help": "family-wise level of the Holm-corrected stance tests"})
    lock: float = field(default=0.05, metadata={"help": "a cut is locked at a comply rate <= lock or >= 1 - lock"})
    commitment: float = field(default=0.9, metadata={"help": "truncation agreement that counts as committed"})
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    generation: GenerationConfig = field(default_factory=_sampling)
    data_path: str | None = field(default=None, metadata={"help": "a folder laid out like shared/data"})
    data_seed: int = field(default=0, metadata={"help": "seed of the prompt subsets"})

    def __post_init__(self) -> None:
        if isinstance(self.probe, dict):
            self.probe = ProbeConfig(**self.probe)
        if isinstance(self.replay, dict):
            self.replay = ReplaySettings(**self.replay)
        if isinstance(self.generation, dict):
            self.generation = GenerationConfig(**self.generation)
        for name in ("limit", "samples", "positions", "truncation_samples", "replays", "chunk_chars", "max_chunks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not self.harmful or not self.benign:
            raise ConfigError("deliberation needs at least one harmful and one benign pool (--harmful, --benign)")
        if not self.fractions or any(not 0 < f < 1 for f in self.fractions):
            raise ConfigError(f"fractions must lie strictly between 0 and 1, got {self.fractions}")
        if not 0 < self.alpha < 1 or not 0 <= self.lock < 0.5 or not 0 < self.commitment <= 1:
            raise ConfigError("alpha must be in (0, 1), lock in [0, 0.5), commitment in (0, 1]")
        from thinksafe.judges import JUDGES

        for judge in (self.label_judge, self.stance_judge, self.asr_judge):
            JUDGES.get(judge)  # an unknown judge fails now, listing the known ones, not hours into a run
        self.fractions = sorted(set(self.fractions))
        self.generation = replace(self.generation, samples=self.samples)
        self.layer_list()  # validates

    def layer_list(self, n_layers: int | None = None) -> list[int] | None:
        if self.layers == "all":
            return list(range(1, n_layers + 1)) if n_layers else None
        try:
            layers = [int(x) for x in self.layers.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"layers must be 'all' or a comma list of integers, got {self.layers!r}") from None
        if not layers or (n_layers and any(not 1 <= abs(x) <= n_layers for x in layers)):
            raise ConfigError(f"layers {self.layers!r} out of range 1..{n_layers}")
        return [x if x > 0 else n_layers + 1 + x for x in layers] if n_layers else layers

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def _sizes(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _pool_name(ref: str) -> str:
    return ref.replace(":", "-")


class DeliberationRun:
    """One analysis folder and its stages."""

    def __init__(self, out: str | Path, cfg: DeliberationConfig, *, loaded: LoadedModel | None = None) -> None:
        self.out = Path(out)
        self.cfg = cfg
        self._loaded = loaded
        self._backend: Any = None
        self._judges: dict[str, Any] = {}
        # read once per run object: every later stage asks for the pools, the labels and the records
        self._pools: list[tuple[str, bool, list[Example]]] | None = None
        self._labels: list[dict[str, Any]] | None = None
        self._records: dict[str, dict[str, Any]] | None = None
        self._check_config()

    # -- plumbing
    def _check_config(self) -> None:
        pin_config(self.out, self.cfg.to_dict(), what="a deliberation run", flag="--out")

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.cfg.model, dtype=self.cfg.generation.dtype, adapter=self.cfg.adapter)
        return self._loaded

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from thinksafe.generation.engine import backend_for

            self._backend = backend_for(self.loaded, self.cfg.generation)
        return self._backend

    def judge(self, name: str, **options: Any) -> Any:
        key = json.dumps([name, options], sort_keys=True, default=str)
        if key not in self._judges:
            from thinksafe.judges import make_judge

            self._judges[key] = make_judge(name, **options)
        return self._judges[key]

    def _stage(self, name: str, identity: dict[str, Any]) -> Stage:
        return Stage(self.out / name, f"deliberation-{name}", identity)

    def pools(self) -> list[tuple[str, bool, list[Example]]]:
        if self._pools is not None:
            return self._pools
        out = []
        for refs, harmful in ((self.cfg.harmful, True), (self.cfg.benign, False)):
            for ref, size in zip(refs, _sizes(self.cfg.limit, len(refs))):
                name, split = parse_ref(ref)
                examples = load_benchmark(name, split=split, path=self.cfg.data_path, limit=size,
                                          seed=self.cfg.data_seed)
                out.append((_pool_name(ref), harmful, examples))
        self._pools = out
        return out

    def _model_identity(self) -> dict[str, Any]:
        from thinksafe.generation.registry import model_identity, resolve_backend

        return model_identity(self.cfg.model, dtype=self.cfg.generation.dtype, adapter=self.cfg.adapter,
                              backend=resolve_backend(self.cfg.generation.backend))

    # -- generate: records of both pools and the decision of each
    def generate(self, *, progress: bool = True) -> list[dict[str, Any]]:
        if self._labels is not None:
            return self._labels
        pools = self.pools()
        ident = {"model": self._model_identity(), "generation": self.cfg.generation.identity(),
                 "pools": {n: hash_examples(ex) for n, _, ex in pools}, "label_judge": self.cfg.label_judge,
                 "asr_judge": self.cfg.asr_judge, "judge_rules": PRECHECK_RULES}
        stage = self._stage("generate", ident)
        labels_path = stage.out / "labels.jsonl"
        if stage.is_complete() and labels_path.exists():
            self._labels = list(read_jsonl(labels_path))
            return self._labels
        stage.write("running")
        self._records = None
        from thinksafe.generation.engine import Engine
        from thinksafe.judges.apply import annotate_records

        engine = Engine(self.loaded, self.cfg.generation, backend=self.backend)
        labelled: list[dict[str, Any]] = []
        for name, harmful, examples in pools:
            records = [r.to_dict() for r in engine.run(examples, stage.out / f"{name}.jsonl", progress=progress)]
            by_label = annotate_records(records, self.judge(self.cfg.label_judge), progress=progress)
            by_asr = annotate_records(records, self.judge(self.cfg.asr_judge), progress=progress)
            for rec, a, b in zip(records, by_label, by_asr):
                refused = a["verdict"]["refused"]
                labelled.append({
                    "key": record_key(rec), "pool": name, "harmful": harmful, "id": rec["id"],
                    "benchmark": rec["benchmark"], "sample_index": rec["sample_index"],
                    "label": None if refused is None else int(refused), "verdict": a["verdict"],
                    "asr_verdict": b["verdict"], "trace_end": rec["trace_end"], "n_trace_tokens": rec["n_trace_tokens"],
                })
        tmp = labels_path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        append_jsonl(tmp, labelled)
        tmp.replace(labels_path)
        from thinksafe.evals.inspect_log import export_deliberation_generate

        export_deliberation_generate(stage.out)  # Inspect logs of the pools (an export; `thinksafe report` rebuilds)
        stage.write("complete", extra={"records": len(labelled)})
        self._labels = labelled
        return labelled

    def records(self) -> dict[str, dict[str, Any]]:
        if self._records is not None:
            return self._records
        self.generate(progress=False)
        out: dict[str, dict[str, Any]] = {}
        for path in sorted((self.out / "generate").glob("*.jsonl")):
            if path.name != "labels.jsonl":
                for rec in read_jsonl(path):
                    out[record_key(rec)] = rec
        self._records = out
        return out

    def labelled(self) -> list[dict[str, Any]]:
        return [r for r in self.generate(progress=False) if r["label"] is not None]

    # -- states
    def states(self, *, progress: bool = True) -> Path:
        labels = self.generate(progress=progress)
        n_layers = int(self.loaded.model.config.num_hidden_layers)
        layers = sorted(set(self.cfg.layer_list(n_layers) or []) | {n_layers})  # the final layer is always there
        ident = {"records": [r["key"] for r in labels if r["label"] is not None], "layers": layers,
                 "positions": self.cfg.positions, "model": self._model_identity()}
        stage = self._stage("states", ident)
        if stage.is_complete():
            return stage.out
        stage.write("running")
        recs = self.records()
        usable = [recs[k] for k in ident["records"]]
        done, skipped = extract_states(self.backend, self.loaded.tokenizer, usable, stage.out, layers=layers,
                                       trace_layer=n_layers, n_points=self.cfg.positions, adapter=self.loaded.adapter,
                                       progress=progress)
        stage.write("complete", extra={"extracted": done, "skipped_empty_trace": skipped})
        return stage.out

    # -- probes and the valley
    def probe(self, *, progress: bool = True) -> dict[str, Any]:
        states_dir = self.states(progress=progress)
        stage = self._stage("probe", {"states": json.loads((states_dir / "manifest.json").read_text())["identity_hash"],
                                      "probe": asdict(self.cfg.probe), "readings": [THREE_WAY, BINARY],
                                      "definitions": list(STATES)})
        path = stage.out / "probe.json"
        if stage.is_complete() and path.exists():
            return json.loads(path.read_text())
        stage.write("running")
        result = probe_report(load_states(states_dir), {r["key"]: r for r in self.labelled()}, self.records(),
                              self.cfg.probe)
        write_json_atomic(path, result)
        stage.write("complete")
        return result

    # -- truncation
    def _replay_pool(self, limit: int | None) -> list[dict[str, Any]]:
        """Labelled records with a trace, at most ``limit`` per side (harmful, benign), in label order."""
        out, per_side = [], {True: 0, False: 0}
        for r in self.labelled():
            if r["n_trace_tokens"] > 0 and (limit is None or per_side[r["harmful"]] < limit):
                per_side[r["harmful"]] += 1
                out.append(r)
        return out

    def truncation(self, *, progress: bool = True) -> dict[str, Any]:
        labels = self._replay_pool(self.cfg.truncation_limit)
        ident = {"records": [r["key"] for r in labels], "fractions": self.cfg.fractions, "floor": FLOOR,
                 "samples": self.cfg.truncation_samples, "replay": asdict(self.cfg.replay),
                 "judge": self.cfg.label_judge, "asr_judge": self.cfg.asr_judge, "judge_rules": PRECHECK_RULES,
                 "model": self._model_identity()}
        stage = self._stage("truncation", ident)
        path, replays_path = stage.out / "truncation.json", stage.out / "replays.jsonl"
        if stage.is_complete() and path.exists():
            return json.loads(path.read_text())
        stage.write("running")
        recs = self.records()
        tok = self.loaded.tokenizer
        done = {(r["key"], r["fraction"]) for r in read_resumable(replays_path)}
        todo = []
        for i, lab in enumerate(labels):
            span = trace_span(tok, recs[lab["key"]])
            # the cuts, then the whole trace (the floor: the same replay with nothing cut)
            for j, f in enumerate([*self.cfg.fractions, FLOOR]):
                if (lab["key"], f) not in done:
                    k = span if f == FLOOR else int(math.floor(f * span))
                    todo.append((lab, f, Cut(lab["key"], k, 1000 * i + (999 if f == FLOOR else j))))
        self._replay_into(replays_path, todo, recs, self.cfg.truncation_samples, progress, "truncation")
        rows = list(read_jsonl(replays_path))
        result = truncation_report(rows, labels, self.cfg.fractions, self.cfg.commitment)
        cis = truncation_cis(rows, labels, self.cfg.fractions, self.cfg.commitment)
        result["sides"]["all"] |= cis[THREE_WAY]
        result[BINARY]["sides"]["all"] |= cis[BINARY]
        write_json_atomic(path, result)
        stage.write("complete")
        return result

    def _replay_into(self, path: Path, todo: list[tuple[dict[str, Any], Any, Cut]], recs: dict[str, dict[str, Any]],
                     n: int, progress: bool, what: str) -> None:
        tag = "fraction" if what == "truncation" else "cut"
        jobs = [({"key": lab["key"], "pool": lab["pool"], "harmful": lab["harmful"], tag: value}, cut,
                 recs[lab["key"]].get("source_prompt") or recs[lab["key"]]["prompt"]) for lab, value, cut in todo]
        replay_into(path, self.backend, self.loaded.tokenizer, recs, jobs, n, self.cfg.replay,
                    self.judge(self.cfg.label_judge), asr_judge=self.judge(self.cfg.asr_judge),
                    batch_size=max(1, self.cfg.generation.batch_size // 2), adapter=self.loaded.adapter,
                    progress=progress, what=what)

    # -- stance changes
    def stance(self, *, progress: bool = True) -> dict[str, Any]:
        labels = self._replay_pool(self.cfg.stance_limit)
        ident = {"records": [r["key"] for r in labels], "replays": self.cfg.replays, "replay": asdict(self.cfg.replay),
                 "stance_judge": self.cfg.stance_judge, "stance_judge_options": self.cfg.stance_judge_options,
                 "judge": self.cfg.label_judge, "asr_judge": self.cfg.asr_judge, "chunk_chars": self.cfg.chunk_chars,
                 "min_chunk_chars": self.cfg.min_chunk_chars, "judge_rules": PRECHECK_RULES, "model": self._model_identity()}
        stage = self._stage("stance", ident)
        path, stances_path, replays_path = (stage.out / n for n in ("stance.json", "stances.jsonl", "replays.jsonl"))
        if stage.is_complete() and path.exists():
            return json.loads(path.read_text())
        stage.write("running")
        recs = self.records()
        tok = self.loaded.tokenizer
        chunked = {r["key"]: r for r in read_resumable(stances_path)}
        judge = self.judge(self.cfg.stance_judge, **self.cfg.stance_judge_options)
        for lab in labels:
            if lab["key"] in chunked:
                continue
            rec = recs[lab["key"]]
            ids = rec["trace_token_ids"][: trace_span(tok, rec)]
            text = tok.decode(ids, skip_special_tokens=False)
            chunks = chunk_trace(text, max_chars=self.cfg.chunk_chars, min_chars=self.cfg.min_chunk_chars)
            prompt = rec.get("source_prompt") or rec["prompt"]
            stances = judge_stances(judge, prompt, chunks)
            row = {"key": lab["key"], "pool": lab["pool"], "harmful": lab["harmful"], "stances": stances,
                   "chunks": [[c.start, c.end] for c in chunks],
                   "chunk_tokens": [char_to_tokens(tok, ids, c.end) for c in chunks]}
            chunked[lab["key"]] = row
            append_jsonl(stances_path, [row])  # judged chunks survive a kill, record by record
        done = {(r["key"], r["cut"]) for r in read_resumable(replays_path)}
        todo = []
        for i, lab in enumerate(labels):
            row = chunked[lab["key"]]
            for c in stance_changes(row["stances"]):
                for side, chunk in (("pre", c.pre_chunk), ("post", c.post_chunk)):
                    tag = f"{c.index}:{side}"
                    if (lab["key"], tag) not in done:
                        todo.append((lab, tag, Cut(lab["key"], row["chunk_tokens"][chunk], 100_000 + 1000 * i + 2 * c.index
                                                   + (side == "post"))))
        self._replay_into(replays_path, todo, recs, self.cfg.replays, progress, "stance")
        rows = list(read_jsonl(replays_path)) if replays_path.exists() else []
        result = stance_report([chunked[r["key"]] for r in labels], rows, self.cfg)
        write_json_atomic(path, result)
        stage.write("complete")
        return result

    # -- the scorecard
    def scorecard(self, *, progress: bool = True) -> dict[str, Any]:
        probe = self.probe(progress=progress)
        trunc = self.truncation(progress=progress)
        stance = self.stance(progress=progress)
        metrics = scorecard(probe, trunc, stance, self.generate(progress=False), self.cfg)
        path, plots = self.out / "metrics.json", self.out / "plots"
        if _json_file(path) == json.loads(json.dumps(metrics)) and all((plots / n).is_file() for n in PLOTS):
            return metrics  # a finished run: its scorecard and plots are left as they are, bytes and times
        write_json_atomic(path, metrics)
        from thinksafe.deliberation.plots import write_plots

        write_plots(plots, probe, trunc, commitment=self.cfg.commitment)
        return metrics


PLOTS = ("auroc_by_layer.png", "valley.png", "truncation.png")


def _json_file(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def resolve_config(out: str | Path, overrides: dict[str, Any]) -> DeliberationConfig:
    """``OUT/config.json`` when the run exists (a rerun needs only ``--out``), else the defaults, with
    the flags a user gave on top; nested settings (``generation``, ``probe``, ``replay``) merge key by key."""
    path = Path(out) / "config.json"
    base: dict[str, Any] = {}
    if path.exists():
        try:
            base = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc}); delete the folder to start over") from None
    unknown = sorted(set(base) - set(DeliberationConfig.__dataclass_fields__))
    if unknown:
        raise DataError(f"{path} has unknown fields {unknown}; it was written by another version of thinksafe")
    merged = base | {k: v for k, v in overrides.items() if k not in ("generation", "probe", "replay")}
    defaults = {"generation": asdict(_sampling()), "probe": asdict(ProbeConfig()), "replay": asdict(ReplaySettings())}
    for key, default in defaults.items():
        merged[key] = dict(base.get(key) or default) | dict(overrides.get(key) or {})
    try:
        return DeliberationConfig(**merged)
    except TypeError as exc:
        raise ConfigError(f"bad deliberation configuration: {exc}") from None


def run_stage(out: str | Path, cfg: DeliberationConfig, stage: str = "all", *, progress: bool = True,
              loaded: LoadedModel | None = None) -> Any:
    if stage not in (*STAGES, "all"):
        raise ConfigError(f"unknown deliberation stage {stage!r}; known: {', '.join((*STAGES, 'all'))}")
    run = DeliberationRun(out, cfg, loaded=loaded)
    name = "scorecard" if stage == "all" else stage
    return getattr(run, name)(progress=progress)
