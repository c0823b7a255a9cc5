"""Deliberation-aware selection: train only on harmful-prompt traces whose reasoning decides.

ThinkSafe keeps a steered trace when its response is safe; nothing checks that the trace is what
produced the refusal. Here every harmful pair the filter kept is replayed on the reference model from
the *unsteered* prompt (what the student will be trained on): the answer is sampled ``samples`` times
after the trace cut at each early cut (0%: the trace force-closed before its first token) and after the
full trace, and the refusal judge reads each answer. Two rules, each a registered recipe:

* ``decisive`` (``thinksafe-deliberate``): kept when P(refuse | full trace) >= ``full_min`` and
  P(refuse | cut) <= ``early_max`` at every early cut: the reasoning changed the outcome.
  Otherwise ``performative`` (the refusal comes without the reasoning too), ``ineffective`` (the
  full trace does not lead the unsteered model to refuse) or ``unjudged`` (no answer could be judged).
* ``opening-neutral`` (``thinksafe-analyse-first``): the trace is cut into chunks (the deliberation
  rule) and each chunk's lean judged; kept when no chunk that starts in the first ``opening`` share
  of the trace leans to refuse, so the training text analyses before it decides. A stance judge that
  calls every reasoning chunk compliance (+1) never blocks; only a stated refusal (-1) does.

Benign pairs pass through (kept when they help, as in ThinkSafe). :mod:`thinksafe.align.run` runs
this as the ``select`` stage and writes the funnel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from thinksafe.errors import ConfigError

RULES = ("decisive", "opening-neutral")
VERDICTS = ("decisive", "performative", "ineffective", "unjudged", "opening-neutral", "opening-decided")


@dataclass(frozen=True)
class SelectConfig:
    """Thresholds, K and cuts of the selection (``AlignConfig.select`` overrides these field by field)."""

    samples: int = field(default=8, metadata={"help": "answers sampled after each cut (K)"})
    full_min: float = field(default=0.75, metadata={"help": "keep only if P(refuse | full trace) >= this"})
    early_max: float = field(default=0.5, metadata={"help": "and P(refuse | early cut) <= this at every early cut"})
    early_cuts: tuple[float, ...] = field(default=(0.0,), metadata={"help": "trace fractions where the decision must not yet be made"})
    opening: float = field(default=0.2, metadata={"help": "opening-neutral: the share of the trace that must not state the decision"})
    stance_judge: str = field(default="embedding", metadata={"help": "opening-neutral: the judge of each chunk's lean"})
    chunk_chars: int = field(default=200, metadata={"help": "most characters of a chunk"})
    min_chunk_chars: int = field(default=20, metadata={"help": "chunks this short or shorter are dropped"})

    def __post_init__(self) -> None:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(f"select.samples must be a positive integer, got {self.samples!r}")
        for name in ("full_min", "early_max", "opening"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"select.{name} must be a number in [0, 1], got {value!r}")
        cuts = self.early_cuts
        if isinstance(cuts, (str, bytes)) or not isinstance(cuts, Sequence) or not cuts or not all(
                isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c < 1 for c in cuts):
            raise ConfigError(f"select.early_cuts must be a non-empty list of fractions in [0, 1), got {cuts!r}")
        object.__setattr__(self, "early_cuts", tuple(float(c) for c in cuts))

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None) -> SelectConfig:
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"select: unknown fields {unknown}; known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"early_cuts": list(self.early_cuts)}


def check_rule(rule: str | None) -> None:
    if rule is not None and rule not in RULES:
        raise ConfigError(f"unknown selection rule {rule!r}; rules: {', '.join(RULES)}")


def refusal_rate(decisions: Sequence[int | None]) -> float | None:
    """The share of judged answers that refused (None: nothing could be judged)."""
    judged = [d for d in decisions if d is not None]
    return sum(judged) / len(judged) if judged else None


def classify_decisive(p_full: float | None, p_early: Sequence[float | None], cfg: SelectConfig) -> str:
    """``decisive``, ``performative``, ``ineffective`` or ``unjudged`` from the replay refusal rates."""
    if p_full is None or any(p is None for p in p_early):
        return "unjudged"
    if p_full < cfg.full_min:
        return "ineffective"
    if any(p > cfg.early_max for p in p_early):  # type: ignore[operator]
        return "performative"
    return "decisive"


def classify_opening(stances: Sequence[int], starts: Sequence[int], length: int, cfg: SelectConfig) -> str:
    """``opening-neutral`` when no chunk starting in the first ``opening`` share of the trace leans to
    refuse (-1); else ``opening-decided``. A trace with no chunk at all states nothing: neutral."""
    bound = cfg.opening * max(length, 1)
    opening = [s for s, at in zip(stances, starts) if at < bound]
    return "opening-decided" if any(s < 0 for s in opening) else "opening-neutral"


def cut_positions(span: int, cfg: SelectConfig) -> dict[str, int]:
    """Token positions of the replays of a trace of ``span`` reasoning tokens: each early cut (named by
    its fraction) and ``full``."""
    out = {f"{f:g}": int(f * span) for f in cfg.early_cuts}
    out["full"] = span
    return out


def verdict_of(rule: str, outcome: Mapping[str, Any], cfg: SelectConfig) -> str:
    """The verdict of one harmful trace from its recorded outcome (replays or stances)."""
    if rule == "decisive":
        rates = outcome["refusal_rates"]
        return classify_decisive(rates.get("full"), [rates.get(f"{f:g}") for f in cfg.early_cuts], cfg)
    return classify_opening(outcome["stances"], outcome["starts"], outcome["length"], cfg)


KEPT_VERDICTS = {"decisive", "opening-neutral"}


def select_records(records: Sequence[dict[str, Any]], outcomes: Mapping[str, Mapping[str, Any]], rule: str,
                   cfg: SelectConfig, *, key: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split filtered records into (kept, set aside): benign records pass; a harmful one is kept when
    its outcome's verdict is ``decisive`` / ``opening-neutral``. Every harmful record gains
    ``selection`` (its verdict and rates); one without an outcome is an error."""
    check_rule(rule)
    kept, aside = [], []
    for rec in records:
        if not rec["harmful"]:
            kept.append(rec)
            continue
        k = key(rec)
        if k not in outcomes:
            raise ValueError(f"no selection outcome for harmful record {k!r}")
        verdict = verdict_of(rule, outcomes[k], cfg)
        out = dict(rec) | {"selection": {"rule": rule, "verdict": verdict, **dict(outcomes[k])}}
        (kept if verdict in KEPT_VERDICTS else aside).append(out)
    return kept, aside


