"""Stage 09's grade-only mode: grade answers produced elsewhere (another framework, an API model)
with the task's own answer extraction and statistics; no model is loaded.

    python scripts/09_eval_platinum.py --grade-only FILE.jsonl --task gsm8k --out GRADED.jsonl
"""

from __future__ import annotations

from common.config import Config, shown
from common.data.tasks import Task
from common.errors import DataError
from common.eval.evaluate import summarize
from common.jsonl import read_jsonl, write_jsonl


def grade_only(cfg: Config, task: Task, path: str, out_path: str) -> None:
    """Grade outputs produced elsewhere; gold from the row, or by id from the test split."""
    rows = read_jsonl(path)
    if not rows:
        raise DataError(f"{path} has no predictions to grade")
    # Code is graded by its tests, looked up by id; other tasks may carry their gold in the row.
    by_id = task.answer_kind == "code"
    need_lookup = by_id or any("gold" not in r for r in rows)
    test_path = cfg.run.data_dir / "test.jsonl"
    if need_lookup and test_path.is_file():
        gold_by_id = {q["id"]: q["answer"] for q in read_jsonl(test_path)}
    elif need_lookup:
        gold_by_id = {
            q["id"]: q["answer"]
            for q in task.load_split("test", task.sources(cfg.data.dataset_path, cfg.data.test_path)[1])
        }
    else:
        gold_by_id = {}
    golds, unknown = [], []
    for i, row in enumerate(rows):
        if "output" not in row or "id" not in row:
            raise DataError(f"{path}:{i + 1}: a row needs 'id' and 'output'")
        if "gold" in row and not by_id:
            golds.append(
                task.normalize({"question": "-", "answer": row["gold"]}, f"{path}:{i + 1}")["answer"]
            )
        else:
            golds.append(gold_by_id.get(row["id"]))
        if golds[-1] is None:  # counted as wrong, never dropped from the denominator
            unknown.append(row["id"])
    known = [i for i, gold in enumerate(golds) if gold is not None]
    grades = dict(
        zip(
            known,
            task.grade_many([rows[i]["output"] for i in known], [golds[i] for i in known], desc="grade"),
            strict=True,
        )
    )
    graded = [
        {"id": row["id"], **grades[i], "gold": golds[i]}
        if i in grades
        else {
            "id": row["id"],
            "pred": task.extract_answer(row["output"]),
            "correct": False,
            "parse_ok": False,
            "gold": None,
            "unknown_id": True,
        }
        for i, row in enumerate(rows)
    ]
    write_jsonl(out_path, graded)
    s = summarize(task, graded)
    print(
        f"graded {s['n']} rows: accuracy {s['accuracy']:.1%} (95% CI {s['ci95'][0]:.1%}–"
        f"{s['ci95'][1]:.1%}), parse failures {s['parse_failures']}; wrote {shown(out_path)}"
    )
    if unknown:
        print(
            f"{len(unknown)} rows have ids not in the test split and no gold (e.g. "
            f"{', '.join(unknown[:3])}); they count as wrong"
        )
