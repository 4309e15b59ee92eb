"""What decides whether a finished stage is reused: its fingerprint, the configuration keys the
stage reads plus the hashes of its inputs, declared here for every stage.

A stage's manifest records its fingerprint and its output hashes. check() compares them with the
current configuration and files: done (same fingerprint, outputs intact), stale (keys or inputs
changed), damaged (an output changed or is gone) or missing. Rows of the resumable stages (02, 03,
07) carry row_fp(), so a resume keeps only the rows made under the current keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common.config import Config, shown
from common.errors import StaleError
from common.models.tiny import SETTINGS as TINY_SETTINGS

SFT_KEYS = [
    "TASK",
    "RANDOM_SEED",
    "MODEL_NAME",
    "FINETUNE",
    "LOAD_IN_4BIT",
    "BNB_DOUBLE_QUANT",
    "COMPUTE_DTYPE",
    "LORA_R",
    "LORA_ALPHA",
    "LORA_DROPOUT",
    "LORA_TARGETS",
    "BATCH_SIZE",
    "GRAD_ACCUM",
    "MAX_LENGTH",
    "OPTIM",
    "MAX_STEPS",
    "EVAL_STEPS",
    "EARLY_STOPPING_PATIENCE",
]
TEACHER_KEYS = [
    "TEACHER",
    "TEACHER_MODEL",
    "TEACHER_ATTEMPTS",
    "TEACHER_TEMPERATURE",
    "TEACHER_MAX_TOKENS",
    "TEACHER_ERROR_RATE",
    "TEACHER_ERROR_LABEL",
]
PAIR_KEYS = [
    "PAIR_MODE",
    "PAIR_SOURCE",
    "PAIRS_PER_QUESTION",
    "REJECTED_CUT",
    "COHERENCE_MARGIN",
    "JUDGE_MARGIN",
]

# The keys each stage reads that can change its output (not concurrency, batch sizes of
# generation, logging, budgets or paths). MODEL_NAME stands for the model's identity: the name and,
# for a local folder, a hash of its files (model_identity). A stage's inputs are hashed besides.
STAGE_KEYS: dict[str, list[str]] = {
    "sample": ["TASK", "DATASET_PATH", "TEST_PATH", "TRAIN_SAMPLES", "DEV_SAMPLES", "RANDOM_SEED"],
    "drafts": [
        "TASK",
        "RANDOM_SEED",
        "MODEL_NAME",
        "LOAD_IN_4BIT",
        "COMPUTE_DTYPE",
        "DRAFT_MAX_NEW_TOKENS",
        "DRAFT_TEMPERATURE",
    ],
    "teacher": ["TASK", "RANDOM_SEED", "WITH_DRAFT", "DISAGREEMENT", *TEACHER_KEYS],
    "datasets": [
        "TASK",
        "RANDOM_SEED",
        "REASONING_STRATEGY",
        "DISAGREEMENT",
        "BALANCE",
        "ALLOW_IMBALANCE",
        "HELDOUT_FRACTION",
        "WITH_DRAFT",
    ],
    "phaseA": [*SFT_KEYS, "TRAIN_SAMPLING", "LEARNING_RATE", "EPOCHS", "SFT_ARGS"],
    "phaseB": [*SFT_KEYS, "TRAIN_SAMPLING", "LEARNING_RATE", "EPOCHS", "SFT_ARGS"],
    "rollouts": [
        "TASK",
        "RANDOM_SEED",
        "MODEL_NAME",
        "COMPUTE_DTYPE",
        "POLICY",
        "ROLLOUTS_PER_QUESTION",
        "ROLLOUT_QUESTIONS",
        "ROLLOUT_STRATEGIES",
        "ROLLOUT_TEMPERATURES",
        "BANDIT",
        "ROLLOUT_CHUNK",
        "ROLLOUT_MAX_NEW_TOKENS",
        "COUNTERFACTUAL",
        "SELF_REWARD_JUDGE",
        "JUDGE_MAX_NEW_TOKENS",
        "JUDGE_RUBRIC",
        # The label grades every trajectory as it is scored, so rewards and the bandit depend on it.
        "LABEL_SOURCE",
        "MAJORITY_MIN",
        "ALPHA_CORRECT",
        "BETA_COHERENCE",
        "LENGTH_PENALTY",
        "COHERENCE_WEIGHTS",
        "COMPOSITE_WEIGHTS",
        "DRAFTS_FROM",
        "QUESTION_WEIGHT",
        *PAIR_KEYS,
    ],
    "phaseC": [
        *SFT_KEYS,
        "POLICY",
        "DPO_DATA",
        "DPO_LOSS",
        "DPO_BETA",
        "DPO_SFT_WEIGHT",
        "DPO_LABEL_SMOOTHING",
        "DR_DPO_BETA",
        "DPO_SCHEDULE",
        "NOISY_FRACTION",
        "DPO_LEARNING_RATE",
        "DPO_EPOCHS",
        "DPO_ARGS",
    ],
    "eval": [
        "TASK",
        "RANDOM_SEED",
        "MODEL_NAME",
        "COMPUTE_DTYPE",
        "EVAL_CHECKPOINTS",
        "EVAL_SAMPLES",
        "EVAL_MAX_NEW_TOKENS",
        "EVAL_ABLATIONS",
        "ATTRIBUTION_SAMPLES",
        "JUDGE_SAMPLES",
        "DRAFTS_FROM",
    ],
}
# Keys of a stage that its rows do not depend on (they act after the rows are made).
ROW_EXCLUDE = {"teacher": ["DISAGREEMENT"], "rollouts": [*PAIR_KEYS, "ROLLOUT_QUESTIONS"]}
PIPELINE = ["sample", "drafts", "teacher", "datasets", "phaseA", "phaseB", "rollouts", "phaseC", "eval"]
TRAIN_STAGES = ("phaseA", "phaseB", "phaseC")


def short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_identity(name: str, base: Path | None = None) -> str:
    """A hub id as is; a local folder as its name (relative to WORK_DIR `base` when inside it, so a
    moved work folder keeps its fingerprints) plus a hash of its build settings (the tiny model) or
    of its config.json and its files' names and sizes."""
    path = Path(name)
    if not path.is_dir():
        return name
    if base is not None and path.resolve().is_relative_to(Path(base).resolve()):
        name = str(path.resolve().relative_to(Path(base).resolve()))
    settings = path / TINY_SETTINGS
    if settings.is_file():
        return f"{name}@{short_hash(json.loads(settings.read_text()))}"
    files = sorted(p for p in path.rglob("*") if p.is_file())
    config = path / "config.json"
    described = [(str(p.relative_to(path)), p.stat().st_size) for p in files]
    return f"{name}@{short_hash([described, config.read_text() if config.is_file() else ''])}"


