"""The main job: diagnose -> align -> re-diagnose, and a report.

Stages, each in its own folder of the run directory, each skipped when complete and resumed when
killed (the stage libraries do the work; this module only wires them):

1. ``before/eval``: ASR, ORR (benign prompts refused, with the help rate and no-answer share beside it)
   and reasoning accuracy of the base model (:func:`run_eval`);
2. ``before/deliberation``: its deliberation scorecard (first-token probes, truncation, stance);
3. ``align/<recipe>``: training pairs, filter, perplexity diagnostic, LoRA adapter, per recipe;
4. ``after/<recipe>/eval`` and ``after/<recipe>/deliberation``: the same measurements with the adapter;
5. ``metrics.json``, ``report.html`` and ``manifest.json`` (:mod:`thinksafe.report.build`).

Which prompt sets a role uses is decided once, by where they resolve: the public set where the data
directory or an installed package holds it, else a small set written for thinksafe
(``data/bundled/``); ``sets.json`` and the report say which and from where.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rich.console import Console

from thinksafe.cost import measure
from thinksafe.distributed import world_size
from thinksafe.errors import ConfigError, DataError
from thinksafe.evals.metrics import ASSUMED_DISCORDANCE, ASSUMED_REASONING_DISCORDANCE
from thinksafe.jsonl import write_json_atomic
from thinksafe.manifest import pin_config
from thinksafe.models.registry import DEFAULT_MODEL
from thinksafe.registry import Registry

log = logging.getLogger(__name__)

SECTIONS = ("eval", "deliberation", "align")
STAGE_WEIGHTS: dict[str, float] = {"eval": 300.0, "deliberation": 30.0, "align": 450.0, "report": 5.0}
"""Seconds a stage of the standard preset took on a 2-core CPU (docs/main-job.md): the whole-job bar's weights,
so its time-left estimate moves with the work; a resumed run uses the times its finished stages took."""


@dataclass(frozen=True)
class RunPreset:
    """Defaults of each stage's configuration; a config file or flag overrides them field by field."""

    description: str
    recipes: tuple[str, ...]
    eval: dict[str, Any]
    deliberation: dict[str, Any]
    align: dict[str, Any]
    # train every recipe without a selection rule on as many pairs per side as the (smallest)
    # selecting recipe keeps, so a comparison differs in which traces are trained on, not how many
    equalize: bool = False


PRESET_DIR = Path(__file__).parent / "presets"
"""The shipped presets, one YAML file each (``NAME.yaml``); their comments say why each size was chosen."""


