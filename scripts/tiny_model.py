"""Build the tiny offline student into checkpoints/tiny-base (under WORK_DIR, or --out): a BPE
tokenizer, a small Llama, and TINY_PRETRAIN_STEPS of pretraining on sums and repeated sentences.
No network, about a minute. An existing model built with the same settings (those below and
TINY_PRETRAIN_STEPS, recorded in its looper_tiny.json) is kept; other settings rebuild it, and
--force rebuilds it anyway.
"""

import argparse
import time
from pathlib import Path

from common.config import TINY_MODEL_DIR, load_config, shown
from common.errors import run_main
from common.models.tiny import STUDENT, build_settings, build_tiny_model, settings_change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="", help="default: WORK_DIR/checkpoints/tiny-base")
    for name, default in STUDENT.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    parser.add_argument("--force", action="store_true", help="rebuild an existing model")
    cfg, args = load_config(parser=parser)
    out = Path(args.out) if args.out else cfg.run.base_dir / TINY_MODEL_DIR
    student = {name: getattr(args, name) for name in STUDENT}
    change = settings_change(out, build_settings(pretrain_steps=cfg.run.tiny_pretrain_steps, **student))
    if not change and not args.force:
        print(f"tiny model: {shown(out)} exists with these settings (--force rebuilds it)")
        return
    if change != "it is missing":
        print(f"tiny model: rebuilding {shown(out)}: {change or '--force'}")
    started = time.time()
    build_tiny_model(out, pretrain_steps=cfg.run.tiny_pretrain_steps, **student)
    from transformers import AutoModelForCausalLM

    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(out).parameters())
    print(
        f"tiny model: {params / 1e6:.2f}M parameters, pretrained {cfg.run.tiny_pretrain_steps} steps "
        f"-> {shown(out)} ({time.time() - started:.1f}s)"
    )


if __name__ == "__main__":
    run_main(main)
