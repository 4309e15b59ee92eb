"""`make sweep`: Phase B once per reasoning format from one Phase A, every checkpoint on the same
test questions, one table; skipped when complete, a failed strategy reported while the others run."""

import json
import shutil
import subprocess

import pytest
from conftest import ROOT, offline_env, run_script

from common.data.prompts import instruction, render_prompt
from common.eval.sweep import compare, sweep_section
from common.jsonl import read_jsonl

DEMO_SMALL = {"LOOPER_ENV_FILE": str(ROOT / "configs/demo-small.env")}


def graded(ids_correct: list[tuple[str, bool]]) -> list[dict]:
    return [{"id": i, "correct": c} for i, c in ids_correct]


def test_compare_against_the_reference_on_the_same_questions():
    ids = [f"q{i}" for i in range(20)]
    none = graded([(i, n < 5) for n, i in enumerate(ids)])  # 5 of 20
    cot = graded([(i, n < 5 or n >= 11) for n, i in enumerate(ids)])  # the same 5 and 9 more
    stats = compare({"none": none, "cot": cot}, "none")
    assert stats["none"]["accuracy"] == 0.25 and "vs_reference" not in stats["none"]
    assert stats["cot"]["ci95"][0] < 0.7 < stats["cot"]["ci95"][1]
    comp = stats["cot"]["vs_reference"]
    assert comp["only_b"] == 9 and comp["only_a"] == 0 and comp["delta"] == pytest.approx(0.45)
    assert comp["p_value"] == pytest.approx(2 / 2**9)  # exact McNemar: 9 discordant, all one way
    with pytest.raises(ValueError, match="did not answer the same questions"):
        compare({"none": none, "cot": list(reversed(cot))}, "none")


def test_sweep_section_lists_failures_and_a_missing_reference(tmp_path):
    from common.config import load_config

    cfg = load_config([], env={"HW": "cpu", "WORK_DIR": str(tmp_path)}, env_file=tmp_path / "none")[0]
    assert sweep_section(cfg) == []  # no sweep, no section
    sweep = {
        "reference": "none",
        "n_questions": 20,
        "test_source": "data/arith/test.jsonl",
        "strategies": {
            "none": {"status": "failed", "checkpoint": "phaseB-none", "stage": "06_train_cot.py", "exit": 1}
            | {"error": "error: a | b"},
            "cot": {"status": "ok", "checkpoint": "phaseB-cot", "accuracy": 0.5, "ci95": [0.3, 0.7]},
        },
    }
    (tmp_path / "outputs/arith").mkdir(parents=True)
    (tmp_path / "outputs/arith/sweep.json").write_text(json.dumps(sweep))
    lines = sweep_section(cfg)
    assert (
        "| none | phaseB-none | — | — | — | — | failed: 06_train_cot.py exited 1: error: a \\| b |" in lines
    )
    assert "| cot | phaseB-cot | 50.0% | 30.0%–70.0% | — | — | ok |" in lines
    assert "No McNemar test: the reference `none` has no answers (it failed)." in lines


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("PHASEB_OUTPUT", "../phaseB", "must be a folder inside the run's folder, without '..'"),
        ("PHASEB_OUTPUT", "phaseA", "would overwrite Phase A"),
        ("DATASETS_SUBDIR", "/tmp/elsewhere", "must be a folder inside the run's folder"),
    ],
)
def test_the_sweep_folders_stay_inside_the_run(tmp_path, key, value, says):
    from common.config import load_config
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match=says):
        load_config([], env={"HW": "cpu", key: value}, env_file=tmp_path / "none")
    cfg = load_config(
        [], env={"HW": "cpu", "WORK_DIR": str(tmp_path)} | settings_of("cot"), env_file=tmp_path / "none"
    )[0]
    assert cfg.run.datasets_dir == tmp_path / "data/arith/sweep/cot"
    assert cfg.train.phaseb_output == "phaseB-cot"


def settings_of(strategy: str) -> dict:
    return {
        "REASONING_STRATEGY": strategy,
        "DATASETS_SUBDIR": f"sweep/{strategy}",
        "PHASEB_OUTPUT": f"phaseB-{strategy}",
    }


def test_a_bad_strategy_name_stops_before_anything_runs(tmp_path):
    proc = run_script("sweep.py", tmp_path, "--strategies", "none bogus", **DEMO_SMALL)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: STRATEGIES='none bogus': 'bogus' is not a reasoning strategy; use some of "
        'none cot explicit alternating (e.g. STRATEGIES="none cot")'
    ]
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "data").exists()


def test_without_phase_a_the_sweep_names_its_target(tmp_path):
    proc = run_script("sweep.py", tmp_path, "--strategies", "none", **DEMO_SMALL)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        f"error: checkpoint {tmp_path}/checkpoints/arith/phaseA does not exist; run `make phaseA` first"
    )


@pytest.fixture(scope="module")
def phase_a(tmp_path_factory, tiny_model_dir):
    """Stages 01-05 of configs/demo-small.env, once: what every strategy shares."""
    work = tmp_path_factory.mktemp("sweep")
    shutil.copytree(tiny_model_dir, work / "checkpoints/tiny-base")
    for script in ("01_sample.py", "02_student_drafts.py", "03_teacher.py", "04_build_datasets.py"):
        proc = run_script(script, work, **DEMO_SMALL)
        assert proc.returncode == 0, proc.stderr
    proc = run_script("05_train_baseline.py", work, **DEMO_SMALL)
    assert proc.returncode == 0, proc.stderr
    return work


