"""Stage 03 against a fake OpenAI/Anthropic server on 127.0.0.1, through the real SDKs."""

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import ROOT, offline_env, run_script
from fake_api import FakeAPI

from common.jsonl import read_jsonl

KEY = "sk-planted-test-key-0123456789"


def sample(work, n=20, task="compare"):
    proc = run_script("01_sample.py", work, TASK=task, TRAIN_SAMPLES=str(n), DEV_SAMPLES="2")
    assert proc.returncode == 0, proc.stderr
    return read_jsonl(work / f"data/{task}/sample_train.jsonl")


def teacher_env(api, backend="openai", **extra):
    env = {
        "TASK": "compare",
        "DISAGREEMENT": "drop",  # one pass of requests; the STaR rationalization pass is tested in test_datasets
        "WITH_DRAFT": "0",
        "TEACHER": backend,
        "TEACHER_MAX_RETRIES": "2",
        "TEACHER_TIMEOUT": "1",
        "TEACHER_CONCURRENCY": "8",
    }
    if backend == "openai":
        env |= {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": api.openai_url}
    else:
        env |= {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": api.anthropic_url}
    return env | extra


def outputs(work, task="compare"):
    return {r["id"]: r for r in read_jsonl(work / f"data/{task}/teacher_outputs.jsonl")}


def assert_key_nowhere(work, *texts):
    for text in texts:
        assert KEY not in text
    for path in work.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"key leaked into {path}"


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_success_parses_answers_and_records_costs(tmp_path, backend):
    rows = sample(tmp_path, 6)
    with FakeAPI() as api:
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api, backend))
    assert proc.returncode == 0, proc.stderr
    out = outputs(tmp_path)
    assert set(out) == {r["id"] for r in rows}
    assert all(r["status"] == "ok" and r["answer"] == "yes" for r in out.values())
    assert all(r["text"].startswith("## Teaching Analysis") for r in out.values())
    ledger = read_jsonl(tmp_path / "data/compare/teacher_cost.jsonl")
    assert len(ledger) == 6 and all(r["tokens_in"] > 0 and r["usd"] > 0 for r in ledger)
    paths = {r["path"] for r in api.requests}
    assert paths == ({"/v1/chat/completions"} if backend == "openai" else {"/v1/messages"})
    assert_key_nowhere(tmp_path, proc.stdout, proc.stderr)


def test_faults_retried_or_recorded_then_resumed(tmp_path):
    rows = sample(tmp_path, 12)
    q = [r["question"] for r in rows]
    plan = {
        q[0]: ["429", "ok"],
        q[1]: ["500", "ok"],
        q[2]: ["500"],
        q[3]: ["timeout", "ok"],
        q[4]: ["malformed"],
        q[5]: ["empty"],
        q[6]: ["refusal"],
        q[7]: ["401"],
        q[8]: ["drop", "ok"],
    }
    with FakeAPI(faults=plan, hang_seconds=3) as api:
        started = time.time()
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api))
        took = time.time() - started
        assert proc.returncode == 0, proc.stderr
        out = outputs(tmp_path)
        by_q = {r["question"]: r for r in out.values()}
        status = {i: by_q[q[i]]["status"] for i in range(12)}
        assert status == {
            0: "ok",
            1: "ok",
            2: "api_error",
            3: "ok",
            4: "api_error",
            5: "empty",
            6: "refused",
            7: "api_error",
            8: "ok",
            9: "ok",
            10: "ok",
            11: "ok",
        }
        seen = {i: api.seen[q[i]] for i in range(9)}
        assert seen[0] == 2 and took >= 1.0  # 429 retried after its Retry-After: 1
        assert seen[2] == 3  # 500 every time: the SDK's 2 retries, then recorded
        assert seen[4] == 1 and seen[6] == 1 and seen[7] == 1  # permanent: never retried
        assert "HTTP 500" in by_q[q[2]]["error"] and "HTTP 401" in by_q[q[7]]["error"]
        assert "malformed response" in by_q[q[4]]["error"]

        # A re-run retries only the API errors; everything else is kept, and costs nothing.
        api.faults = {q[2]: ["ok"], q[4]: ["ok"], q[7]: ["ok"]}
        before = len(api.requests)
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api))
        assert proc.returncode == 0, proc.stderr
        assert len(api.requests) - before == 3
        out = outputs(tmp_path)
        assert len(out) == 12 and Counter(r["status"] for r in out.values())["api_error"] == 0
        lines = (tmp_path / "data/compare/teacher_outputs.jsonl").read_text().splitlines()
        assert len(lines) == 12  # retried rows replaced, not duplicated

        # Deleting the outputs and re-running is free: every reply comes from the cache.
        (tmp_path / "data/compare/teacher_outputs.jsonl").unlink()
        before = len(api.requests)
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api))
        assert proc.returncode == 0 and len(api.requests) == before
        assert all(a["cached"] for r in outputs(tmp_path).values() for a in r["attempts"])
    assert_key_nowhere(tmp_path, proc.stdout, proc.stderr)


def test_401_echoing_the_key_never_leaks_it(tmp_path):
    rows = sample(tmp_path, 3)
    with FakeAPI(faults={r["question"]: ["401"] for r in rows}) as api:
        procs = [
            run_script("03_teacher.py", tmp_path, **teacher_env(api, backend))
            for backend in ("openai", "anthropic")
        ]
    # Every request failed: the stage fails (exit 1, one line), keeping the rows to retry.
    assert all(p.returncode == 1 and "every request failed (3/3 api_error" in p.stderr for p in procs)
    assert not (tmp_path / "data/compare/teacher.manifest.json").exists()
    assert all(r["status"] == "api_error" for r in outputs(tmp_path).values())
    assert "***" in next(iter(outputs(tmp_path).values()))["error"]
    assert_key_nowhere(tmp_path, *(p.stdout + p.stderr for p in procs))