def read_preset(path: Path) -> RunPreset:
    """A :class:`RunPreset` from its YAML file (keys: description, recipes, eval, deliberation, align, equalize)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {f.name for f in fields(RunPreset)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"preset {path}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
    for section in SECTIONS:
        data.setdefault(section, {})
    return RunPreset(**(data | {"recipes": tuple(data.get("recipes") or ())}))


RUN_PRESETS: Registry[RunPreset] = Registry("run preset")
for _path in sorted(PRESET_DIR.glob("*.yaml")):
    RUN_PRESETS.register(_path.stem, read_preset(_path))

# role -> (where it is used, candidates in order): the first that resolves locally is taken
SET_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "orr": ("over-refusal evaluation and the deliberation's benign pool", ("xstest_safe", "thinksafe_sensitive")),
    "train_harmful": ("harmful training prompts (disjoint from the evaluation sets)", ("advbench", "donotanswer")),
    "train_benign": ("benign training prompts", ("or_bench", "thinksafe_everyday")),
}


@dataclass
class RunConfig:
    """The main job's configuration: ``DIR/config.json``; a YAML file has exactly these keys."""

    out: str = field(default="runs/main", metadata={"help": "run folder"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "model name or path"})
    preset: str = field(default="standard", metadata={
        "help": "the stage defaults: standard (make run) | quick (make smoke) | deliberate | paper "
                "(src/thinksafe/presets/NAME.yaml)"})
    recipes: list[str] | None = field(default=None, metadata={
        "help": "alignment recipes (None: the preset's); recipe@template trains a steering recipe under another "
                "template (prefix | suffix | intent-reminder): the template ablation"})
    data_path: str | None = field(default=None, metadata={"help": "a folder laid out like shared/data"})
    eval: dict[str, Any] = field(default_factory=dict, metadata={"help": "EvalJob fields over the preset's"})
    deliberation: dict[str, Any] = field(default_factory=dict,
                                         metadata={"help": "DeliberationConfig fields over the preset's"})
    align: dict[str, Any] = field(default_factory=dict, metadata={"help": "AlignConfig fields over the preset's"})
    equalize: bool | None = field(default=None, metadata={
        "help": "train recipes without a selection rule on as many pairs as the selecting recipe keeps (None: the preset's)"})
    seeds: list[int] | None = field(default=None, metadata={
        "help": "train every recipe once a seed (e.g. [0, 1, 2]; the seed of its sampling and training): the report "
                "gives each recipe's mean and between-seed spread and tests differences across seeds and prompts "
                "(None: one model a recipe, under the stage's own seed)"})

    def __post_init__(self) -> None:
        spec = RUN_PRESETS.get(self.preset)  # unknown names fail here, listing the known presets
        for name in SECTIONS:
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a mapping of that stage's settings, got {getattr(self, name)!r}")
        if self.recipes is None:
            self.recipes = list(spec.recipes)
        if self.equalize is not None and not isinstance(self.equalize, bool):
            raise ConfigError(f"equalize must be true or false, got {self.equalize!r}")
        if not self.recipes or not all(isinstance(r, str) for r in self.recipes):
            raise ConfigError(f"recipes must be a non-empty list of recipe names, got {self.recipes!r}")
        from thinksafe.align.recipes import split_recipe

        for r in self.recipes:
            split_recipe(r)  # a recipe, or recipe@template (the steering-template ablation)
        if len(set(self.recipes)) != len(self.recipes):
            raise ConfigError(f"recipes must not repeat, got {self.recipes!r}")
        if self.seeds is not None:
            if (not isinstance(self.seeds, list) or not self.seeds
                    or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.seeds)):
                raise ConfigError(f"seeds must be a non-empty list of non-negative integers, got {self.seeds!r}")
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError(f"seeds must not repeat, got {self.seeds!r}")
        # every stage config is built (and so validated) here, before anything is written
        for name in SECTIONS:
            self.stage_config(name, {"orr": "thinksafe_sensitive", "train_harmful": "donotanswer",
                                     "train_benign": "thinksafe_everyday"}, check=True)

    @property
    def arms(self) -> list[tuple[str, str, int | None]]:
        """The models this run trains: ``(label, recipe, seed)`` (:func:`thinksafe.manifest.run_arms`)."""
        from thinksafe.manifest import run_arms

        return run_arms(list(self.recipes or []), self.seeds)

    @property
    def preset_spec(self) -> RunPreset:
        return RUN_PRESETS.get(self.preset)

    @property
    def equalizes(self) -> bool:
        return self.preset_spec.equalize if self.equalize is None else self.equalize

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def evaluated_sets(self, orr: str) -> list[str]:
        """Every set this run scores a model on (``benchmark`` or ``benchmark:split``): the evaluation
        suite's entries and the deliberation's pools. No training prompt may come from them."""
        job = self.stage_config("eval", {"orr": orr})
        names = [f"{e.benchmark}:{e.split}" if e.split else e.benchmark for e in job.entries()]
        delib = self.stage_config("deliberation", {"orr": orr})
        return list(dict.fromkeys(names + list(delib.harmful) + list(delib.benign)))

    def stage_config(self, section: str, sets: dict[str, str], *, adapter: str | None = None, recipe: str = "thinksafe",
                     out: str = "", caps: list[int] | None = None, seed: int | None = None, check: bool = False) -> Any:
        """The config object of one stage: preset defaults, chosen sets, then the user's fields (and for an
        alignment stage of a seeded run, ``seed`` as its sampling and training seed)."""
        preset = dict(getattr(self.preset_spec, section))
        user = dict(getattr(self, section))
        if "generation" in preset and "generation" in user:  # generation settings merge key by key
            user["generation"] = dict(preset["generation"]) | dict(user["generation"])
        common = {"model": self.model, "data_path": self.data_path}
        try:
            if section == "eval":
                from thinksafe.evals.runner import EvalJob

                sub = {"xstest_safe": sets["orr"]} if sets["orr"] != "xstest_safe" else {}
                return EvalJob(**(common | {"substitute": sub} | preset | user | {"out": out or "-", "adapter": adapter}))
            if section == "deliberation":
                from thinksafe.deliberation.run import DeliberationConfig

                pools = {"harmful": ["harmbench"], "benign": [sets["orr"]]}
                return DeliberationConfig(**(common | pools | preset | user | {"adapter": adapter}))
            from thinksafe.align.run import AlignConfig

            # the main job chose the training pools itself, so prompts they share with what it evaluates
            # are left out (and counted) rather than refused
            pools = {"harmful": [sets["train_harmful"]], "benign": [sets["train_benign"]],
                     "eval_sets": self.evaluated_sets(sets["orr"]), "drop_overlap": True}
            capped = {"harmful_pairs": caps[0], "benign_pairs": caps[1]} if caps else {}
            from thinksafe.align.recipes import split_recipe

            name, template = split_recipe(recipe)
            chosen = {"recipe": name} | ({"template": template} if template else {})
            align = AlignConfig(**(common | pools | preset | user | chosen | capped))
            if seed is not None:
                from dataclasses import replace

                align = replace(align, generation=replace(align.generation, seed=seed))
            return align
        except TypeError as exc:  # an unknown field name
            raise ConfigError(f"{section}: {exc}".replace("__init__() ", "")) from None
        except ConfigError as exc:
            if check:
                raise ConfigError(f"{section}: {exc}") from None
            raise


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """A :class:`RunConfig` from a YAML file (its keys are exactly the config's fields) and flags on top."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config {p}: no such file")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p} must hold a mapping of settings, got {type(data).__name__}")
        unknown = sorted(set(data) - set(RunConfig.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{p}: unknown fields {unknown}; known: {', '.join(RunConfig.__dataclass_fields__)}")
    merged = data | {k: v for k, v in overrides.items() if v is not None and k not in SECTIONS}
    for section in SECTIONS:  # a section's flags merge key by key over the file's
        if overrides.get(section):
            merged[section] = dict(data.get(section) or {}) | dict(overrides[section])
    return RunConfig(**merged)


def resolved_config(cfg: RunConfig) -> dict[str, Any]:
    """Everything the run would use: its own fields, the sets each role resolves to here, and each stage's
    config with the preset, the file and the flags applied (``thinksafe run --print-config``)."""
    sets = choose_sets(cfg.data_path, evaluated=cfg.evaluated_sets)
    chosen = {role: s["benchmark"] for role, s in sets.items()}
    out = cfg.to_dict() | {"sets": {role: f"{s['benchmark']} ({s['source']})" for role, s in sets.items()}}
    out["eval"] = json.loads(json.dumps(asdict(cfg.stage_config("eval", chosen, out=str(Path(cfg.out) / "before/eval"))),
                                        default=str))
    out["deliberation"] = cfg.stage_config("deliberation", chosen).to_dict()
    out["align"] = {label: json.loads(json.dumps(cfg.stage_config("align", chosen, recipe=r, seed=s).to_dict(), default=str))
                    for label, r, s in cfg.arms}
    return out


def choose_sets(data_path: str | None,
                evaluated: Callable[[str], list[str]] | None = None) -> dict[str, dict[str, Any]]:
    """For each role, the first candidate set that resolves without the hub, and where it lives.

    ``evaluated`` maps the chosen over-refusal set to every set the run evaluates on; a training
    role never takes one of those (a run that evaluates on AdvBench does not train on it)."""
    from thinksafe.data import BENCHMARKS
    from thinksafe.data.loading import parse_ref
    from thinksafe.data.sources import resolve

    out: dict[str, dict[str, Any]] = {}
    evaluated_names: set[str] = set()  # filled once the ORR set is chosen
    for role in sorted(SET_ROLES, key=lambda r: r != "orr"):  # the ORR set first: what is evaluated depends on it
        use, candidates = SET_ROLES[role]
        skip = evaluated_names if role.startswith("train_") else set()
        for name in candidates:
            if name in skip:
                continue
            spec = BENCHMARKS.get(name)
            try:
                src = resolve(spec, spec.default_split, data_path)
            except DataError:
                continue
            if src.kind != "hub":
                bundled = spec.package is not None and spec.package.distribution == "thinksafe" and src.kind == "package"
                out[role] = {"benchmark": name, "use": use, "source": src.kind, "location": src.location,
                             "written_for_thinksafe": bundled, "description": spec.description}
                break
        else:
            tried = ", ".join(f"{c} (evaluated in this run)" if c in skip else c for c in candidates)
            raise DataError(f"no set for {use} resolves locally (tried {tried})")
        if role == "orr" and evaluated is not None:
            evaluated_names = {parse_ref(ref)[0] for ref in evaluated(out["orr"]["benchmark"])}
    return out


def plan_pools(cfg: RunConfig) -> dict[str, Any]:
    """What a run trains on and what it evaluates, before anything runs: each training pool with the
    prompts it gives (drawn once the prompts an evaluated set shares are out), each evaluated set with its
    size, and the prompts both sides share after that (normalised text): zero, or an error is raised.
    Loads the data, not a model."""
    from thinksafe.align.run import load_pools
    from thinksafe.data import load_benchmark
    from thinksafe.data.checks import normalize_prompt
    from thinksafe.data.loading import parse_ref

    chosen = {role: s["benchmark"] for role, s in choose_sets(cfg.data_path, evaluated=cfg.evaluated_sets).items()}
    align = cfg.stage_config("align", chosen)
    pools = load_pools(align)
    job = cfg.stage_config("eval", chosen)
    limits = {e.benchmark: e.limit for e in job.entries()}
    evaluated = []
    for ref in cfg.evaluated_sets(chosen["orr"]):
        name, split = parse_ref(ref)
        evaluated.append((ref, load_benchmark(name, split=split, path=cfg.data_path, limit=limits.get(name),
                                              seed=job.data_seed)))
    seen = {normalize_prompt(ex.prompt) for _, exs in evaluated for ex in exs}
    shared = sum(normalize_prompt(ex.prompt) in seen for p in pools for ex in p.examples)
    return {
        "training": [{"pool": p.name, "side": "harmful" if p.harmful else "benign", "prompts": len(p.examples),
                      "left_out_for_overlap": p.dropped_for_overlap} for p in pools],
        "asked": {"harmful": align.harmful_size, "benign": align.benign_size},
        "evaluated": [{"set": ref, "prompts": len(exs)} for ref, exs in evaluated],
        "shared_prompts": shared,
    }


class MainRun:
    """One run directory of the main job."""

    def __init__(self, cfg: RunConfig, *, console: Console | None = None, progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.console = console or Console()
        self.progress = progress
        pin_config(self.out, cfg.to_dict(), what="a main-job run", flag="--out")
        self.sets = self._sets()
        self.chosen = {role: s["benchmark"] for role, s in self.sets.items()}
        self._loaded: dict[str | None, Any] = {}
        self._stages: dict[str, Any] = {}
        timings = self.out / "timings.json"  # read once; each stage adds its time and writes it back
        self._timings: dict[str, float] = json.loads(timings.read_text()) if timings.exists() else {}
        costs = self.out / "costs.json"  # each stage's compute (thinksafe.cost), kept like its time
        self._costs: dict[str, dict[str, Any]] = json.loads(costs.read_text()) if costs.exists() else {}

    def _sets(self) -> dict[str, dict[str, Any]]:
        path = self.out / "sets.json"
        if path.exists():  # decided once per run: a package installed later does not change a running job
            return json.loads(path.read_text(encoding="utf-8"))
        sets = choose_sets(self.cfg.data_path, evaluated=self.cfg.evaluated_sets)
        write_json_atomic(path, sets)
        return sets

    def loaded(self, adapter: str | None = None) -> Any:
        from thinksafe.models.loader import load_model

        if adapter not in self._loaded:
            if self._loaded:  # one model in memory at a time, its vLLM engines included
                from thinksafe.generation.vllm_backend import release_engines  # vLLM itself loads lazily

                self._loaded.clear()
                release_engines()
            dtype = self.config_of("eval").generation.dtype
            self._loaded[adapter] = load_model(self.cfg.model, dtype=dtype, adapter=adapter)
        return self._loaded[adapter]

    def config_of(self, section: str, **kwargs: Any) -> Any:
        """A stage's config object, built once per run object."""
        key = json.dumps([section, kwargs], sort_keys=True)
        if key not in self._stages:
            self._stages[key] = self.cfg.stage_config(section, self.chosen, **kwargs)
        return self._stages[key]

    def _timed(self, name: str, fn: Any) -> Any:
        from thinksafe.progress import stage

        if self.progress:
            self.console.rule(f"[bold]{name}")
        job = getattr(self, "_job", None)
        if job is not None:
            names = self.stage_names()
            job.describe(f"whole job · stage {names.index(name) + 1 if name in names else '?'} of {len(names)}: {name}")
        before = self._costs.get(name)
        # a stage left "running" by an earlier attempt was killed: this one resumes it, and its cost is this
        # attempt's alone (the killed attempt's was never written)
        resumed = bool(before) and before.get("status") == "running"
        self._costs[name] = (before or {}) | {"status": "running"}
        write_json_atomic(self.out / "costs.json", self._costs)
        try:
            with stage(name), measure() as cost:
                result = fn()
        except BaseException:  # an error (not a kill) leaves the record as it was
            if before is None:
                self._costs.pop(name, None)
            else:
                self._costs[name] = before
            write_json_atomic(self.out / "costs.json", self._costs)
            raise
        if job is not None:
            job.advance(round(self._weights.get(name, 0)))
        finished_before = bool(before) and not resumed and "wall_s" in before
        if finished_before and not (cost["tokens_generated"] or cost["tokens_trained"]):
            # it was skipped (nothing sampled or trained): it keeps the time and cost of when it ran
            self._costs[name] = before | {"status": "complete"}
        else:
            self._costs[name] = cost | {"status": "complete"} | ({"resumed": True} if resumed else {})
            self._timings[name] = cost["wall_s"]
            write_json_atomic(self.out / "timings.json", self._timings)
        write_json_atomic(self.out / "costs.json", self._costs)
        return result

    def evaluate(self, side: str, adapter: str | None = None) -> dict[str, Any]:
        from thinksafe.evals.runner import run_eval

        job = self.config_of("eval", adapter=adapter, out=str(self.out / side / "eval"))
        return self._timed(f"{side}/eval", lambda: run_eval(job, progress=self.progress, loaded=self.loaded(adapter)))

    def deliberate(self, side: str, adapter: str | None = None) -> dict[str, Any]:
        from thinksafe.deliberation.run import run_stage

        cfg = self.config_of("deliberation", adapter=adapter)
        return self._timed(f"{side}/deliberation", lambda: run_stage(self.out / side / "deliberation", cfg, "all",
                                                                    progress=self.progress, loaded=self.loaded(adapter)))

    def align(self, label: str, recipe: str, seed: int | None = None, caps: list[int] | None = None) -> dict[str, Any]:
        """Train one model (``label``: the recipe, or ``<recipe>-seed<N>`` in a seeded run) into ``align/<label>``."""
        from thinksafe.align.run import run_stage

        cfg = self.config_of("align", recipe=recipe, caps=caps, seed=seed)
        return self._timed(f"align/{label}", lambda: run_stage("all", self.out / "align" / label, cfg,
                                                               progress=self.progress, loaded=self.loaded()))

    def stage_names(self) -> list[str]:
        labels = [label for label, _, _ in self.cfg.arms]
        return (["before/eval", "before/deliberation"] + [f"align/{r}" for r in labels]
                + [f"after/{r}/{s}" for r in labels for s in ("eval", "deliberation")] + ["report"])

    def run(self) -> dict[str, Any]:
        from thinksafe.progress import bar, run_display

        names = self.stage_names()
        weights = {n: self._timings.get(n) or STAGE_WEIGHTS["align" if n.startswith("align/") else n.split("/")[-1]]
                   for n in names}
        with run_display(self.console, enabled=self.progress), \
                bar("whole job", round(sum(weights.values())), enabled=self.progress) as job:
            self._job, self._weights = job, weights
            return self._run()

    def _run(self) -> dict[str, Any]:
        from thinksafe.report.build import build_report

        assert self.cfg.recipes is not None
        self.evaluate("before")
        self.deliberate("before")
        adapters = self.train_all()
        for label, _, _ in self.cfg.arms:  # evaluated in the order the user gave
            self.evaluate(f"after/{label}", adapters[label])
            self.deliberate(f"after/{label}", adapters[label])
        return self._timed("report", lambda: build_report(self.out))

    def train_all(self) -> dict[str, str]:
        """Each model's adapter, by label. With ``equalize``, recipes with a selection rule train first and
        every other recipe is capped at the smallest of their pair counts per side (a seeded subset), seed
        by seed in a seeded run."""
        from thinksafe.align.recipes import RECIPES, split_recipe

        equalize = self.cfg.equalizes
        arms = self.cfg.arms
        selecting = [a for a in arms if RECIPES.get(split_recipe(a[1])[0]).select is not None] if equalize else []
        if equalize and not selecting:
            log.warning("equalize: no recipe with a selection rule, so no training set is capped")
        caps: dict[int | None, list[int]] = {}  # by seed
        adapters = {}
        for label, recipe, seed in selecting + [a for a in arms if a not in selecting]:
            chosen = (label, recipe, seed) in selecting
            train = self.align(label, recipe, seed, None if chosen else caps.get(seed))["train"]
            if chosen:
                counts = [train["harmful_pairs"], train["pairs"] - train["harmful_pairs"]]
                caps[seed] = counts if seed not in caps else [min(a, b) for a, b in zip(caps[seed], counts)]
            adapters[label] = train["adapter"]
        return adapters


