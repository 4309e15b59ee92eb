"""A student given as a GGUF file (llama.cpp's format): checked, dequantized by transformers' GGUF
loader and saved once as an ordinary safetensors folder, which every stage and adapter then uses.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from common.errors import DataError
from common.jsonl import sha256_file

# Written last into a converted folder: the file it came from and the sizes of what was saved, so a
# folder from another file, or one damaged since, is converted again instead of reused.
SOURCE = "gguf_source.json"


def gguf_architecture(path: Path) -> str:
    """The model architecture a GGUF file declares; a missing, truncated or unsupported file is one
    line naming it and what is wrong."""
    import gguf
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    if not path.is_file():
        raise DataError(
            f"MODEL_NAME={path}: the GGUF file does not exist; check the path (make smollm2 fetches one)"
        )
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise DataError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); check MODEL_NAME"
        )
    try:
        reader = gguf.GGUFReader(path)
        field = reader.fields["general.architecture"]
        arch = bytes(field.parts[field.data[0]]).decode()
    except (ValueError, IndexError, KeyError, OSError) as err:
        raise DataError(
            f"{path} is truncated or corrupt ({type(err).__name__}: {str(err)[:120]}); download it again"
        ) from None
    supported = sorted(set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"})
    if arch not in supported:
        raise DataError(
            f"{path}: transformers cannot load GGUF architecture {arch!r} (it can: {', '.join(supported)}); "
            f"use the model's hub id or a safetensors folder instead"
        )
    return arch


def is_converted(out_dir: Path, sha256: str) -> bool:
    """`out_dir` holds a whole conversion of the file with this sha256."""
    try:
        source = json.loads((out_dir / SOURCE).read_text())
    except (OSError, ValueError):
        return False
    sizes = source.get("sizes", {})
    return (
        source.get("sha256") == sha256
        and bool(sizes)
        and all(
            (out_dir / name).is_file() and (out_dir / name).stat().st_size == n for name, n in sizes.items()
        )
    )


def convert_gguf(path: Path, out_dir: Path, sha256: str = "") -> Path:
    """Dequantize the GGUF file at `path` into a float32 safetensors folder at `out_dir`, with the
    model's own tokenizer and chat template; written beside it and renamed into place when whole."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    arch = gguf_architecture(path)
    sha256 = sha256 or sha256_file(path)
    print(f"gguf: converting {path} ({arch}) into {out_dir} (once; later runs reuse the folder)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # transformers refuses to save a model it loaded from GGUF (it counts as quantized), though its
    # weights are dequantized already: move them into a plain model of the same config.
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    sizes = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
    record = {"file": path.name, "sha256": sha256, "architecture": arch, "sizes": sizes}
    (tmp / SOURCE).write_text(json.dumps(record, indent=1) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def ensure_converted(path: Path, out_dir: Path, sha256: str = "") -> Path:
    """`out_dir` as a conversion of `path`, converting only when it is missing, damaged or from
    another file. Several processes (one per GPU) wait for the one that converts."""
    sha256 = sha256 or sha256_file(gguf_checked(path))
    if is_converted(out_dir, sha256):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.with_name(f".{out_dir.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_converted(out_dir, sha256):
            convert_gguf(path, out_dir, sha256)
    return out_dir


def gguf_checked(path: Path) -> Path:
    gguf_architecture(path)
    return path


def student_folder(path: Path, cache_root: Path) -> Path:
    """The converted folder of a GGUF MODEL_NAME, keyed by the file's sha256 under `cache_root`."""
    sha256 = sha256_file(gguf_checked(path))
    return ensure_converted(path, cache_root / f"{path.stem}-{sha256[:12]}", sha256)
