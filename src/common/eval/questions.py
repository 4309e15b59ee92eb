"""The questions stage 09 (and `make sweep`) ask: the test split, or a fixed random EVAL_SAMPLES of
it, and the held-out teacher questions stage 04 set aside (HELDOUT_FRACTION), never trained on."""

from __future__ import annotations

import random
from pathlib import Path

from common.config import Config, shown
from common.jsonl import read_jsonl

HELDOUT = "teacher_heldout.jsonl"


def load_test(cfg: Config) -> list[dict]:
    """The test split, or a fixed random EVAL_SAMPLES of it (seeded by RANDOM_SEED, in file order):
    the first N of a file are often not a fair sample of it."""
    test = read_jsonl(cfg.run.data_dir / "test.jsonl", made_by="sample")
    if not cfg.eval.eval_samples or cfg.eval.eval_samples >= len(test):
        return test
    keep = sorted(random.Random(cfg.run.random_seed).sample(range(len(test)), cfg.eval.eval_samples))
    return [test[i] for i in keep]


def heldout_path(cfg: Config) -> Path:
    return cfg.run.data_dir / HELDOUT


def load_heldout(cfg: Config) -> tuple[list[dict], str | None]:
    """The held-out teacher questions as {id, question, answer, draft}, all of them (they are few);
    or ([], why there are none to ask) when the file is absent, empty, or older than the rows that
    keep the question and its gold answer."""
    path = heldout_path(cfg)
    if not path.is_file():
        return [], f"{shown(path)} does not exist (run `make datasets`)"
    rows = read_jsonl(path)
    if not rows:
        return [], f"{shown(path)} is empty (HELDOUT_FRACTION={cfg.data.heldout_fraction:g})"
    if any("question" not in r or "answer" not in r for r in rows):
        return [], f"{shown(path)} predates rows with the question and gold answer; rerun `make datasets`"
    return [{k: r.get(k) for k in ("id", "question", "answer", "draft")} for r in rows], None
