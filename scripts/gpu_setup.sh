#!/usr/bin/env bash
# `make gpu-setup`: prepare a bare CUDA box (a Lambda-style H100, a workstation with a 4060)
# without Docker. Idempotent. It checks for the GPU first and changes nothing without one.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-setup: no NVIDIA GPU here (nvidia-smi missing or failing); nothing was changed." \
       "On a CPU machine use 'make setup' and 'make demo'." >&2
  exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if git rev-parse --git-dir >/dev/null 2>&1 && [ -z "$(git status --porcelain)" ]; then
  git pull --ff-only || echo "gpu-setup: git pull failed; continuing with this checkout"
fi

make setup
.venv/bin/python -m pip install --quiet -r requirements-gpu.txt
.venv/bin/python - <<'PY'
import torch
assert torch.cuda.is_available(), "torch does not see the GPU: check the driver supports CUDA " + str(torch.version.cuda)
props = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__} sees {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}")
PY

# Log in to the hub with HF_TOKEN from the environment or .env (gated models); never printed.
.venv/bin/python - <<'PY'
from common.config import load_config
cfg = load_config([])[0]
if cfg.model.hf_token:
    from huggingface_hub import login
    login(token=cfg.model.hf_token, add_to_git_credential=False)
    print("logged in to the Hugging Face hub with HF_TOKEN")
else:
    print("no HF_TOKEN set: public models only")
PY

hw=$(.venv/bin/python -c "from common.config import detect_hw; print(detect_hw())")
echo "ready. next: make all HW=${hw}"
