"""The student's drafts (answer, brief reasoning, clarifying questions), generated in batches and
appended by id so an interrupted run resumes: stage 02 for train/dev, stage 09 for test."""

from __future__ import annotations

from pathlib import Path

from common.config import TINY_MODEL_DIR, Config, shown
from common.data.prompts import parse_draft, render_prompt
from common.data.tasks import Task
from common.fingerprint import hash_input, keep_rows, model_identity, row_fp
from common.jsonl import JsonlAppender, read_jsonl
from common.models.generation import generate_batches
from common.models.loading import load_model


def read_draft_texts(cfg: Config) -> dict[str, str]:
    """{id: draft text} from stage 02's data/RUN/student_drafts.jsonl."""
    rows = read_jsonl(cfg.run.data_dir / "student_drafts.jsonl", made_by="drafts")
    return {r["id"]: r["draft"] for r in rows}


def write_drafts(
    cfg: Config,
    task: Task,
    questions: list[dict],
    path: Path,
    model_path: str,
    weights: str = "",
    loaded: tuple | None = None,
) -> dict:
    """Draft every question not yet in `path` with `model_path`; return {id: draft row}.

    `weights` (a hash of a trained checkpoint's files) goes into each row's fingerprint, so a
    retrained checkpoint redrafts; `loaded` is (model, tokenizer) when the caller holds them already.
    """
    fp = row_fp(cfg, "drafts", model_identity(model_path, cfg.run.base_dir), *([weights] if weights else []))
    with JsonlAppender(path) as drafts:
        keep_rows(drafts, lambda row: fp, "drafts")
        todo = [q for q in questions if q["id"] not in drafts]
        print(f"{len(questions) - len(todo)} drafts already done, {len(todo)} to generate")
        if todo:
            made_by = "tiny-model" if model_path.endswith(TINY_MODEL_DIR) else "setup"
            model, tokenizer = loaded or load_model(model_path, cfg, made_by=made_by)
            prompts = [render_prompt(tokenizer, task.build_draft_messages(q["question"])) for q in todo]
            batches = generate_batches(
                model,
                tokenizer,
                prompts,
                cfg.generation.draft_max_new_tokens,
                batch_size=cfg.generation.gen_batch_size,
                temperature=cfg.generation.draft_temperature,
                seed=cfg.run.random_seed,
                desc="drafts",
            )
            for batch in batches:
                for i, gen in batch:
                    parts = parse_draft(gen.text)
                    answer = task.extract_answer(f"Answer: {parts['draft_answer']}")
                    drafts.append(
                        {
                            "id": todo[i]["id"],
                            "draft": gen.text,
                            **parts,
                            "parsed_answer": answer,
                            "parse_ok": answer is not None and bool(parts["questions"]),
                            "new_tokens": gen.new_tokens,
                            "truncated": gen.truncated,
                            "model": shown(model_path),
                            "fp": fp,
                        }
                    )
        return {q["id"]: drafts.rows[q["id"]] for q in questions}


def drafts_file(folder: Path, prefix: str, checkpoint_name: str) -> Path:
    """Where a checkpoint's own drafts go: FOLDER/PREFIX_NAME.jsonl; a loop name's '/' is made safe
    and a checkpoint given as an absolute folder is named by its last part."""
    name = Path(checkpoint_name).name if Path(checkpoint_name).is_absolute() else checkpoint_name
    return folder / f"{prefix}_{name.replace('/', '_').replace(' ', '_')}.jsonl"


def own_drafts(
    cfg: Config,
    task: Task,
    questions: list[dict],
    path: Path,
    checkpoint_path: str,
    loaded: tuple | None = None,
) -> dict:
    """DRAFTS_FROM=policy: the checkpoint drafts for itself (answer and clarifying questions), so the
    phase answers with its own draft and needs no base model beside it. Returns {id: draft row}."""
    return write_drafts(cfg, task, questions, path, checkpoint_path, hash_input(checkpoint_path), loaded)
