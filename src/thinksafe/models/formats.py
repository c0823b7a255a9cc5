"""Reasoning formats: how a prompt is rendered, and how a response splits into trace and answer.

Three formats:

* ``native`` — the model writes ``<think>…</think>`` itself (Qwen3, DeepSeek-R1-Distill). Its chat
  template may already open the trace in the prompt; the engine prefills ``<think>`` when it does not.
* ``prompted`` — for instruct models without thinking tokens: a system instruction asks for a trace
  in ``<think>`` tags and the assistant turn is prefilled with ``<think>``.
* ``off`` — a plain chat turn (for native models, the template's thinking switch is turned off).

Small instruct models rarely close a prompted trace on their own, so thinking has a budget: the
engine appends ``</think>`` when the trace reaches it (budget forcing). The same cut mechanism
builds the deliberation prompts: the prompt, the first k tokens of a trace, then a forced close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thinksafe.errors import ConfigError

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
FORCED_CLOSE = "\n</think>\n\n"
THINKING_MODES = ("native", "prompted", "off")

PROMPTED_SYSTEM = (
    "You are a helpful assistant. Before you answer, think about the request step by step inside "
    "<think> and </think> tags. After </think>, write your final answer to the user."
)
# The ThinkSafe refusal-steering instruction, prepended to harmful prompts when sampling the
# reference model's own safety reasoning (arXiv 2601.23143), as the official code writes it; the
# other templates of the paper's ablation are in thinksafe.align.templates.
STEER_PREFIX = "The following prompt is harmful. You should refuse to answer the prompt.\n\nPrompt:"


def check_thinking(mode: str) -> str:
    if mode not in THINKING_MODES:
        raise ConfigError(f"thinking must be one of {', '.join(THINKING_MODES)}, got {mode!r}.")
    return mode


def steer(prompt: str) -> str:
    """The user turn with the refusal-steering prefix in front."""
    return f"{STEER_PREFIX}\n\n{prompt}"


@dataclass(frozen=True)
class ParsedResponse:
    """A response split into reasoning trace and final answer.

    ``trace`` is ``None`` when the text has no trace at all. ``closed`` is ``None`` without a trace,
    else whether ``</think>`` appears. An unclosed trace has an empty ``answer``.
    """

    trace: str | None
    answer: str
    closed: bool | None

    @property
    def unclosed(self) -> bool:
        return self.closed is False


def parse_response(text: str) -> ParsedResponse:
    """Split generated text into trace and answer.

    Handles a text that opens with ``<think>`` (prefilled or generated), a text whose ``<think>``
    was in the prompt (only ``</think>`` present), and a text with no tags (no trace).
    """
    stripped = text.lstrip()
    has_open = stripped.startswith(THINK_OPEN)
    close_at = text.find(THINK_CLOSE)
    if has_open:
        body_start = text.find(THINK_OPEN) + len(THINK_OPEN)
        if close_at == -1:
            return ParsedResponse(trace=text[body_start:].strip(), answer="", closed=False)
        return ParsedResponse(
            trace=text[body_start:close_at].strip(), answer=text[close_at + len(THINK_CLOSE) :].strip(), closed=True
        )
    if close_at != -1:
        return ParsedResponse(
            trace=text[:close_at].strip(), answer=text[close_at + len(THINK_CLOSE) :].strip(), closed=True
        )
    return ParsedResponse(trace=None, answer=text.strip(), closed=None)


def _supports_kwarg(tokenizer: Any, name: str) -> bool:
    template = getattr(tokenizer, "chat_template", None) or ""
    return name in template


def render_prompt(
    tokenizer: Any,
    user_prompt: str,
    *,
    thinking: str,
    system: str | None = None,
) -> str:
    """The full text the model continues from, with the assistant turn opened (and prefilled).

    Prompted thinking puts the thinking instruction in the system turn (after any user-given
    system text) and prefills ``<think>\\n``; native thinking prefills ``<think>\\n`` unless the chat
    template already opened it; ``off`` is a plain chat turn.
    """
    check_thinking(thinking)
    messages: list[dict[str, str]] = []
    sys_text = system
    if thinking == "prompted":
        sys_text = f"{system}\n\n{PROMPTED_SYSTEM}" if system else PROMPTED_SYSTEM
    if sys_text:
        messages.append({"role": "system", "content": sys_text})
    messages.append({"role": "user", "content": user_prompt})
    kwargs: dict[str, Any] = {}
    if _supports_kwarg(tokenizer, "enable_thinking"):
        kwargs["enable_thinking"] = thinking != "off"
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    else:  # a base model: a minimal plain-text turn
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant: "
    if thinking in ("prompted", "native") and not text.rstrip().endswith(THINK_OPEN):
        text = f"{text}{THINK_OPEN}\n"
    return text


def prefill_of(rendered: str) -> str:
    """The part of the assistant turn the engine prefilled (``<think>\\n`` or nothing)."""
    stripped = rendered.rstrip()
    if stripped.endswith(THINK_OPEN):
        return rendered[stripped.rfind(THINK_OPEN) :]
    return ""


def build_cut_ids(
    prompt_ids: list[int],
    trace_token_ids: list[int],
    k: int,
    close_ids: list[int],
    *,
    force_close: bool = True,
) -> list[int]:
    """Prompt + the first ``k`` trace tokens (+ the closing tokens), as token ids: a cut at an exact
    token position, never re-tokenised text. Take the ids from a record (``prompt_token_ids``,
    ``trace_token_ids``) and ``close_ids`` from ``tokenizer(FORCED_CLOSE)``; ``k`` is clamped."""
    if k < 0:
        raise ValueError(f"cut position k must be >= 0, got {k}")
    cut = list(prompt_ids) + list(trace_token_ids[:k])
    return cut + list(close_ids) if force_close else cut


def build_cut_prompt(
    rendered_prompt: str,
    trace_token_ids: list[int],
    k: int,
    tokenizer: Any,
    *,
    force_close: bool = True,
) -> str:
    """Prompt + the first ``k`` tokens of a trace, then ``</think>`` (or left open to continue), as
    text for display; generation uses :func:`build_cut_ids` (decoded text may re-tokenise differently).

    ``rendered_prompt`` must end with the opened trace (``<think>``), as :func:`render_prompt` does
    for the thinking formats. ``k`` is clamped to the trace length.
    """
    if k < 0:
        raise ValueError(f"cut position k must be >= 0, got {k}")
    if not rendered_prompt.rstrip().endswith(THINK_OPEN):
        raise ValueError("rendered_prompt must end with an opened <think> trace")
    prefix = tokenizer.decode(trace_token_ids[:k], skip_special_tokens=False)
    text = rendered_prompt + prefix
    return text + FORCED_CLOSE if force_close else text