def run_main(cfg: RunConfig, *, console: Console | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the main job into ``cfg.out`` (finished stages skipped, a killed one resumed); returns metrics.json."""
    if world_size() > 1:
        raise ConfigError(
            f"`thinksafe run` is one process, and {world_size()} were launched. Under `accelerate launch` run only "
            "`thinksafe align train --run DIR` (docs/scale-out.md); generation scales through vLLM's "
            "tensor_parallel_size instead."
        )
    return MainRun(cfg, console=console, progress=progress).run()


@dataclass(frozen=True)
class PlanAssumptions:
    """What a power calculation assumes before anything runs (``thinksafe plan``): the share of prompts
    whose answer changes between base and adapter (the discordance a paired test feeds on)."""

    # the same defaults state the assumption beside every run's per-rate mdd (thinksafe.evals.metrics)
    discordance: float = field(default=ASSUMED_DISCORDANCE, metadata={
        "help": "share of a safety set's prompts whose answer changes between the two models"})
    reasoning_discordance: float = field(default=ASSUMED_REASONING_DISCORDANCE, metadata={
        "help": "share of reasoning questions answered right by one model only"})
    alpha: float = field(default=0.05, metadata={"help": "two-sided level"})
    power: float = field(default=0.8, metadata={"help": "power"})

    def __post_init__(self) -> None:
        for name in ("discordance", "reasoning_discordance", "alpha", "power"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie strictly between 0 and 1, got {getattr(self, name)!r}")


def plan(cfg: RunConfig, assumptions: PlanAssumptions | None = None) -> list[dict[str, Any]]:
    """The planned minimum detectable difference (MDD) of each before/after headline of a run, from its
    preset's sizes and the stated assumptions, before anything runs: one row per measure with ``n`` (the
    paired prompts), the assumed discordance and the MDD (None where the size cannot reach the power)."""
    from thinksafe.data import load_benchmark
    from thinksafe.evals.runner import _entry_limit
    from thinksafe.stats import paired_mdd

    a = assumptions or PlanAssumptions()
    chosen = {role: s["benchmark"] for role, s in choose_sets(cfg.data_path, evaluated=cfg.evaluated_sets).items()}
    job = cfg.stage_config("eval", chosen, out="-")
    rows: list[dict[str, Any]] = []
    for entry in job.entries():
        n = _entry_limit(entry, job.limit_scale)
        if n is None:
            try:
                n = len(load_benchmark(entry.benchmark, split=entry.split, path=cfg.data_path))
            except DataError:
                rows.append({"measure": f"{entry.benchmark} {entry.metric}", "n": None, "discordance": None,
                             "mdd": None, "note": "the set does not resolve here"})
                continue
        psi = a.reasoning_discordance if entry.metric == "accuracy" else a.discordance
        mdd = paired_mdd(n, psi, alpha=a.alpha, power=a.power)
        rows.append({"measure": f"{entry.benchmark} {entry.metric}", "n": n, "discordance": psi, "mdd": mdd,
                     "note": "paired McNemar" if mdd is not None else "too few prompts for this power"})
    delib = cfg.stage_config("deliberation", chosen)
    n_trunc = delib.truncation_limit if delib.truncation_limit is not None else delib.limit
    mdd = paired_mdd(n_trunc, a.discordance, alpha=a.alpha, power=a.power)
    rows.append({"measure": "flip rate at 20% (harmful truncation prompts)", "n": n_trunc, "discordance": a.discordance,
                 "mdd": mdd, "note": "paired over prompts" if mdd is not None else "too few prompts for this power"})
    from thinksafe.deliberation.stance import RULE_POWER, cut_power

    k_power = cut_power(delib.replays, delib.replays, a.alpha)
    rows.append({"measure": "performative share of stance changes", "n": delib.replays, "discordance": None, "mdd": None,
                 "note": (f"reported: K = {delib.replays} answers a cut gives power {k_power:.2f} to see 0.35 -> 0.65"
                          if k_power >= RULE_POWER else
                          f"not reported (underpowered: K = {delib.replays} gives power {k_power:.2f} < {RULE_POWER})")})
    return rows
