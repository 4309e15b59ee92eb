"""The one typed configuration every script reads, and where each value came from.

Precedence, lowest to highest: the defaults below < docker/hw/$HW.env < .env < the environment
< script flags (`make VAR=value` reaches the scripts as environment variables).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from common.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
HW_DIR = ROOT / "docker" / "hw"

TASKS = ("arith", "compare", "gsm8k", "strategyqa")
HW_PROFILES = ("cpu", "4060", "h100")
STRATEGIES = ("none", "cot", "explicit", "alternating")
DPO_LOSSES = ("sigmoid", "ipo", "robust", "cal_dpo", "dr_dpo", "centered", "sft")

TINY_MODEL_DIR = "checkpoints/tiny-base"
# The student per (profile, task); "*" is any task. Abel is a math model, so only gsm8k gets it.
DEFAULT_MODELS = {
    ("cpu", "*"): TINY_MODEL_DIR,
    ("4060", "*"): "microsoft/Phi-3.5-mini-instruct",
    ("h100", "gsm8k"): "GAIR/Abel-7B-002",
    ("h100", "*"): "microsoft/Phi-3.5-mini-instruct",
}


def _opt(default, help: str, choices: tuple[str, ...] | None = None, secret: bool = False):
    return field(default=default, metadata={"help": help, "choices": choices, "secret": secret})


@dataclass(frozen=True)
class Config:
    # What to run on
    task: str = _opt("arith", "benchmark task", choices=TASKS)
    run_name: str = _opt("", "run folder under data/, checkpoints/, outputs/ (default: TASK)")
    hw: str = _opt("", "hardware profile (default: detected)", choices=HW_PROFILES)
    random_seed: int = _opt(42, "seed for sampling, training and generation")
    work_dir: str = _opt("", "folder holding data/, checkpoints/, outputs/ (default: the repo)")
    tiny_pretrain_steps: int = _opt(
        300, "make tiny-model: pretraining steps on sums and repeated sentences (0: a random base)"
    )
    # Data (stage 01)
    dataset_path: str = _opt("", "train source: hub id, local file or folder (default: task's)")
    test_path: str = _opt("", "test source: hub id, local file (default: task's)")
    train_samples: int = _opt(200, "training questions to sample")
    dev_samples: int = _opt(50, "dev questions (disjoint from train) for early stopping")
    reasoning_strategy: str = _opt("cot", "answer format taught in Phase B", choices=STRATEGIES)
    # Model and hardware profile (docker/hw/$HW.env sets these)
    model_name: str = _opt("", "student: hub id or local folder (default: per HW and TASK)")
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
    warmup_ratio: float = _opt(0.03, "fraction of steps with learning-rate warm-up")
    eval_steps: int = _opt(0, "evaluate dev loss and save every N steps (0: four times an epoch)")
    early_stopping_patience: int = _opt(3, "evaluations without dev-loss improvement before stopping")
    resume: bool = _opt(True, "continue a killed phase from its last checkpoint (0: start over)")
    # Rollouts and preference pairs (stage 07), the self-improvement loop (make loop)
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
    alpha_correct: float = _opt(1.0, "reward weight of correctness")
    beta_coherence: float = _opt(0.5, "reward weight of coherence s_wm")
    length_penalty: float = _opt(0.0005, "reward penalty per generated token")
    coherence_weights: str = _opt("0.4,0.4,0.2", "s_wm weights of s_end, s_path, s_cf")
    celr_weights: str = _opt("0.6,0.2,0.2", "CELR composite weights of success, efficiency, cost")
    pair_mode: str = _opt(
        "correctness",
        "correctness: correct over incorrect, then coherent over "
        "less coherent; spin: the Phase B target over the policy's own answer",
        choices=("correctness", "spin"),
    )
    pairs_per_question: int = _opt(4, "cap on preference pairs from one question")
    rejected_cut: str = _opt(
        "none",
        "correctness pairs' rejected answer: none (whole) or "
        "first_error (up to its first step that no correct answer states)",
        choices=("none", "first_error"),
    )
    coherence_margin: float = _opt(0.1, "coherence pairs need a reward gap above this")
    rollout_subdir: str = _opt(
        "", "write rollouts and preferences under data/RUN/<this> (make loop sets it per iteration)"
    )
    iterations: int = _opt(1, "make loop: rollouts -> pairs -> DPO rounds at most")
    loop_losses: str = _opt(
        "", "make loop: DPO losses trained each round, best on dev kept (default: DPO_LOSS)"
    )
    loop_patience: int = _opt(1, "make loop: rounds without a dev gain before stopping")
    # Phase C (stage 08)
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
        "seed: epoch 1 beta 0.05, epochs 2-3 beta 0.1 centered, epoch 4 + noisy-pair filter",
        choices=("none", "seed"),
    )
    noisy_fraction: float = _opt(
        0.15, "schedule epoch 4: pairs dropped where the reference most prefers the rejected answer"
    )
    dpo_learning_rate: float = _opt(5e-5, "Phase C learning rate")
    dpo_epochs: float = _opt(1.0, "Phase C epochs (the seed schedule uses 4)")
    # Generation (stages 02, 07, 09) and the student's drafts (stage 02)
    gen_batch_size: int = _opt(32, "prompts per generation batch (halved on CUDA OOM)")
    gen_backend: str = _opt(
        "hf", "generation for stages 02, 07, 09: hf, or vllm (CUDA, pip install vllm)", choices=("hf", "vllm")
    )
    vllm_tensor_parallel: int = _opt(1, "vLLM: GPUs one model is split over")
    vllm_data_parallel: int = _opt(1, "vLLM: model replicas, each on its own GPUs")
    draft_max_new_tokens: int = _opt(96, "token limit of a student draft")
    draft_temperature: float = _opt(0.0, "draft sampling temperature (0 = greedy)")
    # The teacher (stage 03)
    teacher: str = _opt("offline", "teacher backend", choices=("offline", "openai", "anthropic"))
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
    with_draft: bool = _opt(True, "show the student's draft to the teacher and in Track B")
    openai_base_url: str = _opt("", "OpenAI-compatible server (vLLM, a proxy); default: OpenAI")
    anthropic_base_url: str = _opt("", "Anthropic-compatible server; default: Anthropic")
    cache_dir: str = _opt("", "teacher response cache (default: WORK_DIR/.cache)")
    # Building the training sets (stage 04)
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
    heldout_fraction: float = _opt(0.1, "teacher data held out for evaluation (REPAIRITY)")
    # Evaluation (stage 09)
    eval_checkpoints: str = _opt(
        "",
        "comma-separated: base, phaseA, phaseB, phaseC, merged-phaseX, loop/roundN-LOSS, a folder "
        "or a hub id (default: base and every trained phase)",
    )
    eval_samples: int = _opt(0, "evaluate the first N test questions (0: all)")
    eval_max_new_tokens: int = _opt(512, "answer token limit; the truncation rate is reported")
    eval_ablations: bool = _opt(True, "draft ablations and attribution on the last phase")
    attribution_samples: int = _opt(16, "questions for the integrated-gradients draft share")
    judge_samples: int = _opt(50, "questions whose clarifying questions the teacher judges")
    target_b_gain: float = _opt(10.0, "report target: Phase B over Phase A, in points")
    target_c_gain: float = _opt(3.0, "report target: Phase C over Phase B, in points")
    # Secrets: read from the environment or .env only, always shown as ***
    openai_api_key: str = _opt("", "OpenAI key (teacher)", secret=True)
    anthropic_api_key: str = _opt("", "Anthropic key (teacher)", secret=True)
    hf_token: str = _opt("", "Hugging Face token (gated models)", secret=True)
    wandb_api_key: str = _opt("", "Weights & Biases key (enables W&B logging)", secret=True)

    # Where each value came from, for the printed table and the manifest.
    sources: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def run(self) -> str:
        return self.run_name or self.task

    @property
    def base_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else ROOT

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else self.base_dir / ".cache"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data" / self.run

    @property
    def rollout_dir(self) -> Path:
        return self.data_dir / self.rollout_subdir if self.rollout_subdir else self.data_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.base_dir / "checkpoints" / self.run

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "outputs" / self.run

    @property
    def model(self) -> str:
        if self.model_name:
            return self.model_name
        default = DEFAULT_MODELS.get((self.hw, self.task)) or DEFAULT_MODELS[(self.hw, "*")]
        return str(self.base_dir / default) if default == TINY_MODEL_DIR else default

    def public_dict(self) -> dict:
        """Every value, secrets masked: safe to print and to write into manifests."""
        out = {}
        for f in fields():
            value = getattr(self, f.name)
            out[f.name.upper()] = ("***" if value else "") if f.metadata["secret"] else value
        out["MODEL"] = self.model
        return out

    def describe(self) -> str:
        """The effective configuration as an aligned table, secrets as ***."""
        lines = []
        for key, value in self.public_dict().items():
            source = self.sources.get(key.lower(), "default")
            lines.append(f"  {key:<24} {str(value)!s:<36} {source}")
        return "\n".join(lines)


def split_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def float_list(cfg: Config, key: str) -> list[float]:
    """A comma-separated config value as floats (already validated by load_config)."""
    return [float(v) for v in split_list(getattr(cfg, key))]


def fields() -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(Config) if f.name != "sources")


FIELDS = {f.name: f for f in fields()}


def parse_value(key: str, raw: str, source: str):
    """Convert one raw string to the field's type, or stop with a line naming key and fix."""
    f = FIELDS[key]
    name, raw = key.upper(), raw.strip()
    where = f" (from {source})"
    kind = f.type if isinstance(f.type, str) else f.type.__name__
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
    """Known keys from a KEY=value file. Unknown keys: an error in our own profiles, else ignored."""
    out = {}
    for key, value in dotenv_values(path).items():
        if key.lower() in FIELDS and key.lower() != "sources":
            out[key.lower()] = value or ""
        elif strict:
            raise ConfigError(f"{path}: unknown key {key}; see `make help` for the keys")
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
    for f in fields():
        if f.metadata["secret"]:
            continue
        default = f" (default: {f.default})" if f.default != "" else ""
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f"cfg_{f.name}",
            metavar=f.name.upper(),
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
    if env_file is None:  # LOOPER_ENV_FILE lets tests and CI ignore a developer's own .env
        env_file = Path(env.get("LOOPER_ENV_FILE") or ROOT / ".env")

    layers: list[tuple[str, dict[str, str]]] = []
    dotenv = _read_env_file(env_file, strict=False) if env_file.is_file() else {}
    layers.append((".env", dotenv))
    layers.append(("environment", {k.lower(): v for k, v in env.items() if k.lower() in FIELDS}))
    flags = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    layers.append(("flag", flags))

    # The profile sits below .env and the environment, but which profile to read comes from them.
    hw_raw, hw_source = "", "detected"
    for source, layer in layers:
        if layer.get("hw"):
            hw_raw, hw_source = layer["hw"], source
    hw = parse_value("hw", hw_raw, hw_source) if hw_raw else detect_hw()
    profile = HW_DIR / f"{hw}.env"
    if not profile.is_file():
        raise ConfigError(f"{profile} is missing; restore it from git (git checkout -- {profile})")
    layers.insert(0, (f"docker/hw/{hw}.env", _read_env_file(profile, strict=True)))

    values: dict = {"hw": hw}
    sources = {"hw": hw_source}
    for source, layer in layers:
        for key, raw in layer.items():
            if key == "hw":
                continue
            if FIELDS[key].metadata["secret"] and source == "flag":
                continue
            values[key] = parse_value(key, raw, source)
            sources[key] = source
    cfg = Config(**values, sources=sources)
    _check_ranges(cfg)
    return cfg, args


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
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key.upper()}={getattr(cfg, key)} must be at least 1")
    if cfg.dev_samples < 0:
        raise ConfigError(f"DEV_SAMPLES={cfg.dev_samples} must be 0 or more")
    if not 0 <= cfg.teacher_error_rate <= 1:
        raise ConfigError(f"TEACHER_ERROR_RATE={cfg.teacher_error_rate} must be in [0, 1]")
    for key in ("dpo_loss", "loop_losses"):
        for loss in split_list(getattr(cfg, key)):
            parts = loss.split("+")
            if any(p not in DPO_LOSSES for p in parts) or parts[0] == "sft":
                raise ConfigError(
                    f"{key.upper()}: {loss!r} is not allowed; choose one of "
                    f"{'|'.join(DPO_LOSSES[:-1])}, optionally with '+sft' (e.g. sigmoid+sft)"
                )
    _check_lists(cfg)
    if cfg.dpo_beta <= 0 or not 0 <= cfg.dpo_label_smoothing < 0.5:
        raise ConfigError("DPO_BETA must be > 0 and DPO_LABEL_SMOOTHING in [0, 0.5)")
    if not 0 <= cfg.heldout_fraction < 1:
        raise ConfigError(f"HELDOUT_FRACTION={cfg.heldout_fraction} must be in [0, 1)")
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError(f"LORA_DROPOUT={cfg.lora_dropout} must be in [0, 1)")
    if cfg.load_in_4bit and cfg.finetune == "full":
        raise ConfigError(
            "FINETUNE=full trains every weight and can't on a 4-bit model; set "
            "LOAD_IN_4BIT=0 or FINETUNE=lora"
        )
    if cfg.load_in_4bit and cfg.hw == "cpu":
        raise ConfigError("LOAD_IN_4BIT=1 needs a CUDA GPU (bitsandbytes); use HW=4060 on a GPU")


def _check_lists(cfg: Config) -> None:
    """The comma-separated keys: known strategies, numbers where numbers go, three weights."""
    strategies = split_list(cfg.rollout_strategies)
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        raise ConfigError(
            f"ROLLOUT_STRATEGIES={cfg.rollout_strategies!r}: use a comma-separated "
            f"list of {'|'.join(STRATEGIES)}"
        )
    for key, length in (("rollout_temperatures", None), ("coherence_weights", 3), ("celr_weights", 3)):
        raw = getattr(cfg, key)
        try:
            values = [float(v) for v in split_list(raw)]
        except ValueError:
            values = []
        if not values or any(v < 0 for v in values) or (length and len(values) != length):
            shape = f"{length} comma-separated numbers" if length else "comma-separated numbers"
            raise ConfigError(
                f"{key.upper()}={raw!r} must be {shape}, each 0 or more "
                f"(e.g. {key.upper()}={FIELDS[key].default})"
            )


def print_config(cfg: Config, stage: str) -> None:
    print(f"== {stage} | run {cfg.run} | task {cfg.task} | hw {cfg.hw} ==")
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
