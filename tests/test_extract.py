"""Answer extraction for GSM8K, MATH-500 and AIME: boxes, fractions, "The answer is N", and the real golds."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from thinksafe.evals import (
    REASONING_TASKS,
    aime_correct,
    extract_aime_answer,
    extract_gsm8k_answer,
    extract_math_answer,
    gsm8k_correct,
    last_boxed,
    math_correct,
    math_equal,
)
from thinksafe.evals.extract import gsm8k_equal

# ------------------------------------------------------------------- a fraction is not its denominator


ONE_THIRD_BOXES = [
    "\\boxed{\\frac{1}{3}}", "\\boxed{\\dfrac{1}{3}}", "\\boxed{\\tfrac13}", "\\boxed{{\\frac{1}{3}}}",
    "\\boxed{ \\frac { 1 } { 3 } }", "\\boxed{x = \\frac{1}{3}}", "\\boxed{\\frac{1}{3} cup}",
    "\\boxed{\\frac{1}{3}\\,\\mathrm{cup}}", "\\boxed{\\frac{2}{6}}",
]


@pytest.mark.parametrize("box", ONE_THIRD_BOXES)
def test_boxed_fraction_is_one_third(box: str) -> None:
    text = f"So the share is {box}."
    assert extract_gsm8k_answer(text) == "1/3"
    assert gsm8k_correct(text, "1/3") and not gsm8k_correct(text, "3")
    assert extract_aime_answer(text) is None  # not an integer 0-999, and never the 3 of the denominator
    assert not aime_correct(text, "3")


def test_boxed_fraction_in_math() -> None:
    assert extract_math_answer("Thus $\\boxed{\\frac{1}{3}}$.") == "\\frac{1}{3}"
    for text in ("\\boxed{\\frac{1}{3}}", "\\boxed{\\dfrac{1}{3}}", "\\boxed{\\frac13}", "\\boxed{1/3}"):
        assert math_correct(text, "\\frac{1}{3}"), text
        assert not math_correct(text, "3"), text
    assert not math_correct("\\boxed{3}", "\\frac{1}{3}")


def test_a_box_without_a_number_is_no_answer() -> None:
    # the old reader took the last digit in the box: 3 for pi/3, 3 for 10^3
    assert extract_gsm8k_answer("\\boxed{\\frac{\\pi}{3}}") is None
    assert not gsm8k_correct("\\boxed{\\frac{\\pi}{3}}", "3")
    assert extract_gsm8k_answer("\\boxed{\\text{yes}} with 7 left") is None
    assert extract_gsm8k_answer("\\boxed{10^3}") == "1000"  # math_verify evaluates it
    assert extract_gsm8k_answer("\\boxed{3^{2}}") == "9"
    assert extract_gsm8k_answer("\\boxed{1\\frac{1}{3}}") == "4/3"


def test_extracted_fraction_text_compares_as_a_fraction() -> None:
    assert not gsm8k_equal("1/3", "3")
    assert gsm8k_equal("1/3", "\\frac{2}{6}")
    assert gsm8k_equal("0.5", "1/2")


# ------------------------------------------------------- "The answer is N": the number that follows


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 204. Check: 200 + 4 = 204, then 5 more",
        "The answer is 204. Check: that leaves 5 more",
        "The answer is **204**.\n\nCheck: 5 more",
        "Answer: 204. 5 more",
        "The answer is $\\boxed{204}$. Check: 5",
        "The answer is 204.\nCheck: the answer is consistent with 5 more",
    ],
)
def test_answer_is_then_a_check(text: str) -> None:
    assert extract_aime_answer(text) == "204"
    assert extract_gsm8k_answer(text) == "204"
    assert aime_correct(text, "204") and not aime_correct(text, "5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 1,000.", "1000"),
        ("The answer is: 1,000,000", "1000000"),
        ("The answer is -5.", "-5"),
        ("The answer is −5.", "-5"),
        ("The answer is $18.", "18"),
        ("The answer is: **$18**", "18"),
        ("The answer is \\(\\frac{1}{3}\\)", "1/3"),
        ("The answer is 1/3", "1/3"),
        ("The answer is 0.50", "0.5"),
        ("\\boxed{\\$1{,}000}", "1000"),
        ("\\boxed{-7}", "-7"),
        ("\\boxed{50\\%}", "50"),
        ("#### 72", "72"),
        ("She has 12 apples left.", "12"),
        ("The answer is unclear to me.", None),
        ("No number here.", None),
        ("", None),
    ],
)
def test_gsm8k_edge_cases(text: str, expected: str | None) -> None:
    assert extract_gsm8k_answer(text) == expected


def test_aime_edge_cases() -> None:
    assert extract_aime_answer("\\boxed{\\dfrac{408}{2}}") == "204"
    assert extract_aime_answer("\\boxed{033}") == "33"
    assert extract_aime_answer("\\boxed{1,000}") is None  # out of range
    assert extract_aime_answer("\\boxed{-4}") is None
    assert extract_aime_answer("I could not finish.") is None
    assert aime_correct("The answer is 33", "033")


# ------------------------------------------------------------------------------------ boxes


def test_last_boxed_braces_and_escapes() -> None:
    assert last_boxed("\\boxed{\\frac{\\sqrt{2}}{2}}") == "\\frac{\\sqrt{2}}{2}"
    assert last_boxed("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"
    assert last_boxed("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}") == "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"
    assert last_boxed("\\boxed{a \\\\}") == "a \\\\"  # a LaTeX line break before "}" is no escaped brace
    assert last_boxed("\\boxed{1} then \\boxed{2") == "1"  # the truncated last box is skipped
    assert last_boxed("no box") is None


def test_math_requires_a_box_and_uses_math_verify() -> None:
    assert extract_math_answer("The answer is $\\frac{1}{3}$.") is None  # the instruction asks for a box
    assert math_equal("\\dfrac{3}{56}", "\\frac{3}{56}")
    assert math_equal("x^2+2x+1", "(x+1)^2")
    assert math_equal("4\\sqrt{2}", "\\sqrt{32}")
    assert not math_equal("\\pi", "3.14159")
    assert not math_equal("(1,2)", "[1,2]")


# --------------------------------------------------------------------------------- real golds


@pytest.fixture
def reasoning_dir() -> Path:
    root = os.environ.get("THINKSAFE_DATA_DIR")
    if not root or not (Path(root) / "reasoning").is_dir():
        pytest.skip("THINKSAFE_DATA_DIR is not set to the shared data folder")
    return Path(root)


def test_real_math500_solution_boxes_match_answers(reasoning_dir: Path) -> None:
    from thinksafe.data import load_benchmark

    task = REASONING_TASKS.get("math500")
    rows = load_benchmark("math500")
    agree = sum(task.correct(ex.metadata["solution"], ex.gold) for ex in rows)
    assert (agree, len(rows)) == (500, 500)


def test_real_gsm8k_and_aime_golds_parse(reasoning_dir: Path) -> None:
    from thinksafe.data import load_benchmark

    gsm8k = REASONING_TASKS.get("gsm8k")
    for split in ("test", "train"):
        rows = load_benchmark("gsm8k", split=split)
        solutions = [ex.metadata["solution"] for ex in rows]
        assert all(re.search(r"####\s*\S", s) for s in solutions)
        assert [gsm8k.extract(s) for s in solutions] == [ex.gold for ex in rows]
    aime = REASONING_TASKS.get("aime2024")
    assert all(aime.correct(ex.metadata["solution"], ex.gold) for ex in load_benchmark("aime2024"))
