"""`make compare-sources`: Phase C under each label source, pair source or drafter, side by side.

Stages 01-06 run once in one run folder; then, per variant, `make loop eval` with that variant's
settings (only stage 07 and the loop see them, so REBUILD=auto reuses Phases A and B), and the
variant's summary, graded rows, rollout report and exit status are kept in
outputs/RUN/variants/NAME/, from which --table-only rebuilds the table. The table
(Phase C test accuracy with Wilson CIs, exact McNemar against Phase B on the same questions, and
what the variant's labels and pairs were) goes to stdout and outputs/RUN/variants/table.md.

    make compare-sources GROUP=labels   # arith demo, teacher wrong on 20%: label and pair sources
    make compare-sources GROUP=drafts   # compare task with drafts: base drafts vs the policy's own

Any other key (RUN_NAME, LOOP_LOSSES, ...) overrides as usual. A variant that fails is reported
as failed and the others still run; the script exits non-zero if any failed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from common.config import load_config, split_list
from common.eval.ablations import eval_path
from common.eval.stats import mcnemar_exact, wilson_interval
from common.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
BUILD = ["sample", "drafts", "teacher", "datasets", "phaseA", "phaseB"]
ROUND = "loop/round1-{loss}"

# Each group: the settings every variant shares, then the variants' own.
GROUPS = {
    "labels": {
        "base": {
            "LOOPER_ENV_FILE": "configs/demo.env",
            "RUN_NAME": "sources-arith",
            "TEACHER_ERROR_RATE": "0.2",
            "LOOP_LOSSES": "sigmoid",
            "SELF_REWARD_JUDGE": "none",
        },
        "variants": {
            "label gold, pairs correctness": {"LABEL_SOURCE": "gold"},
            "label teacher, pairs correctness": {"LABEL_SOURCE": "teacher"},
            "label majority, pairs correctness": {"LABEL_SOURCE": "majority"},
            "pairs judge (policy)": {"PAIR_SOURCE": "judge", "SELF_REWARD_JUDGE": "policy"},
            "pairs both (policy judge)": {"PAIR_SOURCE": "both", "SELF_REWARD_JUDGE": "policy"},
        },
    },
    "drafts": {
        "base": {
            "LOOPER_ENV_FILE": "configs/demo.env",
            "RUN_NAME": "sources-compare",
            "TASK": "compare",
            "WITH_DRAFT": "1",
            "LOOP_LOSSES": "sigmoid",
            "SELF_REWARD_JUDGE": "none",
        },
        "variants": {
            "drafts from base": {"DRAFTS_FROM": "base"},
            "drafts from policy": {"DRAFTS_FROM": "policy"},
        },
    },
}


def make(targets: list[str], env: dict[str, str]) -> int:
    full = os.environ | {"HW": "cpu", "REBUILD": "auto"} | env
    return subprocess.run(["make", "--no-print-directory", *targets], cwd=ROOT, env=full).returncode


def keep(outputs: Path, data: Path, dest: Path, names: list[str]) -> None:
    """Copy one variant's results aside before the next variant's run replaces them."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in [outputs / "summary.json", data / "loop" / "round1" / "rollout_report.json"]:
        if path.exists():
            shutil.copy2(path, dest / path.name)
    for name in names:
        if eval_path(outputs, name).exists():
            shutil.copy2(eval_path(outputs, name), dest / eval_path(outputs, name).name)


def variant_dir(outputs: Path, name: str) -> Path:
    return outputs / "variants" / re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def accuracy(rows: list[dict]) -> str:
    n, k = len(rows), sum(r["correct"] for r in rows)
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.1%} ({lo:.1%}–{hi:.1%})"


def against(rows: list[dict], phase_b: list[dict]) -> str:
    by_id = {r["id"]: r["correct"] for r in phase_b}
    test = mcnemar_exact([by_id[r["id"]] for r in rows], [r["correct"] for r in rows])
    delta = (test["only_b"] - test["only_a"]) / len(rows)
    return f"{delta * 100:+.1f} pts, p = {test['p_value']:.2g}"


def what_it_trained_on(report: dict) -> str:
    """Pairs, and how the labels agreed with gold where the report measured it."""
    parts = [f"{report['pairs']['total']} pairs"]
    labels = report.get("labels") or {}
    used = (labels.get("noise") or {}).get(labels.get("source"))
    if used and labels["source"] != "gold":
        parts.append(
            f"{labels['source']} labels on {used['labelled']} questions, {used['agreement_with_gold']:.1%} agree with gold"
        )
    judge = report.get("judge") or {}
    if judge.get("unparseable"):
        parts.append(f"{judge['unparseable']} judge replies unparseable")
    return "; ".join(parts)


def row_of(name: str, dest: Path, round_name: str) -> str:
    """One variant's row, from the files kept in `dest` (status.json says how its run ended)."""
    status = json.loads((dest / "status.json").read_text())["exit"]
    report_path = dest / "rollout_report.json"
    trained_on = what_it_trained_on(json.loads(report_path.read_text())) if report_path.exists() else ""
    if status:
        return f"| {name} | | failed (exit {status}) | | | {trained_on} |"
    # Phase B per variant: with DRAFTS_FROM=policy it answers with its own drafts.
    rows = {n: read_jsonl(eval_path(dest, n)) for n in ("phaseB", round_name, "phaseC")}
    return (
        f"| {name} | {accuracy(rows['phaseB'])} | {accuracy(rows[round_name])} "
        f"| {against(rows[round_name], rows['phaseB'])} | {accuracy(rows['phaseC'])} | {trained_on} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=sorted(GROUPS), default="labels")
    parser.add_argument("--only", default="", help="run only the variants whose name contains this")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from the kept files")
    args = parser.parse_args()
    group = GROUPS[args.group]
    # The environment still overrides the group's settings, as everywhere else.
    base = group["base"] | {k: os.environ[k] for k in group["base"] if k in os.environ}
    cfg, _ = load_config([], env=os.environ | base)
    round_name = ROUND.format(loss=(split_list(cfg.rollout.loop_losses) or [cfg.dpo.dpo_loss])[0])
    base["EVAL_CHECKPOINTS"] = f"phaseB,{round_name},phaseC"
    if not args.table_only and (status := make(BUILD, base)):
        print(f"compare-sources: stages 01-06 failed (exit {status}); no variant ran", file=sys.stderr)
        return status
    outputs, data = cfg.run.output_dir, cfg.run.data_dir
    failed = 0
    for name, settings in group["variants"].items():
        if args.only not in name or args.table_only:
            continue
        print(f"\n=== compare-sources: {name} ({' '.join(f'{k}={v}' for k, v in settings.items())}) ===")
        dest = variant_dir(outputs, name)
        status = make(["loop", "eval"], base | settings)
        keep(outputs, data, dest, ["phaseB", round_name, "phaseC"])
        (dest / "status.json").write_text(json.dumps({"exit": status}))
        failed += bool(status)
    lines = [
        f"| {args.group} variant | Phase B | Phase C round, test accuracy (95% CI) | vs Phase B (McNemar) "
        "| phaseC (chosen on dev) | what it trained on |",
        "|---|---|---|---|---|---|",
    ]
    for name in group["variants"]:
        if (variant_dir(outputs, name) / "status.json").exists():
            lines.append(row_of(name, variant_dir(outputs, name), round_name))
    table = "\n".join(lines)
    (outputs / "variants" / "table.md").write_text(table + "\n")
    print("\n" + table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
