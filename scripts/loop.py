"""`make loop`: the self-improvement loop of iterative preference optimization (Iterative RPO,
Pang et al. 2024, arXiv:2404.19733; Self-Rewarding LMs, Yuan et al. 2024, arXiv:2401.10020).

Each round: the current policy samples rollouts and pairs (stage 07); Phase C trains from that
policy, once per loss in LOOP_LOSSES, on the same pairs (stage 08); each result answers the dev
split greedily, and the best on dev becomes the next round's policy and reference. The loop stops
after ITERATIONS rounds, or after LOOP_PATIENCE rounds without a dev gain over the best so far; the
best round is copied to checkpoints/RUN/phaseC. Test accuracy is never looked at here. With
DRAFTS_FROM=policy each round's stage 07 redrafts with that round's policy, and each checkpoint's
dev check uses its own drafts.

Writes data/RUN/loop/roundN/ (stage 07's files), checkpoints/RUN/loop/roundN-LOSS/ (stage 08's),
checkpoints/RUN/loop/loop.json, loop.png, and checkpoints/RUN/phaseC/ (with selection.json). A
killed loop resumes: both stages resume, and finished dev evaluations are kept in loop.json.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from common.config import load_config, shown, split_list
from common.data.tasks import get_task
from common.errors import LooperError, run_main
from common.eval.evaluate import answer_questions, resolve_checkpoint, summarize
from common.fingerprint import hash_input, key_values, short_hash
from common.jsonl import read_jsonl, write_json
from common.models.loading import load_model
from common.plots import plot_loop
from common.rollout.drafts import drafts_file, own_drafts, read_draft_texts
from common.stage import stage_run

SCRIPTS = Path(__file__).resolve().parent


def run_stage(script: str, launch: list[str], **env: str) -> None:
    """One stage as its own process, so it keeps its own resume, manifest and launcher."""
    print(f"\n== loop: {script} " + " ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    rc = subprocess.run([*launch, str(SCRIPTS / script)], env=os.environ | env).returncode
    if rc != 0:
        raise SystemExit(rc)


def dev_accuracy(cfg, task, spec: str, dev: list[dict], drafts: dict) -> float:
    """A checkpoint's greedy dev accuracy, with the base student's drafts or (DRAFTS_FROM=policy)
    its own, written for it into data/RUN/loop/dev_drafts_SPEC.jsonl."""
    checkpoint = resolve_checkpoint(cfg, spec)
    model, tokenizer = load_model(checkpoint.path, cfg)
    use = drafts if checkpoint.with_draft else None
    if checkpoint.with_draft and cfg.generation.drafts_from == "policy":
        path = drafts_file(cfg.run.data_dir / "loop", "dev_drafts", checkpoint.name)
        own = own_drafts(cfg, task, dev, path, checkpoint.path, loaded=(model, tokenizer))
        use = {i: r["draft"] for i, r in own.items()}
    rows = answer_questions(cfg, model, tokenizer, task, dev, checkpoint, use, f"dev {checkpoint.name}")
    return round(summarize(task, rows)["accuracy"], 4)


def read_json_if(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


# checkpoint -> the fingerprint its dev accuracy was measured under (its files, the dev set, the
# answer settings): a kept accuracy is reused only while that still matches.
DEV_FP: dict[str, str] = {}


def dev_fp(cfg, spec: str, dev_path: Path) -> str:
    checkpoint = resolve_checkpoint(cfg, spec)
    return short_hash([hash_input(checkpoint.path), hash_input(dev_path), key_values(cfg, "eval")])


def write_state(path: Path, rounds: list[dict], best: dict, known: dict) -> None:
    state = {"rounds": rounds, "best_round": best["round"], "dev_accuracy": known, "dev_fp": DEV_FP}
    write_json(path, state)


def run_round(cfg, n: int, policy: str, losses: list[str], launch: list[str], accuracy) -> dict:
    """Round n: rollouts of `policy` (stage 07), Phase C once per loss on its pairs (stage 08), and
    each result's dev accuracy; the loss best on dev is the round's choice."""
    subdir = f"loop/round{n}"
    run_stage("07_rollouts.py", [sys.executable], POLICY=policy, ROLLOUT_SUBDIR=subdir)
    candidates = {}
    for loss in losses:
        out = f"loop/round{n}-{loss}"
        run_stage(
            "08_train_dpo.py",
            launch,
            POLICY=policy,
            ROLLOUT_SUBDIR=subdir,
            DPO_DATA="preferences",
            DPO_LOSS=loss,
            DPO_OUTPUT=out,
        )
        candidates[loss] = {
            "checkpoint": str(cfg.run.checkpoint_dir / out),
            "spec": out,
            "dev_accuracy": accuracy(str(cfg.run.checkpoint_dir / out)),
        }
    loss = max(candidates, key=lambda k: candidates[k]["dev_accuracy"])
    report = read_json_if(cfg.run.data_dir / subdir / "rollout_report.json")
    print(
        f"loop: round {n}: "
        + ", ".join(f"{k} {v['dev_accuracy']:.1%}" for k, v in candidates.items())
        + f" -> {loss}"
    )
    return {
        "round": n,
        "policy": policy,
        "loss": loss,
        **candidates[loss],
        "candidates": candidates,
        "pairs": report.get("pairs", {}),
        "trajectory_accuracy": report.get("trajectory_accuracy"),
    }


def run_rounds(cfg, start: dict, losses, launch, accuracy, state_path, known) -> tuple[list[dict], dict]:
    """Up to ITERATIONS rounds, each from the previous round's choice; stop after LOOP_PATIENCE
    rounds without a dev gain. Returns every round and the best one (None when none ran)."""
    rounds, best, best_accuracy, stale, policy = [start], None, start["dev_accuracy"], 0, start["policy"]
    for n in range(1, cfg.rollout.iterations + 1):
        chosen = run_round(cfg, n, policy, losses, launch, accuracy)
        rounds.append(chosen)
        if best is None or chosen["dev_accuracy"] > best["dev_accuracy"]:
            best = chosen
        # A round improves when it beats every earlier policy on dev, the starting one included.
        stale = 0 if chosen["dev_accuracy"] > best_accuracy else stale + 1
        best_accuracy = max(best_accuracy, chosen["dev_accuracy"])
        write_state(state_path, rounds, best, known)
        policy = chosen["checkpoint"]
        if stale >= cfg.rollout.loop_patience and n < cfg.rollout.iterations:
            print(
                f"loop: no dev gain for {stale} round(s); stopping (LOOP_PATIENCE={cfg.rollout.loop_patience})"
            )
            break
    return rounds, best


def keep_as_phase_c(cfg, best: dict, start: dict) -> Path:
    """Copy the best round (or the starting policy, when no round beat it on dev) to phaseC, with
    selection.json saying where it came from; a previous phaseC is moved aside, not deleted."""
    phase_c = cfg.run.checkpoint_dir / "phaseC"
    if phase_c.exists():  # keep what was there: a `make phaseC` result is not thrown away
        aside = cfg.run.checkpoint_dir / "phaseC.before-loop"
        shutil.rmtree(aside, ignore_errors=True)
        phase_c.rename(aside)
        print(f"loop: moved the previous {shown(phase_c)} to {shown(aside)}")
    tmp = phase_c.with_name(f"phaseC.tmp-{os.getpid()}")  # copied whole, then renamed into place
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(best["checkpoint"], tmp)
    selection = {
        "source": shown(best["checkpoint"]),
        "spec": best["spec"],
        "round": best["round"],
        "loss": best["loss"],
        "dev_accuracy": best["dev_accuracy"],
        "start_dev_accuracy": start["dev_accuracy"],
    }
    write_json(tmp / "selection.json", selection)
    os.replace(tmp, phase_c)
    return phase_c


def main() -> None:
    cfg, _ = load_config()
    loop_dir, dev_path = cfg.run.checkpoint_dir / "loop", cfg.run.data_dir / "dev.jsonl"
    with stage_run(cfg, "loop", "loop", loop_dir, {"dev": dev_path}) as run:
        task = get_task(cfg.run.task)
        losses = split_list(cfg.rollout.loop_losses) or [cfg.dpo.dpo_loss]
        launch = shlex.split(os.environ.get("LOOPER_LAUNCH", "")) or [sys.executable]
        dev = read_jsonl(dev_path, made_by="sample")
        if not dev:
            raise LooperError(f"{shown(dev_path)} is empty; the loop picks rounds on dev: set DEV_SAMPLES")
        drafts = read_draft_texts(cfg) if cfg.generation.drafts_from == "base" else {}
        loop_dir.mkdir(parents=True, exist_ok=True)
        state_path = loop_dir / "loop.json"
        known = {}  # checkpoint -> dev accuracy, kept from a killed run (RESUME=0 forgets them)
        if state_path.is_file() and cfg.train.resume:
            state = json.loads(state_path.read_text())
            DEV_FP.update(state.get("dev_fp", {}))
            known = state.get("dev_accuracy", {})

        def accuracy(spec: str) -> float:
            fp = dev_fp(cfg, spec, dev_path)
            if spec not in known or DEV_FP.get(spec) != fp:
                known[spec] = dev_accuracy(cfg, task, spec, dev, drafts)
                DEV_FP[spec] = fp
            return known[spec]

        start = {"round": 0, "policy": cfg.rollout.policy, "dev_accuracy": accuracy(cfg.rollout.policy)}
        print(
            f"loop: start from {cfg.rollout.policy}, dev accuracy {start['dev_accuracy']:.1%}; up to "
            f"{cfg.rollout.iterations} rounds, losses {', '.join(losses)}"
        )
        rounds, best = run_rounds(cfg, start, losses, launch, accuracy, state_path, known)
        if best["dev_accuracy"] <= start["dev_accuracy"]:
            # No round beat the starting policy on dev: Phase C keeps it rather than a worse model.
            best = start | {
                "checkpoint": resolve_checkpoint(cfg, cfg.rollout.policy).path,
                "spec": cfg.rollout.policy,
                "loss": None,
            }
            print(f"loop: no round beat {cfg.rollout.policy} on dev; phaseC keeps {cfg.rollout.policy}")
        phase_c = keep_as_phase_c(cfg, best, start)
        plot_loop(rounds, loop_dir / "loop.png")
        write_state(state_path, rounds, best, known)
        run.outputs(state_path, loop_dir / "loop.png")
        run.extra["best_round"] = best["round"]
        print(
            f"loop: best round {best['round']} ({best['loss'] or best['spec']}, dev {best['dev_accuracy']:.1%}, "
            f"start {start['dev_accuracy']:.1%}) copied to {shown(phase_c)}; per-round table in {shown(state_path)}"
        )


if __name__ == "__main__":
    run_main(main)
