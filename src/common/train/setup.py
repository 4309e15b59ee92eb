"""What the three training phases share: the student (LoRA or full weights) for the profile, Trainer
arguments, resume, the out-of-memory message, and finishing a phase (best adapter, tokenizer,
model card, curves, manifest).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from common.config import TINY_MODEL_DIR, WARMUP_DEFAULT, Config, ModelSection, TrainSection, shown
from common.errors import ConfigError, DataError, LooperError
from common.fingerprint import fingerprint
from common.manifest import write_manifest
from common.models.checkpoints import check_exists, is_adapter, is_checkpoint, readable_model
from common.models.loading import attn_implementation, load_tokenizer, model_kwargs
from common.outputs import cleanup, swap_dir
from common.plots import plot_training_curves

MANIFEST = "train.manifest.json"


def lora_config(model: ModelSection):
    from peft import LoraConfig

    targets = model.lora_targets if model.lora_targets == "all-linear" else model.lora_targets.split(",")
    return LoraConfig(
        r=model.lora_r,
        lora_alpha=model.lora_alpha,
        lora_dropout=model.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def load_student(
    student: ModelSection, init_checkpoint: Path | None = None, gradient_checkpointing: bool = False
):
    """(model, tokenizer) to train. LoRA: the profile's base model (4-bit for QLoRA) with a new
    adapter, or with the `init_checkpoint` adapter loaded trainable. FINETUNE=full: every weight of
    the base model, or of the `init_checkpoint` model, trainable. `gradient_checkpointing` (the train
    section's GRADIENT_CHECKPOINTING) goes to the 4-bit preparation."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    check_exists(student.model_name, "tiny-model" if student.model_name.endswith(TINY_MODEL_DIR) else "setup")
    if init_checkpoint is not None and is_adapter(init_checkpoint) != (student.finetune == "lora"):
        kind = "a LoRA adapter" if is_adapter(init_checkpoint) else "full weights"
        raise ConfigError(
            f"{shown(init_checkpoint)} holds {kind} but FINETUNE={student.finetune}; "
            f"set FINETUNE to the kind that trained it, or retrain it"
        )
    if student.finetune == "full":
        source = str(init_checkpoint or student.model_name)
        with readable_model(source, "phaseA" if init_checkpoint else "tiny-model"):
            model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs(student))
            return model, load_tokenizer(source, student)
    with readable_model(student.model_name, "tiny-model"):
        model = AutoModelForCausalLM.from_pretrained(student.model_name, **model_kwargs(student))
    if student.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    if init_checkpoint is None:
        model = get_peft_model(model, lora_config(student))
    else:
        with readable_model(init_checkpoint, "phaseA"):
            model = PeftModel.from_pretrained(model, str(init_checkpoint), is_trainable=True)
    with readable_model(student.model_name, "tiny-model"):
        return model, load_tokenizer(student.model_name, student)


def require_checkpoint(path: Path, made_by: str) -> Path:
    if not is_checkpoint(path):
        raise DataError(f"checkpoint {shown(path)} does not exist; run `make {made_by}` first")
    return path


def require_rows(path: Path, made_by: str) -> Path:
    if not path.is_file():
        raise DataError(f"{shown(path)} does not exist; run `make {made_by}` first")
    if not any(line.strip() for line in path.open()):
        raise DataError(f"{shown(path)} is empty: nothing to train on; re-run `make {made_by}`")
    return path


