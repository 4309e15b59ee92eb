"""`make sweep`: Phase B once per reasoning format, each evaluated on the same test questions, in one
table.

    make sweep STRATEGIES="none cot explicit alternating"

Phase A is shared: `make phaseA` trains it once, as usual. For each strategy, stage 04 builds that
strategy's training set into data/RUN/sweep/STRATEGY/ (REASONING_STRATEGY, DATASETS_SUBDIR) and
stage 06 trains Phase B from Phase A into checkpoints/RUN/phaseB-STRATEGY/ (PHASEB_OUTPUT). Each
runs as its own process with its own manifest and fingerprint, so a strategy whose data and
checkpoint are complete for this configuration is skipped, and a killed one resumes. Then every
checkpoint answers the same test questions as stage 09 (EVAL_SAMPLES) in its own format, graded by
the task; answers whose checkpoint, questions and settings are unchanged are kept. The table
(accuracy with its 95% Wilson interval, exact McNemar against `none`) goes to outputs/RUN/sweep.json,
the "Strategy sweep" section of outputs/RUN/report.md, and stdout.

A strategy that fails is listed as failed, with the stage, its exit status and its error line; the
others still run, and the command exits 1 at the end.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from common.config import STRATEGIES, load_config, shown
from common.data.tasks import get_task
from common.errors import ConfigError, DataError, LooperError, run_main
from common.eval.ablations import eval_path
from common.eval.evaluate import answer_questions, resolve_checkpoint
from common.eval.questions import load_test
from common.eval.report import build_report
from common.eval.sweep import checkpoint_name, compare, reference_of, sweep_path, sweep_section
from common.fingerprint import check, hash_input, key_values, manifest_path, short_hash
from common.jsonl import read_jsonl, sha256_file, write_json, write_jsonl
from common.models.loading import load_model
from common.rollout.drafts import drafts_file, own_drafts, write_drafts
from common.stage import stage_run
from common.train.setup import require_checkpoint

SCRIPTS = Path(__file__).resolve().parent
# Stage 04's inputs, each with the target that makes it: checked before anything trains.
UPSTREAM = {"sample_train": "sample", "student_drafts": "drafts", "teacher_outputs": "teacher"}
# Evaluation keys that change no answer here (the sweep runs no ablations and names its checkpoints).
NOT_ANSWERS = ("EVAL_CHECKPOINTS", "EVAL_ABLATIONS", "ATTRIBUTION_SAMPLES", "JUDGE_SAMPLES")


def parse_strategies(raw: str) -> list[str]:
    """STRATEGIES as a list (spaces or commas); an unknown name stops before anything trains."""
    names = raw.replace(",", " ").split()
    bad = [n for n in names if n not in STRATEGIES]
    if bad or not names:
        what = (
            f"{', '.join(repr(b) for b in bad)} is not a reasoning strategy" if bad else "no strategy given"
        )
        raise ConfigError(
            f'STRATEGIES={raw!r}: {what}; use some of {" ".join(STRATEGIES)} (e.g. STRATEGIES="none cot")'
        )
    return list(dict.fromkeys(names))


def settings(strategy: str) -> dict[str, str]:
    """The keys that make stages 04 and 06 build and train this strategy's Phase B in its own folders."""
    return {
        "REASONING_STRATEGY": strategy,
        "DATASETS_SUBDIR": f"sweep/{strategy}",
        "PHASEB_OUTPUT": checkpoint_name(strategy),
    }


