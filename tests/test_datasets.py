"""Stage 04: validation, the disagreement policies, class balance, leakage, format identity, and
TRL's own trainers reading the files."""

import json

import pytest
from conftest import run_script
from fake_api import FakeAPI

from common.config import STRATEGIES, TASKS
from common.data import pyfunc
from common.data.prompts import HINT, render_prompt
from common.data.records import sft_record
from common.data.synthetic import generate
from common.data.tasks import get_task
from common.jsonl import read_jsonl

KEY = "sk-datasets-test-key-000000"
TRAIN_FILES = (
    "train_phaseA",
    "train_phaseB",
    "dev_phaseA",
    "dev_phaseB",
    "pairs",
    "sharegpt_phaseA",
    "sharegpt_phaseB",
    "teacher_heldout",
)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, tiny_model_dir):
    """Stages 01-02 on the yes/no task, copied into each test's own work dir."""
    work = tmp_path_factory.mktemp("upstream")
    env = {"TASK": "compare", "MODEL_NAME": str(tiny_model_dir), "DRAFT_MAX_NEW_TOKENS": "6"}
    for script in ("01_sample.py", "02_student_drafts.py"):
        proc = run_script(script, work, **env, TRAIN_SAMPLES="200", DEV_SAMPLES="20")
        assert proc.returncode == 0, proc.stderr
    return work, env


def fresh(upstream, tmp_path):
    import shutil

    work, env = upstream
    shutil.copytree(work / "data", tmp_path / "data")
    return env


def stage(tmp_path, env, script, **extra):
    return run_script(script, tmp_path, **(env | extra))


def data(tmp_path, name):
    return read_jsonl(tmp_path / f"data/compare/{name}.jsonl")


def yes_share(rows):
    return sum(r["completion"][0]["content"].endswith("yes") for r in rows) / len(rows)


WRONG_ON_YES = {"TEACHER_ERROR_RATE": "0.3", "TEACHER_ERROR_LABEL": "yes"}


def test_drop_without_balance_refuses_and_explains(upstream, tmp_path):
    env = fresh(upstream, tmp_path) | WRONG_ON_YES | {"DISAGREEMENT": "drop", "BALANCE": "none"}
    assert stage(tmp_path, env, "03_teacher.py").returncode == 0
    proc = stage(tmp_path, env, "04_build_datasets.py")
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert "'no'" in line and "BALANCE=upsample" in line and "class-skewed" in line
    report = json.loads((tmp_path / "data/compare/data_report.refused.json").read_text())
    assert report["refused"] and report["teacher"]["wrong"] > 0
    assert not (tmp_path / "data/compare/train_phaseB.jsonl").exists()
    assert not (tmp_path / "data/compare/data_report.json").exists()  # no output set was written


def test_upsample_restores_the_source_ratio(upstream, tmp_path):
    env = fresh(upstream, tmp_path) | WRONG_ON_YES | {"DISAGREEMENT": "drop", "BALANCE": "upsample"}
    assert stage(tmp_path, env, "03_teacher.py").returncode == 0
    proc = stage(tmp_path, env, "04_build_datasets.py")
    assert proc.returncode == 0, proc.stderr
    sample = data(tmp_path, "sample_train")
    source = sum(q["answer"] == "yes" for q in sample) / len(sample)
    train = data(tmp_path, "train_phaseB")
    report = json.loads((tmp_path / "data/compare/data_report.json").read_text())
    kept_yes = report["classes"]["kept"]["yes"]
    assert kept_yes < source - 0.05  # the teacher's errors really skewed the kept set
    assert abs(yes_share(train) - source) <= 0.02
    ids = [r["id"] for r in train]
    assert len(ids) == len(set(ids)) and any("#dup" in i for i in ids)
    for name in TRAIN_FILES:  # every file written, every row with an id
        rows = data(tmp_path, name)
        assert rows and all(r["id"] for r in rows), name


def test_gold_policy_keeps_reasoning_and_corrects_answers(upstream, tmp_path):
    env = fresh(upstream, tmp_path) | WRONG_ON_YES | {"DISAGREEMENT": "gold"}
    assert stage(tmp_path, env, "03_teacher.py").returncode == 0
    assert stage(tmp_path, env, "04_build_datasets.py").returncode == 0
    report = json.loads((tmp_path / "data/compare/data_report.json").read_text())
    assert report["policy"]["gold_corrected"] == report["teacher"]["wrong"] > 0
    gold = {q["id"]: q["answer"] for q in data(tmp_path, "sample_train")}
    train = data(tmp_path, "train_phaseB")
    assert any(r["source"] == "gold_corrected" for r in train)
    assert all(r["completion"][0]["content"].endswith(gold[r["id"]]) for r in train)


