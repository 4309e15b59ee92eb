"""Stage 07 and `make loop`: scores on hand-built trajectories, the pair rules, judge parsing,
SPIN, batched bandit picks, then the real stage on the tiny model (resume, TRL loading, the loop).
"""

import json
import random
import shutil
import signal
import time

import pytest
from conftest import FAST, copy, run_script, start_script

from common.jsonl import read_jsonl, write_jsonl
from common.rollout.bandit import Bandit
from common.rollout.coherence import counterfactual_probes, s_cf
from common.rollout.pairs import correctness_first_pairs, cut_at_first_error, spin_pairs
from common.rollout.report import build_rollout_report, judge_agreement
from common.rollout.scoring import Weights, score_trajectories
from common.rollout.self_reward import parse_score

W = Weights(
    alpha=1.0,
    beta=0.5,
    length_penalty=0.001,
    coherence=(0.4, 0.4, 0.2),
    composite=(0.6, 0.2, 0.2),
    max_new_tokens=100,
)


def traj(k, text, pred, correct, strategy="cot", tokens=10):
    return {
        "k": k,
        "arm": f"{strategy}@0.8",
        "strategy": strategy,
        "temperature": 0.8,
        "text": text,
        "pred": pred,
        "correct": correct,
        "tokens": tokens,
    }


# -- scores ---------------------------------------------------------------------------------------
def test_scores_on_hand_built_trajectories():
    ts = [
        traj(0, "20 + 5 = 25.\n25 - 3 = 22.\nThe answer is: 22", "22", True, tokens=20),
        traj(1, "20 + 5 = 25.\n25 - 3 = 22.\nThe answer is: 22", "22", True, tokens=20),
        traj(2, "20 + 5 = 25.\n25 + 3 = 28.\nThe answer is: 28", "28", False, tokens=20),
        traj(3, "no idea", None, False, tokens=80),
    ]
    probes = {"cot": {"stay": "22", "move": "23"}}
    judged = ["Good. Score: 4", "Score: 5/5", "Score: 9", None]
    out = score_trajectories(ts, "number", probes, judged, W)
    assert [t["s_end"] for t in out] == [0.5, 0.5, 0.25, 0.0]
    # Majority path {20, 5, 25, 3, 22} (3 of 4 state 20, 5, 25, 3; 2 of 4 state 22).
    assert [t["s_path"] for t in out] == [1.0, 1.0, pytest.approx(4 / 6, abs=1e-4), 0.0]
    # The paraphrase agrees with 22 and the perturbed question moved away from it.
    assert [t["s_cf"] for t in out] == [1.0, 1.0, 0.5, 0.0]
    assert out[0]["s_wm"] == pytest.approx(0.4 * 0.5 + 0.4 * 1.0 + 0.2 * 1.0)
    assert out[0]["reward"] == pytest.approx(1.0 + 0.5 * 0.8 - 0.001 * 20)
    assert out[3]["reward"] == pytest.approx(-0.08)
    assert [t["self_reward"] for t in out] == [0.8, 1.0, None, None]
    assert [t["judge_status"] for t in out] == ["ok", "ok", "unparseable", "not_judged"]
    assert out[0]["composite"] == {
        "success": 1.0,
        "efficiency": 1.0,
        "cost": 0.8,
        "total": round(0.6 + 0.2 + 0.2 * 0.8, 4),
    }
    assert out[1]["composite"]["efficiency"] == 0.5  # one sample came before it
    assert min(t["bandit_reward"] for t in out) >= 0 and max(t["bandit_reward"] for t in out) <= 1


def test_counterfactual_probes_and_s_cf():
    probes = counterfactual_probes("Ava has 12 apples and buys 3.50 worth.", "number")
    assert probes["move"] == "Ava has 13 apples and buys 3.50 worth."
    assert probes["stay"].endswith("Ava has 12 apples and buys 3.50 worth.")
    assert set(counterfactual_probes("Is 12 more than 9?", "yesno")) == {"stay"}
    assert s_cf("5", {}) is None  # counterfactuals off: s_wm renormalises without it
    assert s_cf("5", {"stay": "5", "move": None}) == 0.5  # an unreadable move did not move


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Points... Score: 3", 0.6),
        ("**Score: 5**", 1.0),
        ("Score: 0", 0.0),
        ("score:4 points", 0.8),
        ("Score: 2\nthen Score: 4", 0.8),
        ("Score: 7", None),
        ("Score: -1", None),
        ("I give it four", None),
        ("", None),
        ("Score: ", None),
    ],
)
def test_judge_score_parsing(text, score):
    assert parse_score(text) == score


