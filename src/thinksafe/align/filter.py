"""Judge filtering of self-generated (or teacher) training candidates, with a reason for every drop.

A candidate is a generation record plus the pool it came from and whether its prompt is harmful.
The judges always read the benchmark's original prompt (``source_prompt``), never the steered text.

* harmful prompts: kept when the response does **not** carry out the request (the ASR judge, trace
  included, since a trace can leak the harm) **and** it refuses (the refusal judge);
* benign prompts: kept when the response carries out the request (not refused, not a non-answer)
  or, where the candidate says whether its answer is right (``correct``, a reasoning set), right;
* traces: an unclosed trace is dropped; a trace whose close was forced at the thinking budget is
  dropped unless ``keep_forced`` (then kept and marked ``forced_close``);
* a harmful prompt's answer that is a repetition loop is dropped (``repetition_loop``), even a loop of
  a refusal, which the judges count as a refusal when they score a model: a model is not taught to
  loop. (On the benign side a loop is never help, so the judges drop it; a reasoning pool's answer is
  kept when it is right, loop or not.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from thinksafe.judges.apply import annotate_records
from thinksafe.judges.base import Judge, is_degenerate

DROP_REASONS = (
    "unclosed_trace", "forced_close", "empty_answer", "repetition_loop", "harmful_compliance", "no_refusal",
    "benign_not_helped", "wrong_answer",
)


@dataclass
class FilterReport:
    """Generated, kept and dropped counts, per pool and category, and why each drop happened."""

    kept: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def by(records: list[dict[str, Any]], key: str) -> dict[str, int]:
            return dict(sorted(Counter(str(r.get(key)) for r in records).items()))

        everything = self.kept + self.dropped
        return {
            "generated": len(everything),
            "kept": len(self.kept),
            "dropped": len(self.dropped),
            "generated_by_pool": by(everything, "pool"),
            "kept_by_pool": by(self.kept, "pool"),
            "kept_by_category": by(self.kept, "category"),
            "dropped_by_reason": dict(sorted(Counter(r["drop_reason"] for r in self.dropped).items())),
            "kept_forced_close": sum(1 for r in self.kept if r.get("forced_close")),
        }


def _trace_reason(rec: dict[str, Any], keep_forced: bool) -> str | None:
    end = rec.get("trace_end")
    if end is None and rec.get("trace") is not None:  # records from before trace_end existed
        end = "closed" if rec.get("trace_closed") else ("forced" if rec.get("forced_close") else "unclosed")
    if end == "unclosed":
        return "unclosed_trace"
    if end == "forced" and not keep_forced:
        return "forced_close"
    answer = (rec.get("answer") or "").strip()
    if not answer:
        return "empty_answer"
    if rec.get("harmful") and is_degenerate(answer):
        return "repetition_loop"
    return None


def filter_candidates(
    candidates: Sequence[dict[str, Any]],
    *,
    asr_judge: Judge,
    refusal_judge: Judge,
    keep_forced: bool = False,
    answer_only: Callable[[dict[str, Any]], bool] | None = None,
    progress: bool = False,
) -> FilterReport:
    """Keep the safe pairs. Each candidate needs ``harmful`` (bool) beside the record fields; each
    output record gains ``verdicts`` (both judges) and, when dropped, ``drop_reason``.

    ``answer_only(rec)`` true: the ASR judge reads that candidate's answer without its trace (a
    curated teacher set; see :func:`thinksafe.align.run.AlignRun.filter`)."""
    report = FilterReport()
    judgeable: list[dict[str, Any]] = []
    for rec in candidates:
        if "harmful" not in rec:
            raise ValueError(f"candidate {rec.get('id')!r} lacks 'harmful' (is its prompt harmful or benign?)")
        reason = _trace_reason(rec, keep_forced)
        if reason is not None:
            report.dropped.append(dict(rec) | {"drop_reason": reason})
        else:
            judgeable.append(rec)
    if not judgeable:
        return report
    plain = [answer_only is not None and answer_only(rec) for rec in judgeable]
    achieved: list[dict[str, Any]] = [{}] * len(judgeable)
    for flag in (False, True):
        idx = [i for i, p in enumerate(plain) if p is flag]
        if idx:
            for i, a in zip(idx, annotate_records([judgeable[i] for i in idx], asr_judge, include_trace=not flag,
                                                  progress=progress)):
                achieved[i] = a
    refused = annotate_records(judgeable, refusal_judge, include_trace=False, progress=progress)
    for rec, a, r in zip(judgeable, achieved, refused):
        verdicts = {"asr": a["verdict"], "refusal": r["verdict"]}
        out = dict(rec) | {"verdicts": verdicts}
        if rec["harmful"]:
            if a["verdict"]["complied"]:
                reason = "harmful_compliance"
            elif not r["verdict"]["refused"]:
                reason = "no_refusal"
            else:
                reason = None
        else:
            if "correct" in rec:  # a reasoning set: the gold answer decides, not the judge
                reason = None if rec["correct"] else "wrong_answer"
            else:
                reason = None if a["verdict"]["complied"] else "benign_not_helped"
        if reason is None:
            report.kept.append(out)
        else:
            report.dropped.append(out | {"drop_reason": reason})
    return report
