"""Run teacher requests concurrently (bounded), through a response cache and a spending cap,
handing each reply to a callback as soon as it arrives so the caller can append it to disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from common.config import TeacherSection
from common.jsonl import JsonlAppender
from common.teacher.backends import Job, Reply, make_teacher
from common.teacher.costs import Budget, estimate_tokens, prices, teacher_model, usd

# Replies worth keeping: a re-run with the same prompt would only pay for the same answer.
CACHEABLE = ("ok", "refused", "empty")


class ResponseCache:
    """Teacher replies keyed by (backend, model, prompt hash, attempt), in an append-only JSONL
    file shared by every run, so a repeated run costs nothing."""

    def __init__(self, path: Path):
        self.store = JsonlAppender(path, key="key")

    @staticmethod
    def key(backend: str, model: str, job: Job, settings: dict) -> str:
        prompt = json.dumps([job.messages, settings], sort_keys=True).encode()
        prompt_hash = hashlib.sha256(prompt).hexdigest()
        return f"{backend}|{model}|{prompt_hash}|{job.attempt}"

    def get(self, key: str) -> Reply | None:
        row = self.store.rows.get(key)
        return Reply(**(row["reply"] | {"cached": True})) if row else None

    def put(self, key: str, reply: Reply) -> None:
        self.store.append({"key": key, "reply": dataclasses.asdict(reply) | {"cached": False}})

    def close(self) -> None:
        self.store.close()


async def run_requests(
    jobs: list[Job],
    teacher,
    on_reply: Callable[[Job, Reply], None],
    concurrency: int,
    budget: Budget | None = None,
    cache: ResponseCache | None = None,
    cache_key: Callable[[Job], str] | None = None,
    desc: str = "teacher",
) -> int:
    """Send every job with at most `concurrency` in flight; return how many were sent or cached.

    Jobs the budget cannot cover are not started; the caller sees budget.exhausted.
    """
    semaphore = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(jobs), desc=desc, unit="req", mininterval=0.5)
    done = 0

    async def one(job: Job) -> None:
        nonlocal done
        async with semaphore:
            key = cache_key(job) if cache and cache_key else None
            reply = cache.get(key) if key else None
            if reply is None:
                tokens_in = estimate_tokens("".join(m["content"] for m in job.messages))
                if budget and not budget.try_reserve(tokens_in):
                    return
                reply = None
                try:
                    reply = await teacher.complete(job)
                finally:  # release the reservation even when the task is cancelled
                    if budget:
                        spent = usd(reply.tokens_in, reply.tokens_out, budget.price) if reply else 0
                        budget.settle(tokens_in, spent)
                if key and reply.status in CACHEABLE:
                    cache.put(key, reply)
            on_reply(job, reply)
            done += 1
            bar.update()

    await asyncio.gather(*(one(job) for job in jobs))
    bar.close()
    return done


def ask_teacher(
    settings: TeacherSection,
    teacher,
    jobs: list[Job],
    on_reply: Callable[[Job, Reply], None],
    ledger_path: Path,
    desc: str = "teacher",
) -> Budget:
    """Send jobs through the configured teacher with the response cache, one cost-ledger line
    per call and the MAX_COST_USD cap (counted over the whole ledger); return the budget."""
    model, price = teacher_model(settings), prices(settings)
    sampling = {"temperature": settings.teacher_temperature, "max_tokens": settings.teacher_max_tokens}
    cache = (
        ResponseCache(settings.cache_path / "teacher_cache.jsonl") if settings.backend != "offline" else None
    )
    with JsonlAppender(ledger_path, key="call_id") as ledger:
        spent = sum(row["usd"] for row in ledger.rows.values())
        budget = Budget(settings.max_cost_usd, spent, price, settings.teacher_max_tokens)

        def record(job: Job, reply: Reply) -> None:
            ledger.append(
                {
                    "call_id": uuid.uuid4().hex,
                    "id": job.id,
                    "attempt": job.attempt,
                    "backend": settings.backend,
                    "model": model,
                    "status": reply.status,
                    "tokens_in": reply.tokens_in,
                    "tokens_out": reply.tokens_out,
                    "cached": reply.cached,
                    "usd": 0.0 if reply.cached else round(usd(reply.tokens_in, reply.tokens_out, price), 8),
                }
            )
            on_reply(job, reply)

        async def run_then_close() -> None:
            try:
                await run_requests(
                    jobs,
                    teacher,
                    record,
                    settings.teacher_concurrency,
                    budget,
                    cache,
                    cache_key=lambda job: ResponseCache.key(settings.backend, model, job, sampling),
                    desc=desc,
                )
            finally:  # close the HTTP client inside its own event loop
                if hasattr(teacher, "aclose"):
                    await teacher.aclose()

        try:
            asyncio.run(run_then_close())
        finally:
            if cache:
                cache.close()
    return budget


def ask_configured_teacher(
    settings: TeacherSection, task, seed: int, jobs: list[Job], on_reply, ledger_path: Path, desc: str
) -> Budget:
    """ask_teacher() through the TEACHER backend itself (the judges of stages 07 and 09)."""
    return ask_teacher(settings, make_teacher(settings, task, seed), jobs, on_reply, ledger_path, desc=desc)
