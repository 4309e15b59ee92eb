"""Supervised fine-tuning of the student on TRL's SFTTrainer (Phases A and B)."""

from __future__ import annotations

import time
from pathlib import Path

from common.config import Config, shown, trl_args
from common.fingerprint import fingerprint, reuse_finished, short_hash
from common.models.tiny import ensure_tiny_model
from common.train.setup import (
    finish,
    finite_loss_callback,
    load_student,
    oom_hint,
    packing_supported,
    resume_from,
    trainer_args,
)


def sft_config(cfg: Config, out_dir: Path, n_train: int, packing: bool):
    """TRL's SFTConfig for a phase: the shared trainer arguments, completion-only loss, packing or
    TRAIN_SAMPLING, then SFT_ARGS (TRL's own settings, checked by the config) over all of them."""
    from trl import SFTConfig

    args = trainer_args(cfg, out_dir, n_train, cfg.train.learning_rate, cfg.train.epochs)
    args |= {
        "completion_only_loss": True,
        "packing": packing,
        "train_sampling_strategy": "random" if packing else cfg.train.train_sampling,
    }
    return SFTConfig(**(args | trl_args(cfg.train.sft_args, "sft")))


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
    from trl import SFTTrainer

    started = time.time()
    data = {"train": train_path, "dev": dev_path}
    inputs = data | ({"init_checkpoint": init_checkpoint} if init_checkpoint else {})
    if reuse_finished(cfg, phase, inputs):
        return None
    files = {"train": str(train_path), "dev": str(dev_path)}
    dataset = load_dataset("json", data_files=files)
    ensure_tiny_model(cfg.model.model_name, cfg.run.tiny_pretrain_steps)
    model, tokenizer = load_student(cfg.model, init_checkpoint, cfg.train.gradient_checkpointing)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{phase}: {trainable:,} trainable parameters (FINETUNE={cfg.model.finetune})")
    packing = packing_supported(cfg.model)
    args = sft_config(cfg, out_dir, len(dataset["train"]), packing)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["dev"],
        processing_class=tokenizer,
        callbacks=[
            EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience),
            finite_loss_callback(phase),
        ],
    )
    print(
        f"{phase}: {len(dataset['train'])} train / {len(dataset['dev'])} dev examples from "
        f"{shown(train_path)}, packing={packing}, {trainer.accelerator.num_processes} process(es)"
    )
    with oom_hint(cfg, phase):
        made_under = short_hash(fingerprint(cfg, phase, inputs))
        trainer.train(resume_from_checkpoint=resume_from(cfg.train, out_dir, made_under))
    return finish(trainer, cfg, phase, out_dir, data, init_checkpoint, started)
