import json
import re

import pytest
from conftest import run_script

from common.config import load_config
from common.errors import ConfigError


def cfg_from(env=None, argv=(), env_file_text=None, tmp_path=None):
    env_file = tmp_path / "dotenv"
    env_file.write_text(env_file_text or "")
    return load_config(list(argv), env={"HW": "cpu", **(env or {})}, env_file=env_file)[0]


def test_precedence_default_profile_dotenv_environment_flag(tmp_path):
    cfg = cfg_from(tmp_path=tmp_path)
    assert cfg.train.epochs == 3.0 and cfg.sources.get("epochs") is None  # built-in default
    assert cfg.train.batch_size == 16 and cfg.sources["batch_size"] == "docker/hw/cpu.env"
    cfg = cfg_from(tmp_path=tmp_path, env_file_text="BATCH_SIZE=4\nTRAIN_SAMPLES=7\n")
    assert (cfg.train.batch_size, cfg.data.train_samples) == (4, 7) and cfg.sources["batch_size"] == ".env"
    cfg = cfg_from({"BATCH_SIZE": "3"}, tmp_path=tmp_path, env_file_text="BATCH_SIZE=4\n")
    assert cfg.train.batch_size == 3 and cfg.sources["batch_size"] == "environment"
    cfg = cfg_from({"BATCH_SIZE": "3"}, ["--batch-size", "2"], tmp_path=tmp_path)
    assert cfg.train.batch_size == 2 and cfg.sources["batch_size"] == "flag"


def test_profiles_select_model_and_quantization(tmp_path):
    q = cfg_from({"HW": "4060", "TASK": "strategyqa"}, tmp_path=tmp_path)
    assert q.model.model_name == "microsoft/Phi-3.5-mini-instruct"
    assert q.model.load_in_4bit and q.model.bnb_double_quant and q.model.compute_dtype == "bfloat16"
    assert (q.train.batch_size, q.train.grad_accum, q.train.max_length) == (2, 16, 2048)
    assert q.train.gradient_checkpointing
    assert (q.model.lora_r, q.model.lora_alpha, q.model.lora_dropout) == (16, 32, 0.1)
    h = cfg_from({"HW": "h100", "TASK": "gsm8k"}, tmp_path=tmp_path)
    assert h.model.model_name == "GAIR/Abel-7B-002" and not h.model.load_in_4bit
    assert h.model.compute_dtype == "bfloat16" and h.train.batch_size > q.train.batch_size
    c = cfg_from({"TASK": "arith", "WORK_DIR": str(tmp_path)}, tmp_path=tmp_path)
    assert c.model.model_name == str(tmp_path / "checkpoints" / "tiny-base")
    assert c.model.compute_dtype == "float32"
    assert c.teacher.cache_path == tmp_path / ".cache"


@pytest.mark.parametrize(
    "env, key",
    [
        ({"TRAIN_SAMPLES": "abc"}, "TRAIN_SAMPLES"),
        ({"HW": "3090"}, "HW"),
        ({"TASK": "mmlu"}, "TASK"),
        ({"LORA_DROPOUT": "x"}, "LORA_DROPOUT"),
        ({"GRADIENT_CHECKPOINTING": "maybe"}, "GRADIENT_CHECKPOINTING"),
        ({"TRAIN_SAMPLES": "0"}, "TRAIN_SAMPLES"),
        ({"REASONING_STRATEGY": "tree"}, "REASONING_STRATEGY"),
        ({"FINETUNE": "half"}, "FINETUNE"),
        ({"HW": "4060", "FINETUNE": "full"}, "FINETUNE=full .* 4-bit"),
        ({"TRAIN_SAMPLING": "sorted"}, "TRAIN_SAMPLING"),
    ],
)
def test_bad_values_name_the_key(env, key, tmp_path):
    with pytest.raises(ConfigError, match=key):
        cfg_from(env, tmp_path=tmp_path)


