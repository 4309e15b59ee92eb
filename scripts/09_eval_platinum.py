"""Stage 09: evaluate checkpoints on the test split (GSM8K Platinum, StrategyQA test, the synthetic
held-out set) with honest statistics, the seed plan's draft ablations, and report.md.

  python scripts/09_eval_platinum.py                      # base and every trained phase
  python scripts/09_eval_platinum.py --report-only        # rebuild report.md from saved files
  python scripts/09_eval_platinum.py --grade-only FILE.jsonl --task gsm8k --out GRADED.jsonl

Reads data/RUN/test.jsonl and the checkpoints; writes outputs/RUN/eval_CKPT.jsonl, summary.json,
report.md, accuracy.png (and data/RUN/test_drafts.jsonl when the prompts carry drafts).
"""

import argparse
import json
import random
import time

from common.config import load_config, print_config, shown
from common.data.tasks import get_task
from common.errors import DataError, run_main
from common.eval.evaluate import (
    answer_questions,
    available_checkpoints,
    grade,
    resolve_checkpoint,
    summarize,
)
from common.eval.question_judge import question_win_rate
from common.eval.report import build_report
from common.eval.stats import mcnemar_exact
from common.jsonl import read_jsonl, write_json, write_jsonl
from common.manifest import write_manifest
from common.models.loading import load_model
from common.rollout.drafts import write_drafts


def grade_only(cfg, task, path, out_path) -> None:
    """Grade outputs produced elsewhere; gold from the row, or by id from the test split."""
    rows = read_jsonl(path)
    if not rows:
        raise DataError(f"{path} has no predictions to grade")
    need_lookup = any("gold" not in r for r in rows)
    test_path = cfg.run.data_dir / "test.jsonl"
    if need_lookup and test_path.is_file():
        gold_by_id = {q["id"]: q["answer"] for q in read_jsonl(test_path)}
    elif need_lookup:
        gold_by_id = {
            q["id"]: q["answer"]
            for q in task.load_split("test", task.sources(cfg.data.dataset_path, cfg.data.test_path)[1])
        }
    else:
        gold_by_id = {}
    graded, unknown = [], []
    for i, row in enumerate(rows):
        if "output" not in row or "id" not in row:
            raise DataError(f"{path}:{i + 1}: a row needs 'id' and 'output'")
        if "gold" in row:
            gold = task.normalize({"question": "-", "answer": row["gold"]}, f"{path}:{i + 1}")["answer"]
        else:
            gold = gold_by_id.get(row["id"])
        if gold is None:  # counted as wrong, never dropped from the denominator
            unknown.append(row["id"])
            graded.append(
                {
                    "id": row["id"],
                    "pred": task.extract_answer(row["output"]),
                    "correct": False,
                    "parse_ok": False,
                    "gold": None,
                    "unknown_id": True,
                }
            )
            continue
        graded.append({"id": row["id"], **grade(task, row["output"], gold), "gold": gold})
    write_jsonl(out_path, graded)
    s = summarize(task, graded)
    print(
        f"graded {s['n']} rows: accuracy {s['accuracy']:.1%} (95% CI {s['ci95'][0]:.1%}–"
        f"{s['ci95'][1]:.1%}), parse failures {s['parse_failures']}; wrote {shown(out_path)}"
    )
    if unknown:
        print(
            f"{len(unknown)} rows have ids not in the test split and no gold (e.g. "
            f"{', '.join(unknown[:3])}); they count as wrong"
        )


def eval_path(out, name: str):
    """outputs/RUN/eval_NAME.jsonl, with a loop checkpoint's '/' and spaces made safe."""
    return out / f"eval_{name.replace('/', '_').replace(' ', '_')}.jsonl"


def pair_stats(a_rows, b_rows) -> dict:
    test = mcnemar_exact([r["correct"] for r in a_rows], [r["correct"] for r in b_rows])
    delta = (sum(r["correct"] for r in b_rows) - sum(r["correct"] for r in a_rows)) / len(a_rows)
    return test | {"delta": delta}


