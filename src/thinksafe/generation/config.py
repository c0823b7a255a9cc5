"""The generation stage's configuration: every field has a default and a help text, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from thinksafe.errors import ConfigError
from thinksafe.generation.registry import BACKENDS
from thinksafe.manifest import PLACEMENT_OPTIONS, placement_free
from thinksafe.models.loader import DTYPES

THINKING_CHOICES = ("auto", "native", "prompted", "off")
ANSWER_MIN_TOKENS = 8  # measured: docs/performance.md, "Answers that are answers"


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class GenerationConfig:
    """How responses are sampled. Fields that change the output enter the cache key."""

    thinking: str = field(default="auto", metadata=_help("native | prompted | off | auto (the model's own format)"))
    thinking_budget: int = field(
        default=256, metadata=_help("max tokens of reasoning trace before </think> is forced (docs/performance.md)")
    )
    force_close: bool = field(default=True, metadata=_help("append </think> at the budget and generate the answer"))
    max_new_tokens: int = field(default=256, metadata=_help("max tokens of the final answer (after </think>)"))
    answer_min_tokens: int = field(
        default=ANSWER_MIN_TOKENS, metadata=_help("after a trace, end-of-turn is suppressed for this many answer tokens")
    )
    temperature: float = field(default=0.6, metadata=_help("sampling temperature; 0 is greedy"))
    top_p: float = field(default=0.95, metadata=_help("nucleus sampling mass, in (0, 1]"))
    top_k: int = field(default=0, metadata=_help("keep the k most likely tokens; 0 disables"))
    seed: int = field(default=0, metadata=_help("run seed; each sample's seed derives from it, the prompt id and index"))
    samples: int = field(default=1, metadata=_help("samples per prompt"))
    stop: tuple[str, ...] = field(default=(), metadata=_help("extra stop strings for the answer"))
    steer: bool = field(default=False, metadata=_help("prepend the ThinkSafe refusal-steering instruction"))
    system: str | None = field(default=None, metadata=_help("an extra system prompt"))
    batch_size: int = field(default=32, metadata=_help("rows per generate batch on the transformers backend (speed only)"))
    dtype: str = field(default="auto", metadata=_help("auto (bfloat16 where the hardware has it) | float32 | bfloat16 | float16"))
    backend: str = field(default="auto", metadata=_help("vllm | transformers | auto (vllm where installed)"))
    backend_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=_help("backend settings, e.g. tensor_parallel_size=2, enforce_eager=false, gpu_memory_utilization=0.8 "
                      "(placement settings such as parallel sizes stay out of the run identity: docs/scale-out.md)"),
    )

    def __post_init__(self) -> None:
        self.stop = tuple(self.stop)
        if self.thinking not in THINKING_CHOICES:
            raise ConfigError(f"thinking must be one of {', '.join(THINKING_CHOICES)}, got {self.thinking!r}.")
        if not isinstance(self.answer_min_tokens, int) or self.answer_min_tokens < 0:
            raise ConfigError(f"answer_min_tokens must be a non-negative integer, got {self.answer_min_tokens!r}.")
        for name in ("thinking_budget", "max_new_tokens", "samples", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature!r}.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}.")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {self.top_k!r}.")
        if self.backend != "auto":
            BACKENDS.get(self.backend)  # an unknown name fails here, listing the known backends
        if not isinstance(self.backend_options, dict):
            raise ConfigError(f"backend_options must be a mapping, got {type(self.backend_options).__name__}.")
        if self.backend == "transformers" and self.backend_options:
            raise ConfigError(
                f"backend_options {', '.join(sorted(self.backend_options))} are vLLM settings; the transformers backend "
                "takes none."
            )
        if self.dtype not in ("auto", *DTYPES):
            raise ConfigError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {self.dtype!r}.")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["backend_options"] = dict(self.backend_options)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerationConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown generation setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**d)

    def sampling_key(self, thinking: str | None = None) -> dict[str, Any]:
        """The decoding settings that change a sample's text, given the rendered prompt.

        ``thinking`` is the resolved format (default: this config's; ``auto`` counts as thinking on).
        Settings that cannot change the text stay out: top-p and top-k under greedy decoding, the
        thinking budget and forced close with thinking off. The seed is not here: it enters the
        cache key per sample, and only when sampling (see :meth:`uses_seed`).
        """
        thinking = thinking or self.thinking
        greedy = self.temperature == 0
        key: dict[str, Any] = {
            "thinking": thinking,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": 1.0 if greedy else self.top_p,
            "top_k": 0 if greedy else self.top_k,
            "stop": list(self.stop),
        }
        if thinking != "off":
            key |= {"thinking_budget": self.thinking_budget, "force_close": self.force_close,
                    "answer_min_tokens": self.answer_min_tokens}
        return key

    def placement(self) -> dict[str, Any]:
        """The backend options a manifest records beside the identity (:data:`thinksafe.manifest.PLACEMENT_OPTIONS`)."""
        return {k: v for k, v in self.backend_options.items() if k in PLACEMENT_OPTIONS}

    def uses_seed(self) -> bool:
        """Whether the seed changes the output (it does not under greedy decoding)."""
        return self.temperature > 0

    def identity(self, thinking: str | None = None) -> dict[str, Any]:
        """The settings a run manifest records: everything that can change the output (the
        sampling key, steering, system text, samples, dtype and, when sampling, the seed)."""
        out = self.sampling_key(thinking) | {
            "steer": self.steer, "system": self.system, "samples": self.samples, "dtype": self.dtype,
        }
        if placement_free(self.backend_options):
            out["backend_options"] = placement_free(self.backend_options)
        if self.uses_seed():
            out["seed"] = self.seed
        return out