def train_prompt_for(work, strategy: str, tok) -> tuple[str, str]:
    """A training prompt of the strategy's Phase B, rendered, and its question."""
    record = read_jsonl(work / f"data/arith/sweep/{strategy}/train_phaseB.jsonl")[0]
    question = {q["id"]: q["question"] for q in read_jsonl(work / "data/arith/sample_train.jsonl")}[
        record["id"]
    ]
    return render_prompt(tok, record["prompt"]), question


@pytest.mark.slow
def test_sweep_trains_compares_skips_and_reports_a_failure(phase_a):
    from transformers import AutoTokenizer

    work = phase_a
    ck, out = work / "checkpoints/arith", work / "outputs/arith"
    proc = subprocess.run(
        ["make", "--no-print-directory", "sweep", "STRATEGIES=none cot"],
        cwd=ROOT,
        env=offline_env(work, **DEMO_SMALL),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for s in ("none", "cot"):
        assert (ck / f"phaseB-{s}/train.manifest.json").is_file()
        assert (work / f"data/arith/sweep/{s}/datasets.manifest.json").is_file()
    sweep = json.loads((out / "sweep.json").read_text())
    assert list(sweep["strategies"]) == ["none", "cot"] and sweep["reference"] == "none"
    none, cot = sweep["strategies"]["none"], sweep["strategies"]["cot"]
    assert none["status"] == cot["status"] == "ok" and none["n"] == cot["n"] == 16
    assert 0 <= cot["vs_reference"]["p_value"] <= 1 and "vs_reference" not in none
    report = (out / "report.md").read_text()
    assert "## Strategy sweep" in report
    assert any(
        line.startswith("| none | phaseB-none |") and "| reference |" in line for line in report.splitlines()
    )
    assert any(line.startswith("| cot | phaseB-cot |") and "pts |" in line for line in report.splitlines())

    # Each checkpoint answered in its own format (REASONING_STRATEGY is cot), byte for byte the
    # prompt it was trained on, with the question swapped.
    tok = AutoTokenizer.from_pretrained(work / "checkpoints/tiny-base")
    test = read_jsonl(work / "data/arith/test.jsonl")
    for s in ("none", "cot"):
        row = read_jsonl(out / f"sweep/eval_phaseB-{s}.jsonl")[0]
        trained, question = train_prompt_for(work, s, tok)
        asked = next(q["question"] for q in test if q["id"] == row["id"])
        assert row["prompt"] == trained.replace(question, asked)
        assert instruction(s, "number") in row["prompt"]

    # A rerun skips both: data, Phase B and answers are complete for this configuration.
    stamps = {s: (ck / f"phaseB-{s}/train.manifest.json").stat().st_mtime_ns for s in ("none", "cot")}
    proc = run_script("sweep.py", work, "--strategies", "none cot", **DEMO_SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for s in ("none", "cot"):
        assert f"sweep: {s}: datasets in " in proc.stdout and f"sweep: {s}: phaseB in " in proc.stdout
        assert f"sweep: {s}: answers in " in proc.stdout
        assert (ck / f"phaseB-{s}/train.manifest.json").stat().st_mtime_ns == stamps[s]
    assert "== sweep: 04_build_datasets.py" not in proc.stdout  # no stage ran
    assert "== sweep: 06_train_cot.py" not in proc.stdout
    assert json.loads((out / "sweep.json").read_text())["strategies"]["cot"]["accuracy"] == cot["accuracy"]

    first_none = none["accuracy"]
    # A damaged data file is rebuilt (same bytes: its Phase B stays complete); a damaged checkpoint
    # stops that strategy's stage 06 with its one line, and the other strategy still completes.
    (work / "data/arith/sweep/none/train_phaseB.jsonl").write_text("{}\n")
    with open(ck / "phaseB-cot/model.safetensors", "ab") as f:
        f.write(b"\0")
    proc = run_script("sweep.py", work, "--strategies", "none cot", **DEMO_SMALL)
    assert proc.returncode == 1
    sweep = json.loads((out / "sweep.json").read_text())
    none, cot = sweep["strategies"]["none"], sweep["strategies"]["cot"]
    assert none["status"] == "ok" and none["accuracy"] == first_none
    assert cot["status"] == "failed" and cot["stage"] == "06_train_cot.py" and cot["exit"] == 1
    assert (
        cot["error"].startswith("error: phaseB in ")
        and "model.safetensors changed since it was written" in cot["error"]
    )
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "sweep: 1 of 2 strategies failed: cot (06_train_cot.py, exit 1)"
    )
    assert "sweep: none: phaseB in " in proc.stdout  # rebuilt data, same bytes: not retrained
    report = (out / "report.md").read_text()
    assert any(
        line.startswith("| cot | phaseB-cot | — |") and "failed: 06_train_cot.py exited 1" in line
        for line in report.splitlines()
    )