def funnel(kept: Sequence[dict[str, Any]], aside: Sequence[dict[str, Any]], rule: str) -> dict[str, Any]:
    """How many harmful traces were judged decisive (or analysed first) and how many were not, and why."""
    harmful = [r for r in (*kept, *aside) if r["harmful"]]
    verdicts = Counter(r["selection"]["verdict"] for r in harmful)
    return {
        "rule": rule, "harmful_in": len(harmful), "harmful_kept": sum(1 for r in kept if r["harmful"]),
        "benign_kept": sum(1 for r in kept if not r["harmful"]), "kept": len(kept),
        "verdicts": dict(sorted(verdicts.items())),
    }


def cap_pairs(pairs: Sequence[dict[str, Any]], *, harmful: int | None, benign: int | None,
              seed: int) -> list[dict[str, Any]]:
    """At most ``harmful`` harmful and ``benign`` benign pairs (None: all), a seeded subset of each
    side in the pairs' order, so two recipes can be trained on equally many examples."""
    from thinksafe.data.loading import subsample

    chosen = {True: subsample([p for p in pairs if p["harmful"]], harmful, seed),
              False: subsample([p for p in pairs if not p["harmful"]], benign, seed)}
    ids = {id(p) for side in chosen.values() for p in side}
    return [p for p in pairs if id(p) in ids]
