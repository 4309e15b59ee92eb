"""The one typed configuration every script reads, in sections by concern, and where each value came
from.

Precedence, lowest to highest: the defaults below < docker/hw/$HW.env < .env < the environment
< script flags (`make VAR=value` reaches the scripts as environment variables).

`Config` holds one frozen section per concern (cfg.run, cfg.data, cfg.model, cfg.train,
cfg.generation, cfg.teacher, cfg.rollout, cfg.dpo, cfg.eval); a function takes the section it reads.
Every key keeps its one name (TASK, BATCH_SIZE, ...), unique across the sections, as an environment
variable, a .env line and a --flag. The project directory is the folder the command runs from: .env
and docker/hw/ are read there, and data/, checkpoints/, outputs/ go there unless WORK_DIR says else.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

from common.errors import ConfigError
from common.train.loss_names import LOSSES as DPO_LOSSES

TASKS = (
    "arith",
    "compare",
    "gsm8k",
    "strategyqa",
    "pyfunc",
    "humaneval",
    "mbpp",
    "bigcodebench",
    "bigcodebench-instruct",
)
HW_PROFILES = ("cpu", "4060", "h100")
STRATEGIES = ("none", "cot", "explicit", "alternating")

TINY_MODEL_DIR = "checkpoints/tiny-base"
# The student per (profile, task); "*" is any task. Abel is a math model, so only gsm8k gets it.
DEFAULT_MODELS = {
    ("cpu", "*"): TINY_MODEL_DIR,
    ("4060", "*"): "microsoft/Phi-3.5-mini-instruct",
    ("h100", "gsm8k"): "GAIR/Abel-7B-002",
    ("h100", "*"): "microsoft/Phi-3.5-mini-instruct",
}

# Names other plans and older versions used, read as today's key with a one-line note.
# WARMUP_RATIO is no key any more: it becomes warmup_steps=<value> in SFT_ARGS and DPO_ARGS.
ALIASES = {
    "GPT4_MODEL": "TEACHER_MODEL",
    "GPT4_MAX_TOKENS": "TEACHER_MAX_TOKENS",
    "GPT4_TEMPERATURE": "TEACHER_TEMPERATURE",
    "USE_4BIT": "LOAD_IN_4BIT",
    "MAX_SEQ_LENGTH": "MAX_LENGTH",
    "DATASET_NAME": "DATASET_PATH",
    "MAX_NEW_TOKENS": "EVAL_MAX_NEW_TOKENS",
    "CELR_WEIGHTS": "COMPOSITE_WEIGHTS",
}
WARMUP_ALIAS = "WARMUP_RATIO"
WARMUP_DEFAULT = 0.03  # trainer_args' warm-up: a fraction of the steps, below 1


def project_dir() -> Path:
    """The Looper project folder: the one the command runs from."""
    return Path.cwd()


def mask_url(value: str) -> str:
    """`value` with any password (or token) inside a URL's user part replaced by ***:
    https://alice:s3cret@proxy/v1 -> https://alice:***@proxy/v1. Other text is returned as is."""
    if "://" not in value or "@" not in value:
        return value
    parts = []
    for part in value.split(","):
        try:
            url = urlsplit(part.strip()) if "://" in part else None
        except ValueError:
            url = None
        if url is None or "@" not in url.netloc:
            parts.append(part)
            continue
        user, _, host = url.netloc.rpartition("@")
        name, sep, _secret = user.partition(":")
        masked = f"{name}:***@{host}" if sep else f"***@{host}"
        parts.append(part.replace(url.netloc, masked, 1) if url.netloc in part else urlunsplit(url))
    return ",".join(parts)


def _opt(default, help: str, choices: tuple[str, ...] | None = None, secret: bool = False, key: str = ""):
    """A configuration key; its name is the field's name in capitals unless `key` says otherwise."""
    meta = {"help": help, "choices": choices, "secret": secret, "key": key}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunSection:
    """What to run on, and where its files go."""

    task: str = _opt("arith", "benchmark task", choices=TASKS)
    run_name: str = _opt("", "run folder under data/, checkpoints/, outputs/ (default: TASK)")
    hw: str = _opt("", "hardware profile (default: detected)", choices=HW_PROFILES)
    random_seed: int = _opt(42, "seed for sampling, training and generation")
    work_dir: str = _opt("", "folder holding data/, checkpoints/, outputs/ (default: the project folder)")
    tiny_pretrain_steps: int = _opt(
        300, "make tiny-model: pretraining steps on sums and repeated sentences (0: a random base)"
    )
    rebuild: str = _opt(
        "stop",
        "a finished stage whose keys or inputs changed (or whose outputs were damaged): stop "
        "naming the change, or auto (redo it and, through its outputs, what follows)",
        choices=("stop", "auto"),
    )
    rollout_subdir: str = _opt(
        "", "write rollouts and preferences under data/RUN/<this> (make loop sets it per iteration)"
    )
    datasets_subdir: str = _opt(
        "",
        "write stage 04's training sets under data/RUN/<this>, where Phase B reads them "
        "(make sweep sets it per reasoning strategy)",
    )

    @property
    def name(self) -> str:
        """The run's folder name: RUN_NAME, else TASK."""
        return self.run_name or self.task

    @property
    def base_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else project_dir()

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data" / self.name

    @property
    def rollout_dir(self) -> Path:
        return self.data_dir / self.rollout_subdir if self.rollout_subdir else self.data_dir

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / self.datasets_subdir if self.datasets_subdir else self.data_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.base_dir / "checkpoints" / self.name

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "outputs" / self.name


