"""Stage 03: the teacher's reasoning for each sampled question (with the student's draft), in the
teaching format, parsed to a final answer; TEACHER_ATTEMPTS>1 keeps the majority answer.

Reads data/RUN/sample_train.jsonl and student_drafts.jsonl. Appends data/RUN/teacher_outputs.jsonl
(one row per question, resumes by id) and the cost ledger data/RUN/teacher_cost.jsonl.
"""

import time
from collections import Counter

from common.config import load_config, print_config, shown
from common.data.tasks import Task, get_task
from common.errors import BudgetReached, DataError, run_main
from common.jsonl import JsonlAppender, read_jsonl
from common.manifest import write_manifest
from common.teacher.backends import Job, Reply, make_teacher
from common.teacher.costs import estimate_tokens, prices, teacher_model, usd
from common.teacher.runner import ask_teacher


def attach_drafts(questions: list[dict], drafts_path) -> list[dict]:
    drafts = {row["id"]: row for row in read_jsonl(drafts_path, made_by="drafts")}
    missing = [q["id"] for q in questions if q["id"] not in drafts]
    if missing:
        raise DataError(
            f"{drafts_path} lacks drafts for {len(missing)} of {len(questions)} questions "
            f"(e.g. {', '.join(missing[:3])}); re-run `make drafts`, or set WITH_DRAFT=0"
        )
    keep = ("draft", "draft_answer", "draft_reasoning", "questions")
    return [q | {k: drafts[q["id"]][k] for k in keep} for q in questions]


def example_row(task: Task, example: dict, replies: list[Reply], backend: str, model: str) -> dict:
    """One question's result: the majority answer over attempts, its reasoning and agreement."""
    answers = [task.extract_answer(r.text) if r.status == "ok" else None for r in replies]
    valid = [a for a in answers if a is not None]
    majority = Counter(valid).most_common(1)[0][0] if valid else None
    chosen = next((r for r, a in zip(replies, answers, strict=True) if a == majority and a), None)
    chosen = chosen or next((r for r in replies if r.status == "ok"), replies[0])
    statuses = {r.status for r in replies}
    status = next(s for s in ("ok", "refused", "empty", "api_error") if s in statuses)
    return {
        "id": example["id"],
        "question": example["question"],
        "gold": example["answer"],
        "status": status,
        "text": chosen.text,
        "answer": majority,
        "agreement": round(valid.count(majority) / len(replies), 4) if valid else 0.0,
        "attempts": [
            {
                "attempt": i,
                "status": r.status,
                "answer": a,
                "error": r.error,
                "tokens_in": r.tokens_in,
                "tokens_out": r.tokens_out,
                "cached": r.cached,
                **({"text": r.text} if len(replies) > 1 else {}),
            }
            for i, (r, a) in enumerate(zip(replies, answers, strict=True))
        ],
        "error": next((r.error for r in replies if r.error), ""),
        "backend": backend,
        "model": model,
    }


def print_dry_run(jobs: list[Job], price: tuple[float, float], max_tokens: int) -> None:
    tokens_in = sum(estimate_tokens("".join(m["content"] for m in j.messages)) for j in jobs)
    tokens_out = len(jobs) * max_tokens
    print("DRY_RUN=1: nothing is sent. The first request would be:")
    for message in jobs[0].messages if jobs else []:
        print(f"--- {message['role']} ---\n{message['content']}")
    print(
        f"--- {len(jobs)} requests: ~{tokens_in:,} input tokens (estimated), at most "
        f"{tokens_out:,} output tokens; at most ${usd(tokens_in, tokens_out, price):.4f} "
        f"at ${price[0]}/${price[1]} per 1M tokens in/out"
    )


def main() -> None:
    started = time.time()
    cfg, _ = load_config()
    print_config(cfg, "03 teacher")
    task = get_task(cfg.run.task)
    model, price = teacher_model(cfg.teacher), prices(cfg.teacher)
    sample_path = cfg.run.data_dir / "sample_train.jsonl"
    drafts_path = cfg.run.data_dir / "student_drafts.jsonl"
    examples = read_jsonl(sample_path, made_by="sample")
    if cfg.teacher.with_draft:
        examples = attach_drafts(examples, drafts_path)
    out_path, ledger_path = (
        cfg.run.data_dir / "teacher_outputs.jsonl",
        cfg.run.data_dir / "teacher_cost.jsonl",
    )

    def jobs_for(todo: list[dict]) -> list[Job]:
        return [
            Job(ex["id"], attempt, task.build_teacher_messages(ex["question"], ex.get("draft")), ex)
            for ex in todo
            for attempt in range(cfg.teacher.teacher_attempts)
        ]

    if cfg.teacher.dry_run:
        print_dry_run(jobs_for(examples), price, cfg.teacher.teacher_max_tokens)
        return
    teacher = make_teacher(cfg.teacher, task, cfg.run.random_seed)  # a missing key stops here

    outputs = JsonlAppender(out_path)
    retried = outputs.retain(lambda row: row["status"] != "api_error")
    todo = [ex for ex in examples if ex["id"] not in outputs]
    print(
        f"{len(examples) - len(todo)} questions already done ({retried} API errors to retry), "
        f"{len(todo)} to ask {model} ({cfg.teacher.teacher_attempts} attempt(s) each)"
    )
    pending: dict[str, dict[int, Reply]] = {}

    def on_reply(job: Job, reply: Reply) -> None:
        replies = pending.setdefault(job.id, {})
        replies[job.attempt] = reply
        if len(replies) == cfg.teacher.teacher_attempts:
            ordered = [replies[a] for a in sorted(replies)]
            outputs.append(example_row(task, job.example, ordered, cfg.teacher.backend, model))
            del pending[job.id]

    sent_at = time.time()
    with outputs:
        budget = ask_teacher(cfg.teacher, teacher, jobs_for(todo), on_reply, ledger_path)
    seconds = time.time() - sent_at

    rows = [outputs.rows[ex["id"]] for ex in examples if ex["id"] in outputs.rows]
    statuses = Counter(row["status"] for row in rows)
    agree = sum(task.is_correct(row["answer"], row["gold"]) for row in rows)
    stats = {
        "questions": len(examples),
        "done": len(rows),
        "status": dict(statuses),
        "teacher_matches_gold": agree,
        "spent_usd": round(budget.spent, 6),
        "request_seconds": round(seconds, 3),
    }
    outs = [p for p in (out_path, ledger_path) if p.exists()]
    manifest = write_manifest(
        cfg.run.data_dir,
        "teacher",
        cfg,
        {"sample_train": sample_path, **({"drafts": drafts_path} if cfg.teacher.with_draft else {})},
        outs,
        {"stats": stats},
        started,
    )
    print(
        f"teacher: {len(rows)}/{len(examples)} questions, status {dict(statuses)}, "
        f"matches gold {agree}/{max(len(rows), 1)}, spent ${budget.spent:.4f} in total, "
        f"{seconds:.1f}s of requests"
    )
    for row in rows:
        if row["status"] == "api_error":
            print(f"  e.g. {row['id']}: {row['error']}")
            break
    print(f"wrote {shown(out_path)}, {shown(ledger_path)}; manifest {shown(manifest)}")
    if budget.exhausted:
        raise BudgetReached(
            f"MAX_COST_USD={cfg.teacher.max_cost_usd} reached (${budget.spent:.4f} spent); "
            f"{len(rows)}/{len(examples)} questions kept; raise MAX_COST_USD and re-run to continue"
        )


if __name__ == "__main__":
    run_main(main)
