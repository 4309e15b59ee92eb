"""Phases A, B and C on the tiny model (CPU): loss goes down, B starts from A, C's reference is
B, resume continues at the same step, two processes through accelerate, clear errors."""

import json
import math
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import FAST, ROOT, copy, offline_env, run_script, start_script
from safetensors.torch import load_file

from common.config import load_config
from common.errors import LooperError
from common.jsonl import read_jsonl
from common.train.setup import oom_hint

# Each test trains the tiny model through real stages: left out of `make test-fast`.
pytestmark = pytest.mark.slow


def history(work, phase):
    return json.loads((work / f"checkpoints/arith/{phase}/log_history.json").read_text())


def losses(work, phase):
    return [row["loss"] for row in history(work, phase) if "loss" in row]


def lora(work, phase):
    return load_file(work / f"checkpoints/arith/{phase}/adapter_model.safetensors")


def test_phases_a_b_c_learn_and_chain(trained):
    built = trained
    a = losses(built, "phaseA")
    assert a[-1] < a[0]
    out = built / "checkpoints/arith/phaseA"
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "README.md",
        "training_curves.png",
        "train.manifest.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()  # intermediate checkpoints are cleaned up
    assert "base_model:" in (out / "README.md").read_text()

    b = losses(built, "phaseB")
    assert b[-1] < b[0]
    assert "continued from `" in (built / "checkpoints/arith/phaseB/README.md").read_text()

    proc = run_script("08_train_dpo.py", built, **(FAST | {"EVAL_STEPS": "1"}))  # log every step
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in history(built, "phaseC") if "loss" in r]
    # The policy starts as Phase B and the reference is Phase B: at the first step the implicit
    # rewards are 0 and the DPO loss is exactly log 2.
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert abs(rows[0]["rewards/chosen"]) < 1e-3 and abs(rows[0]["rewards/rejected"]) < 1e-3
    assert rows[-1]["loss"] < rows[0]["loss"] and rows[-1]["rewards/margins"] > 0
    assert "computed" in proc.stdout

    # A re-run of a finished phase is a no-op; RESUME=0 retrains and reuses the cached
    # reference log-probs (none computed).
    proc = run_script("08_train_dpo.py", built, **(FAST | {"EVAL_STEPS": "1"}))
    assert "is complete for this configuration and inputs" in proc.stdout
    proc = run_script("08_train_dpo.py", built, **FAST, RESUME="0", DPO_LOSS="cal_dpo+sft")
    assert proc.returncode == 0, proc.stderr
    assert "reference log-probs: 0 computed" in proc.stdout


def test_a_cut_rejected_answer_is_trained_without_the_turn_end(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig

    from common.models.loading import load_tokenizer
    from common.train.dpo import LooperDPOTrainer, turn_end_ids

    cfg = load_config([], env={"HW": "cpu"}, env_file=tmp_path / "none")[0]
    tokenizer = load_tokenizer(str(tiny_model_dir), cfg.model)
    end = turn_end_ids(tokenizer)
    assert tokenizer.decode(end) == "<|im_end|>\n"
    turn = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
    pairs = Dataset.from_list(
        [
            {
                "id": str(i),
                "prompt": [{"role": "user", "content": "2 + 5?"}],
                "chosen": turn("2 + 5 = 7."),
                "rejected": turn("2 + 5 = 6.\n"),
                "rejected_cut": cut,
            }
            for i, cut in enumerate((True, False))
        ]
    )
    trainer = LooperDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        processing_class=tokenizer,
        args=DPOConfig(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True),
        train_dataset=pairs,
        dpo=cfg.dpo,
    )
    cut, whole = trainer.train_dataset
    assert whole["rejected_ids"] == cut["rejected_ids"] + end  # only the cut one is left open
    assert whole["chosen_ids"][-len(end) :] == cut["chosen_ids"][-len(end) :] == end


def test_phase_b_starts_from_phase_a_weights(trained, tmp_path):
    copy(trained, tmp_path, ["phaseA"])
    proc = run_script("06_train_cot.py", tmp_path, **(FAST | {"LEARNING_RATE": "0"}))
    assert proc.returncode == 0, proc.stderr
    a, b = lora(tmp_path, "phaseA"), lora(tmp_path, "phaseB")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)  # A really trained B