def main() -> None:
    started = time.time()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grade-only", metavar="FILE", help="grade a JSONL of outputs; no model")
    parser.add_argument("--out", metavar="GRADED", help="where --grade-only writes")
    parser.add_argument("--report-only", action="store_true", help="rebuild report.md; no model")
    cfg, args = load_config(parser=parser)
    task = get_task(cfg.run.task)
    if args.grade_only:
        grade_only(
            cfg,
            task,
            args.grade_only,
            args.out or args.grade_only.replace(".jsonl", "_graded.jsonl"),
        )
        return
    if args.report_only:
        print(f"report: {shown(build_report(cfg))}")
        return
    print_config(cfg, "09 evaluation")

    test_path = cfg.run.data_dir / "test.jsonl"
    test = read_jsonl(test_path, made_by="sample")
    test = test[: cfg.eval.eval_samples] if cfg.eval.eval_samples else test
    specs = [s.strip() for s in cfg.eval.eval_checkpoints.split(",") if s.strip()] or available_checkpoints(
        cfg
    )
    checkpoints = [resolve_checkpoint(cfg, spec) for spec in specs]  # a missing one stops here
    print(f"evaluating {', '.join(c.name for c in checkpoints)} on {len(test)} test questions")

    drafts = None
    if any(c.with_draft for c in checkpoints):  # drafts by the base student, as in training
        rows = write_drafts(cfg, task, test, cfg.run.data_dir / "test_drafts.jsonl", cfg.model.model_name)
        drafts = {i: r["draft"] for i, r in rows.items()}

    out = cfg.run.output_dir
    results, summary = (
        {},
        {"task": cfg.run.task, "n_questions": len(test), "test_source": shown(test_path), "checkpoints": {}},
    )
    last = checkpoints[-1]
    copy_of = loop_selection(cfg, specs)
    for ckpt in checkpoints:
        if ckpt.name in copy_of:  # phaseC is a copy of a checkpoint evaluated in this run too
            rows = results[copy_of[ckpt.name]]
        else:
            model, tokenizer = load_model(ckpt.path, cfg, made_by="tiny-model")
            rows = answer_questions(
                cfg, model, tokenizer, task, test, ckpt, drafts if ckpt.with_draft else None, desc=ckpt.name
            )
        write_jsonl(eval_path(out, ckpt.name), rows)
        results[ckpt.name] = rows
        summary["checkpoints"][ckpt.name] = summarize(task, rows) | {
            "strategy": ckpt.strategy,
            "with_draft": ckpt.with_draft,
            "path": shown(ckpt.path),
        }
        s = summary["checkpoints"][ckpt.name]
        print(
            f"{ckpt.name}: {s['accuracy']:.1%} (95% CI {s['ci95'][0]:.1%}–{s['ci95'][1]:.1%}), "
            f"parse failures {s['parse_failure_rate']:.1%}, truncated {s['truncation_rate']:.1%}"
        )

        if ckpt is last and cfg.eval.eval_ablations and ckpt.with_draft and len(checkpoints) > 1:
            if ckpt.name in copy_of:
                model, tokenizer = load_model(ckpt.path, cfg, made_by="tiny-model")
            summary["ablations"] = draft_ablations(cfg, task, test, ckpt, model, tokenizer, drafts, rows)
        model = tokenizer = None  # free it before the next checkpoint loads (a 7B on one GPU)

    if "ablations" not in summary:
        why = (
            "the last checkpoint was trained without drafts (WITH_DRAFT=0)"
            if not last.with_draft
            else "EVAL_ABLATIONS=0"
        )
        summary["ablations"] = {"note": f"Not run: {why}."}
    summary["question_quality"] = question_quality(cfg, task, test, last)
    names = list(results)
    pairs = list(zip(names[:-1], names[1:], strict=True))
    if "phaseB" in names:  # every Phase C variant is also measured against Phase B
        pairs += [("phaseB", n) for n in names[names.index("phaseB") + 2 :]]
    summary["comparisons"] = {f"{a}->{b}": pair_stats(results[a], results[b]) for a, b in pairs}
    write_json(out / "summary.json", summary)
    report = build_report(cfg)
    outputs = [eval_path(out, n) for n in names] + [out / "summary.json", report]
    write_manifest(
        out, "eval", cfg, {"test": test_path} | {c.name: c.path for c in checkpoints}, outputs, {}, started
    )
    print(f"\nreport: {shown(report)}")
    section = report.read_text().split("## Executive summary", 1)[1].split("\n\n")[1]
    print(section)  # the headline table


