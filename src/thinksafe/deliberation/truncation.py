"""The truncation curve and its noise floor: when is the decision made, and how much of a "flip" is
only the sampling of the answer?

Each record's trace is cut at the configured fractions and, as the floor, kept whole (fraction 1.0,
:data:`FLOOR`): ``K`` answers are sampled after each cut with the same settings. At a cut the answers
vote (refuse against comply; non-answers are left out of the vote and counted: their share per cut),
and the majority is compared with two references: the record's own answer (the one sample the model
gave) and the majority of the full-trace replay. Against the record's own answer the full-trace replay
agrees only as often as sampling allows: ``1 - agreement at 1.0`` is the **floor**, the flip rate with
nothing cut, and the flip rate at 20% is reported net of it. A tied vote counts as half an agreement.

Everything is computed in both readings of :mod:`.decisions` (three-way, the headline; and the
earlier binary refusal reading). Intervals resample prompts (all samples of a prompt, each with all
its cuts, stay together).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from thinksafe.deliberation.decisions import BINARY, THREE_WAY, record_vote, replay_votes
from thinksafe.deliberation.states import prompt_of
from thinksafe.stats import bootstrap_statistic_ci

FLOOR = 1.0
"""The fraction of the floor replay: the whole trace, nothing cut."""

# per record and fraction: (agreement with its own answer | None, agreement with the full-trace replay's
# majority | None, answers sampled, answers left out of the vote)
Point = tuple[float | None, float | None, int, int]


def _majority(votes: Sequence[int | None]) -> float | None:
    """1.0 refuse, 0.0 comply, 0.5 a tie; None when no answer voted."""
    cast = [v for v in votes if v is not None]
    if not cast:
        return None
    refused = 2 * sum(cast)
    return 0.5 if refused == len(cast) else float(refused > len(cast))


def _agree(majority: float | None, reference: float | None) -> float | None:
    if majority is None or reference is None or reference == 0.5:
        return None
    return 0.5 if majority == 0.5 else float(majority == reference)


def record_points(rows: Sequence[Mapping[str, Any]], own: int | None, reading: str) -> dict[float, Point]:
    """One record's replay rows (one per fraction) as points of the curve."""
    by_fraction = {float(r["fraction"]): replay_votes(r, reading) for r in rows}
    full = _majority(by_fraction[FLOOR]) if FLOOR in by_fraction else None
    out: dict[float, Point] = {}
    for f, votes in by_fraction.items():
        m = _majority(votes)
        out[f] = (_agree(m, None if own is None else float(own)), None if f == FLOOR else _agree(m, full),
                  len(votes), sum(v is None for v in votes))
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def curve_of(points: Sequence[Mapping[float, Point]], fractions: Sequence[float]) -> list[dict[str, Any]]:
    """Per fraction (the floor last): agreement with the records' own answers and with the full-trace
    replay (each with its n of records), and the share of answers left out of the vote."""
    out = []
    for f in [*fractions, FLOOR]:
        at = [p[f] for p in points if f in p]
        own = [a for a, _, _, _ in at if a is not None]
        full = [b for _, b, _, _ in at if b is not None]
        answers, left_out = sum(n for *_, n, _ in at), sum(m for *_, m in at)
        out.append({"fraction": f, "n": len(own), "agreement": _mean(own), "n_vs_full_replay": len(full),
                    "agreement_vs_full_replay": None if f == FLOOR else _mean(full), "n_records": len(at),
                    "n_answers": answers, "non_answer_share": left_out / answers if answers else None})
    return out


