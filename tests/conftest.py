"""Shared fixtures: an isolated work dir, the tiny model, the real data in ../shared (or a skip)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data; the test skips where it is absent, as on a user's machine."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def offline_env(work_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a script runs in under test: offline, CPU, no developer .env, no keys."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "HF_TOKEN"}
    env.update(
        HW="cpu", WORK_DIR=str(work_dir), LOOPER_ENV_FILE=os.devnull, HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_CACHE=str(work_dir / ".hf"),
    )  # fmt: skip
    env.update(extra)
    return env


def run_script(script: str, work_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT, env=offline_env(work_dir, **env), capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from common.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-base")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA; on a CPU machine they are skipped, and say so."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
