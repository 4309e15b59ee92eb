"""`make demo DEMO_SMALL=1`, the CI smoke run of the demo: every stage runs, every artifact of
the stage table exists and is non-empty, and the report parses. Accuracy is not asserted: at
this size it is noise."""

import json
import subprocess

import pytest
from conftest import ROOT, offline_env


def small_demo(work_dir, *args: str) -> subprocess.CompletedProcess:
    """`make demo DEMO_SMALL=1` into work_dir, which must succeed."""
    env = offline_env(work_dir)
    env.pop("LOOPER_ENV_FILE")  # the demo sets its own
    proc = subprocess.run(
        ["make", "--no-print-directory", "demo", "DEMO_SMALL=1", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_small_demo_runs_every_stage_and_writes_every_artifact(tmp_path):
    proc = small_demo(tmp_path)
    assert "demo: every stage ran in" in proc.stdout

    d, ck, out = tmp_path / "data/arith", tmp_path / "checkpoints/arith", tmp_path / "outputs/arith"
    artifacts = [
        tmp_path / "checkpoints/tiny-base/model.safetensors",
        d / "sample_train.jsonl",
        d / "dev.jsonl",
        d / "test.jsonl",  # 01
        d / "student_drafts.jsonl",  # 02
        d / "teacher_outputs.jsonl",
        d / "teacher_cost.jsonl",  # 03
        d / "train_phaseA.jsonl",
        d / "train_phaseB.jsonl",
        d / "data_report.json",  # 04
        ck / "phaseA/model.safetensors",
        ck / "phaseB/model.safetensors",  # 05, 06 (full weights)
        d / "loop/round1/rollouts.jsonl",
        d / "loop/round1/preferences.jsonl",  # 07
        d / "loop/round1/rollout_report.md",
        ck / "phaseC/model.safetensors",
        ck / "loop/loop.json",  # 08 and the loop
        out / "summary.json",
        out / "report.md",
        out / "accuracy.png",  # 09
    ]
    empty = [str(p.relative_to(tmp_path)) for p in artifacts if not p.is_file() or not p.stat().st_size]
    assert not empty, f"missing or empty: {empty}"
    manifests = [d / f"{s}.manifest.json" for s in ("sample", "drafts", "teacher", "datasets")] + [
        ck / "phaseA/train.manifest.json",
        ck / "phaseB/train.manifest.json",
        d / "loop/round1/rollouts.manifest.json",
        ck / "loop/loop.manifest.json",
        out / "eval.manifest.json",
    ]
    assert all(json.loads(m.read_text()) for m in manifests)  # every stage finished its run

    summary = json.loads((out / "summary.json").read_text())
    losses = ["sigmoid", "sigmoid+sft", "cal_dpo", "dr_dpo"]
    expected = ["base", "phaseA", "phaseB"] + [f"loop/round1-{x}" for x in losses] + ["phaseC"]
    assert list(summary["checkpoints"]) == expected
    assert all(0 <= s["accuracy"] <= 1 for s in summary["checkpoints"].values())
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert any(r.startswith("| phaseC | ≥ phaseB + 3 pts |") for r in rows)
    assert all(any(f"| 1 | {x} |" in r for r in rows) for x in losses)  # one Phase C per loss


@pytest.mark.slow
def test_small_code_demo_runs_every_stage_and_grades_programs(tmp_path):
    """`make demo TASK=pyfunc DEMO_SMALL=1`: the code task through every stage, programs run in the
    sandbox in stage 03 (the teacher's), 07 (the policy's samples) and 09 (each checkpoint's)."""
    proc = small_demo(tmp_path, "TASK=pyfunc")
    assert "configs/demo-pyfunc-small.env" in proc.stdout
    d, out = tmp_path / "data/pyfunc", tmp_path / "outputs/pyfunc"
    report = json.loads((d / "data_report.json").read_text())
    # TEACHER_ERROR_RATE=0.2: the wrong programs were caught by their tests, not by a label.
    assert 0 < report["teacher"]["wrong"] < report["teacher"]["ok"]
    rollouts = [
        t for row in map(json.loads, (d / "loop/round1/rollouts.jsonl").open()) for t in row["trajectories"]
    ]
    assert rollouts and all(
        t["outcome"] in ("pass", "fail", "error", "timeout", "syntax_error", "no_program") for t in rollouts
    )
    assert "Programs by how they ended" in (d / "loop/round1/rollout_report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    for name in ("base", "phaseA", "phaseB", "phaseC"):
        s = summary["checkpoints"][name]
        assert sum(s["outcomes"].values()) == s["n"] == 16 and len(s["ci95"]) == 2
    assert "## Program outcomes" in (out / "report.md").read_text()
