"""Stage 03: the teacher's reasoning for each sampled question (with the student's draft), in the
teaching format, parsed to a final answer; TEACHER_ATTEMPTS>1 keeps the majority answer.

With DISAGREEMENT=rationalize, each answer that disagrees with gold (wrong or unparseable) is then
asked once more with the gold answer as a hint: STaR rationalization (Zelikman et al. 2022,
arXiv:2203.14465). The rationale is accepted when it reaches gold without giving the hint away;
it is stored in the question's row under "rationalization", so stage 04 only reads files.

Reads data/RUN/sample_train.jsonl and student_drafts.jsonl. Appends data/RUN/teacher_outputs.jsonl
(one row per question, resumes by id) and the cost ledger data/RUN/teacher_cost.jsonl.
"""

import time
from collections import Counter

from common.config import load_config, shown
from common.data.prompts import mentions_hint
from common.data.tasks import Task, get_task
from common.data.validation import reason
from common.errors import BudgetReached, DataError, LooperError, run_main
from common.fingerprint import keep_rows, row_fp
from common.jsonl import JsonlAppender, read_jsonl
from common.stage import stage_run
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


def teacher_messages(cfg, task: Task, ex: dict, hint: str | None = None) -> list[dict]:
    return task.build_teacher_messages(ex["question"], ex.get("draft"), hint, cfg.data.reasoning_strategy)


def teacher_jobs(cfg, task: Task, examples: list[dict]) -> list[Job]:
    return [
        Job(ex["id"], attempt, teacher_messages(cfg, task, ex), ex)
        for ex in examples
        for attempt in range(cfg.teacher.teacher_attempts)
    ]


def ask_for_answers(cfg, task, teacher, model, examples, outputs, ledger_path, retried, waiting):
    """The first pass: TEACHER_ATTEMPTS replies per question still to do; a finished row is appended,
    or added to `waiting` when it waits for rationalization. Returns the budget."""
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
            row = example_row(
                task, job.example, [replies[a] for a in sorted(replies)], cfg.teacher.backend, model
            ) | {"fp": job.example["fp"]}
            if needs_rationale(cfg, task, row):
                waiting.append(row)
            else:
                outputs.append(row)
            del pending[job.id]

    return ask_teacher(cfg.teacher, teacher, teacher_jobs(cfg, task, todo), on_reply, ledger_path)


def needs_rationale(cfg, task: Task, row: dict) -> bool:
    """DISAGREEMENT=rationalize: a wrong or unparseable answer without a finished rationalization."""
    if cfg.data.disagreement != "rationalize" or reason(task, row) not in ("wrong", "unparseable"):
        return False
    return row.get("rationalization", {}).get("status", "api_error") == "api_error"


def rationalize(cfg, task, teacher, waiting: list[dict], examples: list[dict], outputs, ledger_path):
    """STaR rationalization: ask again with the gold answer as a hint, through the same runner,
    cache, ledger and budget; keep a rationale that now reaches gold and does not give the hint
    away. Each row is appended with its "rationalization"; returns the budget."""
    rows, by_id = {row["id"]: row for row in waiting}, {ex["id"]: ex for ex in examples}
    jobs = []
    for row in waiting:
        if row["id"] not in by_id:  # a row for a question no longer in the sample
            continue
        ex = by_id[row["id"]]
        hint = task.hint(ex)
        messages = teacher_messages(cfg, task, ex, hint)
        jobs.append(Job(ex["id"], 0, messages, ex, hint=hint))
    print(f"rationalize: {len(jobs)} answers disagree with gold; asking again with the gold answer as a hint")

    def on_reply(job: Job, reply: Reply) -> None:
        answer = task.extract_answer(reply.text) if reply.status == "ok" else None
        leaky = mentions_hint(reply.text)
        outputs.append(
            rows[job.id]
            | {
                "rationalization": {
                    "status": reply.status,
                    "text": reply.text,
                    "answer": answer,
                    "leaky": leaky,
                    "error": reply.error,
                    "accepted": task.is_correct(answer, job.example["answer"]) and not leaky,
                    "tokens_in": reply.tokens_in,
                    "tokens_out": reply.tokens_out,
                    "cached": reply.cached,
                }
            }
        )

    return ask_teacher(cfg.teacher, teacher, jobs, on_reply, ledger_path, desc="rationalize")


def teacher_stats(task, examples: list[dict], rows: list[dict], spent: float, seconds: float) -> dict:
    rationalized = [row["rationalization"] for row in rows if "rationalization" in row]
    return {
        "questions": len(examples),
        "done": len(rows),
        "status": dict(Counter(row["status"] for row in rows)),
        "teacher_matches_gold": sum(task.is_correct(row["answer"], row["gold"]) for row in rows),
        **(
            {"rationalized": sum(r["accepted"] for r in rationalized), "rationalize_asked": len(rationalized)}
            if rationalized
            else {}
        ),
        "spent_usd": round(spent, 6),
        "request_seconds": round(seconds, 3),
    }


