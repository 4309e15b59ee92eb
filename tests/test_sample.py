import json

import pytest
from conftest import run_script, shared_file

from common.data.tasks import get_task
from common.errors import DataError
from common.jsonl import read_jsonl

OUTPUTS = ("sample_train.jsonl", "dev.jsonl", "test.jsonl", "sample.manifest.json")


def ids(path):
    return [row["id"] for row in read_jsonl(path)]


def test_gsm8k_from_shared_data_is_stable_and_disjoint(tmp_path):
    train = shared_file("gsm8k", "train.jsonl")
    env = {"TASK": "gsm8k", "DATASET_PATH": str(train), "TRAIN_SAMPLES": "200"}
    first = run_script("01_sample.py", tmp_path / "a", **env)
    second = run_script("01_sample.py", tmp_path / "b", **env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = tmp_path / "a/data/gsm8k", tmp_path / "b/data/gsm8k"
    assert ids(a / "sample_train.jsonl") == ids(b / "sample_train.jsonl")  # stable ids, same seed
    train_ids, dev_ids = set(ids(a / "sample_train.jsonl")), set(ids(a / "dev.jsonl"))
    assert len(train_ids) == 200 and len(dev_ids) == 50 and not train_ids & dev_ids
    test_rows = read_jsonl(a / "test.jsonl")
    assert len(test_rows) == 1319  # the sibling test.jsonl, untouched
    assert not train_ids & {r["id"] for r in test_rows}
    row = read_jsonl(a / "sample_train.jsonl")[0]
    assert set(row) == {"id", "question", "answer", "rationale"} and "####" not in row["rationale"]
    manifest = json.loads((a / "sample.manifest.json").read_text())
    assert manifest["inputs"]["train"]["sha256"] and manifest["git_commit"]
    assert set(manifest["outputs"]) == set(OUTPUTS[:3]) and manifest["packages"]["datasets"]
    other_seed = run_script("01_sample.py", tmp_path / "c", **env, RANDOM_SEED="7")
    assert ids(tmp_path / "c/data/gsm8k/sample_train.jsonl") != ids(a / "sample_train.jsonl")
    assert other_seed.returncode == 0


def test_strategyqa_original_release_keeps_yes_no_ratio(tmp_path):
    train = shared_file("strategyqa", "train.json")
    env = {"TASK": "strategyqa", "DATASET_PATH": str(train), "TRAIN_SAMPLES": "200"}
    proc = run_script("01_sample.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    source = json.loads(train.read_text())
    source_yes = sum(bool(r["answer"]) for r in source) / len(source)
    rows = read_jsonl(tmp_path / "data/strategyqa/sample_train.jsonl")
    yes = sum(r["answer"] == "yes" for r in rows)
    assert abs(yes - source_yes * 200) <= 1
    assert {r["id"] for r in rows} <= {r["qid"] for r in source}  # the dataset's own ids
    assert rows[0]["facts"] and rows[0]["decomposition"]
    assert len(read_jsonl(tmp_path / "data/strategyqa/test.jsonl")) == 229  # dev.json beside it


def test_generated_tasks_sample_offline(tmp_path):
    for task in ("arith", "compare"):
        proc = run_script("01_sample.py", tmp_path, TASK=task, TRAIN_SAMPLES="30", DEV_SAMPLES="10")
        assert proc.returncode == 0, proc.stderr
        assert len(read_jsonl(tmp_path / f"data/{task}/sample_train.jsonl")) == 30
        assert len(read_jsonl(tmp_path / f"data/{task}/test.jsonl")) >= 1000


def test_asking_for_more_than_exists_is_an_error(tmp_path):
    def rows(prefix, n):
        return "".join(json.dumps({"question": f"{prefix}{i}", "answer": "#### 1"}) + "\n" for i in range(n))

    (tmp_path / "in").mkdir()
    (tmp_path / "in/train.jsonl").write_text(rows("q", 10))
    (tmp_path / "in/test.jsonl").write_text(rows("t", 3))
    proc = run_script(
        "01_sample.py",
        tmp_path,
        TASK="gsm8k",
        DATASET_PATH=str(tmp_path / "in/train.jsonl"),
        TRAIN_SAMPLES="8",
        DEV_SAMPLES="5",
    )
    assert proc.returncode == 1 and "TRAIN_SAMPLES=8 + DEV_SAMPLES=5 = 13" in proc.stderr
    assert "only 10 usable" in proc.stderr
    assert not (tmp_path / "data").exists()


GOOD = json.dumps({"question": "Ava has 2 apples and buys 3. How many?", "answer": "2+3=5\n#### 5"})


@pytest.mark.parametrize(
    "content, expected",
    [
        (GOOD + "\n" + '{"question": "broken", "answer": \n' + GOOD + "\n", r"train\.jsonl:2: invalid JSON"),
        (
            GOOD + "\n\n" + json.dumps({"question": "no answer"}) + "\n",
            r"train\.jsonl:3: missing field 'answer'",
        ),
        (GOOD + "\n" + json.dumps({"answer": "#### 4"}) + "\n", r"train\.jsonl:2: missing field 'question'"),
        (
            GOOD + "\n" + json.dumps({"question": "q", "answer": "four"}) + "\n",
            r"train\.jsonl:2: answer 'four' has no final number",
        ),
        ("", r"train\.jsonl is empty"),
    ],
)
def test_bad_data_names_file_and_line_and_writes_nothing(tmp_path, content, expected):
    src = tmp_path / "in" / "train.jsonl"
    src.parent.mkdir()
    src.write_text(content)
    proc = run_script("01_sample.py", tmp_path, TASK="gsm8k", DATASET_PATH=str(src), TRAIN_SAMPLES="1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert __import__("re").search(expected, lines[0]), lines[0]
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.jsonl"))


def test_bad_rerun_keeps_previous_complete_outputs(tmp_path):
    assert run_script("01_sample.py", tmp_path, TRAIN_SAMPLES="5").returncode == 0
    before = {p: (tmp_path / "data/arith" / p).read_bytes() for p in OUTPUTS}
    proc = run_script("01_sample.py", tmp_path, TRAIN_SAMPLES="999999")
    assert proc.returncode == 1
    assert {p: (tmp_path / "data/arith" / p).read_bytes() for p in OUTPUTS} == before
    assert not list((tmp_path / "data/arith").glob(".*tmp*"))


def test_strategyqa_json_array_errors_name_the_record(tmp_path):
    src = tmp_path / "train.json"
    src.write_text(
        json.dumps(
            [
                {"qid": "a1", "question": "Is it?", "answer": True},
                {"qid": "a2", "question": "Is it?", "answer": "maybe"},
            ]
        )
    )
    with pytest.raises(DataError, match=r"train\.json: row 2: answer 'maybe' is not yes/no"):
        get_task("strategyqa").load_split("train", str(src))


def test_hub_unreachable_says_how_to_use_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"cannot reach the Hugging Face hub for openai/gsm8k.*DATASET_PATH"):
        get_task("gsm8k").load_split("train", "openai/gsm8k")
