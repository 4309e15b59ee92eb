"""The container and bare-GPU-box paths, checked without a Docker engine or a GPU: hadolint, what
the image installs, the entrypoint, gpu-setup on a CPU machine, and the vLLM switch."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, run_script

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_reports_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout


def test_image_installs_exactly_the_pins():
    installs = re.findall(r"pip install ([^;&|\n\\]+)", DOCKERFILE)
    allowed = {
        "-r requirements.txt",
        "-r requirements-gpu.txt",
        "--no-deps -e .",
        "--only-binary=:all: flash-attn",
    }
    assert {i.strip() for i in installs} <= allowed and "-r requirements.txt" in {i.strip() for i in installs}
    for name in ("requirements.txt", "requirements-gpu.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            assert not line or line == "-r requirements.txt" or re.fullmatch(r"[\w.-]+==[\w.]+", line), line
    assert "bitsandbytes==" in (ROOT / "requirements-gpu.txt").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", "data/", "checkpoints/", "outputs/"} <= set(ignored)
    assert re.search(r"^USER 1000$", DOCKERFILE, re.M)
    # No secret reaches a layer: no ENV or ARG names a key, token or password.
    settings = re.findall(r"^(?:ENV|ARG)\s+((?:.*\\\n)*.*)$", DOCKERFILE, re.M)
    names = re.findall(r"(\w+)=", " ".join(settings))
    assert "HF_HOME" in names and "HW" in names  # the parse found the real settings
    assert not [n for n in names if re.search(r"KEY|TOKEN|PASSWORD|SECRET", n)], names


def test_entrypoint_rejects_unknown_targets_and_runs_known_ones():
    proc = subprocess.run(
        ["bash", "docker/entrypoint.sh", "phaseZ"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("entrypoint: unknown target 'phaseZ'; one of: help setup")
    proc = subprocess.run(["bash", "docker/entrypoint.sh", "help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "docker-build" in proc.stdout and "gpu-setup" in proc.stdout


def test_gpu_setup_without_a_gpu_stops_and_changes_nothing():
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    proc = subprocess.run(
        ["bash", "scripts/gpu_setup.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "no NVIDIA GPU" in proc.stderr
    assert before == after


def test_vllm_backend_without_vllm_is_one_line(tmp_path, tiny_model_dir):
    assert run_script("01_sample.py", tmp_path, TRAIN_SAMPLES="4", DEV_SAMPLES="1").returncode == 0
    proc = run_script("02_student_drafts.py", tmp_path, GEN_BACKEND="vllm", MODEL_NAME=str(tiny_model_dir))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: GEN_BACKEND=vllm needs vLLM on a CUDA machine: pip install vllm "
        "(or use the default GEN_BACKEND=hf)"
    )
