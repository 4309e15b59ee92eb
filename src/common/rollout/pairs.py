"""Preference pairs from scored rollouts, correctness first: (a) a correct trajectory over an
incorrect one of the same question and prompt, then (b) among correct ones only, the more
coherent over the less when their rewards differ by more than a margin. SPIN mode pairs the
Phase B target (gold-led teacher reasoning) over the policy's own answers instead.
Optionally (REJECTED_CUT=first_error) an incorrect answer is cut after its first wrong step.

PAIR_SOURCE picks other signals: the self-reward judge (judge_pairs: Self-Rewarding LMs, Yuan et
al. 2024, with the policy as judge; RLAIF, Lee et al. 2023, with the teacher), the trajectory
composite score (composite_pairs), or correctness pairs followed by judge pairs among equally
correct trajectories (both_pairs).
"""

from __future__ import annotations

import random
from collections import defaultdict

from common.config import RolloutSection
from common.data.answers import numbers_in
from common.data.records import preference_record


def _pick(candidates: list[tuple[dict, dict]], cap: int) -> list[tuple[dict, dict]]:
    """Up to `cap` pairs in the given order, first using each trajectory at most once so one
    sample does not dominate the question's pairs, then filling from the rest."""
    out, used = [], set()
    for spread in (True, False):
        for chosen, rejected in candidates:
            if len(out) >= cap:
                return out
            ks = {chosen["k"], rejected["k"]}
            if (chosen, rejected) in out or (spread and ks & used):
                continue
            out.append((chosen, rejected))
            used |= ks
    return out


def cut_at_first_error(text: str, correct_texts: list[str]) -> str | None:
    """The text up to and including its first wrong step, or None if no step is found wrong.

    A step is a line, and what it claims is the numbers it states, in order ("7 + 6 = 14." claims
    7, 6, 14). A step is wrong when no line of any correct answer to the same question makes the
    same claim; a line without numbers claims nothing. The steps after the first error usually
    compute correctly from a wrong value, so DPO on the whole answer would push those down too.
    """
    supported = {tuple(numbers_in(line)) for t in correct_texts for line in t.split("\n")}
    lines = text.split("\n")
    for i, line in enumerate(lines):
        claim = tuple(numbers_in(line))
        if claim and claim not in supported:
            return "\n".join(lines[: i + 1]) + ("\n" if i + 1 < len(lines) else "")
    return None


def cut_rejected_answers(pairs: list[dict], groups: list[list[dict]]) -> None:
    """REJECTED_CUT=first_error: each correctness pair's rejected answer ends at its first wrong
    step, judged against the correct answers of its prompt's group (pairs[i] came from groups[i])."""
    for pair, group in zip(pairs, groups, strict=True):
        cut = cut_at_first_error(pair["rejected"][0]["content"], [t["text"] for t in group if t["correct"]])
        pair["rejected_cut"] = cut is not None
        if cut is not None:
            pair["rejected"][0]["content"] = cut


def correctness_first_pairs(
    row: dict, cap: int, margin: float, seed: int, cut_rejected: bool = False
) -> tuple[list, dict]:
    """(pair records, counts) for one rollout row; the same row and seed give the same pairs.
    With cut_rejected, a correctness pair's rejected answer ends at its first wrong step
    (cut_at_first_error) and the record says rejected_cut=True."""
    rng = random.Random(f"{seed}:{row['id']}")
    groups = defaultdict(list)  # a pair's two answers must follow the same prompt
    for t in row["trajectories"]:
        groups[t["strategy"]].append(t)
    correctness, coherence, ties = [], [], 0
    for strategy in sorted(groups):
        right = [t for t in groups[strategy] if t["correct"]]
        wrong = [t for t in groups[strategy] if not t["correct"]]
        for c in right:
            for w in wrong:
                correctness.append((c["reward"] - w["reward"], rng.random(), c, w))
        for i, a in enumerate(right):
            for b in right[i + 1 :]:
                hi, lo = (a, b) if a["reward"] >= b["reward"] else (b, a)
                gap = hi["reward"] - lo["reward"]
                if gap == 0 or hi["text"] == lo["text"]:
                    ties += 1
                elif gap > margin:
                    coherence.append((gap, rng.random(), hi, lo))
    # Widest reward gaps first; the random key only breaks exact ties, reproducibly.
    correctness = _pick([(c, w) for *_, c, w in sorted(correctness, key=lambda x: (-x[0], x[1]))], cap)
    room = cap - len(correctness)
    coherence = (
        _pick([(c, w) for *_, c, w in sorted(coherence, key=lambda x: (-x[0], x[1]))], room) if room else []
    )
    pairs = [_record(row, c, w, "correctness") for c, w in correctness]
    if cut_rejected:
        cut_rejected_answers(pairs, [groups[c["strategy"]] for c, _ in correctness])
    # A coherence pair's rejected answer is correct: never cut.
    pairs += [
        _record(row, c, w, "coherence") | ({"rejected_cut": False} if cut_rejected else {})
        for c, w in coherence
    ]
    return pairs, outcome_counts(row) | {"ties_dropped": ties}