def key_values(cfg: Config, stage: str, exclude: tuple[str, ...] | list[str] = ()) -> dict:
    out = {}
    for key in STAGE_KEYS[stage]:
        if key in exclude:
            continue
        value = cfg.value(key)
        out[key] = model_identity(value, cfg.run.base_dir) if key == "MODEL_NAME" else value
    return out


def row_fp(cfg: Config, stage: str, *extra) -> str:
    """The fingerprint each row of a resumable stage carries: its key values (and `extra`, e.g. the
    draft it was asked with), as 12 hex digits."""
    return short_hash([key_values(cfg, stage, ROW_EXCLUDE.get(stage, ())), *extra])


def hash_input(source) -> str:
    """A file's sha256; a folder (a model, a phase) as its files' names and sizes plus the contents
    of those under 1 MB (configs, manifests, tokenizer), so a large model is not read whole; a hub
    id as is."""
    from common.manifest import hash_path

    path = Path(source)
    if path.is_file():
        return hash_path(path)
    if not path.is_dir():
        return str(source)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(path)}:{size}".encode())
        if size < 1 << 20:
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def fingerprint(cfg: Config, stage: str, inputs: dict) -> dict:
    """{"stage", "keys": {KEY: value}, "inputs": {name: sha256 or hub id}}: recorded in the manifest."""
    return {
        "stage": stage,
        "keys": key_values(cfg, stage),
        "inputs": {name: hash_input(src) for name, src in inputs.items()},
    }


