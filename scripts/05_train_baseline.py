"""Stage 05, Phase A: answer-only SFT (Track A) of the student: a new LoRA adapter,
or every weight with FINETUNE=full.

Reads data/RUN/train_baseline.jsonl and dev_baseline.jsonl; writes checkpoints/RUN/phaseA/
(adapter or weights, tokenizer, model card, training_curves.png, train.manifest.json).
"""

from common.config import load_config, print_config
from common.errors import run_main
from common.train.setup import require_rows
from common.train.sft import run_sft


def main() -> None:
    cfg, _ = load_config()
    print_config(cfg, "05 Phase A (answer-only SFT)")
    train = require_rows(cfg.run.data_dir / "train_baseline.jsonl", made_by="datasets")
    dev = require_rows(cfg.run.data_dir / "dev_baseline.jsonl", made_by="datasets")
    run_sft(cfg, "phaseA", train, dev, cfg.run.checkpoint_dir / "phaseA")


if __name__ == "__main__":
    run_main(main)
