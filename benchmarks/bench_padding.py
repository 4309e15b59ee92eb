"""Benchmark: the fraction of real (non-pad) tokens in training batches over GSM8K Phase B
lengths, side by side: naive padding (random batches padded to their longest), length-grouped
batches (what Looper uses without flash-attention), and best-fit-decreasing packing (what it
uses with flash-attention 2, padding-free).

Lengths are Phase B examples (question -> worked solution in the `cot` format) built from
../shared/data/gsm8k/train.jsonl through the project's prompt module and the tiny model's
tokenizer; without that file, from the generated arith task.
"""

import argparse
import random
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl.data_utils import pack_dataset

from common.data.prompts import build_target
from common.data.synthetic import generate
from common.data.tasks import get_task
from common.models.tiny import build_tiny_model

GSM8K = Path(__file__).resolve().parents[2] / "shared/data/gsm8k/train.jsonl"


def track_b_lengths(tokenizer, n: int) -> tuple[list[int], str]:
    task = get_task("gsm8k")
    if GSM8K.is_file():
        rows = task.load_split("train", str(GSM8K))[:n]
        source = f"GSM8K train ({len(rows)} examples)"
    else:
        rows = [task.normalize(r, "gen") for r in generate("arith", "train")[:n]]
        source = f"generated arith ({len(rows)} examples; GSM8K file absent)"
    lengths = []
    for q in rows:
        messages = task.build_messages(q["question"], "cot") + [
            {
                "role": "assistant",
                "content": build_target("cot", q["answer"], task.rationale_steps(q)),
            }
        ]
        lengths.append(len(tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"]))
    return lengths, source


def efficiency(batches: list[list[int]]) -> float:
    real = sum(sum(b) for b in batches)
    padded = sum(len(b) * max(b) for b in batches)
    return real / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=2048)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(f"{tmp}/tiny"))
    lengths, source = track_b_lengths(tokenizer, args.examples)
    lengths = [min(n, args.max_length) for n in lengths]
    b = args.batch_size
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    naive = [[lengths[i] for i in order[k : k + b]] for k in range(0, len(order), b)]
    sampler = LengthGroupedSampler(b, lengths=lengths, generator=torch.Generator().manual_seed(0))
    grouped_order = list(sampler)
    grouped = [[lengths[i] for i in grouped_order[k : k + b]] for k in range(0, len(grouped_order), b)]
    packed = pack_dataset(Dataset.from_dict({"input_ids": [[0] * n for n in lengths]}), args.max_length)
    bins = [len(row) for row in packed["input_ids"]]
    results = {
        "naive padding": efficiency(naive),
        "length-grouped": efficiency(grouped),
        "bfd packing (bins filled)": sum(bins) / (len(bins) * args.max_length),
    }
    print(
        f"\n{source}: Phase B lengths mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)} "
        f"tokens; batch {b}, max length {args.max_length}"
    )
    print(f"{'batching':<28} {'real-token fraction':>20}")
    for name, value in results.items():
        print(f"{name:<28} {value:>20.3f}")
    print(
        f"length-grouped vs naive: {results['length-grouped'] / results['naive padding']:.2f}x "
        f"the useful tokens per padded token; padding-free packing has no pad tokens at all"
    )


if __name__ == "__main__":
    main()
