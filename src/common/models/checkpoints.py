"""What a checkpoint folder is: a PEFT adapter (and its base), full weights, or missing."""

from __future__ import annotations

import json
from pathlib import Path

from common.errors import DataError


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def is_checkpoint(path: str | Path) -> bool:
    """A trained phase: a LoRA adapter, or full weights (FINETUNE=full)."""
    return is_adapter(path) or (Path(path) / "config.json").is_file()


def check_exists(path: str, made_by: str) -> None:
    """A local checkpoint that is missing names the make target that produces it."""
    looks_local = path.startswith((".", "/", "checkpoints")) or Path(path).parent.is_dir()
    if looks_local and not Path(path).exists():
        raise DataError(f"checkpoint {path} does not exist; run `make {made_by}` first")


def adapter_base(path: str | Path) -> str:
    return json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]
