"""Stage 07's label sources (gold, teacher, majority) and pair sources (correctness, judge,
composite, both) on hand-built rollout rows, the ace judge rubric, and a teacher judge run against
the fake API server through the real SDK (ledger and MAX_COST_USD)."""

import json
import os

import pytest

from common.config import RolloutSection, load_config
from common.data.tasks import get_task
from common.jsonl import read_jsonl
from common.rollout.labels import apply_label, label_noise, majority_label, question_label
from common.rollout.pairs import (
    both_pairs,
    composite_pairs,
    correctness_first_pairs,
    judge_pairs,
    question_pairs,
)
from common.rollout.report import build_rollout_report, render_markdown
from common.rollout.self_reward import parse_score

ARITH = get_task("arith")


def traj(k, pred, correct, self_reward=None, total=0.5, strategy="cot", status=None):
    return {
        "k": k,
        "arm": f"{strategy}@0.8",
        "strategy": strategy,
        "temperature": 0.8,
        "text": f"answer {k}: {pred}",
        "pred": pred,
        "correct": correct,
        "tokens": 10,
        "reward": 1.0 if correct else 0.0,
        "self_reward": self_reward,
        "judge_status": status or ("ok" if self_reward is not None else "not_judged"),
        "composite": {"total": total},
    }


def row(qid, trajectories, gold="5", label=None):
    return {
        "id": qid,
        "gold": gold,
        "label": label or {"label": gold, "status": "ok", "agreement": None, "source": "gold"},
        "prompts": {
            "cot": [{"role": "user", "content": f"Q {qid}"}],
            "none": [{"role": "user", "content": f"Q {qid} (none)"}],
        },
        "trajectories": trajectories,
    }


# -- label sources --------------------------------------------------------------------------------
def test_majority_label_is_self_consistency_with_a_minimum_and_no_ties():
    assert majority_label(["5", "5", "5", "7"], 0.5) == {"label": "5", "status": "ok", "agreement": 0.75}
    # A tie for the top answer decides nothing, whatever MAJORITY_MIN is.
    assert majority_label(["5", "5", "7", "7"], 0.0)["status"] == "tie"
    # Unparsed answers vote for nothing but count in K: 2 of 5 is below 0.5.
    low = majority_label(["5", "5", None, None, "3"], 0.5)
    assert low == {"label": None, "status": "low_agreement", "agreement": 0.4}
    assert majority_label([None, None], 0.5)["status"] == "no_answer"


def test_each_label_source_grades_the_same_trajectories_differently():
    q = {"id": "q1", "answer": "5"}
    preds = ["5", "7", "7", "7"]
    teacher = {"q1": "7", "q2": None}
    assert question_label("gold", q, preds, None, 0.5)["label"] == "5"
    assert question_label("teacher", q, preds, teacher, 0.5)["label"] == "7"
    assert question_label("majority", q, preds, None, 0.5)["label"] == "7"
    # The teacher failed on q2 and never saw q3: both are skipped, with the reason.
    assert question_label("teacher", {"id": "q2", "answer": "1"}, preds, teacher, 0.5)["status"] == (
        "teacher_failed"
    )
    assert question_label("teacher", {"id": "q3", "answer": "1"}, preds, teacher, 0.5)["status"] == (
        "no_teacher_row"
    )
    ts = [{"pred": p, "correct": p == "5"} for p in preds]
    apply_label(ts, {"label": "7"}, ARITH)
    assert [t["correct"] for t in ts] == [False, True, True, True]
    assert [t["gold_correct"] for t in ts] == [True, False, False, False]
    ts = [{"pred": p, "correct": p == "5"} for p in preds]
    apply_label(ts, {"label": None}, ARITH)  # no label: nothing is correct
    assert not any(t["correct"] for t in ts)