def test_full_finetuning_chains_phases_and_names_a_mismatch(built, trained, tmp_path):
    copy(built, tmp_path)
    full = FAST | {"FINETUNE": "full", "EVAL_STEPS": "1"}
    for script in ("05_train_baseline.py", "06_train_cot.py"):
        proc = run_script(script, tmp_path, **full)
        assert proc.returncode == 0, proc.stderr
    base = load_file(tmp_path / "checkpoints/tiny-base/model.safetensors")
    phase_a = tmp_path / "checkpoints/arith/phaseA"
    a = load_file(phase_a / "model.safetensors")
    b = load_file(tmp_path / "checkpoints/arith/phaseB/model.safetensors")
    assert not (phase_a / "adapter_config.json").exists()
    assert "library_name: transformers" in (phase_a / "README.md").read_text()
    # Every weight trained, and Phase B moved on from Phase A's weights, not the base's.
    q_proj = [k for k in a if k.endswith("q_proj.weight")]
    assert q_proj and all(not torch.equal(base[k], a[k]) for k in q_proj)
    assert any(not torch.equal(a[k], b[k]) for k in a)

    proc = run_script("08_train_dpo.py", tmp_path, **full)
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in history(tmp_path, "phaseC") if "loss" in r]
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)  # the reference is Phase B
    assert rows[-1]["loss"] < rows[0]["loss"]

    proc = run_script("merge_adapter.py", tmp_path, "--phase", "phaseC", **full)
    assert proc.returncode == 2 and "already a standalone model" in proc.stderr
    # A LoRA Phase A can't seed a full-weight Phase B (nor the reverse): one line with the fix.
    shutil.copytree(trained / "checkpoints/arith/phaseA", phase_a, dirs_exist_ok=True)
    (phase_a / "config.json").unlink()
    proc = run_script("06_train_cot.py", tmp_path, **full, RESUME="0")
    assert proc.returncode == 2 and "holds a LoRA adapter but FINETUNE=full" in proc.stderr


