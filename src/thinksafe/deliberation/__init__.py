"""thinksafe.deliberation: does a reasoning model decide before it thinks, and does thinking change it?

Each response read as refuse, comply or non-answer (:mod:`.decisions`); probes of the decision before
thinking and the separability along the trace (:mod:`.probes`, :mod:`.scorecard`; the statistics are
:mod:`thinksafe.stats`), states from one forward pass (:mod:`.states`), truncation replays with their
noise floor (:mod:`.truncation`) and stance-change replays as effects with a power rule
(:mod:`.stance`, :mod:`.chunks`, :mod:`.replay`), all as stages of one resumable run (:mod:`.run`).
"""

from thinksafe.deliberation.run import STAGES, DeliberationConfig, DeliberationRun, run_stage

__all__ = ["STAGES", "DeliberationConfig", "DeliberationRun", "run_stage"]
