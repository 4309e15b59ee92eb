"""Coherence scores over one question's sampled trajectories (Looper's s_end, s_path, s_wm) and
the correctness-first reward. The seed's own scorer is private; these are this project's
definitions, computed from the final answers and the intermediate numbers of each trajectory.
"""

from __future__ import annotations

from collections import Counter

from common.answers import NUMBER, normalize_number


def intermediate_numbers(text: str) -> set[str]:
    """The numbers a trajectory states along the way (normalised), its final line excluded."""
    body = text.rsplit("\n", 1)[0] if "\n" in text else ""
    found = set()
    for m in NUMBER.finditer(body):
        number = normalize_number(m.group(1)) if any(c.isdigit() for c in m.group(1)) else None
        if number is not None:
            found.add(number)
    return found


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


def reward(correct: bool, coherence: float, length: int, alpha: float, beta: float,
           length_penalty: float) -> float:  # fmt: skip
    """ALPHA_CORRECT * correct + BETA_COHERENCE * s_wm - LENGTH_PENALTY * length."""
    return alpha * float(correct) + beta * coherence - length_penalty * length