def test_budget_stops_cleanly_and_resumes(tmp_path):
    sample(tmp_path, 20)
    # About $0.002 a request worst case: a $0.01 cap allows a handful, never more.
    env = {
        "TEACHER_PRICE_IN": "10",
        "TEACHER_PRICE_OUT": "10",
        "TEACHER_MAX_TOKENS": "1",
        "MAX_COST_USD": "0.01",
        "TEACHER_CONCURRENCY": "2",
    }
    with FakeAPI(latency=0.02) as api:
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api, **env))
        assert proc.returncode == 3 and "MAX_COST_USD=0.01 reached" in proc.stderr
        ledger = read_jsonl(tmp_path / "data/compare/teacher_cost.jsonl")
        assert 0 < len(outputs(tmp_path)) < 20 and sum(r["usd"] for r in ledger) <= 0.01
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api, **(env | {"MAX_COST_USD": "0"})))
    assert proc.returncode == 0 and len(outputs(tmp_path)) == 20


def test_dry_run_sends_nothing_and_needs_no_key(tmp_path):
    sample(tmp_path, 5)
    with FakeAPI() as api:
        env = teacher_env(api, DRY_RUN="1") | {"OPENAI_API_KEY": ""}
        proc = run_script("03_teacher.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert api.requests == [] and "5 requests" in proc.stdout and "$" in proc.stdout
    assert "## Teaching Analysis" in proc.stdout
    assert not (tmp_path / "data/compare/teacher_outputs.jsonl").exists()


def test_missing_key_is_one_line_before_any_work(tmp_path):
    sample(tmp_path, 3)
    proc = run_script("03_teacher.py", tmp_path, TASK="compare", WITH_DRAFT="0", TEACHER="anthropic")
    assert proc.returncode == 2 and "ANTHROPIC_API_KEY" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data/compare/teacher_outputs.jsonl").exists()


def test_attempts_take_the_majority_and_record_agreement(tmp_path):
    sample(tmp_path, 1)
    verdicts = iter(["YES", "NO", "YES"])
    reply = lambda prompt: f"Based on this analysis, the answer is: **[{next(verdicts)}]**"  # noqa: E731
    with FakeAPI(reply=reply) as api:
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api, TEACHER_ATTEMPTS="3"))
    assert proc.returncode == 0, proc.stderr
    (row,) = outputs(tmp_path).values()
    assert row["answer"] == "yes" and row["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert [a["answer"] for a in row["attempts"]].count("no") == 1


def test_offline_teacher_errs_only_on_the_chosen_label(tmp_path):
    rows = sample(tmp_path, 200)
    proc = run_script(
        "03_teacher.py",
        tmp_path,
        TASK="compare",
        WITH_DRAFT="0",
        TEACHER_ERROR_RATE="0.3",
        TEACHER_ERROR_LABEL="yes",
    )
    assert proc.returncode == 0, proc.stderr
    out = outputs(tmp_path)
    yes = [r for r in rows if r["answer"] == "yes"]
    wrong_yes = sum(out[r["id"]]["answer"] != "yes" for r in yes) / len(yes)
    assert 0.18 < wrong_yes < 0.42
    assert all(out[r["id"]]["answer"] == "no" for r in rows if r["answer"] == "no")


def _kill_when(cmd, env, path, min_lines, timeout=60):
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= min_lines:
            break
        if proc.poll() is not None:
            pytest.fail("the stage finished before it could be killed")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _assert_whole_and_unique(path, expected_ids):
    lines = path.read_bytes().decode().splitlines()
    ids = [json.loads(line)["id"] for line in lines]  # every line is whole JSON
    assert len(ids) == len(set(ids)) and set(ids) == expected_ids


def test_teacher_killed_mid_run_resumes_without_loss_or_duplicates(tmp_path):
    rows = sample(tmp_path, 40)
    out = tmp_path / "data/compare/teacher_outputs.jsonl"
    with FakeAPI(latency=0.1) as api:
        env = offline_env(tmp_path, **teacher_env(api, TEACHER_CONCURRENCY="4"))
        _kill_when([sys.executable, "scripts/03_teacher.py"], env, out, min_lines=6)
        partial = out.read_bytes().decode().splitlines()
        assert 6 <= len(partial) < 40
        proc = run_script("03_teacher.py", tmp_path, **teacher_env(api))
    assert proc.returncode == 0, proc.stderr
    _assert_whole_and_unique(out, {r["id"] for r in rows})


@pytest.mark.slow
def test_drafts_killed_mid_run_resume_without_loss_or_duplicates(tmp_path, tiny_model_dir):
    rows = sample(tmp_path, 120, task="arith")
    out = tmp_path / "data/arith/student_drafts.jsonl"
    env = {
        "TASK": "arith",
        "MODEL_NAME": str(tiny_model_dir),
        "GEN_BATCH_SIZE": "4",
        "DRAFT_MAX_NEW_TOKENS": "24",
    }
    _kill_when([sys.executable, "scripts/02_student_drafts.py"], offline_env(tmp_path, **env), out, 8)
    assert 8 <= len(out.read_bytes().decode().splitlines()) < 122
    proc = run_script("02_student_drafts.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    dev = read_jsonl(tmp_path / "data/arith/dev.jsonl")
    _assert_whole_and_unique(out, {r["id"] for r in rows + dev})
    assert "already done" in proc.stdout
    row = read_jsonl(out)[0]
    assert {"draft", "draft_answer", "questions", "parsed_answer", "parse_ok"} <= set(row)
