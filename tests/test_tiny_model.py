import random
import re
import subprocess

import torch
from conftest import ROOT, run_script
from transformers import AutoModelForCausalLM, AutoTokenizer

from common.data import synthetic
from common.data.prompts import render_prompt
from common.data.tasks import get_task
from common.models import tiny as tiny_model


def test_tiny_model_builds_offline_and_is_kept(tmp_path):
    proc = run_script("tiny_model.py", tmp_path, "--out", str(tmp_path / "tiny"), TINY_PRETRAIN_STEPS="30")
    assert proc.returncode == 0, proc.stderr
    assert "pretrained 30 steps" in proc.stdout
    again = run_script("tiny_model.py", tmp_path, "--out", str(tmp_path / "tiny"), TINY_PRETRAIN_STEPS="30")
    assert again.returncode == 0 and "exists" in again.stdout  # kept, not rebuilt
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    assert model.config.model_type == "llama"
    assert sum(p.numel() for p in model.parameters()) < 10_000_000


def test_tokenizer_splits_digits_and_round_trips(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Ava has 1234 apples; café, naïve — 3.5%"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    assert [p for p in pieces if p.strip().isdigit()] == ["1", "2", "3", "4", "3", "5"]
    assert tok.decode(ids) == text


def test_chat_template_masks_assistant_turn_with_its_end_token(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    msgs = [
        {"role": "user", "content": "2 + 3?"},
        {"role": "assistant", "content": "The answer is: 5"},
    ]
    enc = tok.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    trained = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == "The answer is: 5<|im_end|>"  # end-of-turn is inside the loss mask
    prompt = render_prompt(tok, msgs[:1])
    assert prompt.endswith("<|im_start|>assistant\n")


def test_tiny_model_generates_and_stops_on_end_of_turn(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    task = get_task("arith")
    prompt = render_prompt(tok, task.build_messages("Ava has 2 apples.", "cot"))
    batch = tok([prompt], return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=8, do_sample=True)
    assert out.shape[0] == 1 and out.shape[1] > batch["input_ids"].shape[1]  # it generated
    assert tok.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id


def test_all_linear_lora_reaches_phi3_fused_projections():
    """A Llama-style target list (q_proj, v_proj, gate_proj, ...) misses Phi-3's fused layers."""
    from peft import LoraConfig, get_peft_model
    from transformers import Phi3Config, Phi3ForCausalLM

    cfg = Phi3Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = get_peft_model(Phi3ForCausalLM(cfg), LoraConfig(r=4, target_modules="all-linear"))
    names = {n.split(".lora_A")[0].split(".")[-1] for n, _ in model.named_parameters() if "lora_A" in n}
    assert {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"} <= names
    llama_names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    hit = {n.split(".")[-1] for n, _ in Phi3ForCausalLM(cfg).named_modules()} & set(llama_names)
    assert hit == {"o_proj", "down_proj"}  # why a Llama-style list is wrong on Phi-3


def test_synthetic_answers_follow_from_their_worked_steps():
    rows = synthetic.generate("arith", "test")
    leaps = 0
    for row in rows:
        steps = re.findall(r"^(\d+(?: [+-] \d+)+) = (\d+)\.$", row["answer"], re.MULTILINE)
        assert len(steps) in (2, 3)  # three one-step lines, or the first two operations in one
        for expression, result in steps:
            numbers, ops = re.findall(r"\d+", expression), re.findall(r"[+-]", expression)
            total = int(numbers[0])
            for op, n in zip(ops, numbers[1:], strict=True):
                total += int(n) if op == "+" else -int(n)
            assert total == int(result) and len(ops) <= 2
        assert row["answer"].endswith(f"#### {steps[-1][1]}")
        leaps += len(steps) == 2
    assert abs(leaps / len(rows) - synthetic.LEAP_RATE) < 0.05
    for row in synthetic.generate("compare", "test")[:300]:
        total = int(re.findall(r"= (\d+)", " ".join(row["facts"]))[-1])
        theirs = int(re.search(r"has (\d+) \w+\. Does", row["question"]).group(1))
        assert row["answer"] == (total > theirs)


def test_pretraining_knows_each_step_but_never_a_whole_problem():
    """The tiny base's pretraining covers every one-step fact an arith solution needs and holds
    no question and no chain of two operations, so the three-step answer is never seen whole."""
    rng = random.Random(0)
    lines = [tiny_model.pretraining_line(rng) for _ in range(500)]
    facts = [f for line in lines for f in re.findall(r"(\d+) ([+-]) (\d+) = (\d+)\.", line)]
    assert len(facts) > 1000 and not any("How many" in line or "####" in line for line in lines)
    assert all(int(c) == (int(a) + int(b) if op == "+" else int(a) - int(b)) for a, op, b, c in facts)
    assert not any(re.search(r"= \d+ [+-]", line) for line in lines)  # no chained operations
    for row in synthetic.generate("arith", "test"):  # every one-step line (not the leaps)
        for a, _, b in re.findall(r"^(\d+) ([+-]) (\d+) = \d+\.$", row["answer"], re.MULTILINE):
            assert int(a) <= synthetic.MAX_TOTAL and 1 <= int(b) <= synthetic.MAX_STEP


def test_synthetic_splits_are_deterministic_and_disjoint():
    for task in ("arith", "compare"):
        test, train = synthetic.generate(task, "test"), synthetic.generate(task, "train")
        assert test == synthetic.generate(task, "test")
        assert not {r["question"] for r in test} & {r["question"] for r in train}
        assert len(test) >= 1000
    yes = sum(r["answer"] for r in synthetic.generate("compare", "test")) / 1200
    assert 0.4 < yes < 0.5


def test_make_help_lists_every_target_and_a_missing_stage_script_fails_clearly(tmp_path):
    out = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True).stdout
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, re.M)) - {"print-script-%"}
    for target in targets:
        assert re.search(rf"^\s+{target}\s", out, re.M), f"make help misses {target}"
    scripts = dict(re.findall(r"^script_(\w+)\s*:= (\S+)", makefile, re.M))
    assert len(scripts) >= 9 and all((ROOT / path).is_file() for path in scripts.values()), scripts
    # A stage whose script is gone (a broken checkout) says so in one line instead of a traceback.
    proc = subprocess.run(
        ["make", "drafts", "script_drafts=scripts/gone.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "scripts/gone.py is not implemented yet" in proc.stdout


def test_pretraining_lowers_the_loss_on_its_own_text():
    from transformers import LlamaConfig, LlamaForCausalLM

    from common.models.tiny import build_tokenizer, pretrain, pretraining_line

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=2,
            num_attention_heads=4,
            pad_token_id=tok.pad_token_id,
        )
    )
    losses = pretrain(model, tok, steps=40, seed=0, batch_size=8)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    line = pretraining_line(__import__("random").Random(0))
    assert "####" not in line and "answer" not in line.lower()  # never a question with its answer


def test_a_fresh_work_dir_builds_the_tiny_model_when_a_stage_needs_it(tmp_path):
    """A fresh clone's `make sample && make drafts` on the cpu profile: no `make tiny-model` first."""
    assert run_script("01_sample.py", tmp_path, TRAIN_SAMPLES="4", DEV_SAMPLES="1").returncode == 0
    proc = run_script("02_student_drafts.py", tmp_path, TINY_PRETRAIN_STEPS="0", DRAFT_MAX_NEW_TOKENS="4")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "is missing; building it" in proc.stdout
    assert (tmp_path / "checkpoints/tiny-base/model.safetensors").is_file()
    assert len((tmp_path / "data/arith/student_drafts.jsonl").read_text().splitlines()) == 5
