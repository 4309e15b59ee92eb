"""Benchmark: batched generation (batch 32) against one prompt at a time on the tiny model,
same prompts and token budget, greedy. Reports new tokens per second and the ratio.
"""

import argparse
import tempfile
import time

import torch

from common.config import load_config
from common.data.prompts import render_prompt
from common.data.synthetic import generate as generate_task
from common.data.tasks import get_task
from common.models.generation import generate
from common.models.loading import load_model
from common.models.tiny import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(f"{tmp}/tiny")
        cfg, _ = load_config([], env={"HW": "cpu"})
        model, tokenizer = load_model(str(path), cfg)
        task = get_task("arith")
        questions = [q["question"] for q in generate_task("arith", "test")[: args.prompts]]
        prompts = [render_prompt(tokenizer, task.build_messages(q, "cot")) for q in questions]
        results = {}
        for name, batch in (("one at a time", 1), (f"batch {args.batch_size}", args.batch_size)):
            started = time.perf_counter()
            out = generate(model, tokenizer, prompts, args.max_new_tokens, batch_size=batch, desc=name)
            seconds = time.perf_counter() - started
            results[name] = (seconds, sum(g.new_tokens for g in out))
    print(
        f"\n{args.prompts} prompts, up to {args.max_new_tokens} new tokens, greedy, tiny model, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'variant':<16} {'seconds':>8} {'tokens':>8} {'tokens/s':>9}")
    for name, (seconds, tokens) in results.items():
        print(f"{name:<16} {seconds:>8.2f} {tokens:>8} {tokens / seconds:>9.0f}")
    (s1, t1), (sb, tb) = results.values()
    print(f"batched vs one at a time: {(tb / sb) / (t1 / s1):.1f}x the throughput")


if __name__ == "__main__":
    main()
