"""PNG plots people would rather look at than read: training curves from a Trainer's log, rollout
score distributions, dev accuracy per round of the loop."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

# (title, [(log key, label)]) per panel; panels whose keys never appear are left out.
PANELS = [
    ("loss", [("loss", "train"), ("eval_loss", "dev")]),
    ("DPO reward margin", [("rewards/margins", "train"), ("eval_rewards/margins", "dev")]),
    ("DPO reward accuracy", [("rewards/accuracies", "train"), ("eval_rewards/accuracies", "dev")]),
    ("implicit rewards", [("rewards/chosen", "chosen"), ("rewards/rejected", "rejected")]),
]


def plot_training_curves(log_history: list[dict], path: Path, title: str) -> Path | None:
    """One panel per metric present in the log, against the optimizer step."""
    panels = [
        (name, series)
        for name, series in PANELS
        if any(key in row for row in log_history for key, _ in series)
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, series) in zip(axes[0], panels, strict=True):
        for key, label in series:
            points = [(row["step"], row[key]) for row in log_history if key in row and "step" in row]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o" if len(points) < 30 else None, ms=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_rollout_scores(rows: list[dict], scores: tuple[str, ...], path: Path) -> Path:
    """One histogram per score, correct and incorrect trajectories overlaid."""
    from common.rollout.report import score_value

    trajectories = [t for r in rows for t in r["trajectories"]]
    fig, axes = plt.subplots(2, (len(scores) + 1) // 2, figsize=(14, 6), squeeze=False)
    for ax, name in zip(axes.flat, scores, strict=False):
        for correct, color in ((True, "tab:green"), (False, "tab:red")):
            values = [score_value(t, name) for t in trajectories if t["correct"] == correct]
            values = [v for v in values if v is not None]
            if values:
                label = "correct" if correct else "incorrect"
                ax.hist(values, bins=20, alpha=0.6, color=color, label=label)
        ax.set_title(name)
    axes.flat[0].legend()
    fig.suptitle("Rollout scores by correctness")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_loop(rounds: list[dict], path: Path) -> Path:
    """Dev accuracy per round of `make loop`: every loss tried, and the one kept."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(
        [r["round"] for r in rounds],
        [r["dev_accuracy"] for r in rounds],
        "o-",
        color="black",
        label="kept (best on dev)",
    )
    losses = sorted({loss for r in rounds for loss in r.get("candidates", {})})
    for loss in losses:
        points = [
            (r["round"], r["candidates"][loss]["dev_accuracy"])
            for r in rounds
            if loss in r.get("candidates", {})
        ]
        ax.plot(*zip(*points, strict=True), "x", ms=7, label=loss)
    ax.set_xlabel("round (0 = starting policy)")
    ax.set_ylabel("dev accuracy")
    ax.set_xticks([r["round"] for r in rounds])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
