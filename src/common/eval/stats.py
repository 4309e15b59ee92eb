"""Honest statistics for accuracy claims: Wilson intervals and the exact McNemar test."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def mcnemar_exact(a_correct: list[bool], b_correct: list[bool]) -> dict:
    """Paired comparison of two checkpoints on the same questions: the discordant counts and the
    exact two-sided McNemar p-value (a binomial test on the discordant pairs)."""
    if len(a_correct) != len(b_correct):
        raise ValueError("paired comparison needs the same questions for both checkpoints")
    only_a = sum(a and not b for a, b in zip(a_correct, b_correct, strict=True))
    only_b = sum(b and not a for a, b in zip(a_correct, b_correct, strict=True))
    n = only_a + only_b
    if n == 0:
        return {"only_a": 0, "only_b": 0, "p_value": 1.0}
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return {"only_a": only_a, "only_b": only_b, "p_value": min(1.0, 2 * tail)}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021, arXiv:2107.03374):
    1 - C(n-c, k) / C(n, k), in their numerically stable product form."""
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (n, c, k)):
        raise ValueError(f"pass_at_k needs integers, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1 or k < 1 or k > n or not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