def run_stage(script: str, launch: list[str], env: dict[str, str]) -> tuple[int, str]:
    """One stage as its own process (its own resume, manifest and launcher). Its stderr passes
    through as it comes; returns the exit status and the stage's error line (its last line)."""
    print(f"\n== sweep: {script} " + " ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    proc = subprocess.Popen([*launch, str(SCRIPTS / script)], env=os.environ | env, stderr=subprocess.PIPE)
    tail = b""
    for chunk in iter(lambda: proc.stderr.read1(4096), b""):  # bytes: progress bars stay on one line
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
        tail = (tail + chunk)[-4096:]
    lines = [x.strip() for x in tail.decode(errors="replace").replace("\r", "\n").splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("error:")]
    return proc.wait(), (errors or lines or [""])[-1]


def train(strategy: str, launch: list[str]) -> dict:
    """Stage 04 then stage 06 for one strategy, each skipped when its manifest says it is complete
    for this configuration and inputs (RESUME=0 redoes both); a failure ends the strategy."""
    env = settings(strategy)
    cfg, _ = load_config([], env=os.environ | env)
    record = {
        "status": "ok",
        "checkpoint": checkpoint_name(strategy),  # its name in EVAL_CHECKPOINTS
        "path": shown(cfg.run.checkpoint_dir / cfg.train.phaseb_output),
        "data": shown(cfg.run.datasets_dir),
    }
    for stage, script, launcher in (
        ("datasets", "04_build_datasets.py", [sys.executable]),
        ("phaseB", "06_train_cot.py", launch),
    ):
        if cfg.train.resume and check(cfg, stage)[0] == "done":
            where = shown(manifest_path(cfg, stage).parent)
            print(f"sweep: {strategy}: {stage} in {where} is complete for this configuration; skipped")
            continue
        status, line = run_stage(script, launcher, env)
        if status:
            return record | {"status": "failed", "stage": script, "exit": status, "error": line}
    return record


def answer(
    cfg, task, test: list[dict], strategy: str, base_drafts: dict | None, kept: dict
) -> tuple[list, dict]:
    """The strategy's checkpoint answers the test questions in its own format (with the base
    student's drafts, or its own with DRAFTS_FROM=policy, when WITH_DRAFT=1). Answers kept from
    the last sweep are reused while the checkpoint, the questions and the settings are the same."""
    ckpt = resolve_checkpoint(cfg, checkpoint_name(strategy))
    use = base_drafts if ckpt.with_draft else None
    fp = short_hash(
        [
            hash_input(ckpt.path),
            hash_input(cfg.run.data_dir / "test.jsonl"),
            key_values(cfg, "eval", NOT_ANSWERS),
            ckpt.strategy,
            ckpt.with_draft,
            use,
        ]
    )
    path = eval_path(cfg.run.output_dir / "sweep", ckpt.name)
    same = kept.get("answers_fp") == fp and path.is_file() and sha256_file(path) == kept.get("answers_sha256")
    if cfg.train.resume and same:
        print(f"sweep: {strategy}: answers in {shown(path)} kept (same checkpoint, questions and settings)")
        rows = read_jsonl(path)
    else:
        model, tokenizer = load_model(ckpt.path, cfg, made_by="tiny-model")
        if ckpt.with_draft and cfg.generation.drafts_from == "policy":
            own = drafts_file(cfg.run.data_dir, "test_drafts", ckpt.name)
            use = {
                i: r["draft"]
                for i, r in own_drafts(cfg, task, test, own, ckpt.path, (model, tokenizer)).items()
            }
        rows = answer_questions(cfg, model, tokenizer, task, test, ckpt, use, desc=ckpt.name)
        write_jsonl(path, rows)
    return rows, {
        "answers": str(path.relative_to(cfg.run.base_dir)),
        "answers_fp": fp,
        "answers_sha256": sha256_file(path),
    }


def read_previous(path: Path) -> dict:
    """The last sweep's records per strategy (whose answers may be kept), or {}."""
    return json.loads(path.read_text()).get("strategies", {}) if path.is_file() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--strategies",
        default=os.environ.get("STRATEGIES", " ".join(STRATEGIES)),
        help="reasoning formats to train and compare, space- or comma-separated (default: all four)",
    )
    strategies = parse_strategies(parser.parse_args().strategies)
    cfg, _ = load_config([])
    task = get_task(cfg.run.task)
    test_path, reference = cfg.run.data_dir / "test.jsonl", reference_of(strategies)
    launch = shlex.split(os.environ.get("LOOPER_LAUNCH", "")) or [sys.executable]
    title = f"sweep: Phase B per reasoning format ({' '.join(strategies)})"
    with stage_run(cfg, "sweep", title, cfg.run.output_dir / "sweep", {"test": test_path}) as run:
        # What every strategy needs, checked before anything trains.
        require_checkpoint(cfg.run.checkpoint_dir / "phaseA", made_by="phaseA")
        for name, made_by in UPSTREAM.items():
            if not (path := cfg.run.data_dir / f"{name}.jsonl").is_file():
                raise DataError(f"{shown(path)} does not exist; run `make {made_by}` first")
        test = load_test(cfg)
        records = {s: train(s, launch) for s in strategies}

        previous = read_previous(sweep_path(cfg))
        base_drafts = None
        trained = any(r["status"] == "ok" for r in records.values())
        if trained and cfg.teacher.with_draft and cfg.generation.drafts_from == "base":  # as in stage 09
            drafts = write_drafts(
                cfg, task, test, cfg.run.data_dir / "test_drafts.jsonl", cfg.model.model_name
            )
            base_drafts = {i: r["draft"] for i, r in drafts.items()}
        rows = {}
        for s in strategies:
            if records[s]["status"] != "ok":
                continue
            try:
                rows[s], kept = answer(cfg, task, test, s, base_drafts, previous.get(s, {}))
                records[s] |= kept
            except Exception as err:  # one strategy's failure is its row of the table, not the sweep's end
                status = err.exit_code if isinstance(err, LooperError) else 1
                error = str(err) if isinstance(err, LooperError) else f"{type(err).__name__}: {err}"
                records[s] |= {"status": "failed", "stage": "evaluation", "exit": status, "error": error}
        for s, stats in compare(rows, reference).items():
            records[s] |= stats
        sweep = {
            "task": cfg.run.task,
            "reference": reference,
            "n_questions": len(test),
            "test_source": shown(test_path),
            "strategies": records,
        }
        write_json(sweep_path(cfg), sweep)
        run.inputs |= {checkpoint_name(s): cfg.run.checkpoint_dir / checkpoint_name(s) for s in rows}
        report = build_report(cfg)
        answers = [cfg.run.base_dir / r["answers"] for r in records.values() if "answers" in r]
        run.outputs(sweep_path(cfg), *answers, report)
    print("\n" + "\n".join(sweep_section(cfg)))
    print(f"sweep: {shown(sweep_path(cfg))}, report {shown(report)}")
    failed = [f"{s} ({r['stage']}, exit {r['exit']})" for s, r in records.items() if r["status"] != "ok"]
    if failed:
        print(
            f"sweep: {len(failed)} of {len(strategies)} strategies failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
