"""thinksafe.judges: label a response as refusal, compliance, non-answer, empty or unclosed.

Every judge is looked up by name (``make_judge("keyword")``) and returns :class:`Verdict` objects.
The default judge (``objective``) asks whether the response carried out the request, so babble,
lectures and empty answers are never attacks; ``Verdict.complied`` is attack success on harmful
prompts and help on benign ones. The refusal judge (``embedding``) answers "did it refuse?" and
serves filtering and the refused / no-answer split.
Heavy dependencies (sentence-transformers, torch, transformers) are imported only when a judge
that needs them first runs.
"""

from thinksafe.judges.base import (
    JUDGE_FITTERS,
    JUDGES,
    LABELS,
    Judge,
    JudgeInput,
    Verdict,
    is_degenerate,
    judge_records,
    make_judge,
    precheck,
)
from thinksafe.judges import embedding, ensemble, keyword, llm, objective, qwen_cls  # noqa: F401  (registers the judges)
from thinksafe.judges.calibrate import (
    calibrate,
    calibrate_sets,
    fit_judge,
    run_calibration,
    run_set_calibration,
    write_calibration,
)
from thinksafe.judges.embedding import EmbeddingJudge, fit_embedding_judge
from thinksafe.judges.ensemble import EnsembleJudge
from thinksafe.judges.keyword import KeywordJudge
from thinksafe.judges.labelled import LABELLED_SETS, REPORT_SETS, LabelledRow
from thinksafe.judges.llm import LLMJudge
from thinksafe.judges.objective import ObjectiveJudge

DEFAULT_JUDGE = "objective"
"""Attack success (ASR) and help (the help rate), and refusals (ORR) beside them: did the response carry out the request."""
REFUSAL_JUDGE = "embedding"
"""Did the response refuse: training-data filtering and the refused / no-answer split."""

__all__ = [
    "DEFAULT_JUDGE",
    "LABELLED_SETS",
    "REFUSAL_JUDGE",
    "REPORT_SETS",
    "LabelledRow",
    "ObjectiveJudge",
    "calibrate_sets",
    "run_set_calibration",
    "JUDGES",
    "JUDGE_FITTERS",
    "LABELS",
    "EmbeddingJudge",
    "EnsembleJudge",
    "Judge",
    "JudgeInput",
    "KeywordJudge",
    "LLMJudge",
    "Verdict",
    "calibrate",
    "fit_embedding_judge",
    "fit_judge",
    "is_degenerate",
    "judge_records",
    "make_judge",
    "precheck",
    "run_calibration",
    "write_calibration",
]
