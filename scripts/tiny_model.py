"""Build the tiny offline student into checkpoints/tiny-base (or --out): no network, < 1 minute."""

import argparse
import time

from common.config import ROOT, TINY_MODEL_DIR
from common.errors import run_main
from common.tiny_model import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / TINY_MODEL_DIR))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    out = build_tiny_model(
        args.out, args.hidden, args.layers, args.heads, args.vocab_size, args.seed
    )
    from transformers import AutoModelForCausalLM

    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(out).parameters())
    print(f"tiny model: {params / 1e6:.2f}M parameters -> {out} ({time.time() - started:.1f}s)")


if __name__ == "__main__":
    run_main(main)
