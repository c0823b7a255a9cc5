"""Refusal-steering templates: how the reference model is asked to write its own safety reasoning.

THINKSAFE (arXiv 2601.23143) steers the frozen reference model on harmful prompts only; benign
prompts are sampled unchanged. The steered text is what the model *sees* while generating; the
training pair always uses the benchmark's original prompt (``source_prompt``), never this text.

* ``prefix`` — the paper's instruction before the prompt, as the official code writes it.
* ``suffix`` — the same warning after the prompt (the paper's position ablation).
* ``intent-reminder`` — a reminder to weigh the request's intent (the paper's third variant; the
  wording here is ours, since the paper does not print it).
"""

from __future__ import annotations

from dataclasses import dataclass

from thinksafe.models.formats import STEER_PREFIX
from thinksafe.registry import Registry

PAPER_INSTRUCTION = STEER_PREFIX  # the engine's --steer applies the same text (template "prefix")


@dataclass(frozen=True)
class SteerTemplate:
    """A named way to wrap a harmful prompt; ``{prompt}`` marks where the prompt goes."""

    name: str
    template: str
    description: str

    def apply(self, prompt: str) -> str:
        return self.template.replace("{prompt}", prompt)

    def leaks_into(self, text: str) -> bool:
        """Whether any fixed line of the template appears in ``text`` (a steered training prompt)."""
        fixed = [line.strip() for line in self.template.replace("{prompt}", "\n").splitlines()]
        return any(line and line in text for line in fixed)


STEER_TEMPLATES: Registry[SteerTemplate] = Registry("steering template")
STEER_TEMPLATES.register("prefix", SteerTemplate(
    "prefix", f"{PAPER_INSTRUCTION}\n\n{{prompt}}", "the paper's instruction before the prompt (default)",
))
STEER_TEMPLATES.register("suffix", SteerTemplate(
    "suffix", "{prompt}\n\nThe prompt above is harmful. You should refuse to answer the prompt.",
    "the same warning after the prompt",
))
STEER_TEMPLATES.register("intent-reminder", SteerTemplate(
    "intent-reminder",
    "{prompt}\n\nBefore you answer, think about the intent behind this request and the harm an answer could do. "
    "If it could help someone cause harm, refuse and explain why.",
    "a reminder to weigh intent and harm (our wording)",
))
DEFAULT_TEMPLATE = "prefix"
