"""Recipes (named ways to make training pairs) and presets (named training settings).

* ``thinksafe`` — THINKSAFE: harmful prompts steered by a template, benign prompts sampled as is,
  the safe pairs kept by the judges, trained on the *original* prompt with the trace kept.
* ``rejection`` — the rejection-sampling baseline: the same, with no steering.
* ``teacher`` — teacher distillation (STAR-1, DeepSeek-R1's traces) on the harmful side; the benign
  side is the same self-generated, judged pool as ``thinksafe``, so the harmful side's source is
  the one difference.
* ``direct-refusal`` — the no-reasoning ablation: ``thinksafe``'s kept pairs, with the harmful
  pairs' traces emptied (``<think>\\n\\n</think>`` then the same refusal) and the benign pairs as
  they are (the paper's "switch between thinking and not thinking").
* ``thinksafe-deliberate`` — ``thinksafe``'s kept pairs, harmful ones only where the reasoning decides:
  replayed from the unsteered prompt, the full trace leads to refusal and the trace cut at 0% does not
  (:mod:`thinksafe.align.select`, rule ``decisive``).
* ``thinksafe-analyse-first`` — ``thinksafe``'s kept pairs, harmful ones only where the opening of the
  trace does not yet state the refusal (rule ``opening-neutral``).
* ``grpo`` — the online-RL baseline: GRPO on the same pools' prompts, rewarded by the same judges
  (:mod:`thinksafe.align.grpo`); it makes no pairs, so it has one stage, ``train``.

A recipe only says where pairs come from; :mod:`thinksafe.align.run` does the work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from thinksafe.errors import ConfigError
from thinksafe.registry import Registry


@dataclass(frozen=True)
class Recipe:
    """Where a recipe's harmful pairs come from and what happens to them after filtering."""

    name: str
    description: str
    steer: bool = False  # the harmful pool is steered with the run's template
    harmful_source: str = "self"  # "self" (the reference model) | "teacher" (a teacher trace set)
    strip_harmful_trace: bool = False  # keep the refusal, drop its reasoning
    select: str | None = None  # a selection rule on the kept harmful traces (thinksafe.align.select.RULES)
    online: bool = False  # learns from its own samples while training (GRPO): no pairs, one train stage


RECIPES: Registry[Recipe] = Registry("alignment recipe")
RECIPES.register("thinksafe", Recipe(
    "thinksafe", "self-generated under refusal steering, judged safe, trained on the original prompt", steer=True))
RECIPES.register("rejection", Recipe(
    "rejection", "self-generated without steering, judged safe (rejection-sampling baseline)"))
RECIPES.register("teacher", Recipe(
    "teacher", "teacher traces (STAR-1) on the harmful side, self-generated benign side (distillation baseline)",
    harmful_source="teacher"))
RECIPES.register("direct-refusal", Recipe(
    "direct-refusal", "thinksafe's kept pairs with the harmful traces removed (no-reasoning ablation)",
    steer=True, strip_harmful_trace=True))

RECIPES.register("thinksafe-deliberate", Recipe(
    "thinksafe-deliberate", "thinksafe's pairs, harmful traces kept only where the reasoning decides the refusal "
    "(replayed unsteered: the full trace refuses, the trace cut at 0% does not)", steer=True, select="decisive"))
RECIPES.register("thinksafe-analyse-first", Recipe(
    "thinksafe-analyse-first", "thinksafe's pairs, harmful traces kept only where the first 20% of the trace does "
    "not yet state the refusal", steer=True, select="opening-neutral"))

RECIPES.register("grpo", Recipe(
    "grpo", "online RL (GRPO, TRL) on the pools' prompts, rewarded by the judges: a safe refusal on harmful "
    "prompts, help on benign ones, a correct answer on reasoning ones, a closed trace (thinksafe.align.grpo)",
    online=True))

EMPTY_TRACE = "\n\n"  # what stays between <think> and </think> when a recipe strips the reasoning


@dataclass(frozen=True)
class Preset:
    """Training settings that differ from the paper's, said out loud in the manifest and the report."""

    name: str
    description: str
    learning_rate: float = 1e-5
    epochs: float = 3.0
    max_length: int = 2048
    keep_forced: bool = False  # keep (and mark) traces whose close the thinking budget forced
    overrides: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: Registry[Preset] = Registry("alignment preset")
PRESETS.register("paper", Preset(
    "paper", "the paper's recipe: lr 1e-5, 3 epochs; traces the budget had to close are dropped"))
PRESETS.register("small-data", Preset(
    "small-data",
    "for a small model on a few hundred pairs: lr 2e-4 and 2 epochs (the paper's 1e-5 barely moves a 0.5B "
    "model on a hundred examples); keeps budget-closed traces (a 0.5B model rarely closes its own), marked",
    learning_rate=2e-4, epochs=2.0, max_length=1024, keep_forced=True,
    overrides=("learning_rate 1e-5 -> 2e-4", "epochs 3 -> 2", "max_length 2048 -> 1024", "keep_forced false -> true"),
))


def split_recipe(name: str) -> tuple[str, str | None]:
    """A main job's recipe entry: ``thinksafe`` or ``thinksafe@suffix`` (the recipe under another steering
    template, for the template ablation) -> ``(recipe, template or None)``; both names are checked."""
    from thinksafe.align.templates import STEER_TEMPLATES

    recipe, _, template = str(name).partition("@")
    spec = check_recipe(recipe)
    if not template:
        return recipe, None
    STEER_TEMPLATES.get(template)  # an unknown template lists the known ones
    if not spec.steer:
        raise ConfigError(f"{name!r}: recipe {recipe!r} does not steer, so a steering template changes nothing")
    return recipe, template


def check_recipe(name: str) -> Recipe:
    """The recipe named ``name`` (an unknown name lists the known ones)."""
    if not isinstance(name, str):
        raise ConfigError(f"recipe must be a name, got {name!r}")
    return RECIPES.get(name)