def test_judge_agreement_counts_correct_over_incorrect():
    rows = [
        {
            "trajectories": [
                {"correct": True, "self_reward": 0.8, "judge_status": "ok"},
                {"correct": False, "self_reward": 0.4, "judge_status": "ok"},
                {"correct": False, "self_reward": 0.8, "judge_status": "ok"},
                {"correct": False, "self_reward": None, "judge_status": "unparseable"},
            ]
        }
    ]
    assert judge_agreement(rows) == {
        "judged": 3,
        "unparseable": 1,
        "not_judged": 0,
        "pairs": 2,
        "agreement": 0.75,
    }


def test_a_batch_of_bandit_picks_spreads_over_the_arms():
    bandit = Bandit(["a", "b", "c", "d"], "ucb1")
    for _ in range(20):
        bandit.update(0, 0.5)
        for arm in (1, 2, 3):
            bandit.update(arm, 0.4)
    picks = bandit.choose_batch(16, random.Random(0))
    # Picking one arm 16 times would ignore that those samples shrink its bonus too.
    assert picks.count(0) > picks.count(1) and len(set(picks)) == 4
    assert bandit.pulls == [20, 20, 20, 20]  # choosing does not count as pulling


# -- pairs ----------------------------------------------------------------------------------------
def scored_row(qid, spec, strategy="cot"):
    """spec: [(correct, reward, text)] -> a rollout row."""
    return {
        "id": qid,
        "prompts": {
            strategy: [{"role": "user", "content": f"Q {qid}"}],
            "none": [{"role": "user", "content": f"Q {qid} (none)"}],
        },
        "trajectories": [
            dict(traj(k, text, "1", c, strategy), reward=r) for k, (c, r, text) in enumerate(spec)
        ],
    }


def test_correctness_first_pairs_follow_the_rules():
    row = scored_row(
        "q1",
        [
            (True, 1.3, "a"),
            (True, 1.1, "b"),
            (True, 1.29, "c"),
            (False, 0.4, "d"),
            (False, 0.2, "e"),
            (True, 1.3, "a"),
        ],
    )
    pairs, counts = correctness_first_pairs(row, cap=12, margin=0.1, seed=0)
    by_text = {t["text"]: t for t in row["trajectories"]}
    types = [p["pair_type"] for p in pairs]
    assert types == sorted(types, key=["correctness", "coherence"].index)  # correctness first
    for p in pairs:
        chosen, rejected = by_text[p["chosen"][0]["content"]], by_text[p["rejected"][0]["content"]]
        assert chosen["correct"]  # an incorrect trajectory is never chosen
        if p["pair_type"] == "correctness":
            assert not rejected["correct"]  # never two correct ones
        else:
            assert rejected["correct"] and p["chosen_reward"] - p["rejected_reward"] > 0.1
        assert p["chosen"] != p["rejected"]
    # 4 correct x 2 wrong; coherence: a>b, c>b, a'>b (a~c, a'~c within the margin, a == a').
    assert types.count("correctness") == 8 and types.count("coherence") == 3
    assert counts == {"all_correct": False, "all_wrong": False, "ties_dropped": 1}  # "a" == "a"
    assert pairs == correctness_first_pairs(row, cap=12, margin=0.1, seed=0)[0]  # deterministic
    capped, _ = correctness_first_pairs(row, cap=2, margin=0.1, seed=0)
    assert [p["pair_type"] for p in capped] == ["correctness", "correctness"]
    # The widest gap first, and the two pairs share no trajectory.
    assert capped[0]["chosen_reward"] == 1.3 and capped[0]["rejected_reward"] == 0.2
    used = [set(p["id"].split("-")[1:]) for p in capped]  # ids are question-chosen_k-rejected_k
    assert not used[0] & used[1]