def test_staged_schedule_changes_beta_and_filters_noisy_pairs(trained, tmp_path):
    copy(trained, tmp_path, ["phaseA", "phaseB"])
    env = FAST | {
        "DPO_SCHEDULE": "staged",
        "MAX_STEPS": "-1",
        "BATCH_SIZE": "8",
        "EVAL_STEPS": "2",
        "NOISY_FRACTION": "0.5",
    }
    proc = run_script("08_train_dpo.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in history(tmp_path, "phaseC") if "beta" in r and "loss" in r]
    by_epoch = {math.ceil(r["epoch"]): r for r in rows}
    assert set(by_epoch) == {1, 2, 3, 4}
    assert by_epoch[1]["beta"] == pytest.approx(0.05) and by_epoch[2]["beta"] == pytest.approx(0.1)
    kept_early = [r["pairs_kept"] for r in rows if r["epoch"] <= 3]
    kept_last = [r["pairs_kept"] for r in rows if r["epoch"] > 3]
    assert all(k == 1 for k in kept_early) and min(kept_last) < 1


def _wait_for(path_glob, root, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list(root.glob(path_glob)):
            return
        if proc.poll() is not None:
            pytest.fail("the phase finished before it could be killed")
        time.sleep(0.1)
    pytest.fail(f"no {path_glob} within {timeout}s")


def test_killed_phase_resumes_at_the_same_step(built, tmp_path):
    copy(built, tmp_path)
    env = FAST | {"MAX_STEPS": "40", "EVAL_STEPS": "4", "EARLY_STOPPING_PATIENCE": "100"}
    proc = start_script("05_train_baseline.py", tmp_path, **env)
    ckpts = tmp_path / "checkpoints/arith/phaseA/checkpoints"
    _wait_for("checkpoint-8/trainer_state.json", ckpts, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = max(
        int(p.name.split("-")[1]) for p in ckpts.glob("checkpoint-*") if (p / "trainer_state.json").exists()
    )
    assert 8 <= saved < 40
    done = run_script("05_train_baseline.py", tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert f"resuming from checkpoints/arith/phaseA/checkpoints/checkpoint-{saved}" in done.stdout.replace(
        str(tmp_path) + "/", ""
    )
    steps = [r["step"] for r in history(tmp_path, "phaseA") if "loss" in r]
    assert steps[-1] == 40 and steps == sorted(set(steps))  # continued, no step trained twice
    assert (
        json.loads((tmp_path / "checkpoints/arith/phaseA/train.manifest.json").read_text())["metrics"][
            "global_step"
        ]
        == 40
    )


def test_a_killed_phase_is_not_resumed_under_another_configuration(built, tmp_path):
    copy(built, tmp_path)
    env = FAST | {"MAX_STEPS": "40", "EVAL_STEPS": "4", "EARLY_STOPPING_PATIENCE": "100"}
    proc = start_script("05_train_baseline.py", tmp_path, **env)
    _wait_for("checkpoint-8/trainer_state.json", tmp_path / "checkpoints/arith/phaseA/checkpoints", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    changed = run_script("05_train_baseline.py", tmp_path, **(env | {"LEARNING_RATE": "0.002"}))
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "made under another configuration" in changed.stdout and "resuming from" not in changed.stdout
    steps = [r["step"] for r in history(tmp_path, "phaseA") if "loss" in r]
    assert steps[0] < 8 and steps[-1] == 40  # trained from the start


def test_two_processes_through_accelerate(built, tmp_path):
    copy(built, tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "docker/accelerate/ddp.yaml",
        "--num_processes",
        "2",
        "scripts/05_train_baseline.py",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=offline_env(tmp_path, **FAST), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    assert (tmp_path / "checkpoints/arith/phaseA/adapter_model.safetensors").is_file()
    assert losses(tmp_path, "phaseA")[-1] < losses(tmp_path, "phaseA")[0]


def test_bad_inputs_name_the_fix(built, tmp_path):
    copy(built, tmp_path)
    proc = run_script("06_train_cot.py", tmp_path, **FAST)
    assert proc.returncode == 1 and "run `make phaseA` first" in proc.stderr
    proc = run_script("08_train_dpo.py", tmp_path, **FAST)
    assert proc.returncode == 1 and "run `make phaseB` first" in proc.stderr
    (tmp_path / "data/arith/train_phaseA.jsonl").write_text("")
    proc = run_script("05_train_baseline.py", tmp_path, **FAST)
    assert proc.returncode == 1 and "is empty: nothing to train on" in proc.stderr
    shutil.rmtree(tmp_path / "checkpoints/tiny-base")
    (tmp_path / "data/arith/train_phaseA.jsonl").write_text(
        (built / "data/arith/train_phaseA.jsonl").read_text()
    )
    proc = run_script("05_train_baseline.py", tmp_path, **FAST, MODEL_NAME=str(tmp_path / "no/such/model"))
    assert proc.returncode == 1 and "no/such/model does not exist" in proc.stderr
    # The cpu profile's own student is built when missing, as `make tiny-model` would.
    proc = run_script("05_train_baseline.py", tmp_path, **FAST, TINY_PRETRAIN_STEPS="0")
    assert proc.returncode == 0 and "tiny-base is missing; building it" in proc.stdout, proc.stderr[-2000:]
    assert (tmp_path / "checkpoints/arith/phaseA").is_dir()


def test_out_of_memory_names_the_profile_knobs():
    cfg = load_config([], env={"HW": "h100"})[0]
    with (
        pytest.raises(
            LooperError,
            match=r"BATCH_SIZE=4.*GRAD_ACCUM.*MAX_LENGTH.*GRADIENT_CHECKPOINTING=1.*HW=4060",
        ),
        oom_hint(cfg, "phaseA"),
    ):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_merge_gives_the_same_model_as_base_plus_adapter(trained, tmp_path):
    from common.models.loading import load_model

    copy(trained, tmp_path, ["phaseB"])
    proc = run_script("merge_adapter.py", tmp_path, "--phase", "phaseB", **FAST)
    assert proc.returncode == 0, proc.stderr
    cfg = load_config([], env={"HW": "cpu"})[0]
    adapter, tok = load_model(str(tmp_path / "checkpoints/arith/phaseB"), cfg)
    merged, _ = load_model(str(tmp_path / "checkpoints/arith/merged-phaseB"), cfg)
    ids = tok("Ava has 12 apples. Then Ava buys 30 more.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(adapter(ids).logits, merged(ids).logits, atol=1e-4)
    assert not (tmp_path / "checkpoints/arith/merged-phaseB/adapter_config.json").exists()


def test_eval_scores_every_phase_and_writes_the_report(trained, tmp_path):
    copy(trained, tmp_path, ["phaseA", "phaseB"])
    env = FAST | {
        "EVAL_SAMPLES": "12",
        "EVAL_MAX_NEW_TOKENS": "24",
        "ATTRIBUTION_SAMPLES": "2",
        "DRAFT_MAX_NEW_TOKENS": "8",
        "DRAFT_TEMPERATURE": "1.0",
    }
    proc = run_script("09_eval_platinum.py", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "outputs/arith"
    for name in ("base", "phaseA", "phaseB"):
        rows = read_jsonl(out / f"eval_{name}.jsonl")
        assert len(rows) == 12
        assert set(rows[0]) >= {
            "id",
            "prompt",
            "output",
            "pred",
            "gold",
            "correct",
            "tokens",
            "truncated",
        }
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["checkpoints"]) == ["base", "phaseA", "phaseB"]
    assert summary["checkpoints"]["phaseA"]["strategy"] == "none"  # Phase A's own format
    assert set(summary["comparisons"]) == {"base->phaseA", "phaseA->phaseB"}
    assert set(summary["ablations"]["variants"]) == {"with draft", "no draft", "shuffled draft"}
    assert (out / "report.md").is_file() and (out / "accuracy.png").is_file()
    prompts = [r["prompt"] for r in read_jsonl(out / "eval_phaseB_no_draft.jsonl")]
    assert not any("Student draft:" in p for p in prompts)