def test_bad_value_in_dotenv_names_its_source(tmp_path):
    with pytest.raises(ConfigError, match=r"BATCH_SIZE='many' \(from \.env\)"):
        cfg_from(tmp_path=tmp_path, env_file_text="BATCH_SIZE=many\n")


def test_bad_config_exits_2_with_one_line_before_any_work(tmp_path):
    for env in ({"TRAIN_SAMPLES": "abc"}, {"HW": "3090"}, {"TASK": "mmlu"}):
        proc = run_script("01_sample.py", tmp_path, **env)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and next(iter(env)) in lines[0]
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_secrets_masked_in_printout_and_manifest(tmp_path):
    key = "sk-planted-secret-123456"
    proc = run_script("01_sample.py", tmp_path, OPENAI_API_KEY=key, HF_TOKEN=key, TRAIN_SAMPLES="5")
    assert proc.returncode == 0, proc.stderr
    assert key not in proc.stdout + proc.stderr
    assert "***" in proc.stdout
    manifest = json.loads((tmp_path / "data/arith/sample.manifest.json").read_text())
    assert manifest["config"]["OPENAI_API_KEY"] == "***"
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert key not in path.read_text()


def test_secrets_have_no_flags(tmp_path):
    with pytest.raises(SystemExit):
        cfg_from(argv=["--openai-api-key", "x"], tmp_path=tmp_path)


def test_config_doc_documents_every_key_in_its_section_and_every_alias():
    from conftest import ROOT

    from common.config import ALIASES, KEYS

    doc = (ROOT / "docs" / "CONFIG.md").read_text()
    rows_under, heading = {}, None
    for line in doc.splitlines():
        if line.startswith("#"):
            heading = line[4:].strip() if line.startswith("### ") else None
        elif line.startswith("| `") and heading:
            rows_under.setdefault(heading, set()).update(re.findall(r"`(\w+)`", line.split("|")[1]))
    misplaced = [
        f"{k.upper()} (section {spec.section})"
        for k, spec in KEYS.items()
        if k.upper() not in rows_under.get(spec.section, set())
        and not (spec.field.metadata["secret"] and k.upper() in rows_under.get("secrets", set()))
    ]
    assert not misplaced, f"docs/CONFIG.md lacks a row in the key's section for {misplaced}"
    documented = set().union(*rows_under.values())
    unknown = documented - {k.upper() for k in KEYS}
    assert not unknown, f"docs/CONFIG.md documents keys the code does not have: {unknown}"
    aliases = doc[doc.index("## Renamed keys and aliases") :]
    assert all(f"| `{old}` | `{new}` |" in aliases for old, new in ALIASES.items())
    assert "docs/CONFIG.md" in (ROOT / "README.md").read_text()


# Sections, aliases, unknown keys, TRL pass-through, the project folder.


def test_every_key_lives_in_exactly_one_section(tmp_path):
    import dataclasses

    from common.config import KEYS, SECTIONS

    cfg = cfg_from({"TEACHER": "openai", "OPENAI_API_KEY": "k"}, tmp_path=tmp_path)
    assert set(SECTIONS) == {f.name for f in dataclasses.fields(cfg)} - {"sources"}
    assert (cfg.run.task, cfg.teacher.backend, cfg.dpo.dpo_loss) == ("arith", "openai", "sigmoid")
    assert cfg.value("TEACHER") == "openai" and "teacher" in KEYS and "backend" not in KEYS
    for name, cls in SECTIONS.items():
        assert isinstance(getattr(cfg, name), cls)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.batch_size = 1