def test_a_question_without_a_label_gives_no_pairs_except_by_the_judge():
    failed = {"label": None, "status": "teacher_failed", "agreement": None, "source": "teacher"}
    r = row("q1", [traj(0, "5", False, 0.8), traj(1, "7", False, 0.2)], label=failed)
    pairs, counts = question_pairs(r, RolloutSection(label_source="teacher"), 0)
    assert pairs == [] and counts["unlabelled"] == "teacher_failed"
    judged, _ = question_pairs(r, RolloutSection(pair_source="judge"), 0)
    assert [p["pair_type"] for p in judged] == ["judge"]


def test_the_label_noise_table_shows_each_sources_agreement_with_gold():
    rows = [
        row("q1", [traj(k, p, p == "5") for k, p in enumerate(["5", "5", "5", "7"])]),  # majority 5
        row("q2", [traj(k, p, p == "5") for k, p in enumerate(["7", "7", "7", "5"])]),  # majority 7
        row("q3", [traj(k, p, p == "5") for k, p in enumerate(["5", "5", "7", "7"])]),  # a tie
    ]
    teacher = {"q1": "5", "q2": "5", "q3": None}
    noise = label_noise(rows, ARITH, teacher, 0.5)
    assert noise["gold"] == {"labelled": 3, "skipped": {}, "agreement_with_gold": 1.0}
    assert noise["majority"] == {"labelled": 2, "skipped": {"tie": 1}, "agreement_with_gold": 0.5}
    assert noise["teacher"] == {"labelled": 2, "skipped": {"teacher_failed": 1}, "agreement_with_gold": 1.0}
    labels = {"source": "majority", "majority_min": 0.5, "noise": noise}
    counts = [{"unlabelled": "tie"}, {}, {}]
    state = {"method": "ucb1", "arms": ["cot@0.8"], "pulls": [12], "mean_reward": [0.5]}
    report = build_rollout_report(rows, [], counts, state, labels)
    assert report["labels"]["unlabelled_questions"] == {"tie": 1}
    md = render_markdown(report)
    assert "## Labels (LABEL_SOURCE=majority)" in md and "| majority | 2 | tie 1 | 0.5 |" in md
    assert "| teacher | 2 | teacher_failed 1 | 1.0 |" in md


# -- pair sources ---------------------------------------------------------------------------------
def test_judge_pairs_best_over_worst_above_the_margin_and_skip_unparseable_replies():
    ts = [
        traj(0, "5", True, 1.0),
        traj(1, "5", True, 0.8),
        traj(2, "7", False, 0.2),
        traj(3, "9", False, None, status="unparseable"),
        traj(4, "5", True, 0.6, strategy="none"),  # another prompt: never paired with cot
    ]
    pairs, counts = judge_pairs(row("q1", ts), cap=4, margin=0.5, seed=0)
    assert [(p["chosen_arm"], p["id"]) for p in pairs] == [("cot@0.8", "q1-0-2"), ("cot@0.8", "q1-1-2")]
    assert all(p["pair_type"] == "judge" for p in pairs)
    assert counts["judge_unparseable_skipped"] == 1
    # 1.0 vs 0.8 is below the margin; a smaller margin lets it in, widest gap still first.
    pairs, _ = judge_pairs(row("q1", ts), cap=4, margin=0.2, seed=0)
    assert [p["id"] for p in pairs] == ["q1-0-2", "q1-1-2", "q1-0-1"]


def test_composite_pairs_rank_by_the_composite_total():
    ts = [traj(0, "5", True, total=0.9), traj(1, "5", True, total=0.85), traj(2, "7", False, total=0.3)]
    pairs, _ = composite_pairs(row("q1", ts), cap=4, margin=0.1, seed=0)
    assert [p["id"] for p in pairs] == ["q1-0-2", "q1-1-2"]
    assert all(p["pair_type"] == "composite" for p in pairs)


