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
# Explicit answer markers; each captures the text right after the marker. They are searched as
# lookaheads so that a marker inside another's captured line is still found: in "the answer is 16, no
# wait: the answer is 15" the second marker is its own hit, and the last explicit marker wins.
EXPLICIT_NUMERIC_MARKERS = [
    re.compile(r"(?=####\s*([^\n]*))"),
    re.compile(r"(?=\\boxed\{([^{}]*)\})"),
    re.compile(r"(?=answer is\s*:?\s*([^\n]*))", re.IGNORECASE),
    re.compile(r"(?=answer\s*:\s*([^\n]*))", re.IGNORECASE),
]
# Bold numbers are a weaker hint: reasoning often bolds intermediate values, so they count only
# when no explicit marker states a number.
BOLD_NUMBER = re.compile(r"\*\*\s*([^*\n]*\d[^*\n]*?)\s*\*\*")
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


def _marked_hits(markers: list[re.Pattern], text: str) -> list[str]:
    """What every marker captured, ordered by where it stands in the text."""
    hits = [(m.start(), m.group(1)) for marker in markers for m in marker.finditer(text)]
    return [hit for _, hit in sorted(hits, key=lambda pair: pair[0])]


def extract_number(text: str) -> str | None:
    """The final numeric answer: the last explicit marker that states a number (a reader takes a
    self-correction's last answer), else the last bold number, else the last number."""
    for hits in (
        _marked_hits(EXPLICIT_NUMERIC_MARKERS, text),
        [m.group(1) for m in BOLD_NUMBER.finditer(text)],
    ):
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
# Explicit verdict markers; the last one in the text wins, as for numbers.
YESNO_MARKERS = [
    re.compile(r"\*\*\s*\[\s*(yes|no)\s*\]\s*\*\*", re.IGNORECASE),
    re.compile(r"answer is\s*:?\s*" + _VERDICT, re.IGNORECASE),
    re.compile(r"(?:final )?answer\s*:\s*" + _VERDICT, re.IGNORECASE),
]
# A verdict that opens the text ("Yes. Apples are fruit.") counts only when no marker states one.
LEADING_VERDICT = re.compile(r"^\W*" + _VERDICT, re.IGNORECASE)
_TRUE = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}


def extract_yes_no(text: str) -> str | None:
    """The last explicit verdict ('yes'/'no'), else a leading one; None for 'cannot determine',
    refusals, no verdict."""
    hits = _marked_hits(YESNO_MARKERS, text)
    if hits:
        return _TRUE[hits[-1].lower()]
    m = LEADING_VERDICT.search(text)
    return _TRUE[m.group(1).lower()] if m else None


def normalize_yes_no(value) -> str | None:
    """Gold labels in any source form: bool, 'yes'/'no', 'true'/'false', 1/0."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and value in (0, 1):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _TRUE.get(value.strip().lower())
    return None