def _same_prompt_groups(row: dict) -> list[list[dict]]:
    """The question's trajectories grouped by strategy, in a fixed order: a pair's two answers
    must follow the same prompt."""
    groups = defaultdict(list)
    for t in row["trajectories"]:
        groups[t["strategy"]].append(t)
    return [groups[s] for s in sorted(groups)]


def _ranked(trajectories: list[dict], score, margin: float, rng: random.Random) -> tuple[list, int]:
    """(gap, tie-break, higher, lower) for every two trajectories whose scores differ by at least
    `margin` (and more than 0), plus how many pairs were ties. A None score is never paired."""
    scored = [t for t in trajectories if score(t) is not None]
    out, ties = [], 0
    for i, a in enumerate(scored):
        for b in scored[i + 1 :]:
            hi, lo = (a, b) if score(a) >= score(b) else (b, a)
            gap = score(hi) - score(lo)
            if gap == 0 or hi["text"] == lo["text"]:
                ties += 1
            elif gap >= margin - 1e-9:  # judge scores are fifths: 4/5 - 3/5 is 0.19999...
                out.append((gap, rng.random(), hi, lo))
    return out, ties


def _widest_first(candidates: list, cap: int) -> list[tuple[dict, dict]]:
    """Widest score gaps first (the best against the worst); the random key breaks exact ties."""
    return _pick([(c, w) for *_, c, w in sorted(candidates, key=lambda x: (-x[0], x[1]))], cap)


def judge_pairs(row: dict, cap: int, margin: float, seed: int) -> tuple[list, dict]:
    """Pairs by the self-reward judge alone: within each prompt, the higher-scored trajectory over
    the lower when the gap is at least `margin`, best against worst first. Trajectories whose
    judgement did not parse (self_reward None) are skipped and counted."""
    rng = random.Random(f"{seed}:{row['id']}:judge")
    candidates, ties = [], 0
    for group in _same_prompt_groups(row):
        found, tied = _ranked(group, lambda t: t.get("self_reward"), margin, rng)
        candidates += found
        ties += tied
    pairs = [_record(row, c, w, "judge") for c, w in _widest_first(candidates, cap)]
    unparseable = sum(t.get("judge_status") == "unparseable" for t in row["trajectories"])
    return pairs, outcome_counts(row) | {"ties_dropped": ties, "judge_unparseable_skipped": unparseable}


def composite_pairs(row: dict, cap: int, margin: float, seed: int) -> tuple[list, dict]:
    """Pairs ranked by the trajectory composite score (success, efficiency, cost): within each
    prompt, the higher total over the lower when the gap is at least `margin`."""
    rng = random.Random(f"{seed}:{row['id']}:composite")
    candidates, ties = [], 0
    for group in _same_prompt_groups(row):
        found, tied = _ranked(group, lambda t: t["composite"]["total"], margin, rng)
        candidates += found
        ties += tied
    pairs = [_record(row, c, w, "composite") for c, w in _widest_first(candidates, cap)]
    return pairs, outcome_counts(row) | {"ties_dropped": ties}