def test_both_puts_correctness_first_then_judge_pairs_among_equally_correct():
    ts = [
        traj(0, "5", True, 0.4),
        traj(1, "5", True, 1.0),
        traj(2, "7", False, 0.8),
        traj(3, "8", False, 0.2),
    ]
    pairs, _ = both_pairs(row("q1", ts), cap=6, judge_margin=0.2, seed=0)
    types = [p["pair_type"] for p in pairs]
    assert types == ["correctness"] * 4 + ["judge"] * 2
    correct_ks = {0, 1}
    for p in pairs[:4]:
        chosen, rejected = map(int, p["id"].split("-")[1:])
        assert chosen in correct_ks and rejected not in correct_ks
    # Judge pairs never cross correctness: right over right (1 over 0), wrong over wrong (2 over 3).
    assert {p["id"] for p in pairs[4:]} == {"q1-1-0", "q1-2-3"}
    # With room for four, only correctness pairs are made.
    pairs, _ = both_pairs(row("q1", ts), cap=4, judge_margin=0.2, seed=0)
    assert [p["pair_type"] for p in pairs] == ["correctness"] * 4


def test_question_pairs_dispatches_on_pair_source():
    ts = [traj(0, "5", True, 1.0, total=0.9), traj(1, "7", False, 0.2, total=0.3)]
    for source, kind in (("correctness", "correctness"), ("judge", "judge"), ("composite", "composite")):
        pairs, _ = question_pairs(row("q1", ts), RolloutSection(pair_source=source), 0)
        assert [p["pair_type"] for p in pairs] == [kind], source


# -- the judge ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, score",
    [
        ("Accuracy: 5\nCompleteness: 4\nEfficiency: 3", 0.8),
        ("**Accuracy:** 5/5\n**Completeness:** 5/5\n**Efficiency:** 5/5", 1.0),
        ("Accuracy: 2\nCompleteness: 4", None),  # efficiency missing: unparseable
        ("Accuracy: 7\nCompleteness: 4\nEfficiency: 3", None),  # out of range
        ("Score: 4", None),  # the additive format is not an ace reply
    ],
)
def test_ace_rubric_parsing(text, score):
    assert parse_score(text, "ace") == score


def judge_env(api, tmp_path, **extra):
    return {
        "HW": "cpu",
        "TEACHER": "openai",
        "OPENAI_API_KEY": "sk-judge-test-key",
        "OPENAI_BASE_URL": api.openai_url,
        "WORK_DIR": str(tmp_path),
        "LOOPER_ENV_FILE": os.devnull,
        **extra,
    }


def test_a_teacher_judge_with_the_ace_rubric_makes_judge_pairs_through_the_real_sdk(tmp_path):
    from fake_api import FakeAPI

    from common.rollout.scoring import Weights, score_trajectories
    from common.rollout.self_reward import judge_with_teacher

    def reply(prompt: str) -> str:
        if "Efficiency: <1-5>" not in prompt:
            return "wrong prompt"
        if "<response>good" in prompt:
            return "Clear and right.\nAccuracy: 5\nCompleteness: 5\nEfficiency: 4"
        if "<response>poor" in prompt:
            return "Wrong.\nAccuracy: 1\nCompleteness: 2\nEfficiency: 3"
        return "I would rather not rate this."

    with FakeAPI(reply=reply) as api:
        cfg = load_config([], env=judge_env(api, tmp_path, JUDGE_RUBRIC="ace"))[0]
        ledger = tmp_path / "teacher_cost.jsonl"
        items = [("Q?", "good: 5"), ("Q?", "poor: 7"), ("Q?", "odd: 9")]
        texts = judge_with_teacher(cfg, ARITH, items, ["q1-0", "q1-1", "q1-2"], ledger)
    ts = [
        {"k": k, "strategy": "cot", "arm": "cot@0.8", "text": r, "pred": p, "correct": p == "5", "tokens": 5}
        for k, ((_, r), p) in enumerate(zip(items, ["5", "7", "9"], strict=True))
    ]
    w = Weights(1.0, 0.5, 0.0, (0.4, 0.4, 0.2), (0.6, 0.2, 0.2), 100)
    scored = score_trajectories(ts, "number", {}, texts, w, "ace")
    assert [t["self_reward"] for t in scored] == [pytest.approx(14 / 15, abs=1e-3), 0.4, None]
    assert [t["judge_status"] for t in scored] == ["ok", "ok", "unparseable"]
    pairs, counts = judge_pairs(row("q1", scored), cap=4, margin=0.2, seed=0)
    assert [p["id"] for p in pairs] == ["q1-0-1"] and counts["judge_unparseable_skipped"] == 1
    calls = read_jsonl(ledger)
    assert len(calls) == 3 and all(c["usd"] > 0 for c in calls)
    assert "sk-judge-test-key" not in ledger.read_text()