def loop_selection(cfg, specs: list[str]) -> dict[str, str]:
    """{"phaseC": "loop/roundN-LOSS"} when `make loop` chose phaseC from a checkpoint that is
    also in this evaluation: its answers are then the same and are not generated twice."""
    selection = cfg.run.checkpoint_dir / "phaseC" / "selection.json"
    if "phaseC" not in specs or not selection.is_file():
        return {}
    source = json.loads(selection.read_text()).get("spec")
    return {"phaseC": source} if source in specs and specs.index(source) < specs.index("phaseC") else {}


def question_quality(cfg, task, test, last) -> dict:
    """The seed's clarifying-question check: the last phase's questions against the base's."""
    if last.name == "base" or not cfg.eval.eval_ablations:
        return {"note": "not measured: no trained phase was evaluated (or EVAL_ABLATIONS=0)."}
    if cfg.teacher.backend == "offline":
        return question_win_rate(cfg, task, [], {}, {}, cfg.run.data_dir / "teacher_cost.jsonl")
    subset = test[: cfg.eval.judge_samples]
    base = write_drafts(cfg, task, subset, cfg.run.data_dir / "test_drafts.jsonl", cfg.model.model_name)
    mine = write_drafts(cfg, task, subset, cfg.run.data_dir / f"test_drafts_{last.name}.jsonl", last.path)
    return question_win_rate(cfg, task, subset, mine, base, cfg.run.data_dir / "teacher_cost.jsonl")


def draft_ablations(cfg, task, test, ckpt, model, tokenizer, drafts, with_draft_rows) -> dict:
    """The seed's validation: no draft (question only), and another question's draft."""
    from common.eval.attribution import draft_share

    ids = [q["id"] for q in test]
    shuffled_ids = ids[:]
    random.Random(cfg.run.random_seed).shuffle(shuffled_ids)
    variants = {
        "no draft": None,
        "shuffled draft": {i: drafts[j] for i, j in zip(ids, shuffled_ids, strict=True)},
    }
    out = {"checkpoint": ckpt.name, "variants": {"with draft": summarize(task, with_draft_rows)}}
    for name, variant_drafts in variants.items():
        rows = answer_questions(cfg, model, tokenizer, task, test, ckpt, variant_drafts, desc=name)
        write_jsonl(eval_path(cfg.run.output_dir, f"{ckpt.name}_{name}"), rows)
        out["variants"][name] = summarize(task, rows) | {"vs_with_draft": pair_stats(with_draft_rows, rows)}
    if cfg.generation.gen_backend == "vllm":  # integrated gradients need the torch model
        return out | {"attribution_note": "not measured with GEN_BACKEND=vllm"}
    shares = []
    for q, row in list(zip(test, with_draft_rows, strict=True))[: cfg.eval.attribution_samples]:
        share = draft_share(model, tokenizer, row["prompt"], drafts[q["id"]], row["output"])
        if share is not None:
            shares.append(share)
    if shares:
        out["attribution"] = {"n": len(shares), "mean_share": sum(shares) / len(shares)}
    return out


if __name__ == "__main__":
    run_main(main)
