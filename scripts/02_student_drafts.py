"""Stage 02: the student's first draft for each sampled question, in the seed's format
`Answer: <answer> - <reasoning>` / `Questions: <q>? <q>?`, parsed into its parts.

Reads data/RUN/sample_train.jsonl and dev.jsonl (dev drafts keep the dev prompts in the training
format); appends data/RUN/student_drafts.jsonl (resumes by id).
"""

import time

from common.config import load_config, print_config, shown
from common.data.tasks import get_task
from common.errors import run_main
from common.jsonl import read_jsonl
from common.manifest import write_manifest
from common.rollout.drafts import write_drafts


def main() -> None:
    started = time.time()
    cfg, _ = load_config()
    print_config(cfg, "02 student drafts")
    task = get_task(cfg.run.task)
    sample_path, dev_path = cfg.run.data_dir / "sample_train.jsonl", cfg.run.data_dir / "dev.jsonl"
    questions = read_jsonl(sample_path, made_by="sample") + read_jsonl(dev_path, made_by="sample")
    out_path = cfg.run.data_dir / "student_drafts.jsonl"

    drafts = write_drafts(cfg, task, questions, out_path, cfg.model.model_name)
    rows = [drafts[q["id"]] for q in questions]

    parsed = sum(r["parse_ok"] for r in rows)
    correct = sum(
        task.is_correct(r["parsed_answer"], q["answer"]) for r, q in zip(rows, questions, strict=True)
    )
    stats = {
        "drafts": len(rows),
        "parse_ok": parsed,
        "draft_answer_correct": correct,
        "truncated": sum(r["truncated"] for r in rows),
    }
    manifest = write_manifest(
        cfg.run.data_dir,
        "drafts",
        cfg,
        {"sample_train": sample_path, "dev": dev_path, "model": cfg.model.model_name},
        [out_path],
        {"stats": stats},
        started,
    )
    print(
        f"drafts: {len(rows)}, parsed {parsed} ({parsed / len(rows):.0%}), "
        f"draft answer correct {correct} ({correct / len(rows):.0%})"
    )
    print(f"wrote {shown(out_path)}; manifest {shown(manifest)}")


if __name__ == "__main__":
    run_main(main)