@dataclass(frozen=True)
class DataSection:
    """Sampling the questions (stage 01) and building the training sets (stage 04)."""

    dataset_path: str = _opt("", "train source: hub id, local file or folder (default: task's)")
    test_path: str = _opt("", "test source: hub id, local file (default: task's)")
    train_samples: int = _opt(200, "training questions to sample")
    dev_samples: int = _opt(50, "dev questions (disjoint from train) for early stopping")
    reasoning_strategy: str = _opt("cot", "answer format taught in Phase B", choices=STRATEGIES)
    disagreement: str = _opt(
        "rationalize",
        "teacher answers that disagree with gold: drop, rationalize (STaR, gold as a hint), "
        "or gold (keep the reasoning, correct the answer)",
        choices=("drop", "rationalize", "gold"),
    )
    balance: str = _opt(
        "none", "restore the sample's yes/no ratio", choices=("none", "upsample", "downsample")
    )
    allow_imbalance: bool = _opt(False, "build even if one class exceeds 60% of a yes/no set")
    heldout_fraction: float = _opt(0.1, "teacher data held out from training, for evaluation")


@dataclass(frozen=True)
class ModelSection:
    """The student and how it is loaded (docker/hw/$HW.env sets these)."""

    model_name: str = _opt("", "student: hub id, local folder or .gguf file (default: per HW and TASK)")
    load_in_4bit: bool = _opt(False, "QLoRA: load the base model in 4-bit NF4")
    bnb_double_quant: bool = _opt(False, "QLoRA: double quantization of the 4-bit constants")
    compute_dtype: str = _opt(
        "float32", "dtype of weights/compute", choices=("float32", "bfloat16", "float16")
    )
    attn_impl: str = _opt(
        "sdpa",
        "attention kernel; flash_attention_2 falls back to sdpa when not installed",
        choices=("eager", "sdpa", "flash_attention_2"),
    )
    finetune: str = _opt(
        "lora",
        "lora: train a LoRA adapter; full: train every weight (small "
        "models: a full copy of the weights per phase, and optimizer state)",
        choices=("lora", "full"),
    )
    lora_r: int = _opt(16, "LoRA rank")
    lora_alpha: int = _opt(32, "LoRA alpha")
    lora_dropout: float = _opt(0.1, "LoRA dropout")
    lora_targets: str = _opt("all-linear", "LoRA target modules: all-linear or comma-separated module names")
    hf_token: str = _opt("", "Hugging Face token (gated models)", secret=True)


@dataclass(frozen=True)
class TrainSection:
    """SFT optimisation (Phases A and B; Phase C shares the batch and length keys)."""

    batch_size: int = _opt(8, "per-device batch size")
    grad_accum: int = _opt(1, "gradient accumulation steps")
    max_length: int = _opt(512, "max tokens per training example")
    gradient_checkpointing: bool = _opt(False, "trade compute for memory")
    optim: str = _opt("adamw_torch", "optimizer name as transformers knows it")
    train_sampling: str = _opt(
        "random",
        "SFT batches without packing: random (mixed) or "
        "group_by_length (less padding; near-duplicate batches on uniform data)",
        choices=("group_by_length", "random"),
    )
    learning_rate: float = _opt(2e-4, "peak learning rate")
    epochs: float = _opt(3.0, "training epochs")
    max_steps: int = _opt(-1, "stop each training phase after this many optimizer steps (-1: EPOCHS)")
    eval_steps: int = _opt(0, "evaluate dev loss and save every N steps (0: four times an epoch)")
    early_stopping_patience: int = _opt(3, "evaluations without dev-loss improvement before stopping")
    resume: bool = _opt(True, "continue a killed phase from its last checkpoint (0: start over)")
    phaseb_output: str = _opt(
        "phaseB",
        "checkpoint folder under checkpoints/RUN/ that Phase B writes (make sweep sets it per "
        "reasoning strategy)",
    )
    sft_args: str = _opt(
        "",
        "more TRL SFTConfig settings, comma-separated name=value (e.g. weight_decay=0.01,warmup_steps=0.1); "
        "they override Looper's",
    )
    wandb_api_key: str = _opt("", "Weights & Biases key (enables W&B logging)", secret=True)


@dataclass(frozen=True)
class GenerationSection:
    """Generation (stages 02, 07, 09) and the student's drafts (stage 02)."""

    gen_batch_size: int = _opt(32, "prompts per generation batch (halved on CUDA OOM)")
    gen_backend: str = _opt(
        "hf", "generation for stages 02, 07, 09: hf, or vllm (CUDA, pip install vllm)", choices=("hf", "vllm")
    )
    vllm_tensor_parallel: int = _opt(1, "vLLM: GPUs one model is split over")
    vllm_data_parallel: int = _opt(1, "vLLM: model replicas, each on its own GPUs")
    draft_max_new_tokens: int = _opt(96, "token limit of a student draft")
    draft_temperature: float = _opt(0.0, "draft sampling temperature (0 = greedy)")
    drafts_from: str = _opt(
        "base",
        "who writes the draft a phase answers with in stages 07, 09 and the loop: base (the base "
        "student's, stage 02) or policy (the phase itself, so it needs no second model)",
        choices=("base", "policy"),
    )


