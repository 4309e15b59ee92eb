"""Where a rollout's correctness comes from (LABEL_SOURCE): the dataset's gold answer, the teacher's
final answer from stage 03, or the majority answer of the question's own K rollouts
(self-consistency, Wang et al. 2023, arXiv:2203.11171). A question without a label (the teacher
failed on it; the rollouts tie or agree less than MAJORITY_MIN) is counted and gives no pairs.

The answers compared are the ones task.extract_answer reads (the last explicit answer marker), the
same for gold grading, teacher answers and rollout votes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from common.jsonl import read_jsonl

LABEL_SOURCES = ("gold", "teacher", "majority")


def majority_label(preds: list[str | None], min_share: float) -> dict:
    """Self-consistency over one question's K answers: {"label", "status", "agreement"}.

    agreement is the top answer's share of all K samples (an unparsed one votes for nothing). The
    label is None on a tie for the top ("tie"), below min_share ("low_agreement") or with no parsed
    answer ("no_answer"); "ok" otherwise.
    """
    votes = Counter(p for p in preds if p is not None)
    if not votes:
        return {"label": None, "status": "no_answer", "agreement": 0.0}
    ranked = votes.most_common()
    top, count = ranked[0]
    agreement = round(count / len(preds), 4)
    if len(ranked) > 1 and ranked[1][1] == count:
        return {"label": None, "status": "tie", "agreement": agreement}
    if agreement < min_share:
        return {"label": None, "status": "low_agreement", "agreement": agreement}
    return {"label": top, "status": "ok", "agreement": agreement}


def read_teacher_answers(path: Path) -> dict[str, str | None]:
    """Question id -> the teacher's final answer (its majority over TEACHER_ATTEMPTS, as stage 03
    stored it), None where the teacher failed (an error, a refusal, no readable answer)."""
    return {row["id"]: row.get("answer") for row in read_jsonl(path, made_by="teacher")}


def teacher_label(question_id: str, teacher: dict[str, str | None]) -> dict:
    if question_id not in teacher:
        return {"label": None, "status": "no_teacher_row", "agreement": None}
    answer = teacher[question_id]
    return {"label": answer, "status": "ok" if answer is not None else "teacher_failed", "agreement": None}


def question_label(
    source: str, question: dict, preds: list[str | None], teacher: dict | None, min_share: float
) -> dict:
    """The label one question's trajectories are graded against, with how it was decided."""
    if source == "gold":
        return {"label": question["answer"], "status": "ok", "agreement": None}
    if source == "teacher":
        return teacher_label(question["id"], teacher or {})
    return majority_label(preds, min_share)


def apply_label(trajectories: list[dict], label: dict, task) -> None:
    """Grade each trajectory against the label ("correct", which pairs and rewards use). Each
    arrives graded against gold (stage 07's trajectory()); that grade is kept as "gold_correct",
    for reports only. No label: nothing is correct."""
    for t in trajectories:
        t["gold_correct"] = t["correct"]
        t["correct"] = label["label"] is not None and task.is_correct(t["pred"], label["label"])


def label_noise(rows: list[dict], task, teacher: dict | None, min_share: float) -> dict:
    """Per label source, over the rolled-out questions: how many got a label, why the others did
    not, and how often the label agrees with gold. Gold's own row is the reference (agreement 1)."""
    sources = ["gold", "majority"] + (["teacher"] if teacher is not None else [])
    out = {}
    for source in sources:
        labels = [
            question_label(
                source, _as_question(r), [t["pred"] for t in r["trajectories"]], teacher, min_share
            )
            for r in rows
        ]
        labelled = [(r, lab) for r, lab in zip(rows, labels, strict=True) if lab["label"] is not None]
        agree = sum(task.is_correct(lab["label"], r["gold"]) for r, lab in labelled)
        out[source] = {
            "labelled": len(labelled),
            "skipped": dict(sorted(Counter(lab["status"] for lab in labels if lab["label"] is None).items())),
            "agreement_with_gold": round(agree / len(labelled), 4) if labelled else None,
        }
    return out


def _as_question(row: dict) -> dict:
    """The question fields question_label reads, from a rollout row."""
    return {"id": row["id"], "answer": row["gold"]}
