"""Evaluating a checkpoint: which model and prompt format a name means, greedy batched answers
graded by the task, and the summary statistics every claim is made from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from common.config import STRATEGIES, Config, shown
from common.data.prompts import render_prompt
from common.data.tasks import Task
from common.errors import DataError
from common.eval.stats import wilson_interval
from common.models.checkpoints import is_checkpoint
from common.models.generation import generate_batches

PHASES = {"phaseA": "phaseA", "phaseB": "phaseB", "phaseC": "phaseC"}  # name -> make target
SWEEP_PREFIX = "phaseB-"  # make sweep: checkpoints/RUN/phaseB-<strategy>/, one per answer format


@dataclass
class Checkpoint:
    name: str  # what the report calls it: base, phaseA, ..., or the path/hub id given
    path: str
    strategy: str  # the answer format it was trained on
    with_draft: bool  # whether its training prompts carried the student's draft


def resolve_checkpoint(cfg: Config, spec: str) -> Checkpoint:
    """base | phaseA | phaseB | phaseC | merged-phaseX | phaseB-<strategy> (make sweep) | an adapter
    folder under checkpoints/RUN/ (loop/round1-sigmoid) | a local folder | a hub id."""
    strategy, drafts = cfg.data.reasoning_strategy, cfg.teacher.with_draft
    if spec == "base":
        return Checkpoint("base", cfg.model.model_name, strategy, False)
    own = spec.removeprefix(SWEEP_PREFIX)
    if spec.startswith(SWEEP_PREFIX) and own in STRATEGIES:
        # Trained on its own strategy's prompts (make sweep), whatever REASONING_STRATEGY says now.
        path = cfg.run.checkpoint_dir / spec
        if not path.exists():
            raise DataError(
                f"checkpoint {shown(path)} does not exist; run `make sweep STRATEGIES={own}` first"
            )
        return Checkpoint(spec, str(path), own, drafts)
    phase = spec.removeprefix("merged-")
    if phase in PHASES:
        path = cfg.run.checkpoint_dir / spec
        if not path.exists():
            target = f"merge PHASE={phase}" if spec.startswith("merged-") else PHASES[phase]
            raise DataError(f"checkpoint {shown(path)} does not exist; run `make {target}` first")
        if phase == "phaseA":  # Phase A: question -> answer only, no draft
            return Checkpoint(spec, str(path), "none", False)
        return Checkpoint(spec, str(path), strategy, drafts)
    if is_checkpoint(cfg.run.checkpoint_dir / spec):  # e.g. loop/round1-cal_dpo
        return Checkpoint(spec, str(cfg.run.checkpoint_dir / spec), strategy, drafts)
    if (spec.startswith((".", "/")) or Path(spec).parent.is_dir()) and not Path(spec).exists():
        raise DataError(f"checkpoint {spec} does not exist; check EVAL_CHECKPOINTS")
    return Checkpoint(Path(spec).name if Path(spec).exists() else spec, spec, strategy, drafts)


def available_checkpoints(cfg: Config) -> list[str]:
    """The default list: the base model and every phase that has been trained."""
    return ["base"] + [p for p in PHASES if is_checkpoint(cfg.run.checkpoint_dir / p)]


def answer_questions(
    cfg: Config,
    model,
    tokenizer,
    task: Task,
    questions: list[dict],
    checkpoint: Checkpoint,
    drafts: dict[str, str] | None,
    desc: str,
) -> list[dict]:
    """Greedy, batched answers to every question, graded; rows in question order."""
    prompts = [
        render_prompt(
            tokenizer,
            task.build_messages(q["question"], checkpoint.strategy, drafts.get(q["id"]) if drafts else None),
        )
        for q in questions
    ]
    rows: list[dict | None] = [None] * len(questions)
    for batch in generate_batches(
        model,
        tokenizer,
        prompts,
        cfg.eval.eval_max_new_tokens,
        batch_size=cfg.generation.gen_batch_size,
        desc=desc,
    ):
        grades = task.grade_many([gen.text for _, gen in batch], [questions[i]["answer"] for i, _ in batch])
        for (i, gen), graded in zip(batch, grades, strict=True):
            q = questions[i]
            rows[i] = {
                "id": q["id"],
                "prompt": prompts[i],
                "output": gen.text,
                **graded,
                "gold": q["answer"],
                "tokens": gen.new_tokens,
                "truncated": gen.truncated,
            }
    return rows  # type: ignore[return-value]


PASS_KS = (1, 5, 10, 20, 50, 100)


def sampled_pass_at_k(
    cfg: Config, model, tokenizer, task: Task, questions: list[dict], checkpoint: Checkpoint, drafts
) -> dict:
    """PASS_K_SAMPLES sampled answers per question, graded; the unbiased pass@k of Chen et al. 2021
    (arXiv:2107.03374) for each k in PASS_KS up to that many samples, averaged over questions."""
    from common.eval.stats import pass_at_k

    n = cfg.eval.pass_k_samples
    prompts = [
        render_prompt(
            tokenizer,
            task.build_messages(q["question"], checkpoint.strategy, drafts.get(q["id"]) if drafts else None),
        )
        for q in questions
    ]
    outputs: list[str] = [""] * (n * len(questions))
    for batch in generate_batches(
        model,
        tokenizer,
        [p for p in prompts for _ in range(n)],
        cfg.eval.eval_max_new_tokens,
        batch_size=cfg.generation.gen_batch_size,
        temperature=cfg.eval.pass_k_temperature,
        seed=cfg.run.random_seed,
        desc=f"{checkpoint.name} pass@k",
    ):
        for i, gen in batch:
            outputs[i] = gen.text
    graded = task.grade_many(outputs, [q["answer"] for q in questions for _ in range(n)], desc="pass@k tests")
    correct = [sum(g["correct"] for g in graded[i * n : (i + 1) * n]) for i in range(len(questions))]
    return {
        "samples": n,
        "temperature": cfg.eval.pass_k_temperature,
        "pass_at_k": {k: sum(pass_at_k(n, c, k) for c in correct) / len(correct) for k in PASS_KS if k <= n},
    }


def summarize(task: Task, rows: list[dict]) -> dict:
    """Accuracy with its 95% Wilson interval, parse failures, truncation; for yes/no tasks the
    per-class accuracy and the answer bias (share of "no" among the answers given)."""
    n = len(rows)
    if n == 0:
        raise DataError("no graded rows to summarize: the predictions are empty")
    correct = sum(r["correct"] for r in rows)
    low, high = wilson_interval(correct, n)
    out = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n,
        "ci95": [low, high],
        "parse_failures": sum(not r["parse_ok"] for r in rows),
        "parse_failure_rate": sum(not r["parse_ok"] for r in rows) / n,
    }
    if any("outcome" in r for r in rows):  # code: how each program ended
        out["outcomes"] = dict(Counter(r.get("outcome", "unknown_id") for r in rows).most_common())
    if "truncated" in rows[0]:
        out["truncation_rate"] = sum(r["truncated"] for r in rows) / n
    if task.answer_kind == "yesno":
        by_class = {}
        for label in ("yes", "no"):
            rows_c = [r for r in rows if r["gold"] == label]
            by_class[label] = sum(r["correct"] for r in rows_c) / len(rows_c) if rows_c else None
        preds = Counter(r["pred"] for r in rows if r["pred"] is not None)
        out["accuracy_by_class"] = by_class
        out["answer_bias_no"] = preds["no"] / sum(preds.values()) if preds else None
    return out
