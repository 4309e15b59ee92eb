"""The run manifest written beside every stage's outputs: config, commit, versions, input hashes."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from common.config import Config, project_dir
from common.jsonl import sha256_file, write_json

PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "accelerate",
    "peft",
    "trl",
    "openai",
    "anthropic",
)


def hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents) in sorted order."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(project_dir()), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_manifest(
    out_dir: Path,
    stage: str,
    cfg: Config,
    inputs: dict[str, str | Path],
    outputs: list[Path],
    extra: dict | None = None,
    started: float | None = None,
) -> Path:
    """Write out_dir/<stage>.manifest.json. Local inputs are hashed; hub ids are recorded as is."""

    def describe_input(src):
        p = Path(src)
        return {"path": str(src), "sha256": hash_path(p)} if p.exists() else {"hub_id": str(src)}

    manifest = {
        "stage": stage,
        "command": " ".join(sys.argv),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - started, 2) if started else None,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "config": cfg.public_dict(),
        "config_sources": cfg.sources,
        "inputs": {name: describe_input(src) for name, src in inputs.items()},
        "outputs": {p.name: sha256_file(p) for p in outputs},
        **(extra or {}),
    }
    path = Path(out_dir) / f"{stage}.manifest.json"
    write_json(path, manifest)
    return path
