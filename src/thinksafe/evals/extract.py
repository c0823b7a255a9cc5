"""Answer extraction and checking for the reasoning benchmarks (GSM8K, MATH-500, AIME).

Every extractor reads the *final answer* only: the text after ``</think>`` (``record["answer"]``),
never the reasoning trace, where a model tries and discards numbers on its way. Each extractor
returns ``None`` when the answer holds nothing it can read; callers score ``None`` as wrong and
count it separately, so "no answer" is visible instead of folded into "wrong answer".

``math_verify`` (imported lazily: it pulls in sympy and an ANTLR parser) decides MATH equivalence
and evaluates boxed numeric answers (``\\boxed{3^{2}}``, ``\\boxed{x=\\frac13}``). The hand-written
parts are the ones it does not do: the last balanced ``\\boxed{}`` (also ``\\fbox``, ``\\boxed 5``),
GSM8K's ``#### N`` and "The answer is N" lines, and typography such as ``$1,000`` or ``50%``.
"""

from __future__ import annotations

import logging
import re
import threading
from fractions import Fraction
from typing import Any

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Boxed answers
# ---------------------------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def last_boxed(text: str) -> str | None:
    """Return the content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (braces balanced).

    Also reads the brace-less form ``\\boxed 5`` used in some MATH solutions. Returns ``None`` when
    there is no box, or when the last box is never closed (a truncated answer).
    """
    if not text:
        return None
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    for start in reversed(starts):
        content = _box_content(text, start)
        if content is not None:
            return content.strip()
    return None


def _box_content(text: str, start: int) -> str | None:
    i = start
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":
        if i == start:  # "\boxedx" is not a box
            return None
        m = re.match(r"[^\s$]+", text[i:])  # "\boxed 5": up to whitespace or "$"
        return m.group(0) if m else None
    return _braced(text, i)


def _braced(text: str, i: int) -> str | None:
    """The content of the brace group opening at ``text[i] == "{"``; escapes (``\\{``, ``\\\\``) skipped."""
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
        j += 1
    return None


# ---------------------------------------------------------------------------------------------
# math_verify
# ---------------------------------------------------------------------------------------------


def _parse_boxed(latex: str) -> list[Any] | None:
    """``math_verify.parse`` of ``\\boxed{latex}``; ``None`` if it cannot parse it (or is unavailable)."""
    try:
        from math_verify import parse
    except ImportError:  # pragma: no cover - math-verify is a declared dependency
        logger.warning("math_verify is not installed; boxed answers are read by the fallback only")
        return None
    # math_verify times out through signal.alarm, which only works in the main thread.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        parsed = parse("\\boxed{" + latex + "}", parsing_timeout=timeout)
    except Exception:  # noqa: BLE001 - a parser crash on a weird answer is "cannot tell"
        logger.debug("math_verify could not parse %r", latex, exc_info=True)
        return None
    return parsed or None