def both_pairs(
    row: dict, cap: int, judge_margin: float, seed: int, cut_rejected: bool = False
) -> tuple[list, dict]:
    """Correctness pairs first (correct over incorrect, widest reward gap first; cut as
    correctness_first_pairs cuts them), then, with the room left, judge pairs among equally correct
    trajectories (both right or both wrong)."""
    rng = random.Random(f"{seed}:{row['id']}:both")
    correctness, judged, ties, group_of = [], [], 0, {}
    for group in _same_prompt_groups(row):
        group_of |= {id(t): group for t in group}
        right = [t for t in group if t["correct"]]
        wrong = [t for t in group if not t["correct"]]
        correctness += [(c["reward"] - w["reward"], rng.random(), c, w) for c in right for w in wrong]
        for same in (right, wrong):
            found, tied = _ranked(same, lambda t: t.get("self_reward"), judge_margin, rng)
            judged += found
            ties += tied
    first = _widest_first(correctness, cap)
    room = cap - len(first)
    pairs = [_record(row, c, w, "correctness") for c, w in first]
    if cut_rejected:
        cut_rejected_answers(pairs, [group_of[id(c)] for c, _ in first])
    pairs += [_record(row, c, w, "judge") for c, w in (_widest_first(judged, room) if room else [])]
    unparseable = sum(t.get("judge_status") == "unparseable" for t in row["trajectories"])
    return pairs, outcome_counts(row) | {"ties_dropped": ties, "judge_unparseable_skipped": unparseable}


def question_pairs(row: dict, r: RolloutSection, seed: int) -> tuple[list, dict]:
    """One question's pairs from PAIR_SOURCE. A question left without a label (LABEL_SOURCE
    teacher or majority) gives none, except by the judge alone, which never reads correctness."""
    label = row.get("label", {"label": row["gold"]})  # rows made before label sources: gold
    if r.pair_source != "judge" and label["label"] is None:
        return [], outcome_counts(row) | {"unlabelled": label["status"]}
    if r.pair_source == "judge":
        return judge_pairs(row, r.pairs_per_question, r.judge_margin, seed)
    if r.pair_source == "composite":
        return composite_pairs(row, r.pairs_per_question, r.coherence_margin, seed)
    if r.pair_source == "both":
        return both_pairs(row, r.pairs_per_question, r.judge_margin, seed, r.rejected_cut == "first_error")
    return correctness_first_pairs(
        row, r.pairs_per_question, r.coherence_margin, seed, r.rejected_cut == "first_error"
    )


def outcome_counts(row: dict) -> dict:
    """Whether every trajectory of the question was correct, or none: no correctness pair then."""
    n_right = sum(t["correct"] for t in row["trajectories"])
    return {"all_correct": n_right == len(row["trajectories"]), "all_wrong": n_right == 0}


def spin_pairs(row: dict, target: dict | None, cap: int) -> list[dict]:
    """SPIN: the Phase B training target chosen over the policy's own trajectories that were
    sampled from the very same prompt (lowest reward first); none without a target."""
    if target is None:
        return []
    chosen = target["completion"][0]["content"]
    own = [
        t
        for t in row["trajectories"]
        if row["prompts"][t["strategy"]] == target["prompt"] and t["text"] != chosen
    ]
    own.sort(key=lambda t: (t["reward"], t["k"]))
    return [
        preference_record(
            f"{row['id']}-spin{t['k']}",
            target["prompt"],
            chosen,
            t["text"],
            "spin",
            question_id=row["id"],
            rejected_arm=t["arm"],
            rejected_correct=t["correct"],
        )
        for t in own[:cap]
    ]


def _record(row: dict, chosen: dict, rejected: dict, pair_type: str) -> dict:
    return preference_record(
        f"{row['id']}-{chosen['k']}-{rejected['k']}",
        row["prompts"][chosen["strategy"]],
        chosen["text"],
        rejected["text"],
        pair_type,
        question_id=row["id"],
        chosen_arm=chosen["arm"],
        rejected_arm=rejected["arm"],
        chosen_reward=chosen["reward"],
        rejected_reward=rejected["reward"],
    )
