"""Stage 09: evaluate checkpoints on the test split (GSM8K Platinum, StrategyQA test, the synthetic
held-out set) with honest statistics (Wilson intervals, exact McNemar tests), the draft ablations,
and report.md, built from summary.json. Each checkpoint also answers the held-out teacher questions
of stage 04 (never trained on), graded against their gold.

  python scripts/09_eval_platinum.py                      # base and every trained phase
  python scripts/09_eval_platinum.py --report-only        # rebuild report.md from saved files
  python scripts/09_eval_platinum.py --grade-only FILE.jsonl --task gsm8k --out GRADED.jsonl

Reads data/RUN/test.jsonl, teacher_heldout.jsonl and the checkpoints; writes
outputs/RUN/eval_CKPT.jsonl, eval_CKPT_heldout.jsonl, summary.json, report.md, accuracy.png (and
data/RUN/test_drafts.jsonl when the prompts carry drafts).
"""

import argparse

from common.config import load_config, shown
from common.data.tasks import get_task
from common.errors import run_main
from common.eval.ablations import draft_ablations, eval_path, loop_selection, pair_stats, question_quality
from common.eval.evaluate import (
    answer_questions,
    available_checkpoints,
    resolve_checkpoint,
    sampled_pass_at_k,
    summarize,
)
from common.eval.grade_only import grade_only
from common.eval.questions import heldout_path, load_heldout, load_test
from common.eval.report import build_report, executive_table
from common.eval.targets import targets_table
from common.jsonl import write_json, write_jsonl
from common.models.loading import load_model
from common.rollout.drafts import drafts_file, own_drafts, write_drafts
from common.stage import stage_run


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grade-only", metavar="FILE", help="grade a JSONL of outputs; no model")
    parser.add_argument("--out", metavar="GRADED", help="where --grade-only writes")
    parser.add_argument("--report-only", action="store_true", help="rebuild report.md; no model")
    return load_config(parser=parser)


def drafts_for_test(cfg, task, test, checkpoints) -> dict | None:
    """The base student's drafts of the test questions, as in training, when a checkpoint needs them
    (with DRAFTS_FROM=policy each checkpoint drafts for itself instead: see own_test_drafts)."""
    if not any(c.with_draft for c in checkpoints) or cfg.generation.drafts_from == "policy":
        return None
    rows = write_drafts(cfg, task, test, cfg.run.data_dir / "test_drafts.jsonl", cfg.model.model_name)
    return {i: r["draft"] for i, r in rows.items()}


def own_test_drafts(cfg, task, test, ckpt, model, tokenizer) -> tuple[dict, str]:
    """DRAFTS_FROM=policy: the checkpoint drafts the test questions itself, with the weights it
    answers with, into data/RUN/test_drafts_NAME.jsonl; returns {id: draft text} and that file."""
    path = drafts_file(cfg.run.data_dir, "test_drafts", ckpt.name)
    rows = own_drafts(cfg, task, test, path, ckpt.path, loaded=(model, tokenizer))
    return {i: r["draft"] for i, r in rows.items()}, str(path.relative_to(cfg.run.base_dir))


def ask_heldout(cfg, task, heldout, ckpt, model, tokenizer) -> list[dict]:
    """The held-out teacher questions in the checkpoint's own format, with the draft its training
    prompts carried (the base student's, kept in stage 04's rows; with DRAFTS_FROM=policy its own,
    into data/RUN/heldout_drafts_NAME.jsonl), graded against their gold."""
    drafts = None
    if ckpt.with_draft and cfg.generation.drafts_from == "policy":
        path = drafts_file(cfg.run.data_dir, "heldout_drafts", ckpt.name)
        own = own_drafts(cfg, task, heldout, path, ckpt.path, loaded=(model, tokenizer))
        drafts = {i: r["draft"] for i, r in own.items()}
    elif ckpt.with_draft:
        drafts = {q["id"]: q["draft"] for q in heldout if q.get("draft")}
    return answer_questions(cfg, model, tokenizer, task, heldout, ckpt, drafts, desc=f"{ckpt.name} held-out")