@dataclass(frozen=True)
class TeacherSection:
    """The teacher (stage 03; also the judge of stages 07 and 09): backend, budget, cache, keys."""

    backend: str = _opt(
        "offline", "teacher backend", choices=("offline", "openai", "anthropic"), key="TEACHER"
    )
    teacher_model: str = _opt("", "teacher model (default: per backend)")
    teacher_attempts: int = _opt(1, "samples per question; the majority answer is kept")
    teacher_concurrency: int = _opt(16, "teacher requests in flight at once")
    teacher_temperature: float = _opt(0.3, "teacher sampling temperature")
    teacher_max_tokens: int = _opt(600, "token limit of a teacher reply")
    teacher_timeout: float = _opt(60.0, "seconds before a teacher request times out")
    teacher_max_retries: int = _opt(5, "SDK retries of 429, 5xx, timeouts, dropped connections")
    teacher_error_rate: float = _opt(0.0, "offline teacher: fraction of answers made wrong")
    teacher_error_label: str = _opt("", "offline teacher: make errors only on this gold label")
    teacher_price_in: float = _opt(-1.0, "USD per 1M input tokens (-1: the built-in table)")
    teacher_price_out: float = _opt(-1.0, "USD per 1M output tokens (-1: the built-in table)")
    max_cost_usd: float = _opt(10.0, "stop the teacher cleanly once this much is spent (0: no cap)")
    dry_run: bool = _opt(False, "print what the teacher would be sent, with costs; call nothing")
    with_draft: bool = _opt(True, "show the student's draft to the teacher and in Phase B")
    openai_base_url: str = _opt("", "OpenAI-compatible server (vLLM, a proxy); default: OpenAI")
    anthropic_base_url: str = _opt("", "Anthropic-compatible server; default: Anthropic")
    cache_dir: str = _opt("", "teacher response cache (default: WORK_DIR/.cache)")
    openai_api_key: str = _opt("", "OpenAI key (teacher)", secret=True)
    anthropic_api_key: str = _opt("", "Anthropic key (teacher)", secret=True)

    @property
    def cache_path(self) -> Path:
        """load_config fills CACHE_DIR in; a section made directly defaults to ./.cache."""
        return Path(self.cache_dir) if self.cache_dir else project_dir() / ".cache"


@dataclass(frozen=True)
class RolloutSection:
    """Rollouts and preference pairs (stage 07) and the self-improvement loop (make loop)."""

    policy: str = _opt(
        "phaseB",
        "checkpoint that samples the rollouts and that Phase C starts "
        "from and is referenced to: phaseB, phaseC, a folder",
    )
    rollouts_per_question: int = _opt(8, "K: trajectories sampled per training question")
    rollout_questions: int = _opt(0, "roll out the first N training questions (0: all)")
    rollout_strategies: str = _opt(
        "none,cot,explicit,alternating", "arms: reasoning strategies (x ROLLOUT_TEMPERATURES)"
    )
    rollout_temperatures: str = _opt("0.3,0.8", "arms: sampling temperatures")
    bandit: str = _opt("ucb1", "how the K samples are spread over the arms", choices=("ucb1", "thompson"))
    rollout_chunk: int = _opt(16, "questions sampled between two bandit updates")
    rollout_max_new_tokens: int = _opt(512, "token limit of one trajectory")
    counterfactual: bool = _opt(
        True, "s_cf: re-ask each question paraphrased and (numbers) perturbed, greedily, once per strategy"
    )
    self_reward_judge: str = _opt(
        "policy",
        "who scores trajectories with the Self-Rewarding 5-point prompt",
        choices=("policy", "teacher", "none"),
    )
    judge_max_new_tokens: int = _opt(160, "token limit of a self-reward judgement")
    judge_rubric: str = _opt(
        "additive",
        "self-reward judge prompt: additive (Self-Rewarding 5-point) or ace (1-5 on accuracy, "
        "completeness, efficiency, averaged)",
        choices=("additive", "ace"),
    )
    label_source: str = _opt(
        "gold",
        "what a rollout is graded against: gold (the dataset), teacher (stage 03's final answer; "
        "questions it failed on are skipped) or majority (self-consistency over the K rollouts)",
        choices=("gold", "teacher", "majority"),
    )
    majority_min: float = _opt(
        0.5, "LABEL_SOURCE=majority: least share of the K rollouts that must agree; below it, no pairs"
    )
    alpha_correct: float = _opt(1.0, "reward weight of correctness")
    beta_coherence: float = _opt(0.5, "reward weight of coherence s_wm")
    length_penalty: float = _opt(0.0005, "reward penalty per generated token")
    question_weight: float = _opt(
        0.0,
        "reward weight of the question judge's score (win 1, tie 0.5, loss 0 against the base "
        "student's questions) for trajectories whose own draft asked questions (DRAFTS_FROM=policy)",
    )
    coherence_weights: str = _opt("0.4,0.4,0.2", "s_wm weights of s_end, s_path, s_cf")
    composite_weights: str = _opt(
        "0.6,0.2,0.2",
        "trajectory composite score weights: success, efficiency = 1/(1+retries), "
        "cost = share of the token budget left",
    )
    pair_mode: str = _opt(
        "correctness",
        "correctness: correct over incorrect, then coherent over "
        "less coherent; spin: the Phase B target over the policy's own answer",
        choices=("correctness", "spin"),
    )
    pair_source: str = _opt(
        "correctness",
        "PAIR_MODE=correctness pairs from: correctness (correct over incorrect, then coherence), judge "
        "(self-reward judge, best over worst), composite (trajectory composite score) or both "
        "(correctness, then judge pairs among equally correct trajectories)",
        choices=("correctness", "judge", "composite", "both"),
    )
    judge_margin: float = _opt(
        0.2, "judge pairs need a self-reward gap of at least this (scores are 0-1: 0.2 is one point of 5)"
    )
    pairs_per_question: int = _opt(4, "cap on preference pairs from one question")
    rejected_cut: str = _opt(
        "none",
        "correctness pairs' rejected answer: none (whole) or "
        "first_error (up to its first step that no correct answer states)",
        choices=("none", "first_error"),
    )
    coherence_margin: float = _opt(0.1, "coherence pairs need a reward gap above this")
    iterations: int = _opt(1, "make loop: rollouts -> pairs -> DPO rounds at most")
    loop_losses: str = _opt(
        "", "make loop: DPO losses trained each round, best on dev kept (default: DPO_LOSS)"
    )
    loop_patience: int = _opt(1, "make loop: rounds without a dev gain before stopping")


