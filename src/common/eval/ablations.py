"""Stage 09's checks beyond accuracy: the draft ablations (no draft, another question's draft, and
the integrated-gradients share of attribution on draft tokens), the clarifying-question check
judged by the teacher, and which evaluated checkpoint `make loop` copied to phaseC.
"""

from __future__ import annotations

import json
import random

from common.eval.evaluate import answer_questions, summarize
from common.eval.question_judge import question_win_rate
from common.eval.stats import mcnemar_exact
from common.jsonl import write_jsonl
from common.rollout.drafts import drafts_file, own_drafts, write_drafts


def eval_path(out, name: str):
    """outputs/RUN/eval_NAME.jsonl, with a loop checkpoint's '/' and spaces made safe."""
    return out / f"eval_{name.replace('/', '_').replace(' ', '_')}.jsonl"


def pair_stats(a_rows, b_rows) -> dict:
    test = mcnemar_exact([r["correct"] for r in a_rows], [r["correct"] for r in b_rows])
    delta = (sum(r["correct"] for r in b_rows) - sum(r["correct"] for r in a_rows)) / len(a_rows)
    return test | {"delta": delta}


def loop_selection(cfg, specs: list[str]) -> dict[str, str]:
    """{"phaseC": "loop/roundN-LOSS"} when `make loop` chose phaseC from a checkpoint that is
    also in this evaluation: its answers are then the same and are not generated twice."""
    selection = cfg.run.checkpoint_dir / "phaseC" / "selection.json"
    if "phaseC" not in specs or not selection.is_file():
        return {}
    source = json.loads(selection.read_text()).get("spec")
    return {"phaseC": source} if source in specs and specs.index(source) < specs.index("phaseC") else {}


def question_quality(cfg, task, test, last) -> dict:
    """The clarifying-question check: the last phase's questions against the base's, judged pairwise
    by the teacher (a win rate)."""
    if last.name == "base" or not cfg.eval.eval_ablations:
        return {"note": "not measured: no trained phase was evaluated (or EVAL_ABLATIONS=0)."}
    if cfg.teacher.backend == "offline":
        return question_win_rate(cfg, task, [], {}, {}, cfg.run.data_dir / "teacher_cost.jsonl")
    subset = test[: cfg.eval.judge_samples]
    base = write_drafts(cfg, task, subset, cfg.run.data_dir / "test_drafts.jsonl", cfg.model.model_name)
    # The same file and weights as DRAFTS_FROM=policy: the phase's own drafts are written once.
    mine = own_drafts(cfg, task, subset, drafts_file(cfg.run.data_dir, "test_drafts", last.name), last.path)
    return question_win_rate(cfg, task, subset, mine, base, cfg.run.data_dir / "teacher_cost.jsonl")


def draft_ablations(cfg, task, test, ckpt, model, tokenizer, drafts, with_draft_rows) -> dict:
    """Does the answer use the draft? Accuracy with no draft (question only) and with another
    question's draft, against the draft it was given; and the share of attribution on draft tokens."""
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
