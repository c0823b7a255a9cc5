"""thinksafe.deliberation: does a reasoning model decide before it thinks, and does thinking change it?

First-token probes and the separability along the trace (:mod:`.probes`; the statistics are
:mod:`thinksafe.stats`), states from one forward pass (:mod:`.states`), truncation and stance-change
replays (:mod:`.replay`, :mod:`.chunks`), all as stages of one resumable run (:mod:`.run`).
"""

from thinksafe.deliberation.run import STAGES, DeliberationConfig, DeliberationRun, run_stage

__all__ = ["STAGES", "DeliberationConfig", "DeliberationRun", "run_stage"]