@dataclass(frozen=True)
class DPOSection:
    """Phase C (stage 08)."""

    dpo_output: str = _opt(
        "phaseC",
        "checkpoint folder under checkpoints/RUN/ that Phase C writes (make loop sets it per round and loss)",
    )
    dpo_data: str = _opt(
        "auto",
        "pairs to train on: preferences (stage 07), pairs (stage 04), both, or auto "
        "(preferences when present, else pairs)",
        choices=("auto", "preferences", "pairs", "both"),
    )
    dpo_loss: str = _opt("sigmoid", "sigmoid, ipo, robust, cal_dpo, dr_dpo, centered; '+sft' adds NLL")
    dpo_beta: float = _opt(0.1, "DPO beta")
    dpo_sft_weight: float = _opt(1.0, "weight of the NLL term in '+sft' (Iterative RPO)")
    dpo_label_smoothing: float = _opt(0.1, "robust DPO: assumed rate of flipped labels")
    dr_dpo_beta: float = _opt(1.0, "Dr-DPO beta'")
    dpo_schedule: str = _opt(
        "none",
        "staged: epoch 1 beta 0.05; epochs 2-3 beta 0.1 with the batch-mean-centered loss; "
        "epoch 4 with the noisy-pair filter",
        choices=("none", "staged"),
    )
    noisy_fraction: float = _opt(
        0.15, "schedule epoch 4: pairs dropped where the reference most prefers the rejected answer"
    )
    dpo_learning_rate: float = _opt(5e-5, "Phase C learning rate")
    dpo_epochs: float = _opt(1.0, "Phase C epochs (DPO_SCHEDULE=staged uses 4)")
    dpo_args: str = _opt(
        "",
        "more TRL DPOConfig settings, comma-separated name=value (e.g. loss_type=..., rpo_alpha=...); "
        "they override Looper's",
    )


@dataclass(frozen=True)
class EvalSection:
    """Evaluation (stage 09)."""

    eval_checkpoints: str = _opt(
        "",
        "comma-separated: base, phaseA, phaseB, phaseC, merged-phaseX, loop/roundN-LOSS, "
        "phaseB-STRATEGY (make sweep), a folder or a hub id (default: base and every trained phase)",
    )
    eval_samples: int = _opt(
        0, "evaluate a fixed random N of the test questions, seeded by RANDOM_SEED (0: all)"
    )
    eval_max_new_tokens: int = _opt(512, "answer token limit; the truncation rate is reported")
    eval_ablations: bool = _opt(True, "draft ablations and attribution on the last phase")
    pass_k_samples: int = _opt(
        0,
        "also sample N answers per question (PASS_K_TEMPERATURE) for the unbiased pass@k, k <= N (0: greedy only)",
    )
    pass_k_temperature: float = _opt(0.8, "sampling temperature of the PASS_K_SAMPLES answers")
    attribution_samples: int = _opt(16, "questions for the integrated-gradients draft share")
    judge_samples: int = _opt(50, "questions whose clarifying questions the teacher judges")
    target_b_gain: float = _opt(10.0, "report target: Phase B over Phase A, in points")
    target_c_gain: float = _opt(3.0, "report target: Phase C over Phase B, in points")
    target_c_over_a_gain: float = _opt(10.0, "report target: Phase C over Phase A, in points")
    target_draft_gain: float = _opt(
        3.0, "report target: Phase C with its draft over the no-draft ablation, in points"
    )
    target_shuffled_drop: float = _opt(
        3.0, "report target: points Phase C loses when given another question's draft"
    )
    target_draft_share: float = _opt(
        0.2, "report target: integrated-gradients share of attribution on draft tokens (0-1)"
    )
    target_question_win_rate: float = _opt(
        0.6, "report target: win rate of the trained phase's clarifying questions over the base's (0-1)"
    )


