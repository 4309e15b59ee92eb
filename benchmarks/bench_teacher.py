"""Benchmark: 400 teacher requests to a fake server with 100 ms latency (in its own process),
side by side: a plain async SDK loop, Looper's teacher path at concurrency 32, and sequentially.
The latency limit is 400 x 0.1 s / 32 = 1.25 s.
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from common.config import load_config
from common.data.synthetic import generate
from common.data.tasks import get_task
from common.jsonl import JsonlAppender
from common.teacher.backends import Job, OpenAITeacher
from common.teacher.costs import Budget, prices
from common.teacher.runner import ResponseCache, run_requests


async def plain_sdk(base_url: str, jobs: list[Job], concurrency: int) -> None:
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job):
        async with semaphore:
            await client.chat.completions.create(
                model="gpt-4.1-mini", messages=job.messages, max_completion_tokens=600
            )

    await asyncio.gather(*(one(job) for job in jobs))


def looper_path(base_url: str, jobs: list[Job], concurrency: int, work: Path) -> None:
    """What 03_teacher.py does per request: cache lookup, budget, SDK call, ledger and output."""
    env = {
        "HW": "cpu",
        "TEACHER": "openai",
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": base_url,
        "WORK_DIR": str(work),
    }
    cfg, _ = load_config([], env=env)
    teacher = OpenAITeacher(cfg)
    budget = Budget(cfg.teacher.max_cost_usd, 0.0, prices(cfg.teacher), cfg.teacher.teacher_max_tokens)
    cache = ResponseCache(work / "cache.jsonl")
    ledger, outputs = JsonlAppender(work / "ledger.jsonl"), JsonlAppender(work / "out.jsonl")

    def on_reply(job, reply):
        ledger.append({"id": job.id, "tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out})
        outputs.append({"id": job.id, "text": reply.text, "status": reply.status})

    key = lambda job: ResponseCache.key("openai", teacher.model, job, {})  # noqa: E731
    asyncio.run(run_requests(jobs, teacher, on_reply, concurrency, budget, cache, key, "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "tests" / "fake_api.py"),
            "--latency",
            str(args.latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"
        task = get_task("compare")
        questions = generate("compare", "train")[: args.requests]
        jobs = [
            Job(f"q{i}", 0, task.build_teacher_messages(q["question"]), q) for i, q in enumerate(questions)
        ]
        limit = args.requests * args.latency / args.concurrency
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, run in [
                ("plain async SDK", lambda: asyncio.run(plain_sdk(base_url, jobs, args.concurrency))),
                (
                    "looper teacher path",
                    lambda: looper_path(base_url, jobs, args.concurrency, Path(tmp) / "a"),
                ),
                ("looper, sequential", lambda: looper_path(base_url, jobs, 1, Path(tmp) / "b")),
            ]:
                started = time.perf_counter()
                run()
                results[name] = time.perf_counter() - started
    finally:
        server.kill()
    print(
        f"\n{args.requests} requests, {args.latency * 1000:.0f} ms latency, concurrency "
        f"{args.concurrency}: latency limit {limit:.2f} s"
    )
    print(f"{'variant':<22} {'seconds':>8} {'x limit':>8} {'req/s':>8}")
    for name, seconds in results.items():
        print(f"{name:<22} {seconds:>8.2f} {seconds / limit:>8.2f} {args.requests / seconds:>8.1f}")
    speedup = results["looper, sequential"] / results["looper teacher path"]
    print(f"looper concurrent vs sequential: {speedup:.1f}x faster")


if __name__ == "__main__":
    main()
