"""`make loop`: the self-improvement loop (the seed plan's self-guided loop, Iterative RPO's recipe).

Each round: the current policy samples rollouts and pairs (stage 07); Phase C trains from that
policy, once per loss in LOOP_LOSSES, on the same pairs (stage 08); each result answers the dev
split greedily, and the best on dev becomes the next round's policy and reference. The loop stops
after ITERATIONS rounds, or after LOOP_PATIENCE rounds without a dev gain over the best so far; the
best round is copied to checkpoints/RUN/phaseC. Test accuracy is never looked at here.

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
import time
from pathlib import Path

from common.config import load_config, print_config, shown, split_list
from common.data.tasks import get_task
from common.errors import LooperError, run_main
from common.eval.evaluate import answer_questions, resolve_checkpoint, summarize
from common.jsonl import read_jsonl, write_json
from common.manifest import write_manifest
from common.models.loading import load_model
from common.plots import plot_loop
from common.rollout.drafts import read_draft_texts

SCRIPTS = Path(__file__).resolve().parent


def run_stage(script: str, launch: list[str], **env: str) -> None:
    """One stage as its own process, so it keeps its own resume, manifest and launcher."""
    print(f"\n== loop: {script} " + " ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    rc = subprocess.run([*launch, str(SCRIPTS / script)], env=os.environ | env).returncode
    if rc != 0:
        raise SystemExit(rc)


def dev_accuracy(cfg, task, spec: str, dev: list[dict], drafts: dict) -> float:
    checkpoint = resolve_checkpoint(cfg, spec)
    model, tokenizer = load_model(checkpoint.path, cfg)
    use = drafts if checkpoint.with_draft else None
    rows = answer_questions(cfg, model, tokenizer, task, dev, checkpoint, use, f"dev {checkpoint.name}")
    return round(summarize(task, rows)["accuracy"], 4)


def main() -> None:
    started = time.time()
    cfg, _ = load_config()
    print_config(cfg, "loop")
    task = get_task(cfg.run.task)
    losses = split_list(cfg.rollout.loop_losses) or [cfg.dpo.dpo_loss]
    launch = shlex.split(os.environ.get("LOOPER_LAUNCH", "")) or [sys.executable]
    dev_path = cfg.run.data_dir / "dev.jsonl"
    dev = read_jsonl(dev_path, made_by="sample")
    if not dev:
        raise LooperError(f"{shown(dev_path)} is empty; the loop picks rounds on dev: set DEV_SAMPLES")
    drafts = read_draft_texts(cfg)
    loop_dir = cfg.run.checkpoint_dir / "loop"
    loop_dir.mkdir(parents=True, exist_ok=True)
    state_path = loop_dir / "loop.json"
    known = {}  # checkpoint -> dev accuracy, kept from a killed run (RESUME=0 forgets them)
    if state_path.is_file() and cfg.train.resume:
        known = json.loads(state_path.read_text()).get("dev_accuracy", {})

    def accuracy(spec: str) -> float:
        if spec not in known:
            known[spec] = dev_accuracy(cfg, task, spec, dev, drafts)
        return known[spec]

    policy = cfg.rollout.policy
    start = {"round": 0, "policy": policy, "dev_accuracy": accuracy(policy)}
    rounds, best, best_accuracy, stale = [start], None, start["dev_accuracy"], 0
    print(
        f"loop: start from {policy}, dev accuracy {start['dev_accuracy']:.1%}; up to "
        f"{cfg.rollout.iterations} rounds, losses {', '.join(losses)}"
    )
    for n in range(1, cfg.rollout.iterations + 1):
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
        chosen = candidates[loss]
        report = read_json_if(cfg.run.data_dir / subdir / "rollout_report.json")
        rounds.append(
            {
                "round": n,
                "policy": policy,
                "loss": loss,
                **chosen,
                "candidates": candidates,
                "pairs": report.get("pairs", {}),
                "trajectory_accuracy": report.get("trajectory_accuracy"),
            }
        )
        print(
            f"loop: round {n}: "
            + ", ".join(f"{k} {v['dev_accuracy']:.1%}" for k, v in candidates.items())
            + f" -> {loss}"
        )
        if best is None or chosen["dev_accuracy"] > best["dev_accuracy"]:
            best = rounds[-1]
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

    if best["dev_accuracy"] <= start["dev_accuracy"]:
        # No round beat the starting policy on dev: Phase C keeps it rather than a worse model.
        best = start | {
            "checkpoint": resolve_checkpoint(cfg, start["policy"]).path,
            "spec": start["policy"],
            "loss": None,
        }
        print(f"loop: no round beat {start['policy']} on dev; phaseC keeps {start['policy']}")
    phase_c = cfg.run.checkpoint_dir / "phaseC"
    if phase_c.exists():  # keep what was there: a `make dpo` result is not thrown away
        aside = cfg.run.checkpoint_dir / "phaseC.before-loop"
        shutil.rmtree(aside, ignore_errors=True)
        phase_c.rename(aside)
        print(f"loop: moved the previous {shown(phase_c)} to {shown(aside)}")
    shutil.copytree(best["checkpoint"], phase_c)
    selection = {
        "source": shown(best["checkpoint"]),
        "spec": best["spec"],
        "round": best["round"],
        "loss": best["loss"],
        "dev_accuracy": best["dev_accuracy"],
        "start_dev_accuracy": start["dev_accuracy"],
    }
    write_json(phase_c / "selection.json", selection)
    plot_loop(rounds, loop_dir / "loop.png")
    write_state(state_path, rounds, best, known)
    write_manifest(
        loop_dir,
        "loop",
        cfg,
        {"dev": dev_path},
        [state_path, loop_dir / "loop.png"],
        {"best_round": best["round"]},
        started,
    )
    print(
        f"loop: best round {best['round']} ({best['loss'] or best['spec']}, dev {best['dev_accuracy']:.1%}, start "
        f"{start['dev_accuracy']:.1%}) copied to {shown(phase_c)}; per-round table in {shown(state_path)}"
    )


def read_json_if(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(path: Path, rounds: list[dict], best: dict, known: dict) -> None:
    write_json(path, {"rounds": rounds, "best_round": best["round"], "dev_accuracy": known})


if __name__ == "__main__":
    run_main(main)
