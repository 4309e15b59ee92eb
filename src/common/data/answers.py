"""Final-answer extraction and comparison for numeric and yes/no answers.

Written here because no maintained library grades free-form GSM8K/StrategyQA outputs; the
regexes deliberately read whole numbers ("The answer is 18" is 18, never 1).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number as people write it: -1,234.50, $12, 45%, .5
_NUM = r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?"
NUMBER = re.compile(r"(?<![\w.])(" + _NUM + r")(?!\d)")
# Explicit markers, strongest first; each captures the text right after the marker.
NUMERIC_MARKERS = [
    re.compile(r"####\s*([^\n]*)"),
    re.compile(r"\\boxed\{([^{}]*)\}"),
    re.compile(r"answer is\s*:?\s*([^\n]*)", re.IGNORECASE),
    re.compile(r"answer\s*:\s*([^\n]*)", re.IGNORECASE),
    re.compile(r"\*\*\s*([^*\n]*\d[^*\n]*?)\s*\*\*"),
]
_UNITS = re.compile(r"[$€£%]|\b(dollars?|cents?|percent|units?)\b", re.IGNORECASE)


def normalize_number(text: str) -> str | None:
    """'1,234.50' -> '1234.5', '$12' -> '12', '45%' -> '45', '7.00' -> '7'; None if no number."""
    text = _UNITS.sub("", text).replace(",", "").replace(" ", "")
    if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))  # exact at any size (quantize overflows past 28 digits)
    return format(value.normalize(), "f")


def numbers_in(text: str) -> list[str]:
    """Every number the text states, in order, normalised."""
    found = []
    for m in NUMBER.finditer(text):
        token = m.group(1)
        if any(c.isdigit() for c in token):
            number = normalize_number(token)
            if number is not None:
                found.append(number)
    return found


def extract_number(text: str) -> str | None:
    """The final numeric answer: the last strongest explicit marker, else the last number."""
    for marker in NUMERIC_MARKERS:
        hits = [m.group(1) for m in marker.finditer(text)]
        for hit in reversed(hits):
            numbers = numbers_in(hit)
            if numbers:
                return numbers[0]
    numbers = numbers_in(text)
    return numbers[-1] if numbers else None


def numbers_equal(pred: str | None, gold: str | None) -> bool:
    if pred is None or gold is None:
        return False
    try:
        return Decimal(pred) == Decimal(gold)
    except InvalidOperation:
        return False


_VERDICT = r"\**\[?\s*(yes|no|true|false)\b"
YESNO_MARKERS = [
    re.compile(r"\*\*\s*\[\s*(yes|no)\s*\]\s*\*\*", re.IGNORECASE),
    re.compile(r"answer is\s*:?\s*" + _VERDICT, re.IGNORECASE),
    re.compile(r"(?:final )?answer\s*:\s*" + _VERDICT, re.IGNORECASE),
    re.compile(r"^\W*" + _VERDICT, re.IGNORECASE),
]
_TRUE = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}


def extract_yes_no(text: str) -> str | None:
    """The first explicit verdict ('yes'/'no'); None for 'cannot determine', refusals, no verdict."""
    for marker in YESNO_MARKERS:
        m = marker.search(text)
        if m:
            return _TRUE[m.group(1).lower()]
    return None


def normalize_yes_no(value) -> str | None:
    """Gold labels in any source form: bool, 'yes'/'no', 'true'/'false', 1/0."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and value in (0, 1):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _TRUE.get(value.strip().lower())
    return None
