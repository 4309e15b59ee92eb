"""What stage 07 saw: per-arm pulls, reward and accuracy, pair counts by type, score
distributions, how often the self-reward judge agrees with correctness, and what each label
source would cost in label noise (its agreement with gold).

Accuracies, score splits and judge agreement are measured against gold ("gold_correct"), whatever
LABEL_SOURCE graded the trajectories with for training."""

from __future__ import annotations

import statistics
from collections import Counter

SCORES = ("s_end", "s_path", "s_cf", "s_wm", "reward", "length", "self_reward", "composite_total")


def right(t: dict) -> bool:
    """Correct against gold (rows made before label sources carry only "correct", gold's)."""
    return t.get("gold_correct", t["correct"])


def score_value(t: dict, name: str):
    return t["composite"]["total"] if name == "composite_total" else t.get(name)


def _dist(values: list[float]) -> dict | None:
    if not values:
        return None
    q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 4),
        "p10": round(q[0], 4),
        "p50": round(statistics.median(values), 4),
        "p90": round(q[-1], 4),
    }


def judge_agreement(rows: list[dict]) -> dict:
    """Within each question, over every (correct, incorrect) pair of trajectories that both have a
    parsed score: how often the judge scores the correct one higher (a tie counts half)."""
    status = Counter(t["judge_status"] for r in rows for t in r["trajectories"])
    wins = pairs = 0.0
    for r in rows:
        scored = [t for t in r["trajectories"] if t["self_reward"] is not None]
        for c in (t for t in scored if right(t)):
            for w in (t for t in scored if not right(t)):
                pairs += 1
                wins += (
                    1.0
                    if c["self_reward"] > w["self_reward"]
                    else 0.5 * (c["self_reward"] == w["self_reward"])
                )
    return {
        "judged": status["ok"],
        "unparseable": status["unparseable"],
        "not_judged": status["not_judged"],
        "pairs": int(pairs),
        "agreement": round(wins / pairs, 4) if pairs else None,
    }


def build_rollout_report(
    rows: list[dict], pairs: list[dict], counts: list[dict], bandit_state: dict, labels: dict | None = None
) -> dict:
    trajectories = [t for r in rows for t in r["trajectories"]]
    arms = {}
    for i, arm in enumerate(bandit_state["arms"]):
        mine = [t for t in trajectories if t["arm"] == arm]
        arms[arm] = {
            "pulls": bandit_state["pulls"][i],
            "mean_bandit_reward": bandit_state["mean_reward"][i],
            "mean_reward": round(statistics.fmean(t["reward"] for t in mine), 4) if mine else None,
            "accuracy": round(sum(right(t) for t in mine) / len(mine), 4) if mine else None,
        }
        if mine and "outcome" in mine[0]:  # code: how the arm's programs ended under their tests
            arms[arm]["outcomes"] = dict(Counter(t["outcome"] for t in mine).most_common())
    by_type = Counter(p["pair_type"] for p in pairs)
    scores = {}
    for name in SCORES:
        values = [(score_value(t, name), right(t)) for t in trajectories]
        values = [(v, c) for v, c in values if v is not None]
        scores[name] = {
            "all": _dist([v for v, _ in values]),
            "correct": _dist([v for v, c in values if c]),
            "incorrect": _dist([v for v, c in values if not c]),
        }
    cut = sum(p.get("rejected_cut", False) for p in pairs)  # REJECTED_CUT=first_error
    unlabelled = Counter(c["unlabelled"] for c in counts if c.get("unlabelled"))
    return {
        "questions": len(rows),
        "trajectories": len(trajectories),
        "trajectory_accuracy": round(sum(right(t) for t in trajectories) / len(trajectories), 4)
        if trajectories
        else None,
        "pass_at_k": round(sum(any(right(t) for t in r["trajectories"]) for r in rows) / len(rows), 4)
        if rows
        else None,
        "all_correct_questions": sum(c.get("all_correct", False) for c in counts),
        "all_wrong_questions": sum(c.get("all_wrong", False) for c in counts),
        "ties_dropped": sum(c.get("ties_dropped", 0) for c in counts),
        "pairs": {
            "total": len(pairs),
            **dict(sorted(by_type.items())),
            **({"rejected_cut": cut} if cut else {}),
        },
        "bandit": {"method": bandit_state["method"], "arms": arms},
        "scores": scores,
        "judge": judge_agreement(rows),
        "labels": (labels or {}) | {"unlabelled_questions": dict(sorted(unlabelled.items()))},
    }


