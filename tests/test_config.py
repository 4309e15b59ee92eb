import json

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
    assert q.model == "microsoft/Phi-3.5-mini-instruct"
    assert q.load_in_4bit and q.bnb_double_quant and q.compute_dtype == "bfloat16"
    assert (q.batch_size, q.grad_accum, q.max_length) == (2, 16, 2048)
    assert q.gradient_checkpointing and (q.lora_r, q.lora_alpha, q.lora_dropout) == (16, 32, 0.1)
    h = cfg_from({"HW": "h100", "TASK": "gsm8k"}, tmp_path=tmp_path)
    assert h.model == "GAIR/Abel-7B-002" and not h.load_in_4bit
    assert h.compute_dtype == "bfloat16" and h.batch_size > q.batch_size
    c = cfg_from({"TASK": "arith", "WORK_DIR": str(tmp_path)}, tmp_path=tmp_path)
    assert c.model == str(tmp_path / "checkpoints" / "tiny-base")
    assert c.compute_dtype == "float32"


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


def test_readme_documents_every_key():
    from conftest import ROOT

    from common.config import fields

    readme = (ROOT / "README.md").read_text()
    missing = [f.name.upper() for f in fields() if f"`{f.name.upper()}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