def manifest_path(cfg: Config, stage: str) -> Path:
    """Where the stage's manifest (with its fingerprint) is written."""
    run = cfg.run
    if stage == "phaseA":
        return run.checkpoint_dir / stage / "train.manifest.json"
    if stage == "phaseB":
        return run.checkpoint_dir / cfg.train.phaseb_output / "train.manifest.json"
    if stage == "phaseC":
        return run.checkpoint_dir / cfg.dpo.dpo_output / "train.manifest.json"
    if stage == "rollouts":
        return run.rollout_dir / "rollouts.manifest.json"
    if stage == "eval":
        return run.output_dir / "eval.manifest.json"
    if stage == "datasets":
        return run.datasets_dir / "datasets.manifest.json"
    return run.data_dir / f"{stage}.manifest.json"


def compare(recorded: dict | None, current: dict) -> list[str]:
    """What changed, as 'KEY old -> new' and 'input NAME changed'; [] when nothing did."""
    if not recorded:
        return ["no fingerprint recorded (made before Looper kept them)"]
    changes = []
    old_keys, new_keys = recorded.get("keys", {}), current["keys"]
    for key in [*new_keys, *(k for k in old_keys if k not in new_keys)]:
        if old_keys.get(key) != new_keys.get(key):
            changes.append(f"{key} {old_keys.get(key)} -> {new_keys.get(key)}")
    old_in, new_in = recorded.get("inputs", {}), current["inputs"]
    for name in sorted(set(old_in) | set(new_in)):
        if old_in.get(name) != new_in.get(name):
            changes.append(f"input {name} changed")
    return changes


def damaged_outputs(manifest: dict, folder: Path) -> list[str]:
    from common.jsonl import sha256_file

    bad = []
    for name, digest in manifest.get("outputs", {}).items():
        path = folder / name
        if not path.is_file():
            bad.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            bad.append(f"{name} changed since it was written")
    return bad


def check(cfg: Config, stage: str, inputs: dict | None = None) -> tuple[str, list[str]]:
    """("done" | "stale" | "damaged" | "missing", details). `inputs`: the stage's inputs now; None
    re-hashes the inputs the manifest recorded, at their recorded paths (make status)."""
    path = manifest_path(cfg, stage)
    if not path.is_file():
        return "missing", []
    manifest = json.loads(path.read_text())
    recorded = manifest.get("fingerprint")
    if inputs is None:
        inputs = {
            name: d.get("path") or d.get("hub_id", "") for name, d in manifest.get("inputs", {}).items()
        }
    changes = compare(recorded, fingerprint(cfg, stage, inputs))
    if changes:
        return "stale", changes
    bad = damaged_outputs(manifest, path.parent)
    return ("damaged", bad) if bad else ("done", [])


def stale_message(cfg: Config, stage: str, state: str, details: list[str]) -> str:
    where = shown(manifest_path(cfg, stage).parent)
    what = "changed: " + "; ".join(details) if state == "stale" else "damaged: " + "; ".join(details)
    return (
        f"{stage} in {where} is {state} ({what}); RESUME=0 redoes it in place, a new RUN_NAME keeps "
        f"both, REBUILD=auto redoes stale stages and what follows"
    )


def reuse_finished(cfg: Config, stage: str, inputs: dict) -> bool:
    """For a stage that skips when finished: True to keep it (same fingerprint, outputs intact);
    False to run it (none yet, RESUME=0, or REBUILD=auto on a stale or damaged one). Otherwise a
    StaleError naming what changed and the ways on."""
    if not cfg.train.resume:
        return False
    state, details = check(cfg, stage, inputs)
    if state == "missing":
        return False
    where = shown(manifest_path(cfg, stage).parent)
    if state == "done":
        print(f"{where} is complete for this configuration and inputs; RESUME=0 redoes it")
        return True
    if cfg.run.rebuild == "auto":
        print(f"REBUILD=auto: {stage} is {state} ({'; '.join(details)}); redoing it")
        manifest_path(cfg, stage).unlink(missing_ok=True)
        return False
    raise StaleError(stale_message(cfg, stage, state, details))


def keep_rows(store, fp_of, what: str) -> int:
    """Drop the rows of a JsonlAppender whose "fp" is not fp_of(row); say how many."""
    dropped = store.retain(lambda row: row.get("fp") == fp_of(row))
    if dropped:
        print(f"{what}: dropped {dropped} rows made under another configuration (their fingerprint differs)")
    return dropped
