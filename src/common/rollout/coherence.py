"""Coherence scores over one question's sampled trajectories, and the correctness-first reward.

The four scores, each in [0, 1], are this project's own definitions:
- s_end, end agreement: the share of the question's trajectories with the same final answer
  (self-consistency, Wang et al. 2023);
- s_path, path agreement: the Jaccard overlap of the trajectory's intermediate results (numbers,
  or claims for yes/no) with the majority path, the results at least half the trajectories state;
- s_cf, counterfactual consistency: re-asked paraphrased the answer must stay, re-asked with a
  number changed it must move;
- s_wm, the weighted mean of the three (COHERENCE_WEIGHTS), the coherence term of the reward.
"""

from __future__ import annotations

import re
from collections import Counter

from common.data.answers import numbers_in


def intermediate_numbers(text: str) -> set[str]:
    """The numbers a trajectory states along the way (normalised), its final line excluded."""
    body = text.rsplit("\n", 1)[0] if "\n" in text else ""
    return set(numbers_in(body))


def intermediate_claims(text: str) -> set[str]:
    """The statements a yes/no trajectory makes along the way: its lines, lower-cased, without
    punctuation or numbering, the final line excluded."""
    lines = text.splitlines()[:-1]
    claims = {
        re.sub(r"[^a-z0-9 ]", "", re.sub(r"^\W*(\d+[.)]|[qa]\d+:)?", "", ln.lower())).strip() for ln in lines
    }
    return {c for c in claims if c}


def path_items(text: str, answer_kind: str) -> set[str]:
    """Intermediate results to compare paths by: numbers for numeric tasks, claims for yes/no."""
    return intermediate_numbers(text) if answer_kind == "number" else intermediate_claims(text)


# A lead-in that cannot change what is asked: the "stay" probe of s_cf.
PARAPHRASE_LEAD = "Read the problem carefully before answering. "
_FIRST_INT = re.compile(r"(?<![\d.,])(\d+)(?![\d.,]\d)")


def counterfactual_probes(question: str, answer_kind: str) -> dict[str, str]:
    """Re-asks of a question for s_cf: "stay" (a paraphrase; the answer must not change) and, for
    numeric tasks, "move" (the first whole number raised by one; the answer must change)."""
    probes = {"stay": PARAPHRASE_LEAD + question}
    m = _FIRST_INT.search(question)
    if answer_kind == "number" and m:
        probes["move"] = question[: m.start()] + str(int(m.group(1)) + 1) + question[m.end() :]
    return probes


def s_cf(answer: str | None, probe_answers: dict[str, str | None]) -> float | None:
    """The share of probes a trajectory's answer is consistent with: the paraphrase's answer
    equals it, the perturbed question's answer differs from it. None without probes."""
    if not probe_answers:
        return None
    if answer is None:
        return 0.0
    checks = []
    if "stay" in probe_answers:
        checks.append(probe_answers["stay"] == answer)
    if "move" in probe_answers:
        checks.append(probe_answers["move"] is not None and probe_answers["move"] != answer)
    return sum(checks) / len(checks)


def s_end(answers: list[str | None]) -> list[float]:
    """Self-consistency: the share of the question's trajectories with the same final answer
    (an unparseable answer agrees with nothing)."""
    counts = Counter(a for a in answers if a is not None)
    return [counts[a] / len(answers) if a is not None else 0.0 for a in answers]


def s_path(paths: list[set[str]]) -> list[float]:
    """Agreement of each trajectory's intermediate results with the majority path: the numbers
    that at least half of the trajectories state. 1.0 when there is no majority path."""
    counts = Counter(n for path in paths for n in path)
    majority = {n for n, c in counts.items() if c * 2 >= len(paths)}
    if not majority:
        return [1.0] * len(paths)
    return [len(path & majority) / len(path | majority) for path in paths]


def s_wm(end: float, path: float, cf: float | None, weights: tuple[float, float, float]) -> float:
    """Weighted coherence; a missing counterfactual score drops out and the rest renormalise."""
    parts = [(end, weights[0]), (path, weights[1])] + ([(cf, weights[2])] if cf is not None else [])
    total = sum(w for _, w in parts)
    return sum(v * w for v, w in parts) / total if total else 0.0


def reward(
    correct: bool, coherence: float, length: int, alpha: float, beta: float, length_penalty: float
) -> float:
    """ALPHA_CORRECT * correct + BETA_COHERENCE * s_wm - LENGTH_PENALTY * length."""
    return alpha * float(correct) + beta * coherence - length_penalty * length
