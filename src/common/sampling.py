"""Deterministic sampling that keeps the source's class ratio (stratified by label)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict


def class_counts(labels: list[str | None]) -> dict[str, int]:
    return dict(sorted(Counter(label for label in labels if label is not None).items()))


def stratified_indices(labels: list[str | None], n: int, rng: random.Random) -> list[int]:
    """n indices drawn without replacement; with labels, each class gets its share of n
    (largest remainder), so the sample's ratio is within one example of the source's."""
    if n > len(labels):
        raise ValueError(f"asked for {n} of {len(labels)}")
    by_class: dict[str | None, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    total = len(labels)
    exact = {c: n * len(idx) / total for c, idx in by_class.items()}
    quota = {c: int(x) for c, x in exact.items()}
    by_remainder = sorted(by_class, key=lambda c: (-(exact[c] - quota[c]), str(c)))
    for c in by_remainder[: n - sum(quota.values())]:
        quota[c] += 1
    chosen = []
    for c in sorted(by_class, key=str):
        chosen += rng.sample(by_class[c], quota[c])
    rng.shuffle(chosen)
    return chosen
