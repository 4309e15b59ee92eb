"""PNG plots people would rather look at than read: training curves from a Trainer's log."""

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
    panels = [(name, series) for name, series in PANELS
              if any(key in row for row in log_history for key, _ in series)]  # fmt: skip
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, series) in zip(axes[0], panels, strict=True):
        for key, label in series:
            points = [
                (row["step"], row[key]) for row in log_history if key in row and "step" in row
            ]
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