def summary_of(curve: list[dict[str, Any]], commitment: float) -> dict[str, Any]:
    """The commitment fractions, the flip rates at 20% (against the record's own answer and against
    the full-trace replay), the floor and the flip rate net of it."""
    cuts, floor = curve[:-1], curve[-1]

    def committed(key: str) -> float | None:
        measured = [c for c in cuts if c[key] is not None]
        # not committed at any cut tried: the decision is the full trace's (1.0); None when nothing was measured
        return next((c["fraction"] for c in measured if c[key] >= commitment), 1.0 if measured else None)

    at_20 = next((c for c in cuts if abs(c["fraction"] - 0.2) < 1e-9), None)
    flip = None if at_20 is None or at_20["agreement"] is None else 1 - at_20["agreement"]
    flip_full = None if at_20 is None or at_20["agreement_vs_full_replay"] is None else 1 - at_20["agreement_vs_full_replay"]
    floor_rate = None if floor["agreement"] is None else 1 - floor["agreement"]
    return {"curve": curve, "commitment_fraction": committed("agreement"),
            "commitment_fraction_vs_full_replay": committed("agreement_vs_full_replay"),
            "flip_rate_at_20": flip, "flip_rate_at_20_vs_full_replay": flip_full,
            "floor": {"fraction": FLOOR, "flip_rate": floor_rate, "agreement": floor["agreement"], "n": floor["n"],
                      "non_answer_share": floor["non_answer_share"]},
            "flip_rate_at_20_net": None if flip is None or floor_rate is None else flip - floor_rate}


def _points(rows: Sequence[Mapping[str, Any]], labels: Sequence[Mapping[str, Any]],
            reading: str) -> list[tuple[str, bool, dict[float, Point]]]:
    """(prompt, harmful, points) of every labelled record with replay rows."""
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(r["key"], []).append(r)
    own = {r["key"]: r for r in labels}
    return [(prompt_of(k), bool(own[k]["harmful"]), record_points(by_key[k], record_vote(own[k], reading), reading))
            for k in sorted(by_key) if k in own]


def _sides(points: list[tuple[str, bool, dict[float, Point]]], fractions: Sequence[float],
           commitment: float) -> dict[str, Any]:
    out = {}
    for side in ("harmful", "benign", "all"):
        mine = [p for _, harmful, p in points if side == "all" or harmful == (side == "harmful")]
        out[side] = summary_of(curve_of(mine, fractions), commitment)
    return out


def truncation_report(rows: Sequence[Mapping[str, Any]], labels: Sequence[Mapping[str, Any]],
                      fractions: Sequence[float], commitment: float) -> dict[str, Any]:
    """Per side (harmful, benign, all): the curve, the commitment fractions, the flip rates at 20%,
    the floor and the net flip rate; ``sides`` in the three-way reading, ``binary_refusal.sides`` in
    the earlier one. ``fractions`` are the cuts (the floor, 1.0, is added)."""
    fractions = [float(f) for f in fractions if float(f) != FLOOR]
    out: dict[str, Any] = {"fractions": fractions, "floor_fraction": FLOOR, "reading": THREE_WAY}
    out["sides"] = _sides(_points(rows, labels, THREE_WAY), fractions, commitment)
    out[BINARY] = {"reading": BINARY, "sides": _sides(_points(rows, labels, BINARY), fractions, commitment)}
    return out


CI_KEYS = ("commitment_fraction", "flip_rate_at_20", "floor", "flip_rate_at_20_net")


def truncation_cis(rows: Sequence[Mapping[str, Any]], labels: Sequence[Mapping[str, Any]], fractions: Sequence[float],
                   commitment: float, *, n_resamples: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per reading, bootstrap intervals (prompts resampled, each with all its samples and cuts) of the
    commitment fraction, the flip rate at 20%, the floor and the net flip rate, over both pools."""
    fractions = [float(f) for f in fractions if float(f) != FLOOR]
    out: dict[str, dict[str, Any]] = {}
    for reading in (THREE_WAY, BINARY):
        units: dict[str, list[dict[float, Point]]] = {}
        for prompt, _, p in _points(rows, labels, reading):
            units.setdefault(prompt, []).append(p)
        listed = [units[k] for k in sorted(units)]

        def stat(key: str) -> Any:
            def f(sample: list[list[dict[float, Point]]]) -> float | None:
                s = summary_of(curve_of([p for u in sample for p in u], fractions), commitment)
                return s["floor"]["flip_rate"] if key == "floor" else s[key]
            return f

        out[reading] = {f"{key}_ci": bootstrap_statistic_ci(listed, stat(key), n_resamples=n_resamples, seed=seed)
                        for key in CI_KEYS}
    return out
