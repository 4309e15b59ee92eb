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


def rebalance(
    rows: list[dict],
    labels: list[str],
    target: dict[str, float],
    mode: str,
    rng: random.Random,
) -> list[dict]:
    """Bring the label ratio back to `target` (fractions per label).

    upsample: keep every row and repeat rows of short classes (ids get '#dupN');
    downsample: drop rows of over-full classes. Deterministic for a given rng.
    """
    if mode == "none":
        return list(rows)
    by_class: dict[str, list[dict]] = defaultdict(list)
    for row, label in zip(rows, labels, strict=True):
        by_class[label].append(row)
    present = [c for c in target if target[c] > 0 and by_class.get(c)]
    scale = [len(by_class[c]) / target[c] for c in present]
    total = max(scale) if mode == "upsample" else min(scale)
    out = []
    for c in sorted(by_class):
        rows_c = by_class[c]
        want = round(total * target.get(c, 0)) if c in present else len(rows_c)
        if want <= len(rows_c):
            out += rng.sample(rows_c, want) if mode == "downsample" else rows_c
            continue
        out += rows_c
        shuffled = rng.sample(rows_c, len(rows_c))  # whole cycles: no row repeated twice first
        for k in range(want - len(rows_c)):
            row = shuffled[k % len(rows_c)]
            out.append(row | {"id": f"{row['id']}#dup{k // len(rows_c) + 1}"})
    rng.shuffle(out)
    return out
