import json

import pytest
from conftest import shared_file

from common.data.answers import extract_number, extract_yes_no, normalize_number, numbers_equal
from common.data.tasks import get_task


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is 18", "18"),  # lm-eval-harness reads this as "1"
        ("The answer is 18.", "18"),
        ("so she has 5 + 13 = 18 eggs.\n#### 18", "18"),
        ("#### 1,234", "1234"),
        ("The answer is: $1,234.50", "1234.5"),
        ("Answer: 45%", "45"),
        ("\\boxed{72}", "72"),
        ("First 3 then 4, the answer is **7**.", "7"),
        ("It costs 12.00 dollars in total: 3 + 9 = 12.00", "12"),
        ("She ends with -5 degrees", "-5"),
        ("48/2 = 24 clips in May. 48 + 24 = 72", "72"),
        ("The answer is 18 apples, not 20.", "18"),
        ("Answer: 7\nThe answer is 8", "8"),  # the last explicit marker wins
        # Self-correction: a reader takes the last stated answer, on one line or several.
        ("The answer is 16, no wait, let me recompute: the answer is 15.", "15"),
        ("#### 16\nHmm, 7 + 8 is not 16. The answer is 15", "15"),
        ("Answer: 3. Answer: 4. Answer: 5.", "5"),
        ("The answer is 18. The answer is clearly right.", "18"),  # a marker with no number is skipped
        ("The answer is 18.\nCheck: **6 + 12 = 18** and **6** per bag.", "18"),  # bold is weaker
        ("3 + 4 = 7, then 7 * 2 = 14", "14"),  # no marker: the last number
        ("no numbers here", None),
        ("1111111111111111111111111111111111111111 2", "2"),  # model babble: no overflow
        (
            "The answer is: 12345678901234567890123456789012345",
            "12345678901234567890123456789012345",
        ),
        ("", None),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_normalize_and_compare_numbers():
    assert normalize_number("7.00") == "7" and normalize_number("0.50") == "0.5"
    assert normalize_number("$1,000") == "1000" and normalize_number("abc") is None
    assert numbers_equal("18", "18.0") and not numbers_equal("18", "1")
    assert not numbers_equal(None, "3")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Yes. Apples are fruit.", "yes"),
        ("No, the ship that", "no"),
        ("Based on this analysis, the answer is: **[YES]**", "yes"),
        ("## Teaching Analysis\nThe student said no.\n...the answer is: **[YES]**", "yes"),
        ("Answer: No - because whales are mammals", "no"),
        ("The answer is: true", "yes"),
        ("Final answer: **No**", "no"),
        ("The answer is yes, no wait, let me check again: the answer is no.", "no"),
        ("Yes, at first sight. But whales breathe air, so the answer is: no", "no"),
        ("Answer: no\nOn reflection, Final answer: **Yes**", "yes"),
        ("No marker here, only yes and no in passing.", "no"),  # leading verdict, no marker
        ("I cannot determine this from the question.", None),
        ("I'm sorry, I can't help with that.", None),
        ("Nobody knows.", None),  # 'No' inside a word is not a verdict
        ("", None),
    ],
)
def test_extract_yes_no(text, expected):
    assert extract_yes_no(text) == expected


def test_every_gsm8k_test_gold_parses():
    path = shared_file("gsm8k", "test.jsonl")
    task = get_task("gsm8k")
    for i, line in enumerate(path.read_text().splitlines()):
        row = task.normalize(json.loads(line), f"{path}:{i + 1}")
        assert normalize_number(row["answer"]) == row["answer"]
        # The worked solution's own text, graded by the extractor, reaches the gold.
        assert task.is_correct(task.extract_answer(json.loads(line)["answer"]), row["answer"])


def test_grader_agrees_with_openai_is_correct_labels():
    """OpenAI's released GPT-3 solutions, each labelled is_correct: the grader must agree."""
    path = shared_file("gsm8k", "example_model_solutions.jsonl")
    task = get_task("gsm8k")
    total = agree = 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        gold = extract_number(row["ground_truth"])
        for solution in (v for v in row.values() if isinstance(v, dict) and "is_correct" in v):
            total += 1
            agree += (
                task.is_correct(task.extract_answer(solution["solution"]), gold) == solution["is_correct"]
            )
    assert total == 5276 and agree == total
