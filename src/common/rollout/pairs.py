"""Preference pairs from scored rollouts, correctness first: (a) a correct trajectory over an
incorrect one of the same question and prompt, then (b) among correct ones only, the more
coherent over the less when their rewards differ by more than a margin. SPIN mode pairs the
Phase B target (gold-led teacher reasoning) over the policy's own answers instead.
Optionally (REJECTED_CUT=first_error) an incorrect answer is cut after its first wrong step.
"""

from __future__ import annotations

import random
from collections import defaultdict

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
        for pair, (chosen, _) in zip(pairs, correctness, strict=True):
            right = [t["text"] for t in groups[chosen["strategy"]] if t["correct"]]
            cut = cut_at_first_error(pair["rejected"][0]["content"], right)
            pair["rejected_cut"] = cut is not None
            if cut is not None:
                pair["rejected"][0]["content"] = cut
    # A coherence pair's rejected answer is correct: never cut.
    pairs += [
        _record(row, c, w, "coherence") | ({"rejected_cut": False} if cut_rejected else {})
        for c, w in coherence
    ]
    return pairs, outcome_counts(row) | {"ties_dropped": ties}


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
