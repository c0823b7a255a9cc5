"""Benchmarks and their sources: one record type, a registry of loaders, deterministic sampling."""

from thinksafe.data.checks import IDENTITY_RULES, check_disjoint, dedupe, drop_overlap, normalize_prompt
from thinksafe.data.loading import (
    check_disjoint_benchmarks,
    describe_source,
    list_benchmarks,
    load_benchmark,
    load_benchmark_with_source,
    load_train_eval,
    resolve_benchmark,
)
from thinksafe.data.records import SPLIT_TYPES, Example
from thinksafe.data.registry import BENCHMARKS, EXPECTED_ROWS, SUGGESTED_SPLIT, SuggestedSplit
from thinksafe.data.spec import BenchmarkSpec, ResolvedSource

__all__ = [
    "BENCHMARKS",
    "EXPECTED_ROWS",
    "IDENTITY_RULES",
    "SPLIT_TYPES",
    "SUGGESTED_SPLIT",
    "BenchmarkSpec",
    "Example",
    "ResolvedSource",
    "SuggestedSplit",
    "check_disjoint",
    "check_disjoint_benchmarks",
    "dedupe",
    "describe_source",
    "drop_overlap",
    "list_benchmarks",
    "load_benchmark",
    "load_benchmark_with_source",
    "load_train_eval",
    "normalize_prompt",
    "resolve_benchmark",
]
