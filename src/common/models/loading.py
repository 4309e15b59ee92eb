"""Load the student as the hardware profile asks: a base model or a PEFT adapter folder, in fp32,
bf16 or 4-bit NF4, with the best available attention kernel.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from common.config import Config, ModelSection
from common.errors import ConfigError
from common.models.checkpoints import adapter_base, check_exists, is_adapter, readable_model
from common.models.tiny import ensure_tiny_model


def attn_implementation(requested: str) -> str:
    if requested == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        return "sdpa"  # the profile asks for FA2, but the package is not installed
    return requested


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_kwargs(model: ModelSection) -> dict:
    """from_pretrained() arguments for the profile: dtype, attention, 4-bit quantization."""
    import torch

    dtype = getattr(torch, model.compute_dtype)
    kwargs = {"dtype": dtype, "attn_implementation": attn_implementation(model.attn_impl)}
    if model.load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                "LOAD_IN_4BIT=1 (HW=4060) needs bitsandbytes: pip install -r requirements-gpu.txt "
                "(make gpu-setup does it), or use HW=h100 for bf16 without quantization"
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=model.bnb_double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}  # one GPU per process
    if model.hf_token:
        kwargs["token"] = model.hf_token
    return kwargs


# For base models that ship no chat template (GAIR/Abel-7B-002 is a Llama-2 base): a plain
# Question/Answer layout whose {% generation %} block ends with EOS, so the model learns to stop.
FALLBACK_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'Question: ' + message['content'] + '\n' -}}"
    "{%- elif message['role'] == 'system' -%}{{- message['content'] + '\n\n' -}}"
    "{%- else -%}{{- 'Answer: ' -}}{% generation %}{{- message['content'] + eos_token -}}"
    "{% endgeneration %}{{- '\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Answer: ' -}}{%- endif -%}"
)


def load_tokenizer(path: str, model: ModelSection):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, token=model.hf_token or None)
    if tok.pad_token is None:  # Llama-2-style tokenizers ship without one
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = FALLBACK_CHAT_TEMPLATE
    return tok


def load_model(path: str, cfg: Config, made_by: str = "tiny-model"):
    """(model, tokenizer) for a base model or an adapter folder (its base is read from it);
    with GEN_BACKEND=vllm, a vLLM generator in place of the model. Reads the model and generation
    sections (and the run's seed for vLLM), so it takes the whole Config."""
    from transformers import AutoModelForCausalLM

    ensure_tiny_model(path, cfg.run.tiny_pretrain_steps)
    check_exists(path, made_by)
    if cfg.generation.gen_backend == "vllm":
        from common.models.vllm import VLLMGenerator

        generator = VLLMGenerator(cfg, path)
        return generator, generator.tokenizer
    if is_adapter(path):
        from peft import PeftModel

        base = adapter_base(path)
        with readable_model(base, "tiny-model"):
            model = AutoModelForCausalLM.from_pretrained(base, **model_kwargs(cfg.model))
        with readable_model(path, made_by):
            model = PeftModel.from_pretrained(model, path)
            has_tokenizer = (Path(path) / "tokenizer_config.json").is_file()
            tokenizer = load_tokenizer(path if has_tokenizer else base, cfg.model)
    else:
        with readable_model(path, made_by):
            model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs(cfg.model))
            tokenizer = load_tokenizer(path, cfg.model)
    if not cfg.model.load_in_4bit:
        model.to(device())
    model.eval()
    return model, tokenizer
