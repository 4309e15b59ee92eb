"""Stage 09 without a model: statistics against known values, grade-only mode, the report."""

import json

import pytest
from conftest import run_script

from common.data.tasks import get_task
from common.eval.evaluate import summarize
from common.eval.stats import mcnemar_exact, wilson_interval
from common.jsonl import read_jsonl, write_jsonl


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (8, 10, 0.4901625, 0.9433178),
        (0, 10, 0.0, 0.2775328),
        (50, 100, 0.4038315, 0.5961685),
        (1209, 1209, 0.9968325, 1.0),
    ],
)
def test_wilson_interval_known_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-6)


def test_mcnemar_exact_known_values():
    def pairs(only_a, only_b, both=5):
        a = [True] * only_a + [False] * only_b + [True] * both
        b = [False] * only_a + [True] * only_b + [True] * both
        return a, b

    assert mcnemar_exact(*pairs(1, 9))["p_value"] == pytest.approx(22 / 1024)  # 2 * (1 + 10) / 2^10
    assert mcnemar_exact(*pairs(0, 5))["p_value"] == pytest.approx(2 / 32)
    assert mcnemar_exact(*pairs(9, 1)) == mcnemar_exact(*pairs(1, 9)) | {"only_a": 9, "only_b": 1}
    assert mcnemar_exact(*pairs(0, 0))["p_value"] == 1.0
    assert mcnemar_exact(*pairs(3, 3))["p_value"] == 1.0


def test_summary_reports_yes_no_bias_and_per_class_accuracy():
    rows = [
        {"gold": "yes", "pred": "no", "correct": False, "parse_ok": True},
        {"gold": "yes", "pred": "yes", "correct": True, "parse_ok": True},
        {"gold": "no", "pred": "no", "correct": True, "parse_ok": True},
        {"gold": "no", "pred": None, "correct": False, "parse_ok": False},
    ]
    s = summarize(get_task("strategyqa"), rows)
    assert s["accuracy"] == 0.5 and s["parse_failures"] == 1
    assert s["accuracy_by_class"] == {"yes": 0.5, "no": 0.5}
    assert s["answer_bias_no"] == pytest.approx(2 / 3)


