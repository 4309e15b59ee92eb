"""What a checkpoint folder is: a PEFT adapter (and its base), full weights, or missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
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
    """The base model an adapter was trained on; a local base that is gone is a one-line error."""
    config = Path(path) / "adapter_config.json"
    try:
        base = json.loads(config.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{config} is unreadable ({type(err).__name__}: {err}); retrain that phase") from None
    if base.startswith("/") and not Path(base).exists():
        raise DataError(
            f"the base model {base} of the adapter {path} is gone; restore it (make tiny-model for the "
            f"tiny student) or retrain the adapter"
        )
    return base


@contextmanager
def readable_model(path: str | Path, made_by: str) -> Iterator[None]:
    """Missing or corrupt model files (config.json, weights, tokenizer) as one line naming the folder."""
    try:
        yield
    except (OSError, ValueError, UnicodeDecodeError) as err:
        if type(err).__name__ == "OutOfMemoryError":
            raise
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DataError(
            f"model files in {path} are missing or corrupt ({type(err).__name__}: {first}); "
            f"re-run `make {made_by}` (or delete the folder and re-run)"
        ) from None
    except Exception as err:
        if type(err).__name__ != "SafetensorError":
            raise
        raise DataError(
            f"the weights in {path} are corrupt or truncated (SafetensorError: {err}); "
            f"re-run `make {made_by}` (or delete the folder and re-run)"
        ) from None
