"""Stage 05, Phase A: answer-only SFT of the student: a new LoRA adapter,
or every weight with FINETUNE=full.

Reads data/RUN/train_phaseA.jsonl and dev_phaseA.jsonl; writes checkpoints/RUN/phaseA/
(adapter or weights, tokenizer, model card, training_curves.png, train.manifest.json).
"""

from common.config import load_config
from common.errors import run_main
from common.stage import stage_run
from common.train.setup import require_rows
from common.train.sft import run_sft


def main() -> None:
    cfg, _ = load_config()
    out_dir = cfg.run.checkpoint_dir / "phaseA"
    with stage_run(cfg, "train", "05 Phase A (answer-only SFT)", out_dir, manifest=False):
        train = require_rows(cfg.run.data_dir / "train_phaseA.jsonl", made_by="datasets")
        dev = require_rows(cfg.run.data_dir / "dev_phaseA.jsonl", made_by="datasets")
        run_sft(cfg, "phaseA", train, dev, out_dir)  # writes train.manifest.json with the metrics


if __name__ == "__main__":
    run_main(main)
