"""Supervised fine-tuning of the student on TRL's SFTTrainer (Phases A and B)."""

from __future__ import annotations

import time
from pathlib import Path

from common.config import Config, shown
from common.train.setup import (
    already_done,
    finish,
    load_student,
    oom_hint,
    packing_supported,
    resume_from,
    trainer_args,
)


def run_sft(
    cfg: Config,
    phase: str,
    train_path: Path,
    dev_path: Path,
    out_dir: Path,
    init_checkpoint: Path | None = None,
) -> dict | None:
    """Train on prompt-completion records (loss on the completion, end-of-turn included), early
    stopping on dev loss and keeping the best checkpoint; return the phase metrics."""
    from datasets import load_dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    started = time.time()
    data = {"train": train_path, "dev": dev_path}
    if already_done(cfg, out_dir, data | ({"init_checkpoint": init_checkpoint} if init_checkpoint else {})):
        return None
    files = {"train": str(train_path), "dev": str(dev_path)}
    dataset = load_dataset("json", data_files=files)
    model, tokenizer = load_student(cfg, init_checkpoint)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{phase}: {trainable:,} trainable parameters (FINETUNE={cfg.model.finetune})")
    packing = packing_supported(cfg)
    args = SFTConfig(
        **trainer_args(cfg, out_dir, len(dataset["train"]), cfg.train.learning_rate, cfg.train.epochs),
        completion_only_loss=True,
        packing=packing,
        train_sampling_strategy="random" if packing else cfg.train.train_sampling,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["dev"],
        processing_class=tokenizer,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience)],
    )
    print(
        f"{phase}: {len(dataset['train'])} train / {len(dataset['dev'])} dev examples from "
        f"{shown(train_path)}, packing={packing}, {trainer.accelerator.num_processes} process(es)"
    )
    with oom_hint(cfg, phase):
        trainer.train(resume_from_checkpoint=resume_from(cfg, out_dir))
    return finish(trainer, cfg, phase, out_dir, data, init_checkpoint, started)
