"""Benchmark: evaluation throughput (prompt, greedy generation, grading) batched at 32 against
one question at a time, on the tiny model and the arith test set, through stage 09's own
answer_questions()."""

import argparse
import tempfile
import time

import torch

from common.config import load_config
from common.data.synthetic import generate
from common.data.tasks import get_task
from common.eval.evaluate import Checkpoint, answer_questions
from common.models.loading import load_model
from common.models.tiny import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(2)
    task = get_task("arith")
    questions = [task.normalize(r, "gen") for r in generate("arith", "test")[: args.questions]]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(build_tiny_model(f"{tmp}/tiny"))
        results = {}
        for batch in (1, 32):
            env = {
                "HW": "cpu",
                "GEN_BATCH_SIZE": str(batch),
                "EVAL_MAX_NEW_TOKENS": str(args.max_new_tokens),
            }
            cfg = load_config([], env=env)[0]
            model, tokenizer = load_model(path, cfg)
            ckpt = Checkpoint("tiny", path, "cot", False)
            started = time.perf_counter()
            rows = answer_questions(cfg, model, tokenizer, task, questions, ckpt, None, f"batch {batch}")
            results[batch] = (time.perf_counter() - started, len(rows))
    print(
        f"\n{args.questions} arith test questions, up to {args.max_new_tokens} new tokens, greedy, "
        f"graded, tiny model, {torch.get_num_threads()} threads"
    )
    for batch, (seconds, n) in results.items():
        print(f"batch {batch:>2}: {seconds:6.2f} s, {n / seconds:6.1f} questions/s")
    print(f"batched vs one at a time: {results[1][0] / results[32][0]:.1f}x the throughput")


if __name__ == "__main__":
    main()