SECTIONS = {
    "run": RunSection,
    "data": DataSection,
    "model": ModelSection,
    "train": TrainSection,
    "generation": GenerationSection,
    "teacher": TeacherSection,
    "rollout": RolloutSection,
    "dpo": DPOSection,
    "eval": EvalSection,
}


@dataclass(frozen=True)
class Config:
    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    generation: GenerationSection = field(default_factory=GenerationSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    rollout: RolloutSection = field(default_factory=RolloutSection)
    dpo: DPOSection = field(default_factory=DPOSection)
    eval: EvalSection = field(default_factory=EvalSection)
    # Where each value came from (lower-case key -> source), for the printed table and the manifest.
    sources: dict = field(default_factory=dict, compare=False, repr=False)

    def value(self, key: str):
        """The value of a key by its name (BATCH_SIZE or batch_size)."""
        spec = KEYS[key.lower()]
        return getattr(getattr(self, spec.section), spec.attr)

    def public_dict(self) -> dict:
        """Every value, secrets masked: safe to print and to write into manifests."""
        out = {}
        for spec in KEYS.values():
            value = self.value(spec.name)
            if spec.secret:
                value = "***" if value else ""
            elif isinstance(value, str):
                value = mask_url(value)
            out[spec.name.upper()] = value
        return out

    def describe(self) -> str:
        """The effective configuration as an aligned table by section, secrets as ***."""
        lines, section, public = [], None, self.public_dict()
        for spec in KEYS.values():
            if spec.section != section:
                section = spec.section
                lines.append(f"  [{section}]")
            key = spec.name.upper()
            source = self.sources.get(spec.name, "default")
            lines.append(f"  {key:<24} {str(public[key])!s:<36} {source}")
        return "\n".join(lines)


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: its name (lower case), its section and attribute, and its field."""

    name: str
    section: str
    attr: str
    field: dataclasses.Field

    @property
    def secret(self) -> bool:
        return self.field.metadata["secret"]

    @property
    def kind(self) -> str:
        return self.field.type if isinstance(self.field.type, str) else self.field.type.__name__


def _keys() -> dict[str, KeySpec]:
    keys: dict[str, KeySpec] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            name = (f.metadata["key"] or f.name).lower()
            assert name not in keys, f"key {name.upper()} is declared twice"
            keys[name] = KeySpec(name, section, f.name, f)
    return keys


KEYS = _keys()


def fields() -> tuple[dataclasses.Field, ...]:
    """Every key's field, section by section."""
    return tuple(spec.field for spec in KEYS.values())


def key_names() -> list[str]:
    return [name.upper() for name in KEYS]


def split_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def float_list(raw: str) -> list[float]:
    """A comma-separated config value as floats (already validated by load_config)."""
    return [float(v) for v in split_list(raw)]


def closest_key(name: str) -> str | None:
    match = difflib.get_close_matches(name.upper(), key_names() + list(ALIASES), n=1, cutoff=0.6)
    return match[0] if match else None


def parse_value(key: str, raw: str, source: str):
    """Convert one raw string to the field's type, or stop with a line naming key and fix."""
    spec = KEYS[key]
    f = spec.field
    name, raw = key.upper(), raw.strip()
    where = f" (from {source})"
    kind = spec.kind
    if kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(
                f"{name}={raw!r}{where} is not a whole number; e.g. {name}={f.default}"
            ) from None
    elif kind == "float":
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}{where} is not a number; e.g. {name}={f.default}") from None
    elif kind == "bool":
        low = raw.lower()
        if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"{name}={raw!r}{where} is not a boolean; use 1 or 0")
        value = low in ("1", "true", "yes", "on")
    else:
        value = raw
    choices = f.metadata["choices"]
    if choices and value not in choices and not (value == "" and f.default == ""):
        raise ConfigError(f"{name}={raw!r}{where} is not allowed; choose one of {'|'.join(choices)}")
    return value


def _read_env_file(path: Path, strict: bool) -> dict[str, str]:
    """Every KEY=value of a file. Unknown keys: an error in our own profiles (strict); else a
    warning naming the closest known key. Aliases are kept under their own name here."""
    out = {}
    try:
        values = dotenv_values(path)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: byte {err.object[err.start]:#04x} at offset {err.start} is not UTF-8; "
            f"save the file as UTF-8"
        ) from None
    for key, value in values.items():
        upper = key.upper()
        if key.lower() in KEYS or upper in ALIASES or upper == WARMUP_ALIAS:
            out[upper] = value or ""
        elif strict:
            raise ConfigError(f"{path}: unknown key {key}; see `make config` for the keys")
        else:
            near = closest_key(key)
            hint = f"did you mean {near}?" if near else "see `make config` for the keys"
            print(f"{path.name}: unknown key {key}; {hint}", file=sys.stderr)
    return out


