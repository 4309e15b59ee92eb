"""Stage 06, Phase B: chain-of-thought SFT (Track B), continuing from Phase A's adapter
(or weights).

Reads data/RUN/train_cot.jsonl, dev_cot.jsonl and checkpoints/RUN/phaseA/; writes
checkpoints/RUN/phaseB/ (adapter or weights, tokenizer, model card, curves, manifest).
"""

from common.config import load_config, print_config
from common.errors import run_main
from common.train.setup import require_checkpoint, require_rows
from common.train.sft import run_sft


def main() -> None:
    cfg, _ = load_config()
    print_config(cfg, "06 Phase B (chain-of-thought SFT)")
    train = require_rows(cfg.run.data_dir / "train_cot.jsonl", made_by="datasets")
    dev = require_rows(cfg.run.data_dir / "dev_cot.jsonl", made_by="datasets")
    phase_a = require_checkpoint(cfg.run.checkpoint_dir / "phaseA", made_by="phaseA")
    run_sft(cfg, "phaseB", train, dev, cfg.run.checkpoint_dir / "phaseB", init_checkpoint=phase_a)


if __name__ == "__main__":
    run_main(main)
