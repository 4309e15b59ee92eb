"""All-or-nothing outputs and bad inputs: a kill mid-save leaves the old set or the new one, never a
mix; RUN_NAME, URLs with passwords, counts, failed stages and make clean are errors or safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, ROOT, copy, offline_env, run_script

from common.config import Config, RunSection, TeacherSection, load_config, mask_url
from common.errors import ConfigError
from common.jsonl import sha256_file
from common.outputs import cleanup, staged_outputs, swap_dir

# --- the staging helper -------------------------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staged_set_is_swapped_in_whole_or_not_at_all(tmp_path):
    (tmp_path / "a.jsonl").write_text("old a\n")
    (tmp_path / "b.jsonl").write_text("old b\n")
    (tmp_path / "s.manifest.json").write_text("{}")
    with pytest.raises(RuntimeError), staged_outputs(tmp_path, "s") as out:
        out.path("a.jsonl").write_text("new a\n")
        raise RuntimeError("killed after one file")
    assert (tmp_path / "a.jsonl").read_text() == "old a\n"  # the old set, untouched
    assert (tmp_path / "s.manifest.json").exists()
    assert not list(tmp_path.glob(".staging-*"))
    with staged_outputs(tmp_path, "s") as out:
        out.path("a.jsonl").write_text("new a\n")
        out.path("b.jsonl").write_text("new b\n")
    assert [(tmp_path / n).read_text() for n in ("a.jsonl", "b.jsonl")] == ["new a\n", "new b\n"]
    assert not (tmp_path / "s.manifest.json").exists()  # the old manifest no longer names the set
    assert not list(tmp_path.glob(".staging-*"))


def test_leftovers_of_a_killed_run_are_rolled_forward_or_removed(tmp_path, capsys):
    pid = dead_pid()
    (tmp_path / "a.jsonl").write_text("old a\n")
    (tmp_path / "b.jsonl").write_text("old b\n")
    torn = tmp_path / f".staging-s-{pid}"  # killed mid-swap: a.jsonl moved already, b.jsonl not
    torn.mkdir()
    (torn / "b.jsonl").write_text("new b\n")
    (torn / ".complete").write_text("a.jsonl\nb.jsonl\n")
    (tmp_path / "a.jsonl").write_text("new a\n")
    unfinished = tmp_path / f".staging-t-{pid}"  # killed before the set was complete
    unfinished.mkdir()
    (unfinished / "x.jsonl").write_text("half\n")
    tmp_file = tmp_path / f".c.jsonl.tmp-{pid}"
    tmp_file.write_text("half")
    alive = tmp_path / f".d.jsonl.tmp-{os.getpid()}"  # a running writer's file is left alone
    alive.write_text("in progress")
    done = cleanup(tmp_path)
    assert len(done) == 3 and "finished the interrupted swap" in capsys.readouterr().out
    assert (tmp_path / "b.jsonl").read_text() == "new b\n" and (tmp_path / "a.jsonl").read_text() == "new a\n"
    assert not torn.exists() and not unfinished.exists() and not tmp_file.exists() and alive.exists()


def test_a_folder_swap_killed_midway_restores_the_old_folder(tmp_path):
    pid = dead_pid()
    old = tmp_path / f"phaseA.old-{pid}"  # renamed aside, then killed before the new one moved in
    old.mkdir()
    (old / "train.manifest.json").write_text("{}")
    (tmp_path / f"phaseA.tmp-{pid}").mkdir()
    cleanup(tmp_path)
    assert (tmp_path / "phaseA/train.manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phaseA"]
    new = tmp_path / "new"
    new.mkdir()
    (new / "w").write_text("1")
    swap_dir(new, tmp_path / "phaseA")
    assert sorted(p.name for p in (tmp_path / "phaseA").iterdir()) == ["w"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phaseA"]


# --- kills during a real stage, then a re-run ---------------------------------------------------


def run_killed(script: str, work: Path, patch: str, **env: str) -> subprocess.CompletedProcess:
    """Run a stage with `patch` applied first; the patch SIGKILLs the process at a chosen moment."""
    code = (
        "import os, signal, sys, runpy\n"
        f"{patch}\n"
        f"sys.argv = [{str(ROOT / 'scripts' / script)!r}]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=offline_env(work, **env), capture_output=True, text=True
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    return proc


def KILL_ON_WRITE(n: int) -> str:
    """A patch: write_jsonl writes its first n-1 files, then the process is killed mid-set."""
    return (
        "import common.jsonl as J\n"
        "_w, _n = J.write_jsonl, [0]\n"
        "def w(path, rows):\n"
        "    _n[0] += 1\n"
        f"    if _n[0] == {n}: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return _w(path, rows)\n"
        "J.write_jsonl = w\n"
    )


def assert_matches_manifest(folder: Path, stage: str) -> dict:
    """Every output the manifest names is there with the recorded hash: a whole, consistent set."""
    manifest = json.loads((folder / f"{stage}.manifest.json").read_text())
    for name, digest in manifest["outputs"].items():
        assert sha256_file(folder / name) == digest, f"{name} is not the set the manifest names"
    assert not list(folder.glob(".staging-*")) and not list(folder.glob(".*.tmp-*"))
    return manifest


def test_sample_killed_with_a_new_seed_keeps_the_old_set_then_reruns(tmp_path):
    env = {"TASK": "arith", "TRAIN_SAMPLES": "30", "DEV_SAMPLES": "5"}
    assert run_script("01_sample.py", tmp_path, **env).returncode == 0
    d = tmp_path / "data/arith"
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    run_killed("01_sample.py", tmp_path, KILL_ON_WRITE(3), **env, RANDOM_SEED="7")
    assert {p.name: p.read_bytes() for p in d.iterdir() if not p.name.startswith(".")} == before
    assert list(d.glob(".staging-sample-*"))  # the torn set is still hidden, never in place
    proc = run_script("01_sample.py", tmp_path, **env, RANDOM_SEED="7")
    assert proc.returncode == 0, proc.stderr
    assert "removed the leftover" in proc.stdout
    manifest = assert_matches_manifest(d, "sample")
    assert manifest["config"]["RANDOM_SEED"] == 7
    assert (d / "sample_train.jsonl").read_bytes() != before["sample_train.jsonl"]


@pytest.mark.slow
def test_datasets_killed_mid_run_keeps_the_old_set_then_reruns(tmp_path, tiny_model_dir):
    env = {"TASK": "arith", "TRAIN_SAMPLES": "40", "DEV_SAMPLES": "5", "MODEL_NAME": str(tiny_model_dir)}
    env |= {"DRAFT_MAX_NEW_TOKENS": "4"}
    for script in ("01_sample.py", "02_student_drafts.py", "03_teacher.py", "04_build_datasets.py"):
        proc = run_script(script, tmp_path, **env)
        assert proc.returncode == 0, proc.stderr
    d = tmp_path / "data/arith"
    old = assert_matches_manifest(d, "datasets")
    run_killed("04_build_datasets.py", tmp_path, KILL_ON_WRITE(3), **env, HELDOUT_FRACTION="0.3")
    assert assert_matches_manifest_ignoring_staging(d, "datasets") == old["outputs"]
    proc = run_script("04_build_datasets.py", tmp_path, **env, HELDOUT_FRACTION="0.3")
    assert proc.returncode == 0, proc.stderr
    new = assert_matches_manifest(d, "datasets")
    assert new["config"]["HELDOUT_FRACTION"] == 0.3 and new["outputs"] != old["outputs"]


def assert_matches_manifest_ignoring_staging(folder: Path, stage: str) -> dict:
    manifest = json.loads((folder / f"{stage}.manifest.json").read_text())
    for name, digest in manifest["outputs"].items():
        assert sha256_file(folder / name) == digest, f"{name} changed under the old manifest"
    return manifest["outputs"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment",
    [
        # the new weights half-saved beside the old folder, no manifest yet
        "import common.train.setup as S\nS.write_manifest = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)",
        # mid-swap: the old folder renamed aside, the new one not yet in place
        "import common.train.setup as S, common.outputs as O\n"
        "def swap(new, target):\n"
        "    os.replace(target, target.with_name(target.name + f'.old-{os.getpid()}'))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "S.swap_dir = swap",
    ],
    ids=["mid-save", "mid-swap"],
)
def test_phase_killed_during_the_checkpoint_save_then_rerun(trained, tmp_path, moment):
    copy(trained, tmp_path, ["phaseA"])
    phase = tmp_path / "checkpoints/arith/phaseA"
    before = json.loads((phase / "train.manifest.json").read_text())
    env = FAST | {"RESUME": "0"}  # train it again, and be killed while saving
    run_killed("05_train_baseline.py", tmp_path, moment, **env)
    # The previous complete checkpoint, or after the cleanup of the next run, is whole.
    cleanup(phase.parent)
    for name, digest in before["outputs"].items():
        assert sha256_file(phase / name) == digest
    proc = run_script("05_train_baseline.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((phase / "train.manifest.json").read_text())
    for name, digest in after["outputs"].items():
        assert sha256_file(phase / name) == digest
    assert sorted(p.name for p in phase.parent.iterdir()) == ["phaseA"]
    assert (phase / "adapter_model.safetensors").stat().st_size > 0


@pytest.mark.slow
def test_non_finite_loss_stops_with_one_line_and_saves_nothing(built, tmp_path):
    copy(built, tmp_path)
    proc = run_script("05_train_baseline.py", tmp_path, **(FAST | {"LEARNING_RATE": "1e30"}))
    assert proc.returncode == 1
    # One error line (after the progress bar's carriage returns), no traceback.
    assert proc.stderr.count("error: ") == 1, proc.stderr[-2000:]
    line = proc.stderr.split("error: ")[1].splitlines()[0]
    assert line.startswith("phaseA: ") and ("is nan" in line or "is inf" in line)
    assert "nothing was saved" in line
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints/arith/phaseA/train.manifest.json").exists()


# --- configuration ------------------------------------------------------------------------------


def config(**env: str):
    return load_config([], env=offline_env(Path("/nonexistent-work"), **env))[0]


@pytest.mark.parametrize("name", ["../../tmp/escape", "/tmp/x", "..", ".hidden", "a/b", "a..b"])
def test_run_name_must_be_a_plain_folder_name(name):
    with pytest.raises(ConfigError, match="RUN_NAME=.*plain folder name"):
        config(RUN_NAME=name)
    assert config(RUN_NAME="gsm8k-lr2.b_1").run.name == "gsm8k-lr2.b_1"


@pytest.mark.parametrize(
    "key,value",
    [
        ("EVAL_SAMPLES", "-1192"),
        ("RANDOM_SEED", "-1"),
        ("MAX_COST_USD", "-1"),
        ("LEARNING_RATE", "inf"),
        ("LEARNING_RATE", "nan"),
        ("LEARNING_RATE", "-2e-4"),
        ("DPO_LEARNING_RATE", "-1e-5"),
        ("ROLLOUT_QUESTIONS", "-3"),
        ("EPOCHS", "nan"),
        ("MAX_STEPS", "-2"),
        ("TEACHER_PRICE_IN", "-2"),
    ],
)
def test_out_of_range_values_are_errors_at_config_time(key, value):
    with pytest.raises(ConfigError, match=key):
        config(**{key: value})


def test_bad_values_exit_2_with_one_line(tmp_path):
    for env in ({"RANDOM_SEED": "-1"}, {"RUN_NAME": ".."}, {"LOOPER_ENV_FILE": str(tmp_path / "typo.env")}):
        proc = run_script("01_sample.py", tmp_path, **env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and next(iter(env)) in lines[0], proc.stderr
    assert not (tmp_path / "data").exists()


def test_non_utf8_env_file_names_the_file_and_byte(tmp_path):
    env_file = tmp_path / "my.env"
    env_file.write_bytes(b"TASK=arith\nRUN_NAME=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"my\.env: byte 0xe9 .* not UTF-8"):
        config(LOOPER_ENV_FILE=str(env_file))


def test_passwords_in_urls_are_masked_everywhere_config_is_shown(tmp_path):
    assert mask_url("https://alice:s3cret@proxy/v1") == "https://alice:***@proxy/v1"
    assert mask_url("https://tok@proxy/v1") == "https://***@proxy/v1"
    assert mask_url("http://localhost:8000/v1") == "http://localhost:8000/v1"
    cfg = Config(run=RunSection(), teacher=TeacherSection(openai_base_url="https://alice:s3cret@proxy/v1"))
    assert cfg.public_dict()["OPENAI_BASE_URL"] == "https://alice:***@proxy/v1"
    assert "s3cret" not in cfg.describe()
    proc = run_script(
        "01_sample.py",
        tmp_path,
        TASK="arith",
        TRAIN_SAMPLES="5",
        DEV_SAMPLES="1",
        OPENAI_BASE_URL="https://alice:s3cret@proxy/v1",
        ANTHROPIC_BASE_URL="http://bob:pw2@x:9/",
    )
    assert proc.returncode == 0, proc.stderr
    assert "alice:***@proxy" in proc.stdout
    for text in [proc.stdout, proc.stderr] + [p.read_text() for p in tmp_path.rglob("*.json")]:
        assert "s3cret" not in text and "pw2" not in text
    from common.train.setup import model_card

    assert "s3cret" not in model_card("phaseA", cfg, "base", {}, {}, None)


# --- failed stages and bad data -----------------------------------------------------------------


def test_ids_shared_by_different_questions_name_both_rows(tmp_path):
    rows = [
        {"id": "q1", "question": "What is 1+1?", "answer": "#### 2"},
        {"id": "q2", "question": "What is 2+2?", "answer": "#### 4"},
        {"id": "q1", "question": "What is 1+1?", "answer": "#### 2"},  # a true duplicate: dropped
        {"id": "q2", "question": "What is 3+3?", "answer": "#### 6"},
    ]
    src = tmp_path / "in/train.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "in/test.jsonl").write_text(json.dumps({"question": "t", "answer": "#### 1"}) + "\n")
    proc = run_script(
        "01_sample.py", tmp_path, TASK="gsm8k", DATASET_PATH=str(src), TRAIN_SAMPLES="1", DEV_SAMPLES="0"
    )
    assert proc.returncode == 1, proc.stderr
    assert "rows 2 and 4 share id 'q2'" in proc.stderr and "What is 3+3?" in proc.stderr
    assert not (tmp_path / "data").exists()


# --- make clean ---------------------------------------------------------------------------------


def make(target: str, work: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", target, "SETUP_STAMP=", f"PY={sys.executable}"],
        cwd=ROOT,
        env=offline_env(work, **env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_make_clean_removes_only_the_named_run_under_work_dir(tmp_path):
    for top in ("data", "checkpoints", "outputs"):
        for run in ("base", "other"):
            (tmp_path / top / run).mkdir(parents=True)
            (tmp_path / top / run / "f").write_text("x")
    (tmp_path / "checkpoints/tiny-base").mkdir()
    proc = make("clean", tmp_path, RUN_NAME="base")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("removed ") == 3
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*"))
    assert left == ["checkpoints/other", "checkpoints/tiny-base", "data/other", "outputs/other"]
    # clean-all lists everything and deletes nothing unless confirmed
    proc = make("clean-all", tmp_path)
    assert proc.returncode != 0 and "checkpoints/tiny-base" in proc.stdout and "not confirmed" in proc.stderr
    assert (tmp_path / "checkpoints/tiny-base").exists()
    proc = make("clean-all", tmp_path, CONFIRM="1")
    assert proc.returncode == 0 and not list(tmp_path.glob("*/*"))


def test_make_passes_the_stage_exit_code_through_as_error_n(tmp_path):
    # The script's own code (1: missing data) is in make's message; make itself exits 2.
    proc = make("datasets", tmp_path, TASK="arith")
    assert "does not exist; run `make sample` first" in proc.stderr
    assert "] Error 1" in proc.stderr and proc.returncode == 2
    proc = make("sample", tmp_path, RANDOM_SEED="-1")
    assert "RANDOM_SEED=-1" in proc.stderr and "] Error 2" in proc.stderr


def test_every_stage_removes_hidden_tmp_files_of_a_killed_run(tmp_path):
    env = {"TASK": "arith", "TRAIN_SAMPLES": "5", "DEV_SAMPLES": "1"}
    d = tmp_path / "data/arith"
    d.mkdir(parents=True)
    leftover = d / f".teacher_outputs.jsonl.tmp-{dead_pid()}"
    leftover.write_text('{"id": "half')
    proc = run_script("03_teacher.py", tmp_path, **env)  # fails (no sample), but cleans up first
    assert proc.returncode == 1 and not leftover.exists()
    assert f"removed the leftover data/arith/{leftover.name}" in proc.stdout.replace(str(tmp_path) + "/", "")


def test_work_dir_or_run_name_colliding_with_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="WORK_DIR: .*afile is a file"):
        load_config([], env=offline_env(tmp_path / "afile"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data/clash").write_text("x")
    with pytest.raises(ConfigError, match="RUN_NAME=clash: .* is a file"):
        load_config([], env=offline_env(tmp_path, RUN_NAME="clash"))


def test_non_utf8_data_file_names_file_and_line(tmp_path):
    from common.errors import DataError
    from common.jsonl import read_jsonl

    bad = tmp_path / "rows.jsonl"
    bad.write_bytes(b'{"id": "1"}\n{"id": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl:2: byte 0xe9 is not UTF-8"):
        read_jsonl(bad)
    src = tmp_path / "in/train.jsonl"
    src.parent.mkdir()
    src.write_bytes(b'{"question": "q\xe9", "answer": "#### 1"}\n')
    proc = run_script("01_sample.py", tmp_path, TASK="gsm8k", DATASET_PATH=str(src), TRAIN_SAMPLES="1")
    assert proc.returncode == 1 and "train.jsonl:1: byte 0xe9 is not UTF-8" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_missing_or_corrupt_model_files_are_one_line(tmp_path, tiny_model_dir):
    import shutil

    from common.errors import DataError
    from common.models.checkpoints import adapter_base

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text("{not json")
    env = {"TASK": "arith", "TRAIN_SAMPLES": "4", "DEV_SAMPLES": "1", "MODEL_NAME": str(model)}
    assert run_script("01_sample.py", tmp_path, **env).returncode == 0
    proc = run_script("02_student_drafts.py", tmp_path, **env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"model files in {model}" in proc.stderr
    shutil.copytree(tiny_model_dir, model, dirs_exist_ok=True)
    weights = next(model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    proc = run_script("02_student_drafts.py", tmp_path, **env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/base"}))
    with pytest.raises(DataError, match="base model /gone/base of the adapter .* is gone"):
        adapter_base(adapter)
