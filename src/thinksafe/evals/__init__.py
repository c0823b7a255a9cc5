"""Evaluation: answer extraction, ASR / ORR / accuracy with bootstrap intervals, suites, metrics.json.

Model-free: the runner generates and judges, then hands records to :func:`score_benchmark`
(or :func:`score_suite`) and writes the results with :func:`build_metrics` / :func:`write_metrics`.
"""

from thinksafe.evals.extract import (
    aime_correct,
    extract_aime_answer,
    extract_gsm8k_answer,
    extract_math_answer,
    extract_number,
    gsm8k_correct,
    last_boxed,
    math_correct,
    math_equal,
)
from thinksafe.evals.metrics import (
    METRICS,
    MetricResult,
    accuracy,
    attack_success_rate,
    non_answer_kind,
    over_refusal_rate,
)
from thinksafe.evals.reasoning import REASONING_TASKS, ReasoningTask, reasoning_prompt
from thinksafe.evals.schema import (
    MetricsSchemaError,
    build_metrics,
    read_metrics,
    render_table,
    results_from_metrics,
    validate_metrics,
    write_metrics,
)
from thinksafe.evals.suites import SUITES, Suite, SuiteEntry, score_benchmark, score_suite

__all__ = [
    "METRICS",
    "REASONING_TASKS",
    "SUITES",
    "MetricResult",
    "MetricsSchemaError",
    "ReasoningTask",
    "Suite",
    "SuiteEntry",
    "accuracy",
    "aime_correct",
    "attack_success_rate",
    "build_metrics",
    "extract_aime_answer",
    "extract_gsm8k_answer",
    "extract_math_answer",
    "extract_number",
    "gsm8k_correct",
    "last_boxed",
    "math_correct",
    "math_equal",
    "non_answer_kind",
    "over_refusal_rate",
    "read_metrics",
    "reasoning_prompt",
    "render_table",
    "results_from_metrics",
    "score_benchmark",
    "score_suite",
    "validate_metrics",
    "write_metrics",
]