def test_grade_only_mode(tmp_path):
    test = [
        {"id": "t1", "question": "q", "answer": "18"},
        {"id": "t2", "question": "q", "answer": "7"},
    ]
    write_jsonl(tmp_path / "data/gsm8k/test.jsonl", test)
    rows = [
        {"id": "a", "output": "so 9 * 2 = 18.\n#### 18", "gold": "She makes 18.\n#### 18"},
        {"id": "b", "output": "The answer is 18", "gold": "18"},  # not "1"
        {"id": "c", "output": "I think it is 5", "gold": 6},
        {"id": "t1", "output": "The answer is: $18.00"},  # gold from the test split by id
        {"id": "t2", "output": "no idea"},
        {"id": "zzz", "output": "The answer is 3"},  # unknown id, no gold: wrong, reported
    ]
    write_jsonl(tmp_path / "preds.jsonl", rows)
    out = tmp_path / "graded.jsonl"
    proc = run_script(
        "09_eval_platinum.py",
        tmp_path,
        "--grade-only",
        str(tmp_path / "preds.jsonl"),
        "--task",
        "gsm8k",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    graded = {r["id"]: r for r in read_jsonl(out)}
    assert [graded[i]["correct"] for i in ("a", "b", "c", "t1", "t2", "zzz")] == [
        True,
        True,
        False,
        True,
        False,
        False,
    ]
    assert graded["b"]["pred"] == "18" and graded["t2"]["parse_ok"] is False
    assert set(graded["a"]) >= {"id", "pred", "correct", "parse_ok"}
    assert "accuracy 50.0%" in proc.stdout and "6 rows" in proc.stdout
    assert "1 rows have ids not in the test split" in proc.stdout


def test_grade_only_yes_no_gold_forms(tmp_path):
    rows = [
        {"id": "1", "output": "Yes, because...", "gold": True},
        {"id": "2", "output": "the answer is: **[NO]**", "gold": "no"},
        {"id": "3", "output": "I cannot determine that.", "gold": "yes"},
        {"id": "4", "output": "No.", "gold": "True"},
    ]
    write_jsonl(tmp_path / "p.jsonl", rows)
    proc = run_script(
        "09_eval_platinum.py",
        tmp_path,
        "--grade-only",
        str(tmp_path / "p.jsonl"),
        "--task",
        "strategyqa",
        "--out",
        str(tmp_path / "g.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["correct"] for r in read_jsonl(tmp_path / "g.jsonl")] == [True, True, False, False]


def test_grade_only_empty_file_is_an_error(tmp_path):
    (tmp_path / "p.jsonl").write_text("")
    proc = run_script(
        "09_eval_platinum.py", tmp_path, "--grade-only", str(tmp_path / "p.jsonl"), "--task", "gsm8k"
    )
    assert proc.returncode == 1 and "has no predictions to grade" in proc.stderr


def test_missing_checkpoint_names_its_target(tmp_path):
    assert run_script("01_sample.py", tmp_path, TRAIN_SAMPLES="5").returncode == 0
    proc = run_script("09_eval_platinum.py", tmp_path, EVAL_CHECKPOINTS="phaseB")
    assert proc.returncode == 1 and "run `make phaseB` first" in proc.stderr
    proc = run_script("09_eval_platinum.py", tmp_path, EVAL_CHECKPOINTS="merged-phaseC")
    assert "run `make merge PHASE=phaseC` first" in proc.stderr
    proc = run_script("09_eval_platinum.py", tmp_path, EVAL_CHECKPOINTS="./no/such/model")
    assert proc.returncode == 1 and "./no/such/model does not exist; check EVAL_CHECKPOINTS" in proc.stderr


def checkpoint_summary(correct, n=200):
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n,
        "ci95": list(wilson_interval(correct, n)),
        "parse_failures": 0,
        "parse_failure_rate": 0.0,
        "truncation_rate": 0.0,
        "strategy": "cot",
        "with_draft": False,
    }


def test_report_from_saved_files(tmp_path):
    out, data = tmp_path / "outputs/arith", tmp_path / "data/arith"
    out.mkdir(parents=True)
    data.mkdir(parents=True)
    summary = {
        "task": "arith",
        "n_questions": 200,
        "test_source": "data/arith/test.jsonl",
        "checkpoints": {
            "base": checkpoint_summary(2),
            "phaseA": checkpoint_summary(20),
            "phaseB": checkpoint_summary(120),
            "phaseC": checkpoint_summary(122),
        },
        "comparisons": {
            "base->phaseA": {"p_value": 1e-5, "only_a": 0, "only_b": 18},
            "phaseA->phaseB": {"p_value": 1e-20, "only_a": 2, "only_b": 102},
            "phaseB->phaseC": {"p_value": 0.6, "only_a": 10, "only_b": 12},
        },
        "ablations": {"note": "Not run: EVAL_ABLATIONS=0."},
        "question_quality": {"note": "not measured."},
    }
    (out / "summary.json").write_text(json.dumps(summary))
    (data / "data_report.json").write_text(
        json.dumps(
            {
                "teacher": {
                    "ok": 180,
                    "unparseable": 0,
                    "wrong": 20,
                    "refused": 0,
                    "empty": 0,
                    "api_error": 0,
                    "quality_rate": 0.9,
                },
                "policy": {"disagreement": "drop"},
                "kept_by_source": {"teacher": 180},
                "heldout": 18,
                "classes": {"sample": {}, "kept": {}, "train": {}},
                "balance": "none",
            }
        )
    )
    write_jsonl(
        data / "teacher_cost.jsonl",
        [{"call_id": "x", "usd": 0.25, "cached": False, "tokens_in": 100, "tokens_out": 50}],
    )
    proc = run_script("09_eval_platinum.py", tmp_path, "--report-only")
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text()
    assert (
        "| phaseB | ≥ phaseA + 10 pts | 60.0% (53.1%–66.5%) | +50.0 pts vs phaseA | 1e-20 | met |" in report
    )
    assert "| phaseC | ≥ phaseB + 3 pts |" in report and "| 0.6 | not met |" in report
    assert "quality rate 90.0%" in report and "$0.2500" in report
    assert (out / "accuracy.png").stat().st_size > 1000


def drafts_off_summary() -> dict:
    """A run with WITH_DRAFT=0: every phase evaluated, no draft ablation, no question judge."""
    return {
        "task": "arith",
        "n_questions": 200,
        "test_source": "data/arith/test.jsonl",
        "checkpoints": {
            "base": checkpoint_summary(2),
            "phaseA": checkpoint_summary(20),
            "phaseB": checkpoint_summary(120),
            "phaseC": checkpoint_summary(122),
        },
        "comparisons": {
            "base->phaseA": {"p_value": 1e-5},
            "phaseA->phaseB": {"p_value": 1e-20},
            "phaseB->phaseC": {"p_value": 0.6},
            "phaseA->phaseC": {"p_value": 1e-21},
        },
        "ablations": {
            "note": "Not run: the last checkpoint (phaseC) was trained without drafts (WITH_DRAFT=0)."
        },
        "question_quality": {
            "note": "not measured: TEACHER=offline cannot judge; set TEACHER=openai or anthropic."
        },
    }


def test_report_judges_every_target_with_drafts_off(tmp_path):
    out = tmp_path / "outputs/arith"
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps(drafts_off_summary()))
    proc = run_script("09_eval_platinum.py", tmp_path, "--report-only", TARGET_C_OVER_A_GAIN="50")
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text()
    rows = {
        line.split(" | ")[0].strip("| "): line for line in report.splitlines() if line.startswith("| phase")
    }
    assert rows["phaseB vs phaseA"].endswith(
        "| +50.0 pts (p = 1e-20) | met | gain +50.0 pts ≥ 10 pts, p = 1e-20 |"
    )
    assert "| not met | gain +1.0 pts < 3 pts |" in rows["phaseC vs phaseB"]
    # Targets are configuration: TARGET_C_OVER_A_GAIN=50 is the row's target.
    assert "| ≥ phaseA + 50 pts, p < 0.05 | +51.0 pts (p = 1e-21) | met |" in rows["phaseC vs phaseA"]
    off = "not measured | the last checkpoint (phaseC) was trained without drafts (WITH_DRAFT=0) |"
    for name in ("phaseC with draft vs no draft", "phaseC with draft vs shuffled draft"):
        assert rows[name].endswith(f"| — | {off}")
    assert rows["phaseC attribution on draft tokens"].endswith(off)
    assert (
        "| clarifying questions vs base | win rate ≥ 60% | — | not measured | TEACHER=offline cannot judge"
        in (report)
    )
    # The ablation section says why it is empty instead of leaving it out.
    assert "Not run: the last checkpoint (phaseC) was trained without drafts (WITH_DRAFT=0)." in report


def test_targets_from_measured_ablations():
    from common.config import EvalSection
    from common.eval.targets import judge_targets

    summary = drafts_off_summary()
    summary["ablations"] = {
        "checkpoint": "phaseC",
        "variants": {
            "with draft": checkpoint_summary(122),
            "no draft": checkpoint_summary(100) | {"vs_with_draft": {"delta": -0.11, "p_value": 0.001}},
            "shuffled draft": checkpoint_summary(118) | {"vs_with_draft": {"delta": -0.02, "p_value": 0.4}},
        },
        "attribution": {"n": 16, "mean_share": 0.25},
    }
    summary["question_quality"] = {"win_rate": 0.5, "wins": 20, "losses": 20, "ties": 5, "unreadable": 1}
    status = {t.name: t.status for t in judge_targets(EvalSection(), summary)}
    assert status == {
        "phaseB vs phaseA": "met",
        "phaseC vs phaseB": "not met",
        "phaseC vs phaseA": "met",
        "phaseC with draft vs no draft": "met",
        "phaseC with draft vs shuffled draft": "not met",
        "phaseC attribution on draft tokens": "met",
        "clarifying questions vs base": "not met",
    }
    summary["ablations"]["checkpoint"] = "phaseB"  # ablations of another phase do not judge Phase C
    targets = {t.name: t for t in judge_targets(EvalSection(), summary)}
    assert targets["phaseC with draft vs no draft"].status == "not measured"
    assert "ran on phaseB" in targets["phaseC with draft vs no draft"].why
    del summary["comparisons"]["phaseA->phaseC"]
    assert "no paired test" in judge_targets(EvalSection(), summary)[2].why


def test_report_without_eval_names_the_target(tmp_path):
    proc = run_script("09_eval_platinum.py", tmp_path, "--report-only")
    assert proc.returncode == 1 and "run `make eval` first" in proc.stderr


@pytest.mark.parametrize(
    "text, verdict",
    [("Verdict: A", "A"), ("verdict: **B**", "B"), ("Verdict: tie", "tie"), ("I like A better", None)],
)
def test_parse_judge_verdict(text, verdict):
    from common.eval.question_judge import parse_verdict

    assert parse_verdict(text) == verdict


def test_question_judge_through_the_api(tmp_path):
    from fake_api import FakeAPI

    from common.config import load_config
    from common.eval.question_judge import question_win_rate

    def reply(prompt):  # a judge that prefers any questions over none, and babbles once
        if "q3?" in prompt:
            return "hard to say"
        return "Verdict: B" if "Set A:\n(no questions)" in prompt else "Verdict: A"

    questions = [{"id": f"q{i}", "question": f"q{i}?", "answer": "1"} for i in range(6)]
    trained = {q["id"]: {"questions": ["Which numbers are added?"]} for q in questions}
    base = {q["id"]: {"questions": []} for q in questions}
    with FakeAPI(reply=reply) as api:
        env = {
            "HW": "cpu",
            "TEACHER": "openai",
            "OPENAI_API_KEY": "sk-test-judge-000000",
            "OPENAI_BASE_URL": api.openai_url,
            "WORK_DIR": str(tmp_path),
        }
        cfg = load_config([], env=env, env_file=tmp_path / "none")[0]
        result = question_win_rate(
            cfg, get_task("arith"), questions, trained, base, tmp_path / "ledger.jsonl"
        )
        sides = ["Set A:\n- Which" in r["body"]["messages"][0]["content"] for r in api.requests]
    assert result["wins"] == 5 and result["unreadable"] == 1 and result["win_rate"] == 1.0
    assert 0 < sum(sides) < len(sides)  # the trained side was shuffled between A and B
    assert len(read_jsonl(tmp_path / "ledger.jsonl")) == 6  # judge calls are in the cost ledger
    offline = question_win_rate(
        load_config([], env={"HW": "cpu"}, env_file=tmp_path / "none")[0],
        get_task("arith"),
        [],
        {},
        {},
        tmp_path / "l.jsonl",
    )
    assert "TEACHER=offline cannot judge" in offline["note"]


def heldout_rows(task, questions) -> list[dict]:
    """teacher_heldout.jsonl as stage 04 writes it: the Phase B record plus question, gold, draft."""
    from common.data.prompts import build_target
    from common.data.records import sft_record

    return [
        sft_record(q["id"], task.build_messages(q["question"], "cot"), build_target("cot", q["answer"], []))
        | {"question": q["question"], "answer": q["answer"], "draft": None}
        for q in questions
    ]


def test_load_heldout_says_why_there_is_nothing_to_ask(tmp_path):
    from common.config import load_config
    from common.eval.questions import load_heldout

    cfg = load_config([], env={"HW": "cpu", "WORK_DIR": str(tmp_path)}, env_file=tmp_path / "none")[0]
    path = tmp_path / "data/arith/teacher_heldout.jsonl"
    assert load_heldout(cfg) == ([], f"{path} does not exist (run `make datasets`)")
    path.parent.mkdir(parents=True)
    path.write_text("")
    assert "is empty (HELDOUT_FRACTION=0.1)" in load_heldout(cfg)[1]
    write_jsonl(path, [{"id": "a", "prompt": [], "completion": []}])  # rows from before this change
    assert "rerun `make datasets`" in load_heldout(cfg)[1]
    write_jsonl(
        path, [{"id": "a", "prompt": [], "completion": [], "question": "q?", "answer": "3", "draft": None}]
    )
    assert load_heldout(cfg) == ([{"id": "a", "question": "q?", "answer": "3", "draft": None}], None)


def test_eval_grades_the_heldout_teacher_questions(tmp_path, tiny_model_dir):
    """Stage 09 asks every checkpoint the held-out teacher questions too, graded against their gold;
    without the file, summary and report say so in one line."""
    import shutil

    from common.data.synthetic import generate

    task = get_task("arith")
    rows = [task.normalize(r, "test") for r in generate("arith", "test")[:6]]
    data, out = tmp_path / "data/arith", tmp_path / "outputs/arith"
    write_jsonl(data / "test.jsonl", rows[:3])
    write_jsonl(data / "teacher_heldout.jsonl", heldout_rows(task, rows[3:]))
    shutil.copytree(tiny_model_dir, tmp_path / "checkpoints/tiny-base")
    env = {"EVAL_CHECKPOINTS": "base", "EVAL_MAX_NEW_TOKENS": "4", "EVAL_ABLATIONS": "0"}
    proc = run_script("09_eval_platinum.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["heldout"] == {"source": str(data / "teacher_heldout.jsonl"), "n_questions": 3}
    held = summary["checkpoints"]["base"]["heldout"]
    assert held["n"] == 3 and 0 <= held["accuracy"] <= 1 and len(held["ci95"]) == 2
    graded = read_jsonl(out / "eval_base_heldout.jsonl")
    assert [r["gold"] for r in graded] == [r["answer"] for r in rows[3:]]
    assert all(r["prompt"].count(q["question"]) == 1 for r, q in zip(graded, rows[3:], strict=True))
    report = (out / "report.md").read_text()
    assert "## Held-out teacher questions" in report and "| base | 3 |" in report
    manifest = json.loads((out / "eval.manifest.json").read_text())
    assert "teacher_heldout" in manifest["fingerprint"]["inputs"]  # a changed file re-runs evaluation

    (data / "teacher_heldout.jsonl").unlink()
    proc = run_script("09_eval_platinum.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "heldout" not in summary["checkpoints"]["base"]
    note = summary["heldout"]["note"]
    assert note.startswith("No held-out teacher questions:") and "does not exist" in note
    report = (out / "report.md").read_text()
    assert [line for line in report.splitlines() if "held-out teacher questions" in line.lower()] == [
        "## Held-out teacher questions",
        note,
    ]
