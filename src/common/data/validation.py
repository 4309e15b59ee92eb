"""Validate teacher outputs against gold: one reason code per question, and the data report."""

from __future__ import annotations

import statistics
from collections import Counter

from common.data.tasks import Task

REASONS = ("ok", "unparseable", "wrong", "refused", "empty", "api_error")


def reason(task: Task, row: dict) -> str:
    """ok | unparseable | wrong | refused | empty | api_error for one teacher_outputs row."""
    if row["status"] != "ok":
        return row["status"]
    if row["answer"] is None:
        return "unparseable"
    return "ok" if task.is_correct(row["answer"], row["gold"]) else "wrong"


def length_stats(lengths: list[int], limit: int) -> dict:
    if not lengths:
        return {}
    ordered = sorted(lengths)
    return {
        "n": len(ordered),
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 1),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
        "over_max_length": sum(n > limit for n in ordered),
    }


def class_share(labels: list[str | None]) -> dict[str, float]:
    counts = Counter(label for label in labels if label is not None)
    total = sum(counts.values())
    return {c: round(n / total, 4) for c, n in sorted(counts.items())} if total else {}


def agreement_stats(rows: list[dict]) -> dict:
    multi = [r for r in rows if len(r.get("attempts", [])) > 1]
    if not multi:
        return {}
    values = [r["agreement"] for r in multi]
    return {
        "questions": len(multi),
        "mean_agreement": round(statistics.fmean(values), 4),
        "unanimous": sum(v == 1.0 for v in values),
    }
