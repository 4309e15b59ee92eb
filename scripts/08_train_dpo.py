"""Stage 08, Phase C: DPO from the POLICY adapter (Phase B by default), which is also the frozen
reference, on preference pairs, with the losses of src/common/train/losses.py (DPO_LOSS) and,
optionally, a four-epoch staged beta schedule (DPO_SCHEDULE=staged): a small-beta warm-up epoch, two epochs of
centered rewards, and a last epoch that leaves out the pairs the reference finds noisiest
(NOISY_FRACTION; a filter in the spirit of Dr. DPO, Wu et al. 2024).

Reads data/RUN[/ROLLOUT_SUBDIR]/preferences.jsonl (stage 07) and/or data/RUN/pairs.jsonl (stage 04)
and the POLICY checkpoint; writes checkpoints/RUN/DPO_OUTPUT/ (phaseC by default) and the
reference log-prob cache checkpoints/RUN/ref_logps/.
"""

from pathlib import Path

from common.config import load_config, shown
from common.errors import DataError, run_main
from common.eval.evaluate import resolve_checkpoint
from common.fingerprint import fingerprint, reuse_finished, short_hash
from common.stage import stage_run
from common.train.dpo import (
    LooperDPOTrainer,
    attach_reference_logps,
    dpo_config,
    noisy_threshold,
    reference_cache_path,
)
from common.train.setup import (
    finish,
    finite_loss_callback,
    load_student,
    oom_hint,
    require_checkpoint,
    require_rows,
    resume_from,
    trainer_args,
)

STAGED_SCHEDULE_EPOCHS = 4


def pair_files(cfg) -> list:
    prefs, pairs = cfg.run.rollout_dir / "preferences.jsonl", cfg.run.data_dir / "pairs.jsonl"
    if cfg.dpo.dpo_data == "auto":
        chosen = [prefs] if prefs.is_file() else [pairs]
    else:
        chosen = {"preferences": [prefs], "pairs": [pairs], "both": [prefs, pairs]}[cfg.dpo.dpo_data]
    made_by = {prefs: "rollouts", pairs: "datasets"}
    return [require_rows(p, made_by=made_by[p]) for p in chosen]


def load_pairs(path: Path):
    """The columns DPO reads; rejected_cut (REJECTED_CUT=first_error) is False where absent."""
    from datasets import load_dataset

    pairs = load_dataset("json", data_files=str(path), split="train")
    if "rejected_cut" not in pairs.column_names:
        pairs = pairs.add_column("rejected_cut", [False] * len(pairs))
    keep = [c for c in pairs.column_names if c in ("id", "prompt", "chosen", "rejected", "rejected_cut")]
    return pairs.select_columns(keep)


def split_pairs(cfg, files: list):
    """All pair files, shuffled, and a tenth (at least one pair) kept for dev loss."""
    from datasets import concatenate_datasets

    pairs = concatenate_datasets([load_pairs(f) for f in files]).shuffle(seed=cfg.run.random_seed)
    if len(pairs) < 2:
        raise DataError(f"{', '.join(shown(f) for f in files)}: {len(pairs)} pairs; DPO needs at least 2")
    split = pairs.train_test_split(test_size=max(1, len(pairs) // 10), seed=cfg.run.random_seed)
    print(
        f"phaseC: {len(split['train'])} train / {len(split['test'])} dev pairs from "
        f"{', '.join(shown(f) for f in files)}; loss {cfg.dpo.dpo_loss}, schedule {cfg.dpo.dpo_schedule}"
    )
    return split


def make_trainer(cfg, split, phase_b: Path, files: list, out_dir: Path):
    """The DPO trainer from the POLICY checkpoint, with the reference log-probs cached beside it."""
    from transformers import EarlyStoppingCallback

    staged = cfg.dpo.dpo_schedule == "staged"
    epochs = STAGED_SCHEDULE_EPOCHS if staged else cfg.dpo.dpo_epochs
    args = trainer_args(cfg, out_dir, len(split["train"]), cfg.dpo.dpo_learning_rate, epochs)
    # The schedule changes the loss between epochs, so dev losses across epochs don't compare.
    args["load_best_model_at_end"] = not staged
    model, tokenizer = load_student(cfg.model, phase_b, cfg.train.gradient_checkpointing)
    trainer = LooperDPOTrainer(
        model=model,
        args=dpo_config(args, cfg.dpo),
        train_dataset=split["train"],
        eval_dataset=split["test"],
        processing_class=tokenizer,
        callbacks=[finite_loss_callback("phaseC")]
        + ([] if staged else [EarlyStoppingCallback(cfg.train.early_stopping_patience)]),
        dpo=cfg.dpo,
    )
    cache = reference_cache_path(cfg, phase_b, files, cfg.run.checkpoint_dir / "ref_logps")
    attach_reference_logps(trainer, cache)
    # FINETUNE=full: TRL loaded a frozen copy of the policy as the reference; its log-probs now
    # ride in every batch, so the copy is not needed again.
    trainer.ref_model = None
    if staged:
        trainer.noisy_above = noisy_threshold(trainer.train_dataset, cfg.dpo.noisy_fraction)
    return trainer


def main() -> None:
    cfg, _ = load_config()
    out_dir = cfg.run.checkpoint_dir / cfg.dpo.dpo_output
    with stage_run(cfg, "train", "08 Phase C (DPO)", out_dir, manifest=False) as run:
        policy = resolve_checkpoint(cfg, cfg.rollout.policy)  # a missing phase names the target that makes it
        phase_b = require_checkpoint(Path(policy.path), made_by="phaseB")
        files = pair_files(cfg)
        data = {f.stem: f for f in files}
        inputs = data | {"init_checkpoint": phase_b}
        if reuse_finished(cfg, "phaseC", inputs):
            return
        trainer = make_trainer(cfg, split_pairs(cfg, files), phase_b, files, out_dir)
        with oom_hint(cfg, "phaseC"):
            made_under = short_hash(fingerprint(cfg, "phaseC", inputs))
            trainer.train(resume_from_checkpoint=resume_from(cfg.train, out_dir, made_under))
        finish(trainer, cfg, "phaseC", out_dir, data, phase_b, run.started)


if __name__ == "__main__":
    run_main(main)