def render_markdown(report: dict) -> str:
    lines = [
        "# Rollouts (stage 07)",
        "",
        f"{report['questions']} questions, {report['trajectories']} trajectories; "
        f"trajectory accuracy {report['trajectory_accuracy']}, pass@K {report['pass_at_k']}.",
        f"Questions with every trajectory correct: {report['all_correct_questions']}; "
        f"every trajectory wrong: {report['all_wrong_questions']} (neither gives a "
        f"correctness pair). Ties dropped: {report['ties_dropped']}.",
        "",
        "## Pairs",
        "",
        "| type | count |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in report["pairs"].items()]
    lines += [
        "",
        f"## Arms ({report['bandit']['method']})",
        "",
        "| arm | pulls | mean bandit reward | mean reward | accuracy |",
        "|---|---|---|---|---|",
    ]
    for arm, a in report["bandit"]["arms"].items():
        lines.append(
            f"| {arm} | {a['pulls']} | {a['mean_bandit_reward']} | {a['mean_reward']} | {a['accuracy']} |"
        )
    outcomes = {arm: a["outcomes"] for arm, a in report["bandit"]["arms"].items() if "outcomes" in a}
    if outcomes:
        kinds = sorted({k for o in outcomes.values() for k in o})
        lines += ["", "Programs by how they ended under their tests (pass rate is the accuracy above):", ""]
        lines += [f"| arm | {' | '.join(kinds)} |", "|---" * (len(kinds) + 1) + "|"]
        lines += [f"| {arm} | {' | '.join(str(o.get(k, 0)) for k in kinds)} |" for arm, o in outcomes.items()]
    lines += [
        "",
        "## Scores (mean; correct vs incorrect trajectories)",
        "",
        "| score | all | correct | incorrect |",
        "|---|---|---|---|",
    ]
    for name, d in report["scores"].items():
        cells = [d[k]["mean"] if d[k] else "-" for k in ("all", "correct", "incorrect")]
        lines.append(f"| {name} | " + " | ".join(str(c) for c in cells) + " |")
    j = report["judge"]
    lines += [
        "",
        "## Self-reward judge",
        "",
        f"Judged {j['judged']}, unparseable {j['unparseable']} (excluded), not judged "
        f"{j['not_judged']}. Agreement with correctness over {j['pairs']} within-question "
        f"(correct, incorrect) pairs: {j['agreement']}.",
    ]
    lines += _label_lines(report.get("labels", {}))
    return "\n".join(lines) + "\n"


def _label_lines(labels: dict) -> list[str]:
    """The label source used, the questions it left without pairs, and the label-noise table."""
    if "source" not in labels:
        return []
    skipped = labels["unlabelled_questions"]
    lines = [
        "",
        f"## Labels (LABEL_SOURCE={labels['source']})",
        "",
        "Questions without a label (no pairs): "
        + (", ".join(f"{k} {v}" for k, v in skipped.items()) if skipped else "none")
        + ".",
        "",
        f"Label noise: each source's labels against gold (majority needs MAJORITY_MIN="
        f"{labels['majority_min']:g} agreement and no tie).",
        "",
        "| source | questions labelled | skipped | agreement with gold |",
        "|---|---|---|---|",
    ]
    for source, n in labels["noise"].items():
        why = ", ".join(f"{k} {v}" for k, v in n["skipped"].items()) or "0"
        lines.append(f"| {source} | {n['labelled']} | {why} | {n['agreement_with_gold']} |")
    return lines
