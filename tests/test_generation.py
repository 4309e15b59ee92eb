import pytest
import torch

from common.config import load_config
from common.data.prompts import parse_draft, render_prompt
from common.data.synthetic import generate as generate_task
from common.data.tasks import get_task
from common.errors import DataError
from common.models.generation import generate
from common.models.loading import load_model


@pytest.fixture(scope="module")
def cfg():
    return load_config([], env={"HW": "cpu"})[0]


@pytest.fixture(scope="module")
def prompts(tiny_model_dir, cfg):
    _, tok = load_model(str(tiny_model_dir), cfg)
    task = get_task("arith")
    questions = [q["question"][: 40 + 9 * i] for i, q in enumerate(generate_task("arith", "test")[:12])]
    return [render_prompt(tok, task.build_messages(q, "cot")) for q in questions]


def test_batched_greedy_equals_one_at_a_time(tiny_model_dir, cfg, prompts):
    model, tok = load_model(str(tiny_model_dir), cfg)
    batched = generate(model, tok, prompts, 12, batch_size=5)
    single = generate(model, tok, prompts, 12, batch_size=1)
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.new_tokens == 12 and g.truncated for g in batched)  # untrained: never stops


def test_stops_at_end_of_turn(tiny_model_dir, cfg, prompts):
    model, tok = load_model(str(tiny_model_dir), cfg)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    logits_bias = torch.full((len(tok),), -1e4)  # end-of-turn is the only token it can emit
    logits_bias[eos] = 0
    original_forward = model.forward

    def forward(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        out.logits = out.logits + logits_bias
        return out

    model.forward = forward
    out = generate(model, tok, prompts[:3], 20, batch_size=3)
    assert all(g.new_tokens == 0 and not g.truncated and g.text == "" for g in out)


def test_cuda_oom_halves_the_batch_and_retries(tiny_model_dir, cfg, prompts):
    model, tok = load_model(str(tiny_model_dir), cfg)
    calls = []
    real_generate = model.generate

    def flaky_generate(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(**kwargs)

    model.generate = flaky_generate
    out = generate(model, tok, prompts, 6, batch_size=12)
    assert calls[:3] == [12, 6, 3] and all(g is not None for g in out)
    assert [g.text for g in out] == [g.text for g in generate(model, tok, prompts, 6, batch_size=1)]


def test_adapter_folder_loads_on_its_base(tiny_model_dir, cfg, prompts, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    model, tok = load_model(str(tmp_path / "adapter"), cfg)
    assert type(model).__name__ == "PeftModelForCausalLM"
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert len(generate(model, tok, prompts[:2], 4)) == 2


def test_missing_checkpoint_names_the_target(cfg, tmp_path):
    with pytest.raises(DataError, match=r"run `make phaseA` first"):
        load_model(str(tmp_path / "checkpoints/gsm8k/phaseA"), cfg, made_by="phaseA")


@pytest.mark.parametrize(
    "text, answer, reasoning, questions",
    [
        (
            "Answer: Yes - apples are fruit\nQuestions: Is an apple a fruit? Are all fruits sweet?",
            "Yes",
            "apples are fruit",
            ["Is an apple a fruit?", "Are all fruits sweet?"],
        ),
        ("Answer: 42 - 6 times 7\nQuestions: Is it 6 groups?", "42", "6 times 7", ["Is it 6 groups?"]),
        ("I am not sure.", "", "", []),
    ],
)
def test_parse_draft(text, answer, reasoning, questions):
    parts = parse_draft(text)
    assert (parts["draft_answer"], parts["draft_reasoning"], parts["questions"]) == (
        answer,
        reasoning,
        questions,
    )


@pytest.mark.gpu
def test_generation_on_cuda(tiny_model_dir, prompts):
    cfg = load_config([], env={"HW": "h100"})[0]
    model, tok = load_model(str(tiny_model_dir), cfg)
    assert model.device.type == "cuda" and len(generate(model, tok, prompts, 8)) == len(prompts)
