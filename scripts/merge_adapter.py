"""Merge a phase's LoRA adapter into its base model: a standalone model for vLLM, llama.cpp or
the hub. The base is loaded unquantized in COMPUTE_DTYPE (merging into 4-bit weights loses
precision). `make merge PHASE=phaseC` writes checkpoints/RUN/merged-phaseC/.
"""

import argparse
import time

from common.config import load_config, print_config, shown
from common.errors import ConfigError, run_main
from common.manifest import write_manifest
from common.models.checkpoints import adapter_base, is_adapter
from common.models.loading import load_tokenizer
from common.train.setup import require_checkpoint


def main() -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    started = time.time()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phase", default="phaseC", choices=("phaseA", "phaseB", "phaseC"))
    cfg, args = load_config(parser=parser)
    print_config(cfg, f"merge {args.phase}")
    made_by = {"phaseA": "phaseA", "phaseB": "phaseB", "phaseC": "phaseC"}[args.phase]
    adapter = require_checkpoint(cfg.run.checkpoint_dir / args.phase, made_by=made_by)
    if not is_adapter(adapter):
        raise ConfigError(
            f"{shown(adapter)} holds full weights (FINETUNE=full), not an adapter: "
            f"it is already a standalone model; use that folder as it is"
        )
    base = adapter_base(adapter)
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=getattr(torch, cfg.model.compute_dtype), token=cfg.model.hf_token or None
    )
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out = cfg.run.checkpoint_dir / f"merged-{args.phase}"
    merged.save_pretrained(out)
    load_tokenizer(str(adapter), cfg.model).save_pretrained(out)
    files = [p for p in out.iterdir() if p.is_file()]
    write_manifest(out, "merge", cfg, {"adapter": adapter}, files, {"base_model": base}, started)
    print(f"merged {shown(adapter)} into {base} -> {shown(out)}")


if __name__ == "__main__":
    run_main(main)