def test_a_function_receives_only_its_section(tmp_path):
    from common.config import ModelSection, RolloutSection, TeacherSection
    from common.rollout.scoring import Weights
    from common.teacher.costs import prices, teacher_model

    # A section built on its own, with no Config around it, is all these functions need.
    teacher = TeacherSection(backend="anthropic", teacher_price_in=1.0, teacher_price_out=2.0)
    assert teacher_model(teacher) == "claude-sonnet-4-5" and prices(teacher) == (1.0, 2.0)
    w = Weights.from_config(RolloutSection(composite_weights="1,0,0", rollout_max_new_tokens=7))
    assert w.composite == (1.0, 0.0, 0.0) and w.max_new_tokens == 7
    cfg = cfg_from({"HW": "4060"}, tmp_path=tmp_path)
    with pytest.raises(AttributeError):
        teacher_model(cfg)  # the whole Config is not a teacher section
    from common.models.loading import model_kwargs

    kwargs = model_kwargs(ModelSection(compute_dtype="bfloat16", attn_impl="eager", hf_token="t"))
    assert str(kwargs["dtype"]) == "torch.bfloat16" and kwargs["token"] == "t"


@pytest.mark.parametrize(
    "old, new, raw, attr",
    [
        ("GPT4_MODEL", "TEACHER_MODEL", "gpt-4o", ("teacher", "teacher_model", "gpt-4o")),
        ("GPT4_MAX_TOKENS", "TEACHER_MAX_TOKENS", "77", ("teacher", "teacher_max_tokens", 77)),
        ("GPT4_TEMPERATURE", "TEACHER_TEMPERATURE", "0.9", ("teacher", "teacher_temperature", 0.9)),
        ("USE_4BIT", "LOAD_IN_4BIT", "0", ("model", "load_in_4bit", False)),
        ("MAX_SEQ_LENGTH", "MAX_LENGTH", "99", ("train", "max_length", 99)),
        ("DATASET_NAME", "DATASET_PATH", "wics/strategy-qa", ("data", "dataset_path", "wics/strategy-qa")),
        ("MAX_NEW_TOKENS", "EVAL_MAX_NEW_TOKENS", "64", ("eval", "eval_max_new_tokens", 64)),
        ("CELR_WEIGHTS", "COMPOSITE_WEIGHTS", "1,1,1", ("rollout", "composite_weights", "1,1,1")),
    ],
)
def test_old_names_are_aliases_with_a_note(old, new, raw, attr, tmp_path, capsys):
    section, name, value = attr
    cfg = cfg_from(tmp_path=tmp_path, env_file_text=f"{old}={raw}\n")
    assert getattr(getattr(cfg, section), name) == value
    assert cfg.sources[new.lower()] == f".env ({old})"
    assert f"{old} is read as {new}" in capsys.readouterr().err
    cfg = cfg_from({old: raw}, tmp_path=tmp_path)  # the environment too
    assert cfg.sources[new.lower()] == f"environment ({old})"


def test_the_canonical_key_wins_over_its_alias(tmp_path, capsys):
    cfg = cfg_from(tmp_path=tmp_path, env_file_text="GPT4_MODEL=gpt-4o\nTEACHER_MODEL=gpt-4.1\n")
    assert cfg.teacher.teacher_model == "gpt-4.1" and cfg.sources["teacher_model"] == ".env"
    assert "TEACHER_MODEL wins" in capsys.readouterr().err


def test_warmup_ratio_is_read_as_warmup_steps_in_both_trl_args(tmp_path, capsys):
    cfg = cfg_from(tmp_path=tmp_path, env_file_text="WARMUP_RATIO=0.2\n")
    assert cfg.train.sft_args == "warmup_steps=0.2" and cfg.dpo.dpo_args == "warmup_steps=0.2"
    assert "WARMUP_RATIO is read as warmup_steps=0.2" in capsys.readouterr().err


def test_unknown_dotenv_key_warns_with_the_closest_key(tmp_path, capsys):
    cfg = cfg_from(tmp_path=tmp_path, env_file_text="BATCH_SIZ=4\nZZZQQQ=1\n")
    err = capsys.readouterr().err
    assert "unknown key BATCH_SIZ; did you mean BATCH_SIZE?" in err
    assert "unknown key ZZZQQQ; see `make config`" in err
    assert cfg.train.batch_size == 16  # the misspelt key changed nothing


