"""Stage 02: the student's first draft for each sampled question, in the seed's format
`Answer: <answer> - <reasoning>` / `Questions: <q>? <q>?`, parsed into its parts.

Reads data/RUN/sample_train.jsonl and dev.jsonl (dev drafts keep the dev prompts in the training
format); appends data/RUN/student_drafts.jsonl (resumes by id).
"""

import time

from common.config import TINY_MODEL_DIR, load_config, print_config, shown
from common.errors import run_main
from common.generation import generate_batches
from common.jsonl import JsonlAppender, read_jsonl
from common.manifest import write_manifest
from common.modeling import load_model
from common.prompts import parse_draft, render_prompt
from common.tasks import get_task


def main() -> None:
    started = time.time()
    cfg, _ = load_config()
    print_config(cfg, "02 student drafts")
    task = get_task(cfg.task)
    sample_path, dev_path = cfg.data_dir / "sample_train.jsonl", cfg.data_dir / "dev.jsonl"
    questions = read_jsonl(sample_path, made_by="sample") + read_jsonl(dev_path, made_by="sample")
    out_path = cfg.data_dir / "student_drafts.jsonl"

    with JsonlAppender(out_path) as drafts:
        todo = [q for q in questions if q["id"] not in drafts]
        print(f"{len(questions) - len(todo)} drafts already done, {len(todo)} to generate")
        if todo:
            made_by = "tiny-model" if cfg.model.endswith(TINY_MODEL_DIR) else "setup"
            model, tokenizer = load_model(cfg.model, cfg, made_by=made_by)
            prompts = [
                render_prompt(tokenizer, task.build_draft_messages(q["question"])) for q in todo
            ]
            batches = generate_batches(
                model, tokenizer, prompts, cfg.draft_max_new_tokens, batch_size=cfg.gen_batch_size,
                temperature=cfg.draft_temperature, seed=cfg.random_seed, desc="drafts",
            )  # fmt: skip
            for batch in batches:
                for i, gen in batch:
                    parts = parse_draft(gen.text)
                    answer = task.extract_answer(f"Answer: {parts['draft_answer']}")
                    drafts.append({
                        "id": todo[i]["id"],
                        "draft": gen.text,
                        **parts,
                        "parsed_answer": answer,
                        "parse_ok": answer is not None and bool(parts["questions"]),
                        "new_tokens": gen.new_tokens,
                        "truncated": gen.truncated,
                        "model": shown(cfg.model),
                    })  # fmt: skip
        rows = [drafts.rows[q["id"]] for q in questions]

    parsed = sum(r["parse_ok"] for r in rows)
    correct = sum(
        task.is_correct(r["parsed_answer"], q["answer"])
        for r, q in zip(rows, questions, strict=True)
    )
    stats = {"drafts": len(rows), "parse_ok": parsed, "draft_answer_correct": correct,
             "truncated": sum(r["truncated"] for r in rows)}  # fmt: skip
    manifest = write_manifest(cfg.data_dir, "drafts", cfg, {"sample_train": sample_path, "dev": dev_path, "model": cfg.model},
                              [out_path], {"stats": stats}, started)  # fmt: skip
    print(f"drafts: {len(rows)}, parsed {parsed} ({parsed / len(rows):.0%}), "
          f"draft answer correct {correct} ({correct / len(rows):.0%})")  # fmt: skip
    print(f"wrote {shown(out_path)}; manifest {shown(manifest)}")


if __name__ == "__main__":
    run_main(main)
