"""A real pretrained student end to end: SmolLM2-135M-Instruct (make smollm2; make test fetches it)
through every stage on real GSM8K rows, checking what only a real model exposes: its tokenizer's
chat template in the loss mask and the prompts, LoRA on its projections, its drafts parsed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_script, shared_file

from common.errors import DataError

SMOLLM2 = ROOT / "checkpoints" / "smollm2-135m-instruct"
GGUF = ROOT / ".cache" / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
PROJECTIONS = (*ATTENTION, "gate_proj", "up_proj", "down_proj")


def smollm2() -> Path:
    if not (SMOLLM2 / "model.safetensors").is_file():
        pytest.skip(f"{SMOLLM2} is absent: run `make smollm2` (make test does)")
    return SMOLLM2


def smollm2_env(**extra: str) -> dict[str, str]:
    """configs/smollm2.env with every stage cut to a few steps and a few questions."""
    return {
        "LOOPER_ENV_FILE": str(ROOT / "configs" / "smollm2.env"),
        "MODEL_NAME": str(smollm2()),
        "DATASET_PATH": str(shared_file("gsm8k", "train.jsonl")),
        "TRAIN_SAMPLES": "12",
        "DEV_SAMPLES": "2",
        "DRAFT_MAX_NEW_TOKENS": "24",
        "BATCH_SIZE": "4",
        "MAX_LENGTH": "288",
        "MAX_STEPS": "4",
        "EVAL_STEPS": "2",
        "LEARNING_RATE": "1e-3",
        "ROLLOUT_QUESTIONS": "2",
        "ROLLOUTS_PER_QUESTION": "2",
        "ROLLOUT_MAX_NEW_TOKENS": "24",
        "PAIR_MODE": "spin",  # pairs whatever the 4-step model gets right
        "DPO_LEARNING_RATE": "1e-4",
        "EVAL_CHECKPOINTS": "base,phaseB,phaseC",
        "EVAL_SAMPLES": "6",
        "EVAL_MAX_NEW_TOKENS": "24",
        "GEN_BATCH_SIZE": "8",
    } | extra


# Phase C and the loop round take two DPO steps: each is 4 pairs of up to 288 tokens on 2 cores.
STAGES = {
    "01_sample.py": {},
    "02_student_drafts.py": {},
    "03_teacher.py": {},
    "04_build_datasets.py": {},
    "05_train_baseline.py": {},
    "06_train_cot.py": {},
    "07_rollouts.py": {},
    "08_train_dpo.py": {"MAX_STEPS": "2"},
    "loop.py": {"ITERATIONS": "1", "MAX_STEPS": "2"},
    "09_eval_platinum.py": {},
}


@pytest.mark.slow
def test_every_stage_runs_on_smollm2_over_real_gsm8k(tmp_path):
    for script, extra in STAGES.items():
        proc = run_script(script, tmp_path, **smollm2_env(**extra))
        assert proc.returncode == 0, f"{script}: {proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
        if script == "02_student_drafts.py":
            assert "drafts: 14, parsed " in proc.stdout  # the parse rate is reported
    data, ckpt, out = (tmp_path / d / "smollm2-gsm8k" for d in ("data", "checkpoints", "outputs"))
    drafts = [json.loads(line) for line in (data / "student_drafts.jsonl").open()]
    assert len(drafts) == 14 and all(isinstance(d["parse_ok"], bool) for d in drafts)

    for phase in ("phaseA", "phaseB"):
        history = json.loads((ckpt / phase / "log_history.json").read_text())
        losses = [r["loss"] for r in history if "loss" in r]
        assert len(losses) >= 2 and all(0 < x < 20 for x in losses), losses
        # Each step's training batch is other questions, so the training loss is noisy over 4 steps;
        # the dev loss is measured on the same questions every time.
        dev = [r["eval_loss"] for r in history if "eval_loss" in r]
        assert len(dev) >= 2 and dev[-1] < dev[0], f"{phase}: the dev loss did not fall: {dev}"
        config = json.loads((ckpt / phase / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(SMOLLM2)
    assert (ckpt / "loop" / "round1-sigmoid" / "adapter_config.json").is_file()

    test = {json.loads(line)["id"] for line in (data / "test.jsonl").open()}
    summary = json.loads((out / "summary.json").read_text())
    for name in ("base", "phaseB", "phaseC"):
        rows = [json.loads(line) for line in (out / f"eval_{name}.jsonl").open()]
        assert len({r["id"] for r in rows}) == len(rows) == 6 and {r["id"] for r in rows} <= test
        assert all(isinstance(r["correct"], bool) and r["output"] for r in rows)
        assert name in json.dumps(summary)


@pytest.mark.slow
def test_loss_mask_and_prompt_match_evaluation_and_lora_wraps_every_projection(tmp_path, monkeypatch):
    """TRL's tokenized Phase B example: the prompt is the exact bytes evaluation renders, and the loss
    starts at the assistant's first token and includes <|im_end|>. LoRA on all-linear wraps all seven
    projections of each of the 30 layers."""
    from datasets import Dataset
    from trl import SFTTrainer

    from common.config import load_config
    from common.data.prompts import build_messages, render_prompt
    from common.data.records import sft_record
    from common.train.setup import load_student
    from common.train.sft import sft_config

    monkeypatch.setenv("LOOPER_ENV_FILE", str(ROOT / "configs" / "smollm2.env"))
    monkeypatch.setenv("MODEL_NAME", str(smollm2()))
    monkeypatch.setenv("WORK_DIR", str(tmp_path))
    cfg, _ = load_config([])
    model, tokenizer = load_student(cfg.model)

    wrapped = {name for name, module in model.named_modules() if hasattr(module, "lora_A")}
    layers = model.base_model.model.config.num_hidden_layers
    expected = {
        f"base_model.model.model.layers.{i}.{'self_attn' if p in ATTENTION else 'mlp'}.{p}"
        for i in range(layers)
        for p in PROJECTIONS
    }
    assert layers == 30 and wrapped == expected

    messages = build_messages(
        "Ann has 3 apples and buys 4 more. How many apples does she have?", "cot", "number"
    )
    record = sft_record("q1", messages, "3 + 4 = 7\nThe answer is: 7")
    args = sft_config(cfg, tmp_path / "sft", n_train=1, packing=False)  # as Phase B builds it
    data = Dataset.from_list([record])
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=data, processing_class=tokenizer
    )
    example = trainer.train_dataset[0]
    prompt_ids = tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]
    ids, mask = example["input_ids"], [label != -100 for label in example["labels"]]
    assert ids[: len(prompt_ids)] == prompt_ids  # byte-identical prompt at training and evaluation
    first = mask.index(True)
    assert first == len(prompt_ids) and not any(mask[:first])
    trained = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained.startswith("3 + 4 = 7") and "<|im_end|>" in trained


# --- GGUF files as MODEL_NAME -----------------------------------------------------------------


@pytest.mark.slow
def test_a_gguf_model_name_is_converted_once_into_a_cache_keyed_by_its_sha256(tmp_path, monkeypatch):
    if not GGUF.is_file():
        pytest.skip(f"{GGUF} is absent: run `make smollm2` (make test does)")
    from common.config import load_config
    from common.jsonl import sha256_file
    from common.models.gguf import SOURCE

    monkeypatch.setenv("WORK_DIR", str(tmp_path))
    monkeypatch.setenv("MODEL_NAME", str(GGUF))
    monkeypatch.setenv("LOOPER_ENV_FILE", "/dev/null")
    cfg, _ = load_config([])
    folder = Path(cfg.model.model_name)
    assert folder == tmp_path / ".cache" / "gguf" / f"SmolLM2-135M-Instruct.Q4_1-{sha256_file(GGUF)[:12]}"
    assert json.loads((folder / SOURCE).read_text()) == json.loads((smollm2() / SOURCE).read_text())
    assert "converted from SmolLM2-135M-Instruct.Q4_1.gguf" in cfg.sources["model_name"]
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    cfg, _ = load_config([])  # the second time: the folder as it is
    assert Path(cfg.model.model_name) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp

    from common.models.gguf import is_converted

    sha = sha256_file(GGUF)
    assert is_converted(folder, sha) and not is_converted(folder, "0" * 64)  # another file: convert again
    (folder / "tokenizer.json").write_text("{}")  # damaged since written: converted again, not reused
    assert not is_converted(folder, sha)


def test_bad_gguf_files_are_one_line_naming_the_file(tmp_path):
    import gguf

    from common.models.gguf import gguf_architecture

    with pytest.raises(DataError, match="the GGUF file does not exist"):
        gguf_architecture(tmp_path / "missing.gguf")
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(DataError, match=r"text.gguf is not a GGUF file"):
        gguf_architecture(tmp_path / "text.gguf")

    writer = gguf.GGUFWriter(str(tmp_path / "rwkv.gguf"), "rwkv")  # an architecture transformers lacks
    writer.add_tensor("w", __import__("numpy").zeros((4, 4), dtype="float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(DataError, match="cannot load GGUF architecture 'rwkv'"):
        gguf_architecture(tmp_path / "rwkv.gguf")
    whole = (tmp_path / "rwkv.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(whole[: len(whole) - 40])
    with pytest.raises(DataError, match="cut.gguf is truncated or corrupt"):
        gguf_architecture(tmp_path / "cut.gguf")


def test_a_missing_gguf_model_name_stops_the_stage_with_one_line(tmp_path):
    proc = run_script("01_sample.py", tmp_path, MODEL_NAME=str(tmp_path / "student.gguf"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: MODEL_NAME={tmp_path / 'student.gguf'}: the GGUF file does not exist; check the path "
        "(make smollm2 fetches one)"
    ]
    assert not (tmp_path / ".cache" / "gguf").exists() or not any((tmp_path / ".cache" / "gguf").iterdir())
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