def print_summary(stats: dict, rows: list[dict], spent: float) -> None:
    print(
        f"teacher: {stats['done']}/{stats['questions']} questions, status {stats['status']}, "
        f"matches gold {stats['teacher_matches_gold']}/{max(stats['done'], 1)}, spent ${spent:.4f} in "
        f"total, {stats['request_seconds']:.1f}s of requests"
    )
    if "rationalize_asked" in stats:
        print(f"rationalized: {stats['rationalized']} of {stats['rationalize_asked']} accepted")
    for row in rows:
        if row["status"] == "api_error":
            print(f"  e.g. {row['id']}: {row['error']}")
            break


def main() -> None:
    cfg, _ = load_config()
    task = get_task(cfg.run.task)
    model, price = teacher_model(cfg.teacher), prices(cfg.teacher)
    sample_path, drafts_path = (
        cfg.run.data_dir / "sample_train.jsonl",
        cfg.run.data_dir / "student_drafts.jsonl",
    )
    out_path, ledger_path = (
        cfg.run.data_dir / "teacher_outputs.jsonl",
        cfg.run.data_dir / "teacher_cost.jsonl",
    )
    inputs = {"sample_train": sample_path, **({"drafts": drafts_path} if cfg.teacher.with_draft else {})}
    with stage_run(cfg, "teacher", "03 teacher", cfg.run.data_dir, inputs) as run:
        examples = read_jsonl(sample_path, made_by="sample")
        if cfg.teacher.with_draft:
            examples = attach_drafts(examples, drafts_path)
        if cfg.teacher.dry_run:
            print_dry_run(teacher_jobs(cfg, task, examples), price, cfg.teacher.teacher_max_tokens)
            run.discard()
            return
        teacher = make_teacher(
            cfg.teacher, task, cfg.run.random_seed, cfg.data.reasoning_strategy
        )  # a missing key stops here

        # Each row carries the fingerprint of the keys and the draft it was asked with.
        for ex in examples:
            ex["fp"] = row_fp(cfg, "teacher", ex.get("draft", ""))
        fps = {ex["id"]: ex["fp"] for ex in examples}
        sent_at, waiting = time.time(), []
        with JsonlAppender(out_path) as outputs:
            keep_rows(outputs, lambda row: fps.get(row["id"], row.get("fp")), "teacher")
            retried = outputs.retain(lambda row: row["status"] != "api_error")
            budget = ask_for_answers(
                cfg, task, teacher, model, examples, outputs, ledger_path, retried, waiting
            )
            # A code task runs every teacher program against its tests here, in parallel, once;
            # the checks below read those verdicts.
            answered = list(outputs.rows.values())
            task.check_many([r["answer"] for r in answered], [r["gold"] for r in answered])
            # Rows of an earlier run (another DISAGREEMENT, a failed hinted call) are asked too.
            waiting += [row for row in outputs.rows.values() if needs_rationale(cfg, task, row)]
            outputs.retain(lambda row: not needs_rationale(cfg, task, row))
            if waiting and not budget.exhausted:
                teacher = make_teacher(
                    cfg.teacher, task, cfg.run.random_seed, cfg.data.reasoning_strategy
                )  # ask_teacher closed the first pass's client
                budget = rationalize(cfg, task, teacher, waiting, examples, outputs, ledger_path)
            for row in waiting:  # not rationalized (the budget ran out): kept, asked on the next run
                if row["id"] not in outputs:
                    outputs.append(row)
        rows = [outputs.rows[ex["id"]] for ex in examples if ex["id"] in outputs.rows]
        stats = teacher_stats(task, examples, rows, budget.spent, time.time() - sent_at)
        run.outputs(out_path, ledger_path)
        run.extra["stats"] = stats
        print_summary(stats, rows, budget.spent)
        print(f"wrote {shown(out_path)}, {shown(ledger_path)}")
        failed = sum(row["status"] == "api_error" for row in rows)
        if examples and failed == len(examples):  # nothing usable: a failure, not a finished stage
            raise LooperError(
                f"teacher: every request failed ({failed}/{len(examples)} api_error, e.g. "
                f"{rows[0].get('error', '?')}); check the key, TEACHER_MODEL and the base URL, then re-run"
            )
    if budget.exhausted:
        raise BudgetReached(
            f"MAX_COST_USD={cfg.teacher.max_cost_usd} reached (${budget.spent:.4f} spent); "
            f"{len(rows)}/{len(examples)} questions kept; raise MAX_COST_USD and re-run to continue"
        )


if __name__ == "__main__":
    run_main(main)
