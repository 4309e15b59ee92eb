"""`pyfunc`: a synthetic code task, small Python functions with unit tests, generated
deterministically (a train pool and a fixed test set), for offline runs, CI and the demo."""

from __future__ import annotations

import hashlib
import random

from common.data.synthetic import split_rows

TEST_SEED, TRAIN_SEED = 7, 8
TEST_SIZE, TRAIN_POOL = 500, 2000
NOUNS = ("value", "number", "item", "score", "count", "total", "size", "level", "price", "weight")
LETTERS = "abcdeiostx"
WORDS = ("apple", "banana", "kiwi", "tomato", "potato", "cookie", "bottle", "seesaw", "oasis", "taxi")


def _ints(rng: random.Random, n: int = 3, lo: int = -20, hi: int = 50) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(n)]


def _lists(rng: random.Random) -> list[list[int]]:
    return [_ints(rng, rng.randint(1, 5), 0, 30) for _ in range(3)]


def _family(rng: random.Random) -> tuple[str, str, str, list[str], str, list]:
    """(name, argument, docstring, approach steps, body, test inputs) of one random function."""
    noun, c = rng.choice(NOUNS), rng.randint(2, 99)
    kind = rng.randrange(10)
    if kind == 0:
        return f"add_to_{noun}", "x", f"Return x plus {c}.", [f"Add {c} to x."], f"return x + {c}", _ints(rng)
    if kind == 1:
        return (
            f"scale_{noun}",
            "x",
            f"Return x times {c}.",
            [f"Multiply x by {c}."],
            f"return x * {c}",
            _ints(rng),
        )
    if kind == 2:
        return (
            f"sum_{noun}s",
            "xs",
            "Return the sum of the numbers in xs.",
            ["Add up every number."],
            "return sum(xs)",
            _lists(rng),
        )
    if kind == 3:
        return (
            f"largest_{noun}",
            "xs",
            "Return the largest number in xs.",
            ["Take the maximum."],
            "return max(xs)",
            _lists(rng),
        )
    if kind == 4:
        ch = rng.choice(LETTERS)
        words = [rng.choice(WORDS) for _ in range(3)]
        return (
            f"count_{ch}",
            "s",
            f"Return how many times '{ch}' occurs in s.",
            [f"Count the letter '{ch}'."],
            f"return s.count('{ch}')",
            words,
        )
    if kind == 5:
        words = [rng.choice(WORDS) for _ in range(3)]
        return (
            f"reverse_{noun}",
            "s",
            "Return s reversed.",
            ["Slice the string backwards."],
            "return s[::-1]",
            words,
        )
    if kind == 6:
        c = rng.randint(2, 12)
        return (
            f"is_multiple_of_{c}",
            "x",
            f"Return True if x is a multiple of {c}, else False.",
            [f"Check the remainder of x divided by {c}."],
            f"return x % {c} == 0",
            [c * rng.randint(0, 5), *_ints(rng, 2, 0, 60)],
        )
    if kind == 7:
        hi = c * 5
        return (
            f"clamp_{noun}",
            "x",
            f"Return x limited to the range 0 to {hi}.",
            [f"Raise x to 0 at least, then lower it to {hi} at most."],
            f"return min(max(x, 0), {hi})",
            _ints(rng, 3, -20, 70),
        )
    if kind == 8:
        c = rng.randint(1, 6)
        return (
            f"first_{c}_{noun}s",
            "xs",
            f"Return the first {c} numbers of xs.",
            [f"Slice xs up to index {c}."],
            f"return xs[:{c}]",
            _lists(rng),
        )
    c = rng.randint(2, 5)
    return (
        f"repeat_{noun}",
        "s",
        f"Return s repeated {c} times.",
        [f"Multiply the string by {c}."],
        f"return s * {c}",
        [rng.choice(WORDS) for _ in range(3)],
    )


def make_pyfunc(rng: random.Random) -> dict:
    """One problem: the signature and docstring (the question), its canonical solution and tests."""
    name, arg, doc, steps, body, inputs = _family(rng)
    question = f'def {name}({arg}):\n    """{doc}"""\n'
    solution = f"def {name}({arg}):\n    {body}\n"
    namespace: dict = {}
    exec(solution, namespace)  # the expected values come from the canonical solution itself
    tests = "".join(f"assert {name}({x!r}) == {namespace[name](x)!r}\n" for x in inputs)
    key = hashlib.sha1((question + tests).encode()).hexdigest()[:12]
    return {
        "id": f"pyfunc-{key}",
        "question": question,
        "solution": solution,
        "tests": tests,
        "entry_point": name,
        "approach": steps,
    }


def generate(split: str) -> list[dict]:
    """The train pool or the test set; no question text is in both, so the test set can't be
    answered from memory."""
    return split_rows(make_pyfunc, "question", split, (TEST_SIZE, TRAIN_POOL), (TEST_SEED, TRAIN_SEED))
