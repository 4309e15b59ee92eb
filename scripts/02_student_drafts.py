"""Stage 02: the student's first draft for each sampled question, in the drafting format
`Answer: <answer> - <reasoning>` / `Questions: <q>? <q>?`, parsed into its parts.

Reads data/RUN/sample_train.jsonl and dev.jsonl (dev drafts keep the dev prompts in the training
format); appends data/RUN/student_drafts.jsonl (resumes by id).
"""

from common.config import load_config, shown
from common.data.tasks import get_task
from common.errors import run_main
from common.jsonl import read_jsonl
from common.rollout.drafts import write_drafts
from common.stage import stage_run


def draft_stats(task, questions: list[dict], rows: list[dict]) -> dict:
    return {
        "drafts": len(rows),
        "parse_ok": sum(r["parse_ok"] for r in rows),
        "draft_answer_correct": sum(
            task.is_correct(r["parsed_answer"], q["answer"]) for r, q in zip(rows, questions, strict=True)
        ),
        "truncated": sum(r["truncated"] for r in rows),
    }


def main() -> None:
    cfg, _ = load_config()
    task = get_task(cfg.run.task)
    sample_path, dev_path = cfg.run.data_dir / "sample_train.jsonl", cfg.run.data_dir / "dev.jsonl"
    inputs = {"sample_train": sample_path, "dev": dev_path, "model": cfg.model.model_name}
    with stage_run(cfg, "drafts", "02 student drafts", cfg.run.data_dir, inputs) as run:
        questions = read_jsonl(sample_path, made_by="sample") + read_jsonl(dev_path, made_by="sample")
        out_path = cfg.run.data_dir / "student_drafts.jsonl"
        drafts = write_drafts(cfg, task, questions, out_path, cfg.model.model_name)
        stats = draft_stats(task, questions, [drafts[q["id"]] for q in questions])
        run.outputs(out_path)
        run.extra["stats"] = stats
        n, parsed, correct = stats["drafts"], stats["parse_ok"], stats["draft_answer_correct"]
        print(
            f"drafts: {n}, parsed {parsed} ({parsed / n:.0%}), draft answer correct {correct} ({correct / n:.0%})"
        )
        print(f"wrote {shown(out_path)}")


if __name__ == "__main__":
    run_main(main)
