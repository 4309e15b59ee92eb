"""Benchmark: the tiny offline student against SmolLM2-135M-Instruct on the same GSM8K questions, side
by side in one run: generation (questions/s and new tokens/s, batched, greedy, as stages 02, 07
and 09 generate) and training (tokens/s of forward, backward and optimizer steps, as Phases A-C
train: full weights for the tiny model as in the demo, LoRA on all linear layers for SmolLM2 as in
configs/smollm2.env). Needs `make smollm2`; GSM8K from --data (a local GSM8K train.jsonl).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from common.config import load_config
from common.data.prompts import render_prompt
from common.data.tasks import get_task
from common.models.generation import generate
from common.models.loading import load_model
from common.models.tiny import STUDENT, build_tiny_model
from common.train.setup import load_student

ROOT = Path(__file__).resolve().parents[1]


def questions(path: Path, n: int) -> list[dict]:
    task = get_task("gsm8k")
    rows = [json.loads(line) for line in path.open()][:n]
    return [task.normalize(row, f"{path}:{i + 1}") for i, row in enumerate(rows)]


def generation_speed(model_dir: str, prompts_of, n_tokens: int, batch: int) -> tuple[float, int, int]:
    cfg, _ = load_config([], env={"HW": "cpu", "LOOPER_ENV_FILE": "/dev/null"})
    model, tokenizer = load_model(model_dir, cfg)
    prompts = prompts_of(tokenizer)
    started = time.perf_counter()
    out = generate(model, tokenizer, prompts, n_tokens, batch_size=batch, desc=Path(model_dir).name)
    return time.perf_counter() - started, len(prompts), sum(g.new_tokens for g in out)


def training_speed(model_dir: str, finetune: str, texts_of, batch: int, steps: int) -> tuple[float, int]:
    """Seconds and real (unpadded) tokens of `steps` optimizer steps after one warm-up step."""
    env = {"HW": "cpu", "LOOPER_ENV_FILE": "/dev/null", "MODEL_NAME": model_dir, "FINETUNE": finetune}
    cfg, _ = load_config([], env=env)
    model, tokenizer = load_student(cfg.model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    texts = texts_of(tokenizer)
    seconds, tokens = 0.0, 0
    for step in range(steps + 1):
        chunk = texts[step * batch : (step + 1) * batch]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=448)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        started = time.perf_counter()
        model(**enc, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up allocators and kernels
            seconds += time.perf_counter() - started
            tokens += int(enc["attention_mask"].sum())
    return seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    parser.add_argument("--smollm2", default=str(ROOT / "checkpoints" / "smollm2-135m-instruct"))
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    task = get_task("gsm8k")
    rows = questions(Path(args.data), max(args.questions, args.train_batch * (args.train_steps + 1)))

    def prompts_of(tokenizer) -> list[str]:
        return [
            render_prompt(tokenizer, task.build_messages(r["question"], "cot"))
            for r in rows[: args.questions]
        ]

    def texts_of(tokenizer) -> list[str]:  # a Phase B example: prompt and worked solution
        return [
            render_prompt(tokenizer, task.build_messages(r["question"], "cot"))
            + "\n".join(task.rationale_steps(r))
            + f"\nThe answer is: {r['answer']}"
            for r in rows
        ]

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = str(build_tiny_model(Path(tmp) / "tiny-base", pretrain_steps=0, **STUDENT))
        students = {"tiny (0.9M, full)": (tiny, "full"), "SmolLM2-135M (LoRA)": (args.smollm2, "lora")}
        for name, (path, finetune) in students.items():
            gen = generation_speed(path, prompts_of, args.max_new_tokens, args.batch_size)
            train = training_speed(path, finetune, texts_of, args.train_batch, args.train_steps)
            results[name] = (gen, train)

    print(
        f"\n{args.questions} GSM8K questions, up to {args.max_new_tokens} new tokens, batch {args.batch_size}, "
        f"greedy; training {args.train_steps} steps of {args.train_batch}; {torch.get_num_threads()} threads"
    )
    print(f"{'student':<22} {'questions/s':>11} {'new tokens/s':>13} {'train tokens/s':>15}")
    for name, ((gs, n, new), (ts, tokens)) in results.items():
        print(f"{name:<22} {n / gs:>11.2f} {new / gs:>13.0f} {tokens / ts:>15.0f}")
    (tiny_gen, tiny_train), (smol_gen, smol_train) = results.values()
    print(
        f"SmolLM2 vs tiny: generation {(smol_gen[2] / smol_gen[0]) / (tiny_gen[2] / tiny_gen[0]):.3f}x the "
        f"tokens/s, training {(smol_train[1] / smol_train[0]) / (tiny_train[1] / tiny_train[0]):.3f}x"
    )


if __name__ == "__main__":
    main()
