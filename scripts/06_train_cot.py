"""Stage 06, Phase B: chain-of-thought SFT, continuing from Phase A's adapter
(or weights).

Reads data/RUN/train_phaseB.jsonl, dev_phaseB.jsonl (from data/RUN/DATASETS_SUBDIR/ when set) and
checkpoints/RUN/phaseA/; writes checkpoints/RUN/PHASEB_OUTPUT/ (default phaseB: adapter or weights,
tokenizer, model card, curves, manifest). `make sweep` sets both keys, once per reasoning strategy.
"""

from common.config import load_config
from common.errors import run_main
from common.stage import stage_run
from common.train.setup import require_checkpoint, require_rows
from common.train.sft import run_sft


def main() -> None:
    cfg, _ = load_config()
    out_dir = cfg.run.checkpoint_dir / cfg.train.phaseb_output
    with stage_run(cfg, "train", "06 Phase B (chain-of-thought SFT)", out_dir, manifest=False):
        train = require_rows(cfg.run.datasets_dir / "train_phaseB.jsonl", made_by="datasets")
        dev = require_rows(cfg.run.datasets_dir / "dev_phaseB.jsonl", made_by="datasets")
        phase_a = require_checkpoint(cfg.run.checkpoint_dir / "phaseA", made_by="phaseA")
        # writes train.manifest.json with the metrics
        run_sft(cfg, "phaseB", train, dev, out_dir, init_checkpoint=phase_a)


if __name__ == "__main__":
    run_main(main)