def _canonical(layer: dict[str, str], source: str, notes: list[str]) -> dict[str, tuple[str, str]]:
    """One layer's keys -> (raw value, source) under today's names. An alias maps to its key with a
    note; where the key itself is set in the same layer, the key wins."""
    out: dict[str, tuple[str, str]] = {}
    for key, raw in layer.items():
        if key.lower() in KEYS:
            out[key.lower()] = (raw, source)
    for old, new in ALIASES.items():
        if old in layer:
            if new.lower() in out:
                notes.append(f"note: {old} is read as {new}; {new} is also set in {source}, so {new} wins")
            else:
                notes.append(f"note: {old} is read as {new}")
                out[new.lower()] = (layer[old], f"{source} ({old})")
    if WARMUP_ALIAS in layer:
        raw = layer[WARMUP_ALIAS].strip()
        notes.append(
            f"note: {WARMUP_ALIAS} is read as warmup_steps={raw} in SFT_ARGS and DPO_ARGS "
            "(where they don't set warmup_steps)"
        )
        for args in ("sft_args", "dpo_args"):
            current = out.get(args, ("", source))[0]
            if "warmup_steps" not in current:
                joined = f"{current},warmup_steps={raw}" if current.strip() else f"warmup_steps={raw}"
                out[args] = (joined, f"{source} ({WARMUP_ALIAS})")
    return out


def detect_hw() -> str:
    """cpu without CUDA; h100 with 40 GB or more of GPU memory; otherwise the 8 GB 4060 profile."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    total = torch.cuda.get_device_properties(0).total_memory
    return "h100" if total >= 40 * 2**30 else "4060"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per key (`--train-samples 200`); secrets have none, by design."""
    group = parser.add_argument_group("configuration (also settable as environment variables)")
    for spec in KEYS.values():
        if spec.secret:
            continue
        f = spec.field
        default = f" (default: {f.default})" if f.default != "" else ""
        group.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest=f"cfg_{spec.name}",
            metavar=spec.name.upper(),
            help=f.metadata["help"] + default,
            default=None,
        )


def load_config(
    argv: list[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    env: dict[str, str] | None = None,
    env_file: Path | None = None,
) -> tuple[Config, argparse.Namespace]:
    """Merge every source into a validated Config; also return the parsed script arguments."""
    parser = parser or argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(argv)
    env = dict(os.environ) if env is None else env
    project = project_dir()
    if env_file is None:  # LOOPER_ENV_FILE lets tests and CI ignore a developer's own .env
        named = env.get("LOOPER_ENV_FILE")
        env_file = Path(named or project / ".env")
        if named and not env_file.exists():  # /dev/null (no .env) is fine
            raise ConfigError(f"LOOPER_ENV_FILE={named}: no such file; fix the path or unset it")

    notes: list[str] = []
    layers: list[dict[str, tuple[str, str]]] = []
    dotenv = _read_env_file(env_file, strict=False) if env_file.is_file() else {}
    layers.append(_canonical(dotenv, ".env", notes))
    known_env = {k: v for k, v in env.items() if k.lower() in KEYS or k in ALIASES or k == WARMUP_ALIAS}
    layers.append(_canonical(known_env, "environment", notes))
    flags = {k[4:]: (v, "flag") for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    layers.append(flags)
    for note in notes:
        print(note, file=sys.stderr)

    # The profile sits below .env and the environment, but which profile to read comes from them.
    hw_raw, hw_source = "", "detected"
    for layer in layers:
        if layer.get("hw", ("", ""))[0]:
            hw_raw, hw_source = layer["hw"]
    hw = parse_value("hw", hw_raw, hw_source) if hw_raw else detect_hw()
    profile = project / "docker" / "hw" / f"{hw}.env"
    if not profile.is_file():
        raise ConfigError(
            f"{profile} is missing: run from the Looper project folder, or restore it from git "
            f"(git checkout -- docker/hw/{hw}.env)"
        )
    profile_values = _read_env_file(profile, strict=True)
    layers.insert(0, {k.lower(): (v, f"docker/hw/{hw}.env") for k, v in profile_values.items()})

    values: dict[str, dict] = {name: {} for name in SECTIONS}
    values["run"]["hw"] = hw
    sources = {"hw": hw_source}
    for layer in layers:
        for key, (raw, source) in layer.items():
            spec = KEYS[key]
            if key == "hw" or (spec.secret and source == "flag"):
                continue
            values[spec.section][spec.attr] = parse_value(key, raw, source)
            sources[key] = source
    sections = {name: cls(**values[name]) for name, cls in SECTIONS.items()}
    sections = _fill_defaults(sections, sources)
    cfg = Config(**sections, sources=sources)
    _check_ranges(cfg)
    return cfg, args


def _fill_defaults(sections: dict, sources: dict) -> dict:
    """Defaults that depend on other keys, resolved once: the student per HW and TASK (a GGUF file
    becomes its converted folder), the teacher cache under WORK_DIR."""
    run, model, teacher = sections["run"], sections["model"], sections["teacher"]
    if not model.model_name:
        default = DEFAULT_MODELS.get((run.hw, run.task)) or DEFAULT_MODELS[(run.hw, "*")]
        name = str(run.base_dir / default) if default == TINY_MODEL_DIR else default
        sections["model"] = dataclasses.replace(model, model_name=name)
        sources["model_name"] = f"default for HW={run.hw}, TASK={run.task}"
    if sections["model"].model_name.endswith(".gguf"):
        from common.models.gguf import student_folder

        gguf_file = Path(sections["model"].model_name)
        folder = student_folder(gguf_file, run.base_dir / ".cache" / "gguf")
        sections["model"] = dataclasses.replace(sections["model"], model_name=str(folder))
        sources["model_name"] = f"{sources.get('model_name', 'default')}, converted from {gguf_file.name}"
    if not teacher.cache_dir:
        sections["teacher"] = dataclasses.replace(teacher, cache_dir=str(run.base_dir / ".cache"))
        sources["cache_dir"] = "default (WORK_DIR/.cache)"
    return sections


def _trl_class(which: str):
    from trl import DPOConfig, SFTConfig

    return {"sft": SFTConfig, "dpo": DPOConfig}[which]


def _trl_value(name: str, raw: str, annotation, key: str):
    """A raw string as the TRL field's type: bool, int, float, None where optional, else str."""
    import types
    import typing

    args = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else ()
    )
    options = args or (annotation,)
    raw = raw.strip()
    if raw.lower() == "none" and type(None) in options:
        return None
    if bool in options:
        low = raw.lower()
        if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"{key}: {name}={raw!r} is not a boolean; use 1 or 0")
        return low in ("1", "true", "yes", "on")
    for kind in (int, float):
        if kind in options:
            try:
                return kind(raw)
            except ValueError:
                if kind is int and float in options:
                    continue
                if str in options:
                    break
                raise ConfigError(f"{key}: {name}={raw!r} is not a {kind.__name__}") from None
    return raw


