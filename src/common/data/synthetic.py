"""The embedded synthetic tasks: multi-step arithmetic word problems in GSM8K form (`arith`) and
yes/no comparison questions in StrategyQA form (`compare`), generated deterministically.

A story starts with a one-digit amount and changes it three times by one-digit amounts. The answer
takes three operations in one pass, while each written step is a single one-digit addition or
subtraction: chain of thought helps for a real reason, not by construction of the grader.

The worked solutions (the offline teacher's reasoning) skip a step in LEAP_RATE of the problems:
the first two operations in one line ("2 + 5 + 7 = 14."), as a strong teacher writes what it can
do at a glance. A student that knows only one-step facts slips more often on such a line, and
only its own rollouts can tell it which of the two styles it should use.
"""

from __future__ import annotations

import hashlib
import random

NAMES = [
    "Ava",
    "Ben",
    "Cara",
    "Dev",
    "Eli",
    "Fay",
    "Gus",
    "Hana",
    "Ivan",
    "Jo",
    "Kai",
    "Lea",
    "Max",
    "Nia",
    "Omar",
    "Pia",
    "Quinn",
    "Ravi",
    "Sam",
    "Tess",
]
ITEMS = ["apples", "books", "coins", "stamps", "marbles", "shells", "cards", "pens", "beads", "stickers"]
GAIN = ["buys {n} more", "finds {n} more", "gets {n} more from a friend", "wins {n} more"]
LOSS = ["gives away {n}", "loses {n}", "sells {n}", "uses {n}"]

STEPS, MAX_START, MAX_STEP = 3, 9, 9
LEAP_RATE = 0.5
MAX_TOTAL = MAX_START + STEPS * MAX_STEP  # the largest amount a story can reach
TEST_SEED, TRAIN_SEED = 1_000_003, 2_000_003  # fixed: every run shares one test set
TEST_SIZE, TRAIN_POOL = 1200, 20000


def example_id(task: str, question: str) -> str:
    return f"{task}-{hashlib.sha1(question.encode()).hexdigest()[:12]}"


def _story(rng: random.Random, steps: int, max_start: int, max_step: int):
    """A starting amount then `steps` gains or losses that never go negative."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    total = rng.randint(2, max_start)
    sentences = [f"{name} has {total} {item}."]
    worked = [f"{name} starts with {total} {item}."]
    for _ in range(steps):
        n = rng.randint(1, max_step)
        if rng.random() < 0.5 or n > total:
            sentences.append(f"Then {name} {rng.choice(GAIN).format(n=n)}.")
            worked.append(f"{total} + {n} = {total + n}.")
            total += n
        else:
            sentences.append(f"Then {name} {rng.choice(LOSS).format(n=n)}.")
            worked.append(f"{total} - {n} = {total - n}.")
            total -= n
    return name, item, total, sentences, worked


def story_sentences(rng: random.Random) -> list[str]:
    """The sentences of one random story (the tiny base's pretraining text)."""
    return _story(rng, STEPS, MAX_START, MAX_STEP)[3]


def make_arith(
    rng: random.Random, steps: int = STEPS, max_start: int = MAX_START, max_step: int = MAX_STEP
) -> dict:
    name, item, total, sentences, worked = _story(rng, steps, max_start, max_step)
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    if steps > 1 and rng.random() < LEAP_RATE:  # "2 + 5 = 7." + "7 + 7 = 14." -> "2 + 5 + 7 = 14."
        worked[1:3] = [worked[1].split(" = ")[0] + " " + worked[2].split(" ", 1)[1]]
    solution = "\n".join(worked) + f"\n#### {total}"
    return {"id": example_id("arith", question), "question": question, "answer": solution}


def make_compare(rng: random.Random, yes_rate: float = 0.45, max_start: int = 60) -> dict:
    """Does A have more than B? B's amount sits close to A's total so the sum must be computed."""
    name, item, total, sentences, worked = _story(rng, 2, max_start, 30)
    other = rng.choice([n for n in NAMES if n != name])
    answer = rng.random() < yes_rate and total > 0
    gap = rng.randint(1, min(9, total)) if answer else rng.randint(1, 9)
    theirs = total - gap if answer else total + gap
    question = (
        " ".join(sentences) + f" {other} has {theirs} {item}. Does {name} have more {item} than {other}?"
    )
    verdict = "more" if answer else "fewer"
    return {
        "qid": example_id("compare", question),
        "question": question,
        "answer": answer,
        "facts": worked[1:] + [f"{other} has {theirs} {item}.", f"{total} is {verdict} than {theirs}."],
        "decomposition": [
            f"How many {item} does {name} have?",
            f"How many {item} does {other} have?",
            f"Is {total} more than {theirs}?",
        ],
    }


def split_rows(make, key: str, split: str, sizes: tuple[int, int], seeds: tuple[int, int]) -> list[dict]:
    """The test set (sizes[0] rows from seeds[0]) or the train pool (sizes[1] rows from seeds[1]) of
    a generator; rows are unique by `key`, and train never repeats a test row."""
    test, seen = [], set()
    rng = random.Random(seeds[0])
    while len(test) < sizes[0]:
        row = make(rng)
        if row[key] not in seen:
            seen.add(row[key])
            test.append(row)
    if split == "test":
        return test
    train, rng = [], random.Random(seeds[1])
    while len(train) < sizes[1]:
        row = make(rng)
        if row[key] not in seen:
            seen.add(row[key])
            train.append(row)
    return train


def generate(task: str, split: str) -> list[dict]:
    """The full train pool or test set of a synthetic task; train never repeats a test question."""
    make = {"arith": make_arith, "compare": make_compare}[task]
    key = "id" if task == "arith" else "qid"
    return split_rows(make, key, split, (TEST_SIZE, TRAIN_POOL), (TEST_SEED, TRAIN_SEED))
