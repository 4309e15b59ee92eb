"""`make sweep`: Phase B once per reasoning strategy, compared on the same test questions. What the
script and the report share: each strategy's accuracy with its 95% Wilson interval and the exact
McNemar test against the reference strategy, and the report's "Strategy sweep" section, rebuilt
from outputs/RUN/sweep.json alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.config import Config
from common.eval.evaluate import SWEEP_PREFIX
from common.eval.stats import mcnemar_exact, wilson_interval

REFERENCE = "none"  # the answer-only format: what reasoning in any other format is measured against


def sweep_path(cfg: Config) -> Path:
    return cfg.run.output_dir / "sweep.json"


def checkpoint_name(strategy: str) -> str:
    """The strategy's Phase B folder under checkpoints/RUN/ and its name in EVAL_CHECKPOINTS."""
    return SWEEP_PREFIX + strategy


def reference_of(strategies: list[str]) -> str:
    """`none` when swept, else the first strategy listed."""
    return REFERENCE if REFERENCE in strategies else strategies[0]


def compare(rows: dict[str, list[dict]], reference: str) -> dict[str, dict]:
    """Per strategy: n, correct, accuracy, ci95; and against `reference` (answering the same
    questions, in the same order) the exact McNemar test with the difference in accuracy."""
    out = {}
    ref = rows.get(reference)
    for strategy, graded in rows.items():
        n, correct = len(graded), sum(r["correct"] for r in graded)
        out[strategy] = {
            "n": n,
            "correct": correct,
            "accuracy": correct / n,
            "ci95": list(wilson_interval(correct, n)),
        }
        if ref is None or strategy == reference:
            continue
        if [r["id"] for r in ref] != [r["id"] for r in graded]:
            raise ValueError(f"{strategy} and {reference} did not answer the same questions")
        test = mcnemar_exact([r["correct"] for r in ref], [r["correct"] for r in graded])
        out[strategy]["vs_reference"] = test | {"delta": (correct - sum(r["correct"] for r in ref)) / n}
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def sweep_section(cfg: Config) -> list[str]:
    """The report's "Strategy sweep" section from sweep.json; [] when no sweep ran."""
    path = sweep_path(cfg)
    if not path.is_file():
        return []
    sweep = json.loads(path.read_text())
    ref = sweep["reference"]
    lines = [
        "## Strategy sweep",
        "",
        f"Phase B trained once per reasoning format from the same Phase A (`make sweep`); each "
        f"answered the same {sweep['n_questions']} test questions ({sweep['test_source']}) in its own "
        f"format. Accuracy with its 95% Wilson interval; the exact McNemar test against `{ref}` on "
        f"those questions.",
        "",
        f"| strategy | checkpoint | accuracy | 95% CI | vs {ref} | p (McNemar) | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy, r in sweep["strategies"].items():
        if r["status"] != "ok":
            why = f"failed: {r['stage']} exited {r['exit']}" + (f": {r['error']}" if r.get("error") else "")
            lines.append(f"| {strategy} | {r['checkpoint']} | — | — | — | — | {cell(why)} |")
            continue
        comp = r.get("vs_reference")
        delta = f"{100 * comp['delta']:+.1f} pts" if comp else ("reference" if strategy == ref else "—")
        p = f"{comp['p_value']:.3g}" if comp else "—"
        lines.append(
            f"| {strategy} | {r['checkpoint']} | {pct(r['accuracy'])} | {pct(r['ci95'][0])}–{pct(r['ci95'][1])} "
            f"| {delta} | {p} | ok |"
        )
    if sweep["strategies"].get(ref, {}).get("status") != "ok":
        lines += ["", f"No McNemar test: the reference `{ref}` has no answers (it failed)."]
    return lines + [""]
