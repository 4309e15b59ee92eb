"""outputs/RUN/report.md and its plots, rebuilt from saved files only (no model is loaded):
summary.json from stage 09, sweep.json from `make sweep`, data_report.json from stage 04, the cost
ledger from stage 03 and the training curves of stages 05, 06 and 08.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from common.config import Config, EvalSection
from common.errors import DataError
from common.eval.sweep import sweep_section
from common.eval.targets import targets_table
from common.jsonl import read_jsonl
from common.plots import plt

ORDER = ["base", "phaseA", "phaseB", "phaseC"]


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def plot_accuracy(summary: dict, path: Path, title: str) -> Path:
    names = list(summary["checkpoints"])
    acc = [100 * summary["checkpoints"][n]["accuracy"] for n in names]
    cis = [summary["checkpoints"][n]["ci95"] for n in names]
    low = [max(0.0, a - 100 * ci[0]) for a, ci in zip(acc, cis, strict=True)]  # no -1e-15 bars
    high = [max(0.0, 100 * ci[1] - a) for a, ci in zip(acc, cis, strict=True)]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.6))
    labels = [n.replace("/", "/\n") for n in names]  # loop/round1-sigmoid+sft: two short lines
    ax.bar(labels, acc, yerr=[low, high], capsize=6, color="#4C72B0")
    for i, a in enumerate(acc):
        ax.text(i, a + high[i] + 1, f"{a:.1f}", ha="center", fontsize=9)
    ax.set_ylabel("test accuracy (%), 95% Wilson CI")
    ax.set_ylim(0, min(100, max(a + h for a, h in zip(acc, high, strict=True)) + 10))
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def executive_table(targets_of: EvalSection, summary: dict) -> list[str]:
    ckpts, comps = summary["checkpoints"], summary.get("comparisons", {})
    targets = {"phaseB": ("phaseA", targets_of.target_b_gain), "phaseC": ("phaseB", targets_of.target_c_gain)}
    lines = [
        "| phase | target | actual (95% CI) | delta | p (McNemar) | status |",
        "|---|---|---|---|---|---|",
    ]
    previous = None
    for name, s in ckpts.items():
        actual = f"{pct(s['accuracy'])} ({pct(s['ci95'][0])}–{pct(s['ci95'][1])})"
        # Phase C variants (loop/roundN-LOSS) face Phase C's target against Phase B.
        ref, gain = targets.get("phaseC" if name.startswith("loop/") else name, (previous, None))
        comp = comps.get(f"{ref}->{name}") if ref else None
        delta = f"{100 * (s['accuracy'] - ckpts[ref]['accuracy']):+.1f} pts vs {ref}" if comp else "—"
        p = f"{comp['p_value']:.3g}" if comp else "—"
        if gain is None or comp is None:
            target, status = "—", "—"
        else:
            target = f"≥ {ref} + {gain:g} pts"
            met = 100 * (s["accuracy"] - ckpts[ref]["accuracy"]) >= gain and comp["p_value"] < 0.05
            status = "met" if met else "not met"
        lines.append(f"| {name} | {target} | {actual} | {delta} | {p} | {status} |")
        previous = name
    return lines


def loop_section(cfg: Config, summary: dict) -> list[str]:
    """`make loop`: per round, each DPO loss's dev accuracy (which chose phaseC) and, where this
    evaluation covered it, its test accuracy."""
    path = cfg.run.checkpoint_dir / "loop" / "loop.json"
    if not path.is_file():
        return []
    state = json.loads(path.read_text())
    ckpts = summary["checkpoints"]
    lines = [
        "## Phase C: the loop, per round and DPO loss",
        "",
        "The loss kept each round is the one best on dev; test accuracy is shown where the "
        "checkpoint was evaluated, and was not used to choose.",
        "",
        "| round | loss | pairs | dev accuracy | test accuracy | kept |",
        "|---|---|---|---|---|---|",
    ]
    for r in state["rounds"]:
        if r["round"] == 0:
            test = ckpts.get(r["policy"], {}).get("accuracy")
            kept = "yes → phaseC (no round beat it on dev)" if state["best_round"] == 0 else "—"
            lines.append(
                f"| 0 (start: {r['policy']}) | — | — | {pct(r['dev_accuracy'])} | {pct(test)} | {kept} |"
            )
            continue
        for loss, c in r["candidates"].items():
            test = ckpts.get(c.get("spec", ""), {}).get("accuracy")
            kept = "yes" if loss == r["loss"] else ""
            if r["round"] == state["best_round"] and kept:
                kept = "yes → phaseC"
            lines.append(
                f"| {r['round']} | {loss} | {r.get('pairs', {}).get('total', '—')} | "
                f"{pct(c['dev_accuracy'])} | {pct(test)} | {kept} |"
            )
    png = path.parent / "loop.png"
    if png.is_file():
        lines += ["", f"![dev accuracy per round]({os.path.relpath(png, cfg.run.output_dir)})"]
    return lines + [""]


def code_section(summary: dict) -> list[str]:
    """How each checkpoint's programs ended, and pass@k where answers were sampled."""
    checkpoints, lines = summary["checkpoints"], []
    kinds = ("pass", "fail", "error", "timeout", "syntax_error", "no_program")
    if any("outcomes" in s for s in checkpoints.values()):
        lines += [
            "## Program outcomes",
            "",
            "Each greedy program run against its unit tests in the sandbox; `no_program`: the "
            "output had no python block that parses (a parse failure).",
            "",
            f"| checkpoint | {' | '.join(kinds)} |",
            "|---" * (len(kinds) + 1) + "|",
        ]
        for name, s in checkpoints.items():
            counts = s.get("outcomes", {})
            lines.append(f"| {name} | {' | '.join(str(counts.get(k, 0)) for k in kinds)} |")
    sampled = {name: s for name, s in checkpoints.items() if "pass_at_k" in s}
    if sampled:
        ks = sorted({int(k) for s in sampled.values() for k in s["pass_at_k"]})
        lines += [
            "",
            "## pass@k",
            "",
            "Unbiased pass@k (Chen et al. 2021) from sampled answers, averaged over questions:",
            "",
            f"| checkpoint | samples (T) | {' | '.join(f'pass@{k}' for k in ks)} |",
            "|---" * (len(ks) + 2) + "|",
        ]
        for name, s in sampled.items():
            values = " | ".join(pct(s["pass_at_k"].get(str(k), s["pass_at_k"].get(k))) for k in ks)
            lines.append(f"| {name} | {s['samples']} ({s['temperature']:g}) | {values} |")
    return [*lines, ""] if lines else []


