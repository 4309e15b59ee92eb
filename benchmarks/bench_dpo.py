"""Benchmark: DPO step time with the cached reference log-probs (Looper) against TRL's stock
DPOTrainer computing the reference forward pass every step, on the same LoRA student (a
Llama-shaped model, hidden 256), the same pairs, batch and steps. The one-time reference pass is
reported separately: it is paid once per (reference, pairs file) and reused across epochs,
schedule phases and re-runs.
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from common.config import load_config
from common.data.prompts import build_target
from common.data.synthetic import generate
from common.data.tasks import get_task
from common.models.tiny import build_tiny_model
from common.train.dpo import LooperDPOTrainer, attach_reference_logps
from common.train.setup import lora_config


def pairs(n: int) -> Dataset:
    task, rng = get_task("arith"), random.Random(0)
    rows = []
    for q in (task.normalize(r, "gen") for r in generate("arith", "train")[:n]):
        steps = task.rationale_steps(q)
        wrong = str(int(q["answer"]) + rng.randint(1, 9))
        rows.append(
            {
                "id": q["id"],
                "prompt": task.build_messages(q["question"], "cot"),
                "chosen": [{"role": "assistant", "content": build_target("cot", q["answer"], steps)}],
                "rejected": [{"role": "assistant", "content": build_target("cot", wrong, steps)}],
            }
        )
    return Dataset.from_list(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_model(Path(tmp) / "base", hidden=256, layers=4)
        cfg = load_config([], env={"HW": "cpu", "MODEL_NAME": str(base)})[0]
        adapter = Path(tmp) / "phaseB"
        get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora_config(cfg.model)).save_pretrained(
            adapter
        )
        tokenizer = AutoTokenizer.from_pretrained(base)
        data = pairs(args.batch_size * args.steps)
        common = {
            "output_dir": f"{tmp}/out",
            "max_steps": args.steps,
            "report_to": [],
            "per_device_train_batch_size": args.batch_size,
            "save_strategy": "no",
            "eval_strategy": "no",
            "logging_strategy": "no",
            "use_cpu": True,
            "learning_rate": 1e-4,
            "seed": 0,
            "bf16": False,  # TRL defaults to bf16 even on CPU
            "gradient_checkpointing": False,
        }
        results = {}
        for name in ("reference every step (TRL)", "cached reference (Looper)"):
            model = PeftModel.from_pretrained(
                AutoModelForCausalLM.from_pretrained(base), adapter, is_trainable=True
            )
            dpo_args = DPOConfig(**common, precompute_ref_log_probs=False, remove_unused_columns=False)
            if name.startswith("cached"):
                trainer = LooperDPOTrainer(
                    model=model, args=dpo_args, train_dataset=data, processing_class=tokenizer, dpo=cfg.dpo
                )
                started = time.perf_counter()
                attach_reference_logps(trainer, Path(tmp) / "ref.jsonl")
                results["one-time reference pass"] = time.perf_counter() - started
            else:
                trainer = DPOTrainer(
                    model=model, args=dpo_args, train_dataset=data, processing_class=tokenizer
                )
            started = time.perf_counter()
            trainer.train()
            results[name] = (time.perf_counter() - started) / args.steps
    uncached, cached = results["reference every step (TRL)"], results["cached reference (Looper)"]
    print(
        f"\n{args.steps} DPO steps, batch {args.batch_size} pairs, LoRA on a 4-layer, 256-wide "
        f"Llama, {torch.get_num_threads()} threads"
    )
    print(f"reference every step (TRL): {uncached:.3f} s/step")
    print(f"cached reference (Looper):  {cached:.3f} s/step")
    print(
        f"cached / uncached: {cached / uncached:.2f}x the step time; the one-time reference pass "
        f"took {results['one-time reference pass']:.2f} s"
    )


if __name__ == "__main__":
    main()