def _math_verify_equal(pred: str, gold: str) -> bool | None:
    """``math_verify`` equivalence; ``None`` when it cannot parse one side (or is unavailable)."""
    g, p = _parse_boxed(gold), _parse_boxed(pred)
    if g is None or p is None:
        return None
    from math_verify import verify

    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        return bool(verify(g, p, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001
        logger.debug("math_verify failed on pred=%r gold=%r", pred, gold, exc_info=True)
        return None


def _exact_number(expr: Any) -> Fraction | None:
    """A real number out of a math_verify (sympy) value: ``x = 1/3`` and ``{1/3}`` count; ``pi/3`` does not."""
    import sympy

    if isinstance(expr, sympy.Equality):
        expr = expr.rhs
    if isinstance(expr, sympy.FiniteSet) and len(expr) == 1:
        (expr,) = tuple(expr)
    if not isinstance(expr, sympy.Basic) or not expr.is_number:
        return None
    try:
        value = expr.doit()
        if value.is_Rational:
            return Fraction(int(value.p), int(value.q))
        if value.is_Float:
            return Fraction(str(value))
    except (TypeError, ValueError, ArithmeticError):
        return None
    return None  # irrational or complex: no exact number


# ---------------------------------------------------------------------------------------------
# Numbers (GSM8K, AIME)
# ---------------------------------------------------------------------------------------------

_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
# A number not glued to a word or a preceding digit/point, optionally a fraction a/b:
# "-1,234.50", "3.5", "12", "1/3".
_NUM_RE = re.compile(rf"(?<![\w.])-?(?:{_DIGITS})(?:\s*/\s*(?:{_DIGITS}))?(?![\d])")
_FRAC_CMD_RE = re.compile(r"\\[dt]?frac(?![A-Za-z])")
_NUMERIC_ARG_RE = re.compile(r"^\s*-?\s*(?:\d+(?:\.\d+)?|\.\d+)\s*$")
_ANSWER_IS_RE = re.compile(r"answer\s*(?:is|:|=)", re.IGNORECASE)
_HASH_RE = re.compile(r"####")
# What may stand between "The answer is" and its number: markdown, "$", "\(", ":".
_LEAD_RE = re.compile(r"^[\s:=*_`$(\[]*")
_NOT_A_NUMBER = " \u2205 "  # stands in for a fraction of non-numbers, e.g. \frac{\pi}{3}


def _frac_arg(text: str, i: int) -> tuple[str, int] | None:
    """The argument of ``\\frac`` at ``text[i]``: a brace group or one character (``\\frac13``)."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return None
    if text[i] == "{":
        content = _braced(text, i)
        return None if content is None else (content, i + len(content) + 2)
    return text[i], i + 1


def _replace_fracs(text: str) -> str:
    """``\\frac{a}{b}`` with numbers a, b becomes `` a/b``; any other fraction becomes a non-number."""
    out: list[str] = []
    pos = 0
    for m in _FRAC_CMD_RE.finditer(text):
        if m.start() < pos:  # inside a fraction already replaced
            continue
        num = _frac_arg(text, m.end())
        den = _frac_arg(text, num[1]) if num else None
        if num is None or den is None:
            continue
        out.append(text[pos : m.start()])
        if _NUMERIC_ARG_RE.match(num[0]) and _NUMERIC_ARG_RE.match(den[0]):
            out.append(f" {num[0].replace(' ', '')}/{den[0].strip()} ")
        else:
            out.append(_NOT_A_NUMBER)
        pos = den[1]
    out.append(text[pos:])
    return "".join(out)


def _clean_numeric_text(text: str) -> str:
    """Undo the typography that hides a number: currency, LaTeX spacing and fractions, unicode minus."""
    t = text.replace("\u2212", "-").replace("\u2013", "-")
    t = t.replace("{,}", ",").replace("\\,", "").replace("\\!", "").replace("\\ ", " ")
    for delim in ("\\(", "\\)", "\\[", "\\]"):
        t = t.replace(delim, " ")
    t = re.sub(r"\\text\s*\{[^{}]*\}", " ", t)  # units written as \text{ cm}
    t = re.sub(r"\\(?:mathrm|mbox|textbf|mathbf)\s*\{([^{}]*)\}", r"\1", t)
    t = _replace_fracs(t)
    t = t.replace("\\$", " ").replace("\\%", " ")
    t = re.sub(r"[$€£¥*%]", " ", t)
    # "- 5" after removing "$" in "-$5" must stay negative
    t = re.sub(r"(?<![\w.])-\s+(?=\d)", "-", t)
    return t


def _to_fraction(token: str) -> Fraction | None:
    num, _, den = token.replace(",", "").replace(" ", "").partition("/")
    try:
        return Fraction(num) / Fraction(den) if den else Fraction(num)
    except (ValueError, ZeroDivisionError):
        return None


def _format_number(value: Fraction) -> str:
    """Canonical text for a number: "1234", "-7", "3.5", or "1/3" when not a finite decimal."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    for digits in range(1, 13):
        scaled = abs(value) * 10**digits
        if scaled.denominator == 1:
            whole, frac = divmod(scaled.numerator, 10**digits)
            return f"{sign}{whole}.{frac:0{digits}d}"
    return f"{value.numerator}/{value.denominator}"


def _numbers(text: str) -> list[Fraction]:
    out = []
    for m in _NUM_RE.finditer(_clean_numeric_text(text)):
        value = _to_fraction(m.group(0))
        if value is not None:
            out.append(value)
    return out


def _number_from_box(content: str) -> Fraction | None:
    """The number a box holds, or ``None`` if it holds no single number (never a stray digit).

    A plain number (``1,000``, ``\\$18``, ``50\\%``, ``\\frac{1}{3}``) is read directly; anything
    else is evaluated by math_verify (``3^{2}``, ``x = \\frac13``); as a last resort a box with
    exactly one number in it (``12 apples``) gives that number.
    """
    cleaned = _clean_numeric_text(content).replace("{", " ").replace("}", " ").strip().rstrip(".")
    m = _NUM_RE.fullmatch(cleaned)
    if m:
        return _to_fraction(m.group(0))
    parsed = _parse_boxed(content)
    if parsed:
        value = _exact_number(parsed[0])
        if value is not None:
            return value
    numbers = _numbers(content)
    if len(numbers) == 1 and _NOT_A_NUMBER.strip() not in _clean_numeric_text(content):
        return numbers[0]
    return None


def _number_after_marker(text: str, marker: re.Pattern[str]) -> Fraction | None:
    """The number right after the last ``marker`` ("The answer is", "####") that is followed by one.

    Only the number that *follows* the marker counts: in "The answer is 204. Check: ... 5 more"
    it is 204; in "the answer is consistent with 5" there is none, and an earlier marker is tried.
    """
    for m in reversed(list(marker.finditer(text))):
        line = text[m.end() :].split("\n", 1)[0]
        boxed = last_boxed(line)
        if boxed is not None and _LEAD_RE.sub("", line).startswith(("\\boxed", "\\fbox")):
            value = _number_from_box(boxed)
            if value is not None:
                return value
        cleaned = _clean_numeric_text(line)
        found = _NUM_RE.match(cleaned, _LEAD_RE.match(cleaned).end())
        if found:
            value = _to_fraction(found.group(0))
            if value is not None:
                return value
    return None


def extract_number(answer_text: str | None) -> Fraction | None:
    """The final numeric answer in ``answer_text`` as an exact :class:`Fraction`, or ``None``.

    A ``\\boxed{}`` decides when there is one: the last box's number, or ``None`` if it holds no
    single number. Without a box: ``#### N``, then "The answer is N" (the number that follows the
    phrase, not a later one), then the last number in the text. Handles ``1,234``, ``$``/``€``,
    units (``12 cm``), ``%``, negatives, decimals (``3.50`` == ``3.5``) and fractions.
    """
    if not answer_text or not answer_text.strip():
        return None
    boxed = last_boxed(answer_text)
    if boxed is not None:
        return _number_from_box(boxed)
    for marker in (_HASH_RE, _ANSWER_IS_RE):
        value = _number_after_marker(answer_text, marker)
        if value is not None:
            return value
    numbers = _numbers(answer_text)
    return numbers[-1] if numbers else None


def extract_gsm8k_answer(answer_text: str | None) -> str | None:
    """The GSM8K answer as canonical number text (``"1234"``, ``"3.5"``, ``"1/3"``), or ``None``."""
    value = extract_number(answer_text)
    return None if value is None else _format_number(value)


def gsm8k_equal(pred: str, gold: str) -> bool:
    """Numeric equality of an extracted answer and a GSM8K gold (``"18"`` or a ``#### 18`` solution)."""
    p, g = extract_number(pred), extract_number(gold)
    return p is not None and g is not None and p == g


def gsm8k_correct(answer_text: str | None, gold: str) -> bool:
    """Whether the final answer's number equals the gold; no number counts as wrong."""
    pred = extract_gsm8k_answer(answer_text)
    return pred is not None and gsm8k_equal(pred, gold)


# ---------------------------------------------------------------------------------------------
# AIME: an integer 0-999
# ---------------------------------------------------------------------------------------------


def extract_aime_answer(answer_text: str | None) -> str | None:
    """The AIME answer (an integer 0-999, as text without leading zeros) or ``None``.

    Read like :func:`extract_number` (the last box; else "The answer is N"; else the last number).
    A value that is not an integer in 0-999 is no valid AIME answer and gives ``None``.
    """
    value = extract_number(answer_text)
    if value is None or value.denominator != 1 or not 0 <= value.numerator <= 999:
        return None
    return str(value.numerator)


def aime_equal(pred: str, gold: str) -> bool:
    """Integer equality (gold may be ``"033"`` or ``"33"``)."""
    try:
        return int(str(pred).strip()) == int(str(gold).strip())
    except ValueError:
        return False


def aime_correct(answer_text: str | None, gold: str) -> bool:
    """Whether the final answer's integer equals the gold; no answer counts as wrong."""
    pred = extract_aime_answer(answer_text)
    return pred is not None and aime_equal(pred, gold)


# ---------------------------------------------------------------------------------------------
# MATH-500: last boxed + math_verify equivalence
# ---------------------------------------------------------------------------------------------


def extract_math_answer(answer_text: str | None) -> str | None:
    """The content of the last ``\\boxed{}`` (or ``\\fbox{}``) in the answer, or ``None``.

    The MATH instruction asks for a box, so an unboxed answer is no answer.
    """
    content = last_boxed(answer_text or "")
    return content if content else None


def math_equal(pred: str, gold: str) -> bool:
    """Whether two MATH answers (LaTeX, without ``$``) are equivalent, as ``math_verify`` decides.

    Only when it cannot parse a side do the two have to be the same text (spaces aside).
    """
    if pred is None or gold is None:
        return False
    pred, gold = str(pred).strip(), str(gold).strip()
    if not pred or not gold:
        return False
    verdict = _math_verify_equal(pred, gold)
    if verdict is not None:
        return verdict
    return "".join(pred.split()) == "".join(gold.split())


def math_gold(gold: str) -> str:
    """The reference answer of a MATH item: the gold itself, or the last box of a full solution."""
    boxed = last_boxed(gold)
    return boxed if boxed is not None else gold.strip()


def math_correct(answer_text: str | None, gold: str) -> bool:
    """Whether the last boxed answer is equivalent to the gold; no box counts as wrong."""
    pred = extract_math_answer(answer_text)
    return pred is not None and math_equal(pred, math_gold(gold))
