"""Build the tiny offline student: a Llama-shaped model (about 1M parameters) with a byte-level BPE
tokenizer trained locally (digits one per token) and a ChatML template with generation markers.

It has the real architecture, so every stage runs the same code on it as on a 7B model.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from common.config import TINY_MODEL_DIR
from common.data import prompts, synthetic

# The student `make tiny-model` builds (tests build their own, unpretrained, at the defaults of
# build_tiny_model). Embeddings start at std 0.15, not 0.02: see README, "The tiny offline model".
STUDENT = {"hidden": 128, "layers": 4, "heads": 4, "vocab_size": 1024, "seed": 0, "embedding_std": 0.15}
# The build settings, written beside the weights: the model is keyed by them (a rebuild when they
# differ; common.fingerprint names the model by their hash).
SETTINGS = "looper_tiny.json"

# ChatML. The {% generation %} block marks the assistant's tokens, end-of-turn included, so
# TRL's assistant-only loss teaches the model to stop.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- message['content'] + '<|im_end|>' -}}{% endgeneration %}{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>' + '\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Words of the draft and teacher formats, so they tokenize compactly.
FORMAT_TEXT = [
    "Answer: Yes - because",
    "Answer: No - because",
    "Questions: What is it? Why?",
    "## Teaching Analysis",
    "## Step-by-Step Reasoning",
    "## Final Assessment",
    "Based on this analysis, the answer is: **[YES]** **[NO]**",
    "#### The answer is: yes no",
    "## Reasoning",
    "## Answer",
    "Q1: A1: Q2: A2: Step 1: Step 2: Student draft:",
]


def training_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Text the tokenizer learns its merges from: synthetic problems and the prompt formats."""
    rng = random.Random(seed)
    texts = list(FORMAT_TEXT)
    for strategy in prompts.STRATEGY_INSTRUCTIONS:
        for kind in prompts.ANSWER_FORMATS:
            texts.append(prompts.instruction(strategy, kind))
    for _ in range(n):
        a = synthetic.make_arith(rng)
        c = synthetic.make_compare(rng)
        texts += [a["question"], a["answer"], c["question"], " ".join(c["facts"])]
        texts += c["decomposition"]
    return texts


def build_tokenizer(vocab_size: int = 1024, seed: int = 0):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(seed=seed), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def pretraining_line(rng: random.Random, pieces: int = 6) -> str:
    """One line of the tiny base's pretraining: pieces, each a one-step arithmetic fact ("23 + 9 =
    32.", every one a story step can need) or a story sentence said twice. They stand in for what a
    real base model already knows (sums, copying from context); no line pairs a question with its
    answer."""
    parts = []
    for _ in range(pieces):
        if rng.random() < 0.5:
            a, b = rng.randint(0, synthetic.MAX_TOTAL), rng.randint(1, synthetic.MAX_STEP)
            parts.append(f"{a} + {b} = {a + b}." if rng.random() < 0.5 or b > a else f"{a} - {b} = {a - b}.")
        else:
            sentence = rng.choice(synthetic.story_sentences(rng))
            parts.append(f"{sentence} {sentence}")
    return " ".join(parts)


def pretrain(model, tokenizer, steps: int, seed: int, batch_size: int = 32, lr: float = 3e-3) -> list[float]:
    """Full-parameter causal-LM training on pretraining_line() text; returns the losses."""
    import torch
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc="pretrain tiny base", mininterval=1.0):
        batch = tokenizer(
            [pretraining_line(rng) + tokenizer.eos_token for _ in range(batch_size)],
            return_tensors="pt",
            padding=True,
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def build_tiny_model(
    out_dir: Path,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    vocab_size: int = 1024,
    seed: int = 0,
    pretrain_steps: int = 0,
    embedding_std: float = 0.02,
) -> Path:
    """Write tokenizer + LlamaForCausalLM to out_dir, randomly initialised, then pretrained for
    `pretrain_steps` (0: none, as in the tests), and the settings to out_dir/looper_tiny.json. The
    model is built in a temporary sibling folder and swapped in whole; return out_dir."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocab_size, seed)
    eos, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    model = LlamaForCausalLM(config)
    # A LoRA student never trains the (tied) embeddings or the final norm, so their scale caps its
    # logits near std * hidden: 0.02 * 128 = 2.6, and an answer-only loss then stalls near 4.3
    # (almost uniform). The demo's base starts at 0.15 and pretrains.
    if embedding_std != config.initializer_range:  # else keep transformers' own initialisation
        model.get_input_embeddings().weight.data.normal_(0.0, embedding_std)
    if pretrain_steps:
        pretrain(model, tokenizer, pretrain_steps, seed)
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = (out_dir.with_name(f".{out_dir.name}.{what}-{os.getpid()}") for what in ("tmp", "old"))
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    settings = build_settings(hidden, layers, heads, vocab_size, seed, pretrain_steps, embedding_std)
    (tmp / SETTINGS).write_text(json.dumps(settings, indent=1) + "\n")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def build_settings(hidden, layers, heads, vocab_size, seed, pretrain_steps, embedding_std) -> dict:
    return {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "vocab_size": vocab_size,
        "seed": seed,
        "embedding_std": embedding_std,
        "pretrain_steps": pretrain_steps,
    }


def settings_change(path: Path, wanted: dict) -> str:
    """'' when the model in `path` was built with `wanted`; else what differs, in a few words."""
    path = Path(path)
    if not (path / "model.safetensors").is_file():
        return "it is missing"
    file = path / SETTINGS
    had = json.loads(file.read_text()) if file.is_file() else {}
    if not had:
        return "its build settings are not recorded"
    diff = [f"{k} {had.get(k)} -> {v}" for k, v in wanted.items() if had.get(k) != v]
    return ", ".join(diff)


def ensure_tiny_model(path: str | Path, pretrain_steps: int) -> None:
    """Build the default student when a stage needs it and it is missing (the cpu profile's
    MODEL_NAME), as `make tiny-model` would; any other path is left to the caller. A model built
    with other settings is kept (a stage's fingerprint names the model it used); `make tiny-model`
    rebuilds it."""
    path = Path(path)
    if not str(path).endswith(TINY_MODEL_DIR):
        return
    if (path / "model.safetensors").is_file():
        change = settings_change(path, build_settings(pretrain_steps=pretrain_steps, **STUDENT))
        if change and (path / SETTINGS).is_file():
            print(
                f"note: tiny model {path} was built with other settings ({change}); `make tiny-model` rebuilds it"
            )
        return
    print(f"tiny model: {path} is missing; building it ({pretrain_steps} pretraining steps)", flush=True)
    build_tiny_model(path, pretrain_steps=pretrain_steps, **STUDENT)
