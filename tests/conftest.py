"""Shared fixtures: an isolated work dir, the tiny model, the real data in ../shared (or a skip)."""

from __future__ import annotations

import os
import shutil
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
        HW="cpu",
        WORK_DIR=str(work_dir),
        LOOPER_ENV_FILE=os.devnull,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_CACHE=str(work_dir / ".hf"),
    )
    env.update(extra)
    return env


def run_script(script: str, work_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env=offline_env(work_dir, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def start_script(script: str, work_dir: Path, **env: str) -> subprocess.Popen:
    """A stage started in the background, silent, for the tests that kill it mid-run."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / script)],
        cwd=ROOT,
        env=offline_env(work_dir, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from common.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-base")


# Training settings that make each phase a few seconds on the tiny model.
FAST = {
    "TASK": "arith",
    "BATCH_SIZE": "8",
    "MAX_STEPS": "6",
    "EVAL_STEPS": "3",
    "LEARNING_RATE": "3e-3",
    "DPO_LEARNING_RATE": "1e-3",
}


@pytest.fixture(scope="session")
def built(tmp_path_factory, tiny_model_dir):
    """Stages 01-04 once: a work dir with the tiny model and the training sets."""
    work = tmp_path_factory.mktemp("train")
    shutil.copytree(tiny_model_dir, work / "checkpoints/tiny-base")
    # Sampled drafts: the untrained model's greedy drafts are blank, which makes no pairs.
    env = FAST | {
        "TRAIN_SAMPLES": "64",
        "DEV_SAMPLES": "8",
        "DRAFT_MAX_NEW_TOKENS": "8",
        "DRAFT_TEMPERATURE": "1.0",
    }
    for script in ("01_sample.py", "02_student_drafts.py", "03_teacher.py", "04_build_datasets.py"):
        proc = run_script(script, work, **env)
        assert proc.returncode == 0, proc.stderr
    return work


@pytest.fixture(scope="session")
def trained(built):
    """Phases A and B once on top of `built` (the tests below read and copy them)."""
    for script in ("05_train_baseline.py", "06_train_cot.py"):
        proc = run_script(script, built, **FAST)
        assert proc.returncode == 0, proc.stderr
    return built


def copy(built, tmp_path, phases=()):
    shutil.copytree(built / "data", tmp_path / "data")
    shutil.copytree(built / "checkpoints/tiny-base", tmp_path / "checkpoints/tiny-base")
    for phase in phases:
        shutil.copytree(built / f"checkpoints/arith/{phase}", tmp_path / f"checkpoints/arith/{phase}")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA; on a CPU machine they are skipped, and say so."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