def test_rationalize_through_the_api_without_leaking_the_hint(upstream, tmp_path):
    env = fresh(upstream, tmp_path) | {
        "TEACHER": "openai",
        "OPENAI_API_KEY": KEY,
        "DISAGREEMENT": "rationalize",
    }
    sample = data(tmp_path, "sample_train")
    leaky_q = next(q["question"] for q in sample if q["answer"] == "yes")

    def reply(prompt):
        if "(The correct answer is" in prompt:  # the hint: now reach it, once giving it away
            verdict = prompt.split("(The correct answer is ")[1].split(".")[0]
            giveaway = "As the hint says, " if leaky_q in prompt else ""
            return f"## Step-by-Step Reasoning\n1. {giveaway}compare them.\n\nthe answer is: **[{verdict}]**"
        return "## Step-by-Step Reasoning\n1. Compare them.\n\nthe answer is: **[NO]**"

    with FakeAPI(reply=reply) as api:
        env["OPENAI_BASE_URL"] = api.openai_url
        assert stage(tmp_path, env, "03_teacher.py").returncode == 0
        proc = stage(tmp_path, env, "04_build_datasets.py")
        assert proc.returncode == 0, proc.stderr
        hinted = [r for r in api.requests if "(The correct answer is" in json.dumps(r["body"])]
    yes = sum(q["answer"] == "yes" for q in sample)
    assert len(hinted) == yes  # every "yes" question was wrong and got one hinted retry
    report = json.loads((tmp_path / "data/compare/data_report.json").read_text())
    assert report["policy"]["rationalized"] == yes - 1 and report["policy"]["leaky_rejected"] == 1
    for name in TRAIN_FILES:  # the leakage test: no hint in any training text
        text = (tmp_path / f"data/compare/{name}.jsonl").read_text().lower()
        assert "correct answer is" not in text and "hint" not in text, name
        assert HINT.split("{")[0].lower() not in text
    assert KEY not in "".join(p.read_text() for p in (tmp_path / "data").rglob("*") if p.is_file())


def test_rationalize_in_stage_04_reads_files_only(upstream, tmp_path):
    """Stage 03 stores the STaR rationales; stage 04 needs no key and no server to use them."""
    env = fresh(upstream, tmp_path) | WRONG_ON_YES | {"DISAGREEMENT": "rationalize"}
    assert stage(tmp_path, env, "03_teacher.py").returncode == 0  # the offline teacher: no key
    outputs = data(tmp_path, "teacher_outputs")
    rationalized = [r for r in outputs if "rationalization" in r]
    assert rationalized and len(outputs) == len({r["id"] for r in outputs})  # one row per question
    assert all(r["rationalization"]["accepted"] for r in rationalized)
    ledger = data(tmp_path, "teacher_cost")
    assert len(ledger) == len(outputs) + len(rationalized)  # the hinted calls are in the ledger
    env = env | {"TEACHER": "openai", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": ""}
    proc = stage(tmp_path, env, "04_build_datasets.py")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "data/compare/data_report.json").read_text())
    assert report["policy"]["rationalized"] == len(rationalized) > 0
    assert report["kept_by_source"]["rationalized"] == len(rationalized)


def test_missing_teacher_outputs_names_the_target(upstream, tmp_path):
    env = fresh(upstream, tmp_path)
    proc = stage(tmp_path, env, "04_build_datasets.py")
    assert proc.returncode == 1 and "run `make teacher` first" in proc.stderr


def test_mismatched_ids_are_reported(upstream, tmp_path):
    env = fresh(upstream, tmp_path)
    assert stage(tmp_path, env, "03_teacher.py").returncode == 0
    path = tmp_path / "data/compare/teacher_outputs.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[3:]) + "\n")
    proc = stage(tmp_path, env, "04_build_datasets.py")
    assert proc.returncode == 1 and "lacks 3 of 200 sampled ids (e.g." in proc.stderr


# The code tasks share one prompt and target path (CodeTask); pyfunc stands for them here.
@pytest.mark.parametrize(
    "task_name", [t for t in TASKS if get_task(t).answer_kind != "code" or t == "pyfunc"]
)
def test_train_and_eval_prompts_are_byte_identical(task_name, tiny_model_dir):
    """What TRL's SFTTrainer feeds as the prompt == what evaluation renders, per strategy."""
    from transformers import AutoTokenizer
    from trl.data_utils import maybe_apply_chat_template

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    task = get_task(task_name)
    kind = {"yesno": "compare", "number": "arith"}.get(task.answer_kind)
    rows = generate(kind, "test")[:3] if kind else pyfunc.generate("test")[:3]
    for strategy in STRATEGIES:
        for row in rows:
            q = task.normalize(row, "test")
            for draft in (None, "Answer: Yes - guess\nQuestions: Why?"):
                messages = task.build_messages(q["question"], strategy, draft)
                target = task.target(strategy, q, task.rationale_steps(q))
                record = sft_record(q["id"], messages, target)
                trained = maybe_apply_chat_template(record, tok)
                assert trained["prompt"] == render_prompt(tok, messages)
                assert trained["completion"].startswith(target)
                pred = task.extract_answer(target)
                assert task.is_correct(pred, q["answer"]), (strategy, target)


def test_trl_trainers_accept_the_files(upstream, tmp_path, tiny_model_dir):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    env = fresh(upstream, tmp_path) | WRONG_ON_YES
    assert stage(tmp_path, env, "03_teacher.py").returncode == 0
    assert stage(tmp_path, env, "04_build_datasets.py").returncode == 0
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    common = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
    }
    sft_data = load_dataset(
        "json", data_files=str(tmp_path / "data/compare/train_phaseB.jsonl"), split="train"
    )
    sft = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=SFTConfig(**common),
        train_dataset=sft_data,
        processing_class=tok,
    )
    row = sft.train_dataset[0]
    prompt_ids = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label == -100]
    learned = tok.decode(
        [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    )
    assert learned.rstrip("\n").endswith(
        "The answer is: " + row["completion"][0]["content"].split(": ")[-1] + "<|im_end|>"
    )
    record = read_jsonl(tmp_path / "data/compare/train_phaseB.jsonl")[0]
    expected = tok(render_prompt(tok, record["prompt"]), add_special_tokens=False)["input_ids"]
    assert prompt_ids == expected  # the trainer's prompt tokens are the eval prompt's tokens
    assert sft.train().training_loss > 0
    pairs = load_dataset("json", data_files=str(tmp_path / "data/compare/pairs.jsonl"), split="train")
    dpo = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=DPOConfig(**common),
        train_dataset=pairs,
        processing_class=tok,
    )
    assert dpo.train().training_loss > 0