def test_the_teacher_judge_stops_at_max_cost_usd(tmp_path):
    """MAX_COST_USD counts the whole ledger: stage 03's spending leaves the judge nothing."""
    from fake_api import FakeAPI

    from common.rollout.self_reward import judge_with_teacher

    ledger = tmp_path / "teacher_cost.jsonl"
    ledger.write_text(json.dumps({"call_id": "stage03", "usd": 1.0}) + "\n")
    with FakeAPI(reply=lambda prompt: "Score: 5") as api:
        cfg = load_config([], env=judge_env(api, tmp_path, MAX_COST_USD="1.0"))[0]
        texts = judge_with_teacher(cfg, ARITH, [("Q?", "5")], ["q1-0"], ledger)
        assert texts == [None] and api.requests == []


# -- the real stage on the tiny model -------------------------------------------------------------
@pytest.mark.slow
def test_the_stage_grades_by_majority_and_teacher_and_pairs_by_both(trained, tmp_path):
    from conftest import FAST, copy, run_script

    from common.jsonl import write_jsonl

    copy(trained, tmp_path, phases=("phaseA", "phaseB"))
    d = tmp_path / "data/arith"
    write_jsonl(d / "sample_train.jsonl", read_jsonl(d / "sample_train.jsonl")[:6])
    env = FAST | {
        "ROLLOUTS_PER_QUESTION": "4",
        "ROLLOUT_STRATEGIES": "cot",
        "ROLLOUT_TEMPERATURES": "1.0",
        "ROLLOUT_MAX_NEW_TOKENS": "16",
        "JUDGE_MAX_NEW_TOKENS": "8",
        "COUNTERFACTUAL": "0",
    }
    proc = run_script(
        "07_rollouts.py", tmp_path, **env, LABEL_SOURCE="majority", MAJORITY_MIN="0.5", PAIR_SOURCE="both"
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(d / "rollouts.jsonl")
    for r in rows:
        lab = r["label"]
        assert lab["source"] == "majority"
        assert (lab["label"] is None) == (lab["status"] != "ok")
        assert all(
            t["correct"] == (lab["label"] is not None and t["pred"] == lab["label"])
            for t in r["trajectories"]
        )
    report = json.loads((d / "rollout_report.json").read_text())
    assert set(report["labels"]["noise"]) == {"gold", "majority", "teacher"}  # stage 03 ran
    unlabelled = {r["id"] for r in rows if r["label"]["label"] is None}
    assert not any(p["question_id"] in unlabelled for p in read_jsonl(d / "preferences.jsonl"))
    assert "## Labels (LABEL_SOURCE=majority)" in (d / "rollout_report.md").read_text()
    # The teacher's labels: a changed LABEL_SOURCE re-runs the rows under the new fingerprint.
    proc = run_script("07_rollouts.py", tmp_path, **env, LABEL_SOURCE="teacher")
    assert proc.returncode == 0, proc.stderr
    teacher = {r["id"]: r["answer"] for r in read_jsonl(d / "teacher_outputs.jsonl")}
    for r in read_jsonl(d / "rollouts.jsonl"):
        assert r["label"]["source"] == "teacher" and r["label"]["label"] == teacher[r["id"]]
    # PAIR_SOURCE=judge with the judge off stops before any sampling.
    proc = run_script("07_rollouts.py", tmp_path, **env, PAIR_SOURCE="judge", SELF_REWARD_JUDGE="none")
    assert proc.returncode == 2 and "SELF_REWARD_JUDGE" in proc.stderr


def test_teacher_error_rate_is_a_deterministic_fraction_of_questions_by_id_and_seed():
    """TEACHER_ERROR_RATE=0.2: the offline teacher is wrong on about a fifth of the questions, the
    same ones for the same RANDOM_SEED, and the teacher label source sees exactly those as noise."""
    from common.config import TeacherSection
    from common.teacher.backends import OfflineTeacher

    questions = [{"id": f"q{i}", "answer": str(10 + i % 7)} for i in range(400)]
    settings = TeacherSection(teacher_error_rate=0.2)

    def wrong(seed: int) -> set[str]:
        teacher = OfflineTeacher(settings, ARITH, seed)
        return {q["id"] for q in questions if teacher.final_answer(q, 0, hinted=False) != q["answer"]}

    assert 0.15 < len(wrong(0)) / len(questions) < 0.25
    assert wrong(0) == wrong(0) and wrong(0) != wrong(1)
    teacher = OfflineTeacher(settings, ARITH, 0)
    answers = {q["id"]: teacher.final_answer(q, 0, hinted=False) for q in questions}
    rows = [row(q["id"], [traj(0, q["answer"], True)], gold=q["answer"]) for q in questions]
    noise = label_noise(rows, ARITH, answers, 0.5)["teacher"]
    assert noise["agreement_with_gold"] == pytest.approx(1 - len(wrong(0)) / len(questions), abs=1e-4)


@pytest.mark.parametrize(
    "key, value",
    [
        ("LABEL_SOURCE", "oracle"),
        ("PAIR_SOURCE", "vibes"),
        ("JUDGE_RUBRIC", "stars"),
        ("MAJORITY_MIN", "1.5"),
        ("JUDGE_MARGIN", "-0.1"),
        ("MAJORITY_MIN", "nan"),
    ],
)
def test_bad_label_and_pair_settings_name_the_key(key, value):
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        load_config([], env={"HW": "cpu", "LOOPER_ENV_FILE": os.devnull, key: value})


def test_both_cuts_its_correctness_pairs_rejected_answers_like_correctness_does():
    """REJECTED_CUT=first_error applies to `both`'s correctness pairs too (it once did not, and a
    measured Phase C lost 18 points to it); judge pairs are left whole."""
    right = "3 + 4 = 7\n7 * 2 = 14\nThe answer is: 14"
    wrong = "3 + 4 = 7\n7 * 2 = 15\n15 - 1 = 14\nThe answer is: 14 no 15"
    ts = [traj(0, "14", True, 1.0), traj(1, "15", False, 0.2), traj(2, "15", False, 0.9)]
    ts[0]["text"], ts[1]["text"], ts[2]["text"] = right, wrong, wrong.replace("15 - 1", "15 + 0")
    r = row("q1", ts)
    plain, _ = correctness_first_pairs(r, cap=4, margin=0.1, seed=0, cut_rejected=True)
    both, _ = both_pairs(r, cap=4, judge_margin=0.2, seed=0, cut_rejected=True)
    correctness = [p for p in both if p["pair_type"] == "correctness"]
    assert [p["rejected"] for p in correctness] == [
        p["rejected"] for p in plain if p["pair_type"] == "correctness"
    ]
    assert all(
        p["rejected_cut"] and p["rejected"][0]["content"].rstrip().endswith("7 * 2 = 15") for p in correctness
    )
    judged = [p for p in both if p["pair_type"] == "judge"]
    assert judged and all("rejected_cut" not in p for p in judged)
    uncut, _ = both_pairs(r, cap=4, judge_margin=0.2, seed=0)
    assert all(p["rejected"][0]["content"].startswith(wrong[:20]) and "rejected_cut" not in p for p in uncut)