def heldout_section(summary: dict) -> list[str]:
    """Accuracy on the teacher questions stage 04 held out of training, beside the test accuracy;
    one line when there were none to ask."""
    held = summary.get("heldout")
    if held is None:  # a summary written before stage 09 asked them
        return []
    lines = ["## Held-out teacher questions", ""]
    if "note" in held:
        return lines + [held["note"], ""]
    lines += [
        f"The {held['n_questions']} training questions stage 04 held out ({held['source']}): never "
        "trained on, asked in each checkpoint's own format, graded against their gold.",
        "",
        "| checkpoint | n | accuracy (95% CI) | test accuracy |",
        "|---|---|---|---|",
    ]
    for name, s in summary["checkpoints"].items():
        h = s.get("heldout")
        if h:
            lines.append(
                f"| {name} | {h['n']} | {pct(h['accuracy'])} ({pct(h['ci95'][0])}–{pct(h['ci95'][1])}) "
                f"| {pct(s['accuracy'])} |"
            )
    return lines + [""]


def build_report(cfg: Config) -> Path:
    out = cfg.run.output_dir
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        sweep = sweep_section(cfg)
        if not sweep:
            raise DataError(f"{summary_path} does not exist; run `make eval` first")
        path = out / "report.md"  # a sweep before any `make eval`: its section alone
        title = f"# Looper report: {cfg.run.name} ({cfg.run.task})"
        note = "No phase evaluation yet: `make eval` adds the phases' tables."
        path.write_text("\n".join([title, "", note, "", *sweep]) + "\n")
        return path
    summary = json.loads(summary_path.read_text())
    lines = [
        f"# Looper report: {cfg.run.name} ({summary['task']})",
        "",
        f"Test split: {summary['n_questions']} questions ({summary['test_source']}). "
        f"Greedy decoding, the training prompt format of each checkpoint.",
        "",
    ]
    lines += ["## Executive summary", "", *executive_table(cfg.eval, summary), ""]
    lines += ["Every target (configured in the eval section of the config):", ""]
    lines += [*targets_table(cfg.eval, summary), ""]
    plot = plot_accuracy(summary, out / "accuracy.png", f"{cfg.run.name}: accuracy per phase")
    lines += [f"![accuracy per phase]({plot.name})", ""]

    lines += [
        "## Per checkpoint",
        "",
        "| checkpoint | format | n | accuracy | parse failures | truncated | extra |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["checkpoints"].items():
        extra = ""
        if s.get("accuracy_by_class"):
            by = s["accuracy_by_class"]
            extra = f"yes {pct(by['yes'])}, no {pct(by['no'])}, answers 'no' {pct(s['answer_bias_no'])}"
        own = "test_drafts_" in (s.get("drafts") or "")  # DRAFTS_FROM=policy: it drafted for itself
        fmt = s["strategy"] + ((" + own draft" if own else " + draft") if s.get("with_draft") else "")
        lines.append(
            f"| {name} | {fmt} | {s['n']} | {pct(s['accuracy'])} | "
            f"{pct(s['parse_failure_rate'])} | {pct(s.get('truncation_rate'))} | {extra} |"
        )
    lines.append("")
    lines += code_section(summary)
    lines += heldout_section(summary)

    ablations = summary.get("ablations")
    lines += ["## Draft ablations", ""]
    if ablations and ablations.get("variants"):
        lines += [
            "| prompt | accuracy (95% CI) | delta vs with draft | p (McNemar) |",
            "|---|---|---|---|",
        ]
        for name, v in ablations["variants"].items():
            comp = v.get("vs_with_draft")
            delta = f"{100 * comp['delta']:+.1f} pts" if comp else "—"
            p = f"{comp['p_value']:.3g}" if comp else "—"
            lines.append(
                f"| {name} | {pct(v['accuracy'])} ({pct(v['ci95'][0])}–{pct(v['ci95'][1])}) | {delta} | {p} |"
            )
        share = ablations.get("attribution")
        if share:
            lines += [
                "",
                f"Integrated-gradients share of attribution on draft tokens "
                f"({ablations['checkpoint']}, {share['n']} questions): mean "
                f"{pct(share['mean_share'])} (the target after DPO: ≥ {pct(cfg.eval.target_draft_share)}).",
            ]
        elif ablations.get("attribution_note"):
            lines += [
                "",
                f"Integrated-gradients share of attribution on draft tokens: {ablations['attribution_note']}.",
            ]
    else:
        lines.append((ablations or {}).get("note", "Not run."))
    lines += [
        "",
        "Clarifying-question quality: " + summary.get("question_quality", {}).get("note", "not measured."),
        "",
    ]

    lines += loop_section(cfg, summary)
    lines += sweep_section(cfg)
    data_report = cfg.run.data_dir / "data_report.json"
    lines += ["## Data quality (stage 04)", ""]
    if data_report.is_file():
        d = json.loads(data_report.read_text())
        t = d["teacher"]
        reasons = ", ".join(f"{k} {t[k]}" for k in t if k != "quality_rate")
        lines += [
            f"- Teacher answers vs gold: {reasons}; quality rate {pct(t['quality_rate'])}.",
            f"- Policy: {d['policy']}; kept by source: {d['kept_by_source']}; held out: {d['heldout']}.",
            f"- Classes: sample {d['classes']['sample']}, kept {d['classes']['kept']}, "
            f"train {d['classes']['train']} (BALANCE={d['balance']}).",
        ]
    else:
        lines.append("- No data report (stage 04 not run for this run).")
    ledger = cfg.run.data_dir / "teacher_cost.jsonl"
    lines += ["", "## Teacher cost (stage 03)", ""]
    if ledger.is_file():
        calls = read_jsonl(ledger)
        usd = sum(c["usd"] for c in calls)
        lines.append(
            f"- {len(calls)} calls ({sum(c['cached'] for c in calls)} from the cache), "
            f"{sum(c['tokens_in'] for c in calls):,} tokens in, "
            f"{sum(c['tokens_out'] for c in calls):,} out, ${usd:.4f}."
        )
    else:
        lines.append("- No cost ledger (stage 03 not run for this run).")
    lines += ["", "## Training curves", ""]
    for phase in ("phaseA", "phaseB", "phaseC"):
        png = cfg.run.checkpoint_dir / phase / "training_curves.png"
        if png.is_file():
            lines.append(f"![{phase}]({os.path.relpath(png, out)})")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