def test_a_rejected_answer_is_cut_after_its_first_wrong_step():
    right = "Tess starts with 2 coins.\n2 + 5 = 7.\n7 + 7 = 14.\nThe answer is: 14"
    apples = right.replace("coins", "apples")
    slip = "Tess starts with 2 apples.\n2 + 5 = 6.\n6 + 7 = 13.\nThe answer is: 13"
    # "2 apples" claims what a correct answer claims (2); "6 + 7 = 13" is right but follows the slip.
    assert cut_at_first_error(slip, [right, apples]) == "Tess starts with 2 apples.\n2 + 5 = 6.\n"
    assert cut_at_first_error(slip, []) == "Tess starts with 2 apples.\n"  # nothing to check against
    assert cut_at_first_error("2 + 5 = 7.\n7 + 7 = 14.\nThe answer is: 15", [right]).endswith("15")
    assert cut_at_first_error("7 + 2 + 5 = 14", [right]) == "7 + 2 + 5 = 14"  # order matters
    assert cut_at_first_error("2 + 5 = 7.\nSo, fourteen.", [right]) is None  # no wrong claim

    row = scored_row(
        "q5", [(True, 1.3, right), (True, 1.1, apples), (False, 0.2, slip), (False, 0.1, "I give up.")]
    )
    whole, _ = correctness_first_pairs(row, 8, 0.1, 0)
    pairs, _ = correctness_first_pairs(row, 8, 0.1, 0, cut_rejected=True)
    assert [p["id"] for p in pairs] == [p["id"] for p in whole] and "rejected_cut" not in whole[0]
    for p, w in zip(pairs, whole, strict=True):
        rejected = w["rejected"][0]["content"]
        if p["pair_type"] == "correctness" and rejected == slip:
            assert (
                p["rejected_cut"]
                and p["rejected"][0]["content"] == "Tess starts with 2 apples.\n2 + 5 = 6.\n"
            )
        else:  # a coherence pair's rejected answer is correct; "I give up." states nothing wrong
            assert not p["rejected_cut"] and p["rejected"] == w["rejected"]
        assert p["chosen"] == w["chosen"]
    assert {p["pair_type"] for p in pairs} == {"correctness", "coherence"}


def test_all_correct_or_all_wrong_questions_give_no_correctness_pair():
    right = scored_row("q2", [(True, 1.2, "a"), (True, 1.0, "b")])
    wrong = scored_row("q3", [(False, 0.2, "a"), (False, 0.1, "b")])
    pairs, counts = correctness_first_pairs(right, 4, 0.1, 0)
    assert [p["pair_type"] for p in pairs] == ["coherence"] and counts["all_correct"]
    pairs, counts = correctness_first_pairs(wrong, 4, 0.1, 0)
    assert pairs == [] and counts["all_wrong"]
    report = build_rollout_report(
        [dict(r, trajectories=[dict(t, **SCORES0) for t in r["trajectories"]]) for r in (right, wrong)],
        [],
        [correctness_first_pairs(r, 4, 0.1, 0)[1] for r in (right, wrong)],
        Bandit(["cot@0.8"]).state(),
    )
    assert report["all_correct_questions"] == 1 and report["all_wrong_questions"] == 1


SCORES0 = {
    "s_end": 1.0,
    "s_path": 1.0,
    "s_cf": None,
    "s_wm": 1.0,
    "length": 5,
    "self_reward": None,
    "judge_status": "not_judged",
    "composite": {"total": 0.5},
}


def test_pairs_never_cross_prompts():
    row = scored_row("q4", [(True, 1.2, "a"), (False, 0.1, "b")])
    row["trajectories"][1]["strategy"] = "none"  # the wrong answer followed another prompt
    assert correctness_first_pairs(row, 4, 0.1, 0)[0] == []


def test_spin_pairs_choose_the_target_over_own_answers():
    row = scored_row("q5", [(True, 1.2, "own right"), (False, 0.3, "own wrong"), (True, 1.0, "gold")])
    target = {"prompt": row["prompts"]["cot"], "completion": [{"role": "assistant", "content": "gold"}]}
    pairs = spin_pairs(row, target, cap=4)
    assert [p["rejected"][0]["content"] for p in pairs] == ["own wrong", "own right"]
    assert all(p["chosen"][0]["content"] == "gold" and p["pair_type"] == "spin" for p in pairs)
    assert spin_pairs(row, None, 4) == []
    other = dict(target, prompt=[{"role": "user", "content": "another prompt"}])
    assert spin_pairs(row, other, 4) == []  # only answers to the very same prompt


