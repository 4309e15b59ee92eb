"""The report's targets, each judged from summary.json alone: met, not met, or not measured, and why.

A gain between two checkpoints is met when it reaches its target in points with an exact McNemar
p < 0.05 on the same questions; the attribution share and the question win rate are met when they
reach their target (they have no paired test). A target whose measurement is missing is never
guessed: its row says what was not run and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config import EvalSection

ALPHA = 0.05  # significance level of every paired gain


@dataclass(frozen=True)
class Target:
    name: str  # what is compared, e.g. "phaseC vs phaseA"
    wanted: str  # the target in words, e.g. "≥ phaseA + 10 pts, p < 0.05"
    actual: str  # what was measured ("—" when nothing was)
    status: str  # met | not met | not measured
    why: str  # the numbers behind the status, or why it was not measured


def pts(x: float) -> str:
    return f"{100 * x:+.1f} pts"


def judge_gain(name: str, gain: float, p: float, target: float, wanted: str) -> Target:
    """A paired gain (a fraction of the questions) against a target in points."""
    met = 100 * gain >= target and p < ALPHA
    if met:
        why = f"gain {pts(gain)} ≥ {target:g} pts, p = {p:.3g}"
    elif 100 * gain < target:
        why = f"gain {pts(gain)} < {target:g} pts"
    else:
        why = f"gain {pts(gain)} but p = {p:.3g} ≥ {ALPHA:g}"
    return Target(name, wanted, f"{pts(gain)} (p = {p:.3g})", "met" if met else "not met", why)


def not_measured(name: str, wanted: str, why: str) -> Target:
    return Target(name, wanted, "—", "not measured", why)


def phase_gain(summary: dict, ref: str, name: str, target: float) -> Target:
    """`name` against `ref`: both evaluated on the same questions, with their McNemar test."""
    ckpts, comps = summary["checkpoints"], summary.get("comparisons", {})
    label, wanted = f"{name} vs {ref}", f"≥ {ref} + {target:g} pts, p < {ALPHA:g}"
    missing = [c for c in (ref, name) if c not in ckpts]
    if missing:
        return not_measured(label, wanted, f"{' and '.join(missing)} not evaluated (EVAL_CHECKPOINTS)")
    comp = comps.get(f"{ref}->{name}")
    if comp is None:
        return not_measured(label, wanted, f"no paired test of {ref} and {name}; rerun `make eval`")
    gain = ckpts[name]["accuracy"] - ckpts[ref]["accuracy"]
    return judge_gain(label, gain, comp["p_value"], target, wanted)


def ablation_note(summary: dict) -> str | None:
    """Why the draft ablations did not run on Phase C, or None when they did."""
    ablations = summary.get("ablations") or {}
    if not ablations.get("variants"):
        return ablations.get("note", "Not run.").removeprefix("Not run: ").rstrip(".")
    if ablations.get("checkpoint") != "phaseC":
        return (
            f"the ablations ran on {ablations.get('checkpoint')}, the last checkpoint evaluated, not phaseC"
        )
    return None


def draft_ablation(summary: dict, variant: str, target: float, label: str, wanted: str) -> Target:
    """Phase C with its own draft against one ablation (the gain is with-draft minus ablation)."""
    note = ablation_note(summary)
    if note:
        return not_measured(label, wanted, note)
    comp = summary["ablations"]["variants"][variant]["vs_with_draft"]
    return judge_gain(label, -comp["delta"], comp["p_value"], target, wanted)


def draft_share(summary: dict, target: float) -> Target:
    label, wanted = "phaseC attribution on draft tokens", f"≥ {100 * target:g}% of the attribution"
    note = ablation_note(summary)
    if note:
        return not_measured(label, wanted, note)
    ablations = summary["ablations"]
    share = ablations.get("attribution")
    if not share:
        why = ablations.get("attribution_note", "no question gave an attribution (ATTRIBUTION_SAMPLES)")
        return not_measured(label, wanted, why)
    mean = share["mean_share"]
    status = "met" if mean >= target else "not met"
    return Target(
        label, wanted, f"{100 * mean:.1f}% ({share['n']} questions)", status, f"mean {100 * mean:.1f}%"
    )


def question_win_rate(summary: dict, target: float) -> Target:
    label, wanted = "clarifying questions vs base", f"win rate ≥ {100 * target:g}%"
    quality = summary.get("question_quality") or {}
    rate = quality.get("win_rate")
    if rate is None:
        why = quality.get("note", "the question judge did not run").removeprefix("not measured: ")
        return not_measured(label, wanted, why.rstrip("."))
    status = "met" if rate >= target else "not met"
    actual = f"{100 * rate:.0f}% ({quality['wins']} of {quality['wins'] + quality['losses']} decided)"
    return Target(
        label, wanted, actual, status, f"{quality['ties']} ties, {quality['unreadable']} unreadable"
    )


def judge_targets(targets: EvalSection, summary: dict) -> list[Target]:
    """Every target of the report, in a fixed order, whether or not it could be measured."""
    return [
        phase_gain(summary, "phaseA", "phaseB", targets.target_b_gain),
        phase_gain(summary, "phaseB", "phaseC", targets.target_c_gain),
        phase_gain(summary, "phaseA", "phaseC", targets.target_c_over_a_gain),
        draft_ablation(
            summary,
            "no draft",
            targets.target_draft_gain,
            "phaseC with draft vs no draft",
            f"≥ no draft + {targets.target_draft_gain:g} pts, p < {ALPHA:g}",
        ),
        draft_ablation(
            summary,
            "shuffled draft",
            targets.target_shuffled_drop,
            "phaseC with draft vs shuffled draft",
            f"shuffled draft loses ≥ {targets.target_shuffled_drop:g} pts, p < {ALPHA:g}",
        ),
        draft_share(summary, targets.target_draft_share),
        question_win_rate(summary, targets.target_question_win_rate),
    ]


def targets_table(targets: EvalSection, summary: dict) -> list[str]:
    lines = ["| target | wanted | actual | status | why |", "|---|---|---|---|---|"]
    for t in judge_targets(targets, summary):
        lines.append(f"| {t.name} | {t.wanted} | {t.actual} | {t.status} | {t.why} |")
    return lines