def evaluate_all(cfg, task, test, heldout, checkpoints, specs, drafts, summary) -> dict[str, list[dict]]:
    """Each checkpoint answers the test split greedily, then the held-out teacher questions; its rows
    are written and summarized, and the last one (trained with drafts) also runs the draft ablations."""
    results, held, last, copy_of, sampled = {}, {}, checkpoints[-1], loop_selection(cfg, specs), {}
    for ckpt in checkpoints:
        model = tokenizer = None
        base_drafts = str((cfg.run.data_dir / "test_drafts.jsonl").relative_to(cfg.run.base_dir))
        use, drafts_source = (drafts, base_drafts) if ckpt.with_draft else (None, None)
        if ckpt.name in copy_of:  # phaseC is a copy of a checkpoint evaluated in this run too
            rows = results[copy_of[ckpt.name]]
            drafts_source = summary["checkpoints"][copy_of[ckpt.name]].get("drafts")
        else:
            model, tokenizer = load_model(ckpt.path, cfg, made_by="tiny-model")
            if ckpt.with_draft and cfg.generation.drafts_from == "policy":
                use, drafts_source = own_test_drafts(cfg, task, test, ckpt, model, tokenizer)
            rows = answer_questions(cfg, model, tokenizer, task, test, ckpt, use, desc=ckpt.name)
            if cfg.eval.pass_k_samples:
                sampled[ckpt.name] = sampled_pass_at_k(cfg, model, tokenizer, task, test, ckpt, use)
        write_jsonl(eval_path(cfg.run.output_dir, ckpt.name), rows)
        results[ckpt.name] = rows
        s = summary["checkpoints"][ckpt.name] = (
            summarize(task, rows)
            | {
                "strategy": ckpt.strategy,
                "with_draft": ckpt.with_draft,
                "drafts": drafts_source,  # which file the draft in its prompts came from
                "path": shown(ckpt.path),
            }
            | sampled.get(copy_of.get(ckpt.name, ckpt.name), {})
        )
        print(
            f"{ckpt.name}: {s['accuracy']:.1%} (95% CI {s['ci95'][0]:.1%}–{s['ci95'][1]:.1%}), "
            f"parse failures {s['parse_failure_rate']:.1%}, truncated {s['truncation_rate']:.1%}"
        )
        if heldout:
            if ckpt.name in copy_of:
                held[ckpt.name] = held[copy_of[ckpt.name]]
            else:
                held[ckpt.name] = ask_heldout(cfg, task, heldout, ckpt, model, tokenizer)
            write_jsonl(eval_path(cfg.run.output_dir, f"{ckpt.name}_heldout"), held[ckpt.name])
            h = summarize(task, held[ckpt.name])
            s["heldout"] = {k: h[k] for k in ("n", "correct", "accuracy", "ci95")}
            print(
                f"{ckpt.name}, held-out teacher questions: {h['accuracy']:.1%} "
                f"(95% CI {h['ci95'][0]:.1%}–{h['ci95'][1]:.1%}, n {h['n']})"
            )
        if ckpt is last and cfg.eval.eval_ablations and ckpt.with_draft and len(checkpoints) > 1:
            if model is None:
                model, tokenizer = load_model(ckpt.path, cfg, made_by="tiny-model")
            if use is None:  # phaseC copied from a loop checkpoint: the same weights draft again
                use, _ = own_test_drafts(cfg, task, test, ckpt, model, tokenizer)
            summary["ablations"] = draft_ablations(cfg, task, test, ckpt, model, tokenizer, use, rows)
        model = tokenizer = None  # free it before the next checkpoint loads (a 7B on one GPU)
    return results


def comparisons(results: dict[str, list[dict]]) -> dict:
    """McNemar between neighbouring checkpoints; every Phase C variant also against Phase B."""
    names = list(results)
    pairs = list(zip(names[:-1], names[1:], strict=True))
    if "phaseB" in names:
        pairs += [("phaseB", n) for n in names[names.index("phaseB") + 2 :]]
    if "phaseA" in names and "phaseC" in names and ("phaseA", "phaseC") not in pairs:
        pairs.append(("phaseA", "phaseC"))  # the report's C >= A target needs its own paired test
    return {f"{a}->{b}": pair_stats(results[a], results[b]) for a, b in pairs}


def ablations_note(cfg, checkpoints) -> dict:
    """Why the draft ablations did not run: the report says so rather than leaving them out."""
    if not cfg.eval.eval_ablations:
        why = "EVAL_ABLATIONS=0"
    elif not checkpoints[-1].with_draft:
        why = f"the last checkpoint ({checkpoints[-1].name}) was trained without drafts (WITH_DRAFT=0)"
    else:
        why = "only one checkpoint was evaluated (EVAL_CHECKPOINTS)"
    return {"note": f"Not run: {why}."}


def main() -> None:
    cfg, args = parse_args()
    task = get_task(cfg.run.task)
    if args.grade_only:
        grade_only(cfg, task, args.grade_only, args.out or args.grade_only.replace(".jsonl", "_graded.jsonl"))
        return
    if args.report_only:
        print(f"report: {shown(build_report(cfg))}")
        return
    test_path, out = cfg.run.data_dir / "test.jsonl", cfg.run.output_dir
    inputs = {"test": test_path, "teacher_heldout": heldout_path(cfg)}
    with stage_run(cfg, "eval", "09 evaluation", out, inputs) as run:
        test = load_test(cfg)
        heldout, heldout_note = load_heldout(cfg)
        specs = [
            s.strip() for s in cfg.eval.eval_checkpoints.split(",") if s.strip()
        ] or available_checkpoints(cfg)
        checkpoints = [resolve_checkpoint(cfg, spec) for spec in specs]  # a missing one stops here
        run.inputs |= {c.name: c.path for c in checkpoints}
        print(
            f"evaluating {', '.join(c.name for c in checkpoints)} on {len(test)} test questions "
            f"and {len(heldout)} held-out teacher questions"
        )
        drafts = drafts_for_test(cfg, task, test, checkpoints)
        summary = {
            "task": cfg.run.task,
            "n_questions": len(test),
            "test_source": shown(test_path),
            "heldout": {"source": shown(heldout_path(cfg)), "n_questions": len(heldout)}
            if heldout
            else {"note": f"No held-out teacher questions: {heldout_note}."},
            "checkpoints": {},
        }
        results = evaluate_all(cfg, task, test, heldout, checkpoints, specs, drafts, summary)
        summary.setdefault("ablations", ablations_note(cfg, checkpoints))
        summary["question_quality"] = question_quality(cfg, task, test, checkpoints[-1])
        summary["comparisons"] = comparisons(results)
        write_json(out / "summary.json", summary)
        report = build_report(cfg)
        held_files = [eval_path(out, f"{n}_heldout") for n in results] if heldout else []
        run.outputs(*[eval_path(out, n) for n in results], *held_files, out / "summary.json", report)
    print(f"\nreport: {shown(report)}")
    print("\n".join(executive_table(cfg.eval, summary)))  # the headline table, from the summary itself
    print("\n".join(["", *targets_table(cfg.eval, summary)]))


if __name__ == "__main__":
    run_main(main)