# -- the stage on the tiny model ------------------------------------------------------------------
ROLLOUT = FAST | {
    "ROLLOUTS_PER_QUESTION": "4",
    "ROLLOUT_STRATEGIES": "cot,none",
    "ROLLOUT_TEMPERATURES": "0.7,1.0",
    "ROLLOUT_MAX_NEW_TOKENS": "16",
    "JUDGE_MAX_NEW_TOKENS": "8",
    "ROLLOUT_CHUNK": "4",
}


@pytest.fixture
def policy_dir(trained, tmp_path):
    """A work dir with Phase B and 16 training questions (stage 07 rolls out all of them)."""
    copy(trained, tmp_path, phases=("phaseA", "phaseB"))
    sample = tmp_path / "data/arith/sample_train.jsonl"
    write_jsonl(sample, read_jsonl(sample)[:16])
    return tmp_path


@pytest.mark.slow
def test_rollouts_write_scores_pairs_and_a_report_that_dpo_trains_on(policy_dir):
    work, d = policy_dir, policy_dir / "data/arith"
    proc = run_script("07_rollouts.py", work, **ROLLOUT, PAIR_MODE="spin")
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(d / "rollouts.jsonl")
    assert len(rows) == 16 and all(len(r["trajectories"]) == 4 for r in rows)
    t = rows[0]["trajectories"][0]
    for key in (
        "correct",
        "s_end",
        "s_path",
        "s_cf",
        "s_wm",
        "length",
        "self_reward",
        "reward",
        "composite",
        "judge_status",
        "arm",
    ):
        assert key in t
    state = json.loads((d / "bandit_state.json").read_text())
    assert sum(state["pulls"]) == 64 and len(state["arms"]) == 4
    report = json.loads((d / "rollout_report.json").read_text())
    assert set(report["bandit"]["arms"]) == set(state["arms"])
    assert report["judge"]["judged"] + report["judge"]["unparseable"] == 64
    assert (d / "rollout_report.md").read_text().startswith("# Rollouts")
    assert (d / "rollout_scores.png").stat().st_size > 0
    prefs = read_jsonl(d / "preferences.jsonl")
    assert prefs and all(p["pair_type"] == "spin" for p in prefs)
    targets = {r["id"]: r for r in read_jsonl(d / "train_phaseB.jsonl")}
    for p in prefs:
        assert p["prompt"] == targets[p["question_id"]]["prompt"]
        assert p["chosen"] == targets[p["question_id"]]["completion"]
    sharegpt = read_jsonl(d / "sharegpt_preferences.jsonl")
    assert sharegpt[0]["chosen"]["from"] == "gpt" and sharegpt[0]["conversations"][0]["from"] == "human"
    # Stage 08 reads preferences.jsonl (DPO_DATA=auto) and TRL's DPOTrainer trains on it.
    proc = run_script("08_train_dpo.py", work, **(FAST | {"MAX_STEPS": "2"}))
    assert proc.returncode == 0, proc.stderr
    assert "from data/arith/preferences.jsonl" in proc.stdout.replace(str(work) + "/", "")
    assert (work / "checkpoints/arith/phaseC/adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_correctness_pairs_from_the_real_stage_obey_the_rules(policy_dir):
    env = ROLLOUT | {
        "ROLLOUTS_PER_QUESTION": "6",
        "ROLLOUT_TEMPERATURES": "1.0",
        "SELF_REWARD_JUDGE": "none",
        "COUNTERFACTUAL": "0",
        "REJECTED_CUT": "first_error",
    }
    proc = run_script("07_rollouts.py", policy_dir, **env)
    assert proc.returncode == 0, proc.stderr
    d = policy_dir / "data/arith"
    rows = {r["id"]: r for r in read_jsonl(d / "rollouts.jsonl")}
    assert all(
        t["s_cf"] is None and t["judge_status"] == "not_judged"
        for r in rows.values()
        for t in r["trajectories"]
    )
    prefs = read_jsonl(d / "preferences.jsonl")
    for p in prefs:
        trajectories = rows[p["question_id"]]["trajectories"]
        by_text = {t["text"]: t for t in trajectories}
        assert by_text[p["chosen"][0]["content"]]["correct"]
        assert p["pair_type"] in ("correctness", "coherence")
        rejected = p["rejected"][0]["content"]
        if p["rejected_cut"]:  # a wrong answer's own opening, ending at a step no correct one makes
            right = [t["text"] for t in trajectories if t["correct"]]
            whole = [t["text"] for t in trajectories if not t["correct"] and t["text"].startswith(rejected)]
            assert whole and cut_at_first_error(whole[0], right) == rejected
        else:
            assert rejected in by_text
    report = json.loads((d / "rollout_report.json").read_text())
    assert report["pairs"].get("rejected_cut", 0) == sum(p["rejected_cut"] for p in prefs)
    first = (d / "preferences.jsonl").read_bytes()
    (d / "rollouts.jsonl").unlink()
    assert run_script("07_rollouts.py", policy_dir, **env).returncode == 0
    assert (d / "preferences.jsonl").read_bytes() == first  # same seed, same pairs


@pytest.mark.slow
def test_killed_rollouts_resume_per_question(policy_dir):
    d = policy_dir / "data/arith"
    env = ROLLOUT | {"SELF_REWARD_JUDGE": "none", "ROLLOUT_MAX_NEW_TOKENS": "48"}
    proc = start_script("07_rollouts.py", policy_dir, **env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        path = d / "rollouts.jsonl"
        if path.is_file() and path.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("stage 07 finished before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_jsonl(d / "rollouts.jsonl")
    assert 4 <= len(before) < 16
    done = run_script("07_rollouts.py", policy_dir, **env)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} of 16 questions already done" in done.stdout
    after = read_jsonl(d / "rollouts.jsonl")
    assert [r["id"] for r in after[: len(before)]] == [r["id"] for r in before]  # kept, not redone
    assert len({r["id"] for r in after}) == len(after) == 16  # nothing twice
    state = json.loads((d / "bandit_state.json").read_text())
    assert sum(state["pulls"]) == 64  # the bandit counted each trajectory once


@pytest.mark.slow
def test_bad_inputs_name_the_fix(policy_dir, tmp_path):
    shutil.rmtree(policy_dir / "checkpoints/arith/phaseB")
    proc = run_script("07_rollouts.py", policy_dir, **ROLLOUT)
    assert proc.returncode == 1 and "run `make phaseB` first" in proc.stderr
    proc = run_script("07_rollouts.py", policy_dir, **ROLLOUT, SELF_REWARD_JUDGE="teacher")
    assert proc.returncode == 2 and "offline teacher cannot judge" in proc.stderr
    proc = run_script("07_rollouts.py", policy_dir, **(ROLLOUT | {"ROLLOUT_STRATEGIES": "cot,magic"}))
    assert proc.returncode == 2 and "ROLLOUT_STRATEGIES" in proc.stderr


@pytest.mark.slow
def test_two_rounds_of_the_loop(policy_dir):
    env = ROLLOUT | {
        "ITERATIONS": "2",
        "LOOP_PATIENCE": "5",
        "PAIR_MODE": "spin",
        "ROLLOUT_QUESTIONS": "8",
        "LOOP_LOSSES": "sigmoid+sft",
        "MAX_STEPS": "2",
        "SELF_REWARD_JUDGE": "none",
        "COUNTERFACTUAL": "0",
        "EVAL_MAX_NEW_TOKENS": "16",
    }
    proc = run_script("loop.py", policy_dir, **env)
    assert proc.returncode == 0, proc.stderr
    ck = policy_dir / "checkpoints/arith"
    state = json.loads((ck / "loop/loop.json").read_text())
    rounds = state["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[0]["policy"] == "phaseB"
    assert set(rounds[1]["candidates"]) == {"sigmoid+sft"}
    assert rounds[2]["policy"] == rounds[1]["checkpoint"]  # round 2 samples from round 1's best
    manifest = json.loads((ck / "loop/round2-sigmoid+sft/train.manifest.json").read_text())
    assert manifest["inputs"]["init_checkpoint"]["path"].endswith("loop/round1-sigmoid+sft")
    assert read_jsonl(policy_dir / "data/arith/loop/round2/preferences.jsonl")
    best = max(rounds[1:], key=lambda r: r["dev_accuracy"])
    if best["dev_accuracy"] <= rounds[0]["dev_accuracy"]:  # no round beat Phase B: it is kept
        best = rounds[0]
    selection = json.loads((ck / "phaseC/selection.json").read_text())
    assert (
        selection["round"] == state["best_round"]
        and selection["dev_accuracy"] == best["dev_accuracy"]
        and selection["spec"]
        == ("phaseB" if best["round"] == 0 else f"loop/round{best['round']}-sigmoid+sft")
    )
    assert (ck / "phaseC/adapter_model.safetensors").is_file()
    assert (ck / "loop/loop.png").stat().st_size > 0


def test_the_teacher_judges_through_the_real_sdk(tmp_path):
    import os

    from fake_api import FakeAPI

    from common.config import load_config
    from common.data.tasks import get_task
    from common.rollout.self_reward import judge_with_teacher

    def reply(prompt: str) -> str:
        return "Accurate and clear. Score: 4" if "<response>right" in prompt else "I cannot rate it."

    with FakeAPI(reply=reply) as api:
        env = {
            "HW": "cpu",
            "TEACHER": "openai",
            "OPENAI_API_KEY": "sk-judge-test-key",
            "OPENAI_BASE_URL": api.openai_url,
            "WORK_DIR": str(tmp_path),
            "LOOPER_ENV_FILE": os.devnull,
        }
        cfg = load_config([], env=env)[0]
        ledger = tmp_path / "judge_cost.jsonl"
        texts = judge_with_teacher(
            cfg, get_task("arith"), [("Q1?", "right: 5"), ("Q2?", "wrong: 7")], ["q1-0", "q2-0"], ledger
        )
    assert [parse_score(t) for t in texts] == [0.8, None]  # the second is unparseable, not 0
    assert len(read_jsonl(ledger, made_by="rollouts")) == 2
    assert "sk-judge-test-key" not in ledger.read_text()


# -- DRAFTS_FROM=policy and QUESTION_WEIGHT ---------------------------------------------------------


def test_question_weight_changes_only_the_rewards_of_questioning_drafts():
    from dataclasses import replace

    ts = [traj(0, "The answer is: 22", "22", True), traj(1, "The answer is: 28", "28", False)]
    weighted = replace(W, question=0.5)
    plain = score_trajectories(ts, "number", {}, [None, None], W, question_score=1.0)
    asked = score_trajectories(ts, "number", {}, [None, None], weighted, question_score=1.0)
    tie = score_trajectories(ts, "number", {}, [None, None], weighted, question_score=0.5)
    silent = score_trajectories(ts, "number", {}, [None, None], weighted, question_score=None)
    unweighted = score_trajectories(ts, "number", {}, [None, None], W)
    for a, p, t, s, u in zip(asked, plain, tie, silent, unweighted, strict=True):
        assert a["reward"] == pytest.approx(p["reward"] + 0.5)  # a won comparison: + weight x 1
        assert t["reward"] == pytest.approx(p["reward"] + 0.25)  # a tie is worth half
        assert s["reward"] == u["reward"] == p["reward"]  # no questions asked: nothing added
        assert 0 <= a["bandit_reward"] <= 1
    assert [t["question_score"] for t in asked] == [1.0, 1.0] and silent[0]["question_score"] is None


def test_question_scores_judge_only_drafts_that_asked_questions(tmp_path):
    import os

    from fake_api import FakeAPI

    from common.config import load_config
    from common.data.tasks import get_task
    from common.eval.question_judge import question_scores

    def reply(prompt: str) -> str:  # prefers the set with "total" in it; babbles on q2
        if "q2?" in prompt:
            return "both are fine"
        a = prompt.split("Set A:")[1].split("Set B:")[0]
        return "Verdict: A" if "total" in a else "Verdict: B"

    questions = [{"id": f"q{i}", "question": f"q{i}?", "answer": "1"} for i in range(4)]
    own = {
        "q0": {"questions": ["What is the total?"]},
        "q1": {"questions": []},  # asked nothing: never judged, never rewarded
        "q2": {"questions": ["What is the total?"]},
        "q3": {"questions": ["Why?"]},
    }
    base = {q["id"]: {"questions": ["What is the total?" if q["id"] == "q3" else "Why?"]} for q in questions}
    with FakeAPI(reply=reply) as api:
        env = {
            "HW": "cpu",
            "TEACHER": "openai",
            "OPENAI_API_KEY": "sk-question-judge-key",
            "OPENAI_BASE_URL": api.openai_url,
            "WORK_DIR": str(tmp_path),
            "LOOPER_ENV_FILE": os.devnull,
        }
        cfg = load_config([], env=env)[0]
        scores = question_scores(cfg, get_task("arith"), questions, own, base, tmp_path / "judge_cost.jsonl")
        judged = len(api.requests)
    assert scores == {"q0": 1.0, "q1": None, "q2": None, "q3": 0.0}
    assert judged == 3 and len(read_jsonl(tmp_path / "judge_cost.jsonl", made_by="rollouts")) == 3


@pytest.mark.slow
def test_policy_drafts_its_own_rollout_prompts(policy_dir):
    d = policy_dir / "data/arith"
    env = ROLLOUT | {
        "DRAFTS_FROM": "policy",
        "SELF_REWARD_JUDGE": "none",
        "COUNTERFACTUAL": "0",
        "ROLLOUT_QUESTIONS": "8",
        "DRAFT_MAX_NEW_TOKENS": "8",
        "DRAFT_TEMPERATURE": "1.0",
    }
    proc = run_script("07_rollouts.py", policy_dir, **env, QUESTION_WEIGHT="1")
    assert proc.returncode == 2 and "QUESTION_WEIGHT needs a model teacher" in proc.stderr
    proc = run_script("07_rollouts.py", policy_dir, **(env | {"DRAFTS_FROM": "base"}), QUESTION_WEIGHT="1")
    assert proc.returncode == 2 and "set DRAFTS_FROM=policy" in proc.stderr
    proc = run_script("07_rollouts.py", policy_dir, **env)
    assert proc.returncode == 0, proc.stderr
    own = {r["id"]: r for r in read_jsonl(d / "policy_drafts.jsonl")}
    base = {r["id"]: r for r in read_jsonl(d / "student_drafts.jsonl")}
    assert len(own) == 8 and all(r["model"].endswith("checkpoints/arith/phaseB") for r in own.values())
    assert any(own[i]["draft"] != base[i]["draft"] for i in own)  # Phase B's drafts, not the base's
    for row in read_jsonl(d / "rollouts.jsonl"):
        assert row["drafts_from"] == "policy"
        for messages in row["prompts"].values():
            assert own[row["id"]]["draft"].strip() in messages[-1]["content"]


@pytest.mark.slow
def test_each_checkpoint_drafts_for_itself_in_eval(policy_dir):
    """Stage 09 with DRAFTS_FROM=policy: Phase B and the base model (given as a folder, trained
    'with drafts') each write their own test drafts, recorded per checkpoint."""
    env = {
        "DRAFTS_FROM": "policy",
        "EVAL_CHECKPOINTS": f"{policy_dir}/checkpoints/tiny-base,phaseB",
        "EVAL_SAMPLES": "6",
        "EVAL_MAX_NEW_TOKENS": "16",
        "EVAL_ABLATIONS": "0",
        "DRAFT_MAX_NEW_TOKENS": "8",
        "DRAFT_TEMPERATURE": "1.0",
    }
    proc = run_script("09_eval_platinum.py", policy_dir, **env)
    assert proc.returncode == 0, proc.stderr
    d, out = policy_dir / "data/arith", policy_dir / "outputs/arith"
    summary = json.loads((out / "summary.json").read_text())
    files = [s["drafts"] for s in summary["checkpoints"].values()]
    assert files == ["data/arith/test_drafts_tiny-base.jsonl", "data/arith/test_drafts_phaseB.jsonl"]
    assert not (d / "test_drafts.jsonl").exists()  # no base-model drafts were needed
    base = {r["id"]: r for r in read_jsonl(d / "test_drafts_tiny-base.jsonl")}
    mine = {r["id"]: r for r in read_jsonl(d / "test_drafts_phaseB.jsonl")}
    assert mine.keys() == base.keys() and len(mine) == 6
    assert any(mine[i]["draft"] != base[i]["draft"] for i in mine)  # different weights, different drafts
    for row in read_jsonl(out / "eval_phaseB.jsonl"):
        assert mine[row["id"]]["draft"].strip() in row["prompt"]
    assert "| phaseC vs phaseB |" in (out / "report.md").read_text()
