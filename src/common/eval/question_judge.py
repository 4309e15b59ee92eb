"""The clarifying-question check: a teacher model judges, question by question,
whether the trained student's clarifying questions or the base model's would help more.
Sides are shuffled per question so the judge's position bias cancels out."""

from __future__ import annotations

import random
import re
from pathlib import Path

from common.config import Config
from common.teacher.backends import Job, Reply
from common.teacher.runner import ask_configured_teacher

JUDGE_PROMPT = (
    "A student must answer this question:\n{question}\n\nBefore answering, two students wrote "
    "down clarifying questions.\n\nSet A:\n{a}\n\nSet B:\n{b}\n\nWhich set would help more to "
    "answer the question correctly? Reply with 'Verdict: A', 'Verdict: B' or 'Verdict: tie'."
)


def judge_messages(question: str, set_a: list[str], set_b: list[str]) -> list[dict]:
    def show(qs: list[str]) -> str:
        return "\n".join(f"- {q}" for q in qs) or "(no questions)"

    return [
        {
            "role": "user",
            "content": JUDGE_PROMPT.format(question=question, a=show(set_a), b=show(set_b)),
        }
    ]


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'tie'; None when the judge's reply can't be read (excluded, never a win)."""
    m = re.search(r"verdict\s*:\s*\**\s*(A|B|tie)\b", text, re.IGNORECASE)
    if not m:
        return None
    v = m.group(1)
    return "tie" if v.lower() == "tie" else v.upper()


def judge_question_sets(
    cfg: Config, task, questions: list[dict], trained: dict, base: dict, ledger: Path, desc: str = "judge"
) -> dict[str, str | None]:
    """{id: "win" | "loss" | "tie" | None}: the trained side's result on each question, None where
    the verdict could not be read. Needs a model teacher (TEACHER=openai|anthropic)."""
    rng = random.Random(cfg.run.random_seed)
    jobs, trained_side = [], {}
    for q in questions:
        mine, theirs = trained[q["id"]]["questions"], base[q["id"]]["questions"]
        trained_side[q["id"]] = "A" if rng.random() < 0.5 else "B"
        a, b = (mine, theirs) if trained_side[q["id"]] == "A" else (theirs, mine)
        jobs.append(Job(q["id"], 0, judge_messages(q["question"], a, b), q))
    verdicts: dict[str, str | None] = {}

    def on_reply(job: Job, reply: Reply) -> None:
        verdicts[job.id] = parse_verdict(reply.text) if reply.status == "ok" else None

    ask_configured_teacher(cfg.teacher, task, cfg.run.random_seed, jobs, on_reply, ledger, desc=desc)
    results: dict[str, str | None] = {}
    for i, side in trained_side.items():
        v = verdicts.get(i)
        results[i] = None if v is None else "tie" if v == "tie" else "win" if v == side else "loss"
    return results


# The question judge's verdict as a reward term (QUESTION_WEIGHT): a tie is worth half a win.
VERDICT_SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def question_scores(
    cfg: Config, task, questions: list[dict], own: dict, base: dict, ledger: Path
) -> dict[str, float | None]:
    """Per question, the judge's score of the policy's own clarifying questions against the base
    student's: 1 win, 0.5 tie, 0 loss; None where its draft asked no questions (nothing to reward)
    or the verdict could not be read."""
    asked = [q for q in questions if own[q["id"]]["questions"]]
    results = judge_question_sets(cfg, task, asked, own, base, ledger, desc="question judge")
    return {q["id"]: VERDICT_SCORE.get(results.get(q["id"])) for q in questions}


def question_win_rate(
    cfg: Config, task, questions: list[dict], trained: dict, base: dict, ledger: Path
) -> dict:
    """Win rate of the trained model's clarifying questions over the base model's."""
    if cfg.teacher.backend == "offline":
        return {"note": "not measured: TEACHER=offline cannot judge; set TEACHER=openai or anthropic."}
    results = judge_question_sets(cfg, task, questions, trained, base, ledger)
    wins = sum(r == "win" for r in results.values())
    ties = sum(r == "tie" for r in results.values())
    unreadable = sum(r is None for r in results.values())
    decided = len(results) - ties - unreadable
    rate = wins / decided if decided else None
    return {
        "n": len(results),
        "wins": wins,
        "losses": decided - wins,
        "ties": ties,
        "unreadable": unreadable,
        "win_rate": rate,
        "note": (
            f"the trained model's clarifying questions won {wins} of {decided} decided "
            f"comparisons ({rate:.0%}; {ties} ties, {unreadable} unreadable verdicts excluded)"
            if decided
            else "no decided comparisons."
        ),
    }
