"""What Looper reruns: a finished stage is kept only on the same fingerprint (keys and inputs) with
its outputs intact; otherwise it stops naming the change, or REBUILD=auto / RESUME=0 redo it. Rows of
the resumable stages carry their fingerprint; the tiny model is keyed by its build settings."""

import json
import subprocess
import sys

import pytest
from conftest import FAST, ROOT, copy, offline_env, run_script

from common.config import load_config
from common.fingerprint import STAGE_KEYS, check, row_fp
from common.jsonl import read_jsonl
from common.stage import stage_run

# The settings conftest's `built` ran stages 01-04 with.
BUILT = FAST | {
    "TRAIN_SAMPLES": "64",
    "DEV_SAMPLES": "8",
    "DRAFT_MAX_NEW_TOKENS": "8",
    "DRAFT_TEMPERATURE": "1.0",
}


def status(work, **env) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/status.py")],
        cwd=ROOT,
        env=offline_env(work, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(None, 2) for line in proc.stdout.splitlines()[1:]]
    return {parts[0]: " ".join(parts[1:]) for parts in lines}


def test_every_stage_declares_known_keys():
    cfg = load_config([], env={"HW": "cpu"})[0]
    for stage, keys in STAGE_KEYS.items():
        for key in keys:
            cfg.value(key)  # a KeyError names an unknown key
        assert "GEN_BATCH_SIZE" not in keys and "TEACHER_CONCURRENCY" not in keys, stage


def test_check_reports_done_stale_damaged_and_missing(tmp_path):
    env = {"HW": "cpu", "WORK_DIR": str(tmp_path)}
    cfg = load_config([], env=env, env_file=tmp_path / "none")[0]
    assert check(cfg, "datasets")[0] == "missing"
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "1"}\n')
    out = cfg.run.data_dir / "train_phaseA.jsonl"
    out.parent.mkdir(parents=True)
    with stage_run(cfg, "datasets", "04 build datasets", cfg.run.data_dir, {"teacher": source}) as run:
        out.write_text('{"id": "1"}\n')
        run.outputs(out)
    assert check(cfg, "datasets") == ("done", [])
    other = load_config([], env=env | {"HELDOUT_FRACTION": "0.2"}, env_file=tmp_path / "none")[0]
    assert check(other, "datasets") == ("stale", ["HELDOUT_FRACTION 0.1 -> 0.2"])
    assert row_fp(cfg, "drafts") != row_fp(
        load_config([], env=env | {"DRAFT_MAX_NEW_TOKENS": "5"}, env_file=tmp_path / "none")[0], "drafts"
    )
    source.write_text('{"id": "2"}\n')
    assert check(cfg, "datasets") == ("stale", ["input teacher changed"])
    source.write_text('{"id": "1"}\n')
    out.write_text('{"id": "1"')
    assert check(cfg, "datasets") == ("damaged", ["train_phaseA.jsonl changed since it was written"])
    lines = status(tmp_path)
    assert list(lines) == [
        "sample",
        "drafts",
        "teacher",
        "datasets",
        "phaseA",
        "phaseB",
        "rollouts",
        "phaseC",
        "eval",
    ]
    assert lines["sample"].startswith("missing") and lines["datasets"].startswith("damaged")


@pytest.mark.slow  # about 14 s: three builds
def test_tiny_model_is_rebuilt_when_its_settings_change(tmp_path):
    out = str(tmp_path / "tiny")
    first = run_script("tiny_model.py", tmp_path, "--out", out, TINY_PRETRAIN_STEPS="0")
    assert first.returncode == 0, first.stderr
    kept = run_script("tiny_model.py", tmp_path, "--out", out, TINY_PRETRAIN_STEPS="0")
    assert "exists with these settings" in kept.stdout
    rebuilt = run_script("tiny_model.py", tmp_path, "--out", out, TINY_PRETRAIN_STEPS="1")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilding" in rebuilt.stdout and "pretrain_steps 0 -> 1" in rebuilt.stdout
    assert json.loads((tmp_path / "tiny/looper_tiny.json").read_text())["pretrain_steps"] == 1
    assert not list(tmp_path.glob(".tiny.*"))  # the temporary folders are gone


@pytest.mark.slow
def test_drafts_resumed_under_other_keys_drop_the_old_rows(built, tmp_path):
    copy(built, tmp_path)
    before = read_jsonl(tmp_path / "data/arith/student_drafts.jsonl")
    proc = run_script("02_student_drafts.py", tmp_path, **(BUILT | {"DRAFT_MAX_NEW_TOKENS": "4"}))
    assert proc.returncode == 0, proc.stderr
    assert f"dropped {len(before)} rows made under another configuration" in proc.stdout
    after = read_jsonl(tmp_path / "data/arith/student_drafts.jsonl")
    assert len(after) == len(before) and all(r["new_tokens"] <= 4 for r in after)
    assert len({r["fp"] for r in after}) == 1 and {r["fp"] for r in before}.isdisjoint({after[0]["fp"]})


@pytest.mark.slow
def test_a_changed_key_stops_a_finished_phase_until_redone(built, tmp_path):
    copy(built, tmp_path)
    proc = run_script("05_train_baseline.py", tmp_path, **FAST)
    assert proc.returncode == 0, proc.stderr
    lines = status(tmp_path, **BUILT)
    assert [lines[s].split()[0] for s in ("sample", "drafts", "teacher", "datasets", "phaseA", "phaseB")] == [
        "done",
        "done",
        "done",
        "done",
        "done",
        "missing",
    ]

    changed = FAST | {"LEARNING_RATE": "0.009"}
    proc = run_script("05_train_baseline.py", tmp_path, **changed)
    assert proc.returncode == 1
    assert "LEARNING_RATE 0.003 -> 0.009" in proc.stderr and "RESUME=0" in proc.stderr, proc.stderr
    stale = status(tmp_path, **changed)["phaseA"]
    assert stale.startswith("stale") and "LEARNING_RATE 0.003 -> 0.009" in stale

    proc = run_script("05_train_baseline.py", tmp_path, **changed, REBUILD="auto")
    assert proc.returncode == 0, proc.stderr
    assert "REBUILD=auto: phaseA is stale" in proc.stdout and "trainable parameters" in proc.stdout
    proc = run_script("05_train_baseline.py", tmp_path, **changed)
    assert proc.returncode == 0 and "is complete for this configuration" in proc.stdout

    proc = run_script("05_train_baseline.py", tmp_path, **FAST, RESUME="0")
    assert proc.returncode == 0 and "trainable parameters" in proc.stdout, proc.stderr

    weights = tmp_path / "checkpoints/arith/phaseA/adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    proc = run_script("05_train_baseline.py", tmp_path, **FAST)
    assert proc.returncode == 1 and "damaged" in proc.stderr
    assert "adapter_model.safetensors changed since it was written" in proc.stderr
    assert status(tmp_path, **FAST)["phaseA"].startswith("damaged")