def trl_args(raw: str, which: str) -> dict:
    """SFT_ARGS / DPO_ARGS (`name=value,name=value`) as keyword arguments of TRL's SFTConfig
    (which="sft") or DPOConfig ("dpo"): each name checked against the dataclass's fields, each value
    converted to the field's type. A bad name is a one-line error naming the closest field."""
    import typing

    if not raw.strip():
        return {}
    key = f"{which.upper()}_ARGS"
    cls = _trl_class(which)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: fall back to the raw annotations
        hints = {name: f.type for name, f in known.items()}
    out = {}
    for pair in split_list(raw):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"{key}: {pair!r} is not name=value (e.g. {key}=weight_decay=0.01)")
        if name not in known:
            near = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; see the fields of trl.{cls.__name__}"
            raise ConfigError(f"{key}: {name} is not a field of trl.{cls.__name__}{hint}")
        out[name] = _trl_value(name, value, hints.get(name, known[name].type), key)
    return out


def _check_ranges(cfg: Config) -> None:
    at_least_one = (
        "train_samples",
        "batch_size",
        "grad_accum",
        "max_length",
        "lora_r",
        "gen_batch_size",
        "draft_max_new_tokens",
        "teacher_attempts",
        "teacher_concurrency",
        "teacher_max_tokens",
        "eval_max_new_tokens",
        "rollouts_per_question",
        "rollout_chunk",
        "rollout_max_new_tokens",
        "judge_max_new_tokens",
        "pairs_per_question",
        "iterations",
        "loop_patience",
    )
    for key in at_least_one:
        if cfg.value(key) < 1:
            raise ConfigError(f"{key.upper()}={cfg.value(key)} must be at least 1")
    at_least_zero = (
        "dev_samples",
        "random_seed",
        "tiny_pretrain_steps",
        "eval_samples",
        "eval_steps",
        "early_stopping_patience",
        "teacher_max_retries",
        "rollout_questions",
        "attribution_samples",
        "judge_samples",
        "max_cost_usd",
        "teacher_timeout",
        "lora_alpha",
        "epochs",
        "dpo_epochs",
    )
    for key in at_least_zero:
        value = cfg.value(key)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{key.upper()}={value} must be 0 or more")
    if cfg.run.random_seed >= 2**32:
        raise ConfigError(f"RANDOM_SEED={cfg.run.random_seed} must be below 2**32 (numpy's limit)")
    if cfg.train.max_steps < -1 or cfg.train.max_steps == 0:
        raise ConfigError(f"MAX_STEPS={cfg.train.max_steps} must be -1 (use EPOCHS) or at least 1")
    for key in ("learning_rate", "dpo_learning_rate"):
        value = cfg.value(key)
        if not math.isfinite(value) or value < 0:  # 0 is allowed: a phase that changes nothing
            raise ConfigError(f"{key.upper()}={value} must be a finite number, 0 or more (e.g. 2e-4)")
    for key in ("teacher_price_in", "teacher_price_out"):
        value = cfg.value(key)
        if not math.isfinite(value) or (value < 0 and value != -1):
            raise ConfigError(f"{key.upper()}={value} must be 0 or more, or -1 for the built-in table")
    _check_run_name(cfg.run.run_name)
    _check_subfolders(cfg)
    run = cfg.run
    for path in (run.base_dir, *(run.base_dir / top for top in ("data", "checkpoints", "outputs"))):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"WORK_DIR: {path} is a file, not a folder; set WORK_DIR to a folder")
    for path in (run.data_dir, run.checkpoint_dir, run.output_dir):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"RUN_NAME={run.name}: {path} is a file, not a folder; pick another RUN_NAME")
    for key in ("teacher_error_rate", "majority_min", "judge_margin"):
        if not 0 <= cfg.value(key) <= 1:
            raise ConfigError(f"{key.upper()}={cfg.value(key)} must be in [0, 1]")
    for key in ("dpo_loss", "loop_losses"):
        for loss in split_list(cfg.value(key)):
            parts = loss.split("+")
            if any(p not in DPO_LOSSES for p in parts) or parts[0] == "sft":
                raise ConfigError(
                    f"{key.upper()}: {loss!r} is not allowed; choose one of "
                    f"{'|'.join(DPO_LOSSES[:-1])}, optionally with '+sft' (e.g. sigmoid+sft)"
                )
    _check_lists(cfg)
    if cfg.dpo.dpo_beta <= 0 or not 0 <= cfg.dpo.dpo_label_smoothing < 0.5:
        raise ConfigError("DPO_BETA must be > 0 and DPO_LABEL_SMOOTHING in [0, 0.5)")
    if not 0 <= cfg.data.heldout_fraction < 1:
        raise ConfigError(f"HELDOUT_FRACTION={cfg.data.heldout_fraction} must be in [0, 1)")
    if not 0 <= cfg.model.lora_dropout < 1:
        raise ConfigError(f"LORA_DROPOUT={cfg.model.lora_dropout} must be in [0, 1)")
    if cfg.model.load_in_4bit and cfg.model.finetune == "full":
        raise ConfigError(
            "FINETUNE=full trains every weight and can't on a 4-bit model; set "
            "LOAD_IN_4BIT=0 or FINETUNE=lora"
        )
    if cfg.model.load_in_4bit and cfg.run.hw == "cpu":
        raise ConfigError("LOAD_IN_4BIT=1 needs a CUDA GPU (bitsandbytes); use HW=4060 on a GPU")
    trl_args(cfg.train.sft_args, "sft")  # names and types checked now, not after the model loads
    trl_args(cfg.dpo.dpo_args, "dpo")


RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_run_name(name: str) -> None:
    """RUN_NAME is one plain folder name: it can't climb out of data/, checkpoints/, outputs/."""
    if name and (not RUN_NAME_PATTERN.fullmatch(name) or ".." in name):
        raise ConfigError(
            f"RUN_NAME={name!r} must be a plain folder name: letters, digits, '.', '_', '-', starting "
            f"with a letter or digit, no '..' or '/' (e.g. RUN_NAME=gsm8k-lr2)"
        )


def _check_subfolders(cfg: Config) -> None:
    """DATASETS_SUBDIR and PHASEB_OUTPUT name a folder inside the run's folder; Phase B must not
    overwrite Phase A, which it starts from."""
    for key, value in (
        ("DATASETS_SUBDIR", cfg.run.datasets_subdir),
        ("PHASEB_OUTPUT", cfg.train.phaseb_output),
    ):
        parts = Path(value).parts
        if (key == "PHASEB_OUTPUT" and not value) or Path(value).is_absolute() or ".." in parts:
            raise ConfigError(
                f"{key}={value!r} must be a folder inside the run's folder, without '..' "
                f"(e.g. {key}={'sweep/cot' if key == 'DATASETS_SUBDIR' else 'phaseB-cot'})"
            )
    if cfg.train.phaseb_output == "phaseA":
        raise ConfigError(
            "PHASEB_OUTPUT=phaseA would overwrite Phase A, which Phase B starts from; pick another folder"
        )


def _check_lists(cfg: Config) -> None:
    """The comma-separated keys: known strategies, numbers where numbers go, three weights."""
    strategies = split_list(cfg.rollout.rollout_strategies)
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        raise ConfigError(
            f"ROLLOUT_STRATEGIES={cfg.rollout.rollout_strategies!r}: use a comma-separated "
            f"list of {'|'.join(STRATEGIES)}"
        )
    for key, length in (("rollout_temperatures", None), ("coherence_weights", 3), ("composite_weights", 3)):
        raw = cfg.value(key)
        try:
            values = [float(v) for v in split_list(raw)]
        except ValueError:
            values = []
        if not values or any(v < 0 for v in values) or (length and len(values) != length):
            shape = f"{length} comma-separated numbers" if length else "comma-separated numbers"
            raise ConfigError(
                f"{key.upper()}={raw!r} must be {shape}, each 0 or more "
                f"(e.g. {key.upper()}={KEYS[key].field.default})"
            )


def print_config(cfg: Config, stage: str) -> None:
    print(f"== {stage} | run {cfg.run.name} | task {cfg.run.task} | hw {cfg.run.hw} ==")
    print(cfg.describe(), flush=True)


def shown(path: Path | str) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":  # `make config`: the effective configuration, nothing else
    from common.errors import run_main

    run_main(lambda: print_config(load_config()[0], "config"))