def test_unknown_key_in_our_own_profile_is_an_error(tmp_path, monkeypatch):
    import shutil

    from conftest import ROOT

    shutil.copytree(ROOT / "docker" / "hw", tmp_path / "docker" / "hw")
    (tmp_path / "docker/hw/cpu.env").write_text("BATCH_SIZ=4\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown key BATCH_SIZ"):
        cfg_from(tmp_path=tmp_path)


def _trl_config(cfg, which, tmp_path):
    """TRL's config object built the way stage 05/06 (sft) and stage 08 (dpo) build it."""
    from common.train.dpo import dpo_config
    from common.train.setup import trainer_args
    from common.train.sft import sft_config

    if which == "sft":
        return sft_config(cfg, tmp_path / "out", 100, packing=False)
    return dpo_config(trainer_args(cfg, tmp_path / "out", 100, 1e-5, 1.0), cfg.dpo)


def test_sft_and_dpo_args_reach_trl(tmp_path):
    cfg = cfg_from(
        {
            "SFT_ARGS": "weight_decay=0.05,neftune_noise_alpha=5,packing=0",
            "DPO_ARGS": "weight_decay=0.02,beta=0.3",
        },
        tmp_path=tmp_path,
    )
    sft = _trl_config(cfg, "sft", tmp_path)
    assert sft.weight_decay == 0.05 and sft.neftune_noise_alpha == 5.0 and sft.packing is False
    assert sft.warmup_steps == 0.03  # Looper's default warm-up where SFT_ARGS does not set it
    dpo = _trl_config(cfg, "dpo", tmp_path)
    assert dpo.weight_decay == 0.02 and dpo.beta == 0.3  # DPO_ARGS wins over DPO_BETA
    plain = _trl_config(cfg_from(tmp_path=tmp_path), "dpo", tmp_path)
    assert plain.weight_decay == 0.0 and plain.beta == 0.1


@pytest.mark.parametrize(
    "env, line",
    [
        (
            {"SFT_ARGS": "weight_decai=0.1"},
            r"SFT_ARGS: weight_decai is not a field of trl.SFTConfig; did you mean weight_decay\?",
        ),
        (
            {"DPO_ARGS": "beat=1"},
            r"DPO_ARGS: beat is not a field of trl.DPOConfig; did you mean beta\?",
        ),
        ({"SFT_ARGS": "weight_decay=lots"}, r"SFT_ARGS: weight_decay='lots' is not a float"),
        ({"DPO_ARGS": "beta"}, r"DPO_ARGS: 'beta' is not name=value"),
    ],
)
def test_bad_trl_args_are_one_line_errors(env, line, tmp_path):
    with pytest.raises(ConfigError, match=line) as err:
        cfg_from(env, tmp_path=tmp_path)
    assert "\n" not in str(err.value)


def test_help_texts_use_no_private_vocabulary():
    from common.config import KEYS

    for spec in KEYS.values():
        text = spec.field.metadata["help"]
        for word in ("seed plan", "REPAIRITY", "CELR", "Track A", "Track B", "the seed"):
            assert word not in text, (spec.name, text)
    assert KEYS["dpo_schedule"].field.metadata["choices"] == ("none", "staged")


def test_project_dir_is_the_folder_the_command_runs_from(tmp_path):
    import shutil
    import subprocess
    import sys

    from conftest import ROOT, offline_env

    env = offline_env(tmp_path / "work")
    env.pop("WORK_DIR")
    env.pop("LOOPER_ENV_FILE")
    env["PYTHONPATH"] = str(ROOT / "src")
    cmd = [sys.executable, "-m", "common.config"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "docker/hw/cpu.env is missing: run from the Looper project folder" in lines[0]

    shutil.copytree(ROOT / "docker" / "hw", tmp_path / "docker" / "hw")
    (tmp_path / ".env").write_text("TRAIN_SAMPLES=11\n")  # read from the project folder
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    row = next(line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["TRAIN_SAMPLES"])
    assert row[1:] == ["11", ".env"]
    tiny = next(line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["MODEL_NAME"])
    assert tiny[1] == str(tmp_path / "checkpoints" / "tiny-base")  # no WORK_DIR: under the project folder