def trainer_args(cfg: Config, out_dir: Path, n_train: int, lr: float, epochs: float) -> dict:
    """Keyword arguments shared by SFTConfig and DPOConfig for the profile."""
    import torch

    # TensorBoard logs beside the adapter (not under checkpoints/, which finish() removes).
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out_dir / "runs")
    report = ["tensorboard"]
    if cfg.train.wandb_api_key and importlib.util.find_spec("wandb"):
        report.append("wandb")  # the key reaches wandb through the environment, never a file
        os.environ["WANDB_API_KEY"] = cfg.train.wandb_api_key
    elif cfg.train.wandb_api_key:
        print(
            "note: WANDB_API_KEY is set but wandb is not installed (pip install wandb); "
            "logging to TensorBoard only"
        )
    batches = max(1, n_train // (cfg.train.batch_size * cfg.train.grad_accum))
    eval_steps = cfg.train.eval_steps or max(1, batches // 4)
    return {
        "output_dir": str(out_dir / "checkpoints"),
        "per_device_train_batch_size": cfg.train.batch_size,
        "per_device_eval_batch_size": cfg.train.batch_size,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "learning_rate": lr,
        "num_train_epochs": epochs,
        "max_steps": cfg.train.max_steps,
        "warmup_steps": WARMUP_DEFAULT,  # below 1: a fraction of the steps; SFT_ARGS/DPO_ARGS override
        "lr_scheduler_type": "cosine",
        "optim": cfg.train.optim,
        "bf16": cfg.model.compute_dtype == "bfloat16",
        "fp16": cfg.model.compute_dtype == "float16",
        "gradient_checkpointing": cfg.train.gradient_checkpointing,
        "max_length": cfg.train.max_length,
        "logging_steps": max(1, min(10, eval_steps, batches)),  # a short phase still logs
        "eval_strategy": "steps",
        "eval_steps": eval_steps,
        "save_strategy": "steps",
        "save_steps": eval_steps,
        "save_total_limit": 2,
        "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "report_to": report,
        "seed": cfg.run.random_seed,
        "use_cpu": not torch.cuda.is_available(),
        "dataloader_num_workers": 0,
    }


def packing_supported(model: ModelSection) -> bool:
    """Padding-free packing keeps sequences apart only with flash-attention's position ids."""
    return attn_implementation(model.attn_impl) == "flash_attention_2"


def resume_from(train: TrainSection, out_dir: Path, made_under: str) -> str | None:
    """The last checkpoint of a killed run of this phase, if it was made under the same fingerprint
    (`made_under`, recorded in checkpoints/fingerprint); checkpoints of another configuration are
    dropped, so a resume never continues someone else's run."""
    from transformers.trainer_utils import get_last_checkpoint

    cleanup(out_dir.parent)  # a killed save's <phase>.tmp-PID / .old-PID folders beside it
    ckpt_dir = out_dir / "checkpoints"
    record = ckpt_dir / "fingerprint"
    last = get_last_checkpoint(str(ckpt_dir)) if train.resume and ckpt_dir.is_dir() else None
    if last and (not record.is_file() or record.read_text() != made_under):
        print(f"dropping {shown(ckpt_dir)}: made under another configuration or inputs; starting over")
        last = None
    if not last:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(made_under)
    if last:
        print(f"resuming from {shown(last)} (RESUME=0 starts over)")
    return last


def check_finite(history: list[dict], phase: str) -> None:
    """A phase whose logged loss is nan or inf saves nothing."""
    for row in history:
        for key in ("loss", "train_loss", "eval_loss"):
            value = row.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise LooperError(
                    f"{phase}: {key} is {value} at step {row.get('step', '?')}: training diverged and "
                    f"nothing was saved; lower LEARNING_RATE (or DPO_LEARNING_RATE) and re-run"
                )


def finite_loss_callback(phase: str):
    """A TrainerCallback that stops training with one line as soon as a logged loss is nan or inf."""
    from transformers import TrainerCallback

    class FiniteLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            check_finite([dict(logs or {}, step=state.global_step)], phase)

    return FiniteLoss()


@contextmanager
def oom_hint(cfg: Config, phase: str):
    """Turn a CUDA out-of-memory error into one line naming the knobs of the profile."""
    import torch

    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise LooperError(
            f"CUDA out of memory in {phase} (HW={cfg.run.hw}: BATCH_SIZE={cfg.train.batch_size}, "
            f"MAX_LENGTH={cfg.train.max_length}, GRADIENT_CHECKPOINTING={int(cfg.train.gradient_checkpointing)}, "
            f"LOAD_IN_4BIT={int(cfg.model.load_in_4bit)}); lower BATCH_SIZE and raise GRAD_ACCUM to keep "
            f"the effective batch, lower MAX_LENGTH, set GRADIENT_CHECKPOINTING=1, or use HW=4060 "
            f"(4-bit QLoRA)"
        ) from None


def model_card(
    phase: str, cfg: Config, base: str, data: dict[str, Path], metrics: dict, init_checkpoint: Path | None
) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in cfg.public_dict().items() if v not in ("", None))
    data_lines = "\n".join(f"- {name}: `{shown(path)}`" for name, path in data.items())
    metric_lines = "\n".join(f"- {k}: {v}" for k, v in metrics.items())
    lora = cfg.model.finetune == "lora"
    start = f"continued from `{shown(init_checkpoint)}`" if init_checkpoint else "from the base"
    what = f"A LoRA adapter on `{base}`" if lora else f"`{base}` with every weight trained"
    library, tag = ("peft", "lora") if lora else ("transformers", "full-finetune")
    return (
        f"---\nbase_model: {base}\nlibrary_name: {library}\ntags: [looper, {tag}, {phase}]\n---\n\n"
        f"# Looper {phase} ({cfg.run.task})\n\n{what}, {start}, trained by "
        f"Looper's `{phase}` stage.\n\n## Data\n{data_lines}\n\n## Metrics\n{metric_lines}\n\n"
        f"## Configuration\n| key | value |\n|---|---|\n{rows}\n"
    )


def finish(
    trainer,
    cfg: Config,
    phase: str,
    out_dir: Path,
    data: dict[str, Path],
    init_checkpoint: Path | None,
    started: float,
) -> dict:
    """Save the best adapter (or full weights), tokenizer, model card, curves, log and manifest into
    `<phase>.tmp-PID` beside `out_dir`, and swap it in only when complete (a kill leaves the previous
    phase folder or the new one, never a half-saved checkpoint); drop Trainer's checkpoints."""
    history = trainer.state.log_history
    check_finite(history, phase)
    # One name for every process of a multi-GPU run: their launcher's PID.
    owner = os.getpid() if trainer.accelerator.num_processes == 1 else os.getppid()
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{owner}")
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # every process calls it; process zero writes
    if trainer.is_world_process_zero():  # another process writing here could race the swap below
        trainer.processing_class.save_pretrained(str(tmp))
    evals = [row["eval_loss"] for row in history if "eval_loss" in row]
    metrics = {
        "global_step": trainer.state.global_step,
        "best_dev_loss": round(min(evals), 5) if evals else None,
        "first_train_loss": next((round(r["loss"], 5) for r in history if "loss" in r), None),
        "last_train_loss": next((round(r["loss"], 5) for r in reversed(history) if "loss" in r), None),
        "best_checkpoint": shown(trainer.state.best_model_checkpoint or ""),
        "seconds": round(time.time() - started, 1),
    }
    if not trainer.is_world_process_zero():  # one process writes; the others are done
        return metrics
    (tmp / "log_history.json").write_text(json.dumps(history, indent=1))
    title = f"{phase} ({cfg.run.task}, {cfg.run.hw})"
    plot_training_curves(history, tmp / "training_curves.png", title)
    card = model_card(phase, cfg, cfg.model.model_name, data, metrics, init_checkpoint)
    (tmp / "README.md").write_text(card)
    if (out_dir / "runs").is_dir():  # TensorBoard logs travel with the new folder
        shutil.move(str(out_dir / "runs"), str(tmp / "runs"))
    inputs = dict(data) | ({"init_checkpoint": init_checkpoint} if init_checkpoint else {})
    outputs = [p for p in tmp.iterdir() if p.is_file() and p.name != MANIFEST]
    extra = {"metrics": metrics, "fingerprint": fingerprint(cfg, phase, inputs)}
    write_manifest(tmp, "train", cfg, inputs, outputs, extra, started)  # complete now
    swap_dir(tmp, out_dir)  # the old folder, Trainer's checkpoints/ with it, goes only now
    print(
        f"{phase}: step {metrics['global_step']}, train loss {metrics['first_train_loss']} -> "
        f"{metrics['last_train_loss']}, best dev loss {metrics['best_dev_loss']}; "
        f"weights, card and curves in {shown(out_dir)}"
    )
    return metrics
