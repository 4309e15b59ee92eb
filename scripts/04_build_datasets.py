"""Stage 04: validate the teacher against gold and build the training sets, so that the seed's
Phase B failure (filtering that skewed the classes, train/eval format drift) cannot pass silently.

Reads data/RUN/sample_train.jsonl, dev.jsonl, student_drafts.jsonl, teacher_outputs.jsonl.
Writes train_baseline.jsonl (Track A), train_cot.jsonl (Track B), dev_baseline.jsonl, dev_cot.jsonl,
pairs.jsonl, sharegpt_baseline.jsonl, sharegpt_cot.jsonl, teacher_heldout.jsonl, data_report.json.
"""

import random
import time
from collections import Counter

from common.config import load_config, print_config, shown
from common.data.prompts import build_target, mentions_hint, teacher_steps
from common.data.records import preference_record, sft_record, to_sharegpt
from common.data.sampling import class_counts, rebalance, stratified_indices
from common.data.tasks import get_task
from common.data.validation import REASONS, agreement_stats, class_share, length_stats, reason
from common.errors import BudgetReached, DataError, run_main
from common.jsonl import JsonlAppender, read_jsonl, write_json, write_jsonl
from common.manifest import write_manifest
from common.models.loading import load_tokenizer
from common.teacher.backends import Job, make_teacher
from common.teacher.runner import ask_teacher

MAX_MAJORITY = 0.60


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {row["id"]: row for row in rows}


def check_ids(sample: list[dict], rows: dict, path, made_by: str) -> None:
    """Every sampled id must have a row; extra rows are reported and ignored."""
    wanted = {q["id"] for q in sample}
    missing = sorted(wanted - rows.keys())
    extra = sorted(rows.keys() - wanted)
    if missing:
        raise DataError(
            f"{path} lacks {len(missing)} of {len(wanted)} sampled ids (e.g. {', '.join(missing[:3])}); "
            f"run `make {made_by}` to complete it"
        )
    if extra:
        print(
            f"note: {shown(path)} has {len(extra)} rows for ids not in the sample "
            f"(e.g. {', '.join(extra[:3])}); ignored"
        )


def hint_for(task, gold: str) -> str:
    return gold.upper() if task.answer_kind == "yesno" else gold


def rationalize(cfg, task, disputed: list[dict], path, ledger_path) -> dict[str, dict]:
    """STaR: ask again with the gold answer as a hint; keep a rationale that now reaches gold and
    does not give the hint away. Resumable, cached and budgeted like stage 03."""
    with JsonlAppender(path) as store:
        store.retain(lambda row: row["status"] != "api_error")
        todo = [ex for ex in disputed if ex["id"] not in store]
        if todo:
            teacher = make_teacher(cfg.teacher, task, cfg.run.random_seed)
            jobs = [
                Job(
                    ex["id"],
                    0,
                    task.build_teacher_messages(ex["question"], ex["draft"], hint_for(task, ex["answer"])),
                    ex,
                    hint=hint_for(task, ex["answer"]),
                )
                for ex in todo
            ]

            def on_reply(job, reply):
                answer = task.extract_answer(reply.text) if reply.status == "ok" else None
                leaky = mentions_hint(reply.text)
                store.append(
                    {
                        "id": job.id,
                        "status": reply.status,
                        "text": reply.text,
                        "answer": answer,
                        "leaky": leaky,
                        "error": reply.error,
                        "accepted": task.is_correct(answer, job.example["answer"]) and not leaky,
                    }
                )

            budget = ask_teacher(cfg.teacher, teacher, jobs, on_reply, ledger_path, desc="rationalize")
            if budget.exhausted:
                raise BudgetReached(
                    f"MAX_COST_USD={cfg.teacher.max_cost_usd} reached while rationalizing; "
                    f"raise it and re-run `make datasets` to continue"
                )
        return {ex["id"]: store.rows[ex["id"]] for ex in disputed if ex["id"] in store.rows}


def token_lengths(tokenizer, records: list[dict]) -> list[int]:
    if tokenizer is None:  # no tokenizer here: about four characters a token
        return [sum(len(t["content"]) for t in r["prompt"] + r["completion"]) // 4 for r in records]
    return [
        len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], return_dict=True)["input_ids"])
        for r in records
    ]


def main() -> None:
    started = time.time()
    cfg, _ = load_config()
    print_config(cfg, "04 build datasets")
    task = get_task(cfg.run.task)
    d = cfg.run.data_dir
    paths_in = {
        name: d / f"{name}.jsonl" for name in ("sample_train", "dev", "student_drafts", "teacher_outputs")
    }
    sample = read_jsonl(paths_in["sample_train"], made_by="sample")
    dev = read_jsonl(paths_in["dev"], made_by="sample")
    drafts = by_id(read_jsonl(paths_in["student_drafts"], made_by="drafts"))
    teacher = by_id(read_jsonl(paths_in["teacher_outputs"], made_by="teacher"))
    check_ids(sample, teacher, paths_in["teacher_outputs"], "teacher")
    check_ids(sample + dev, drafts, paths_in["student_drafts"], "drafts")

    def draft_of(ex_id: str) -> str | None:
        return drafts[ex_id]["draft"] if cfg.teacher.with_draft else None

    # 1. Validate every teacher answer against gold.
    reasons = {q["id"]: reason(task, teacher[q["id"]]) for q in sample}
    examples = {q["id"]: q | {"draft": draft_of(q["id"])} for q in sample}
    kept = [
        examples[i] | {"steps": teacher_steps(teacher[i]["text"]), "source": "teacher"}
        for i in examples
        if reasons[i] == "ok"
    ]

    # 2. The disagreement policy for wrong or unparseable answers.
    disputed = [examples[i] for i in examples if reasons[i] in ("wrong", "unparseable")]
    policy = {"disagreement": cfg.data.disagreement, "disputed": len(disputed)}
    if cfg.data.disagreement == "gold":
        kept += [
            ex | {"steps": teacher_steps(teacher[ex["id"]]["text"]), "source": "gold_corrected"}
            for ex in disputed
        ]
        policy["gold_corrected"] = len(disputed)
    elif cfg.data.disagreement == "rationalize" and disputed:
        results = rationalize(cfg, task, disputed, d / "rationalized.jsonl", d / "teacher_cost.jsonl")
        accepted = [ex for ex in disputed if results.get(ex["id"], {}).get("accepted")]
        kept += [
            ex | {"steps": teacher_steps(results[ex["id"]]["text"]), "source": "rationalized"}
            for ex in accepted
        ]
        policy |= {
            "rationalized": len(accepted),
            "leaky_rejected": sum(r["leaky"] for r in results.values()),
            "still_wrong": len(disputed) - len(accepted),
        }

    # 3. REPAIRITY's held-out split of the teacher data, then 4. class balance on the rest.
    rng = random.Random(cfg.run.random_seed)
    labels = [task.label(ex) for ex in kept]
    n_heldout = round(cfg.data.heldout_fraction * len(kept))
    held_idx = set(stratified_indices(labels, n_heldout, rng)) if kept else set()
    heldout = [ex for i, ex in enumerate(kept) if i in held_idx]
    train = [ex for i, ex in enumerate(kept) if i not in held_idx]
    source_share = class_share([task.label(q) for q in sample])
    if task.answer_kind == "yesno":
        train = rebalance(train, [task.label(ex) for ex in train], source_share, cfg.data.balance, rng)
    train_share = class_share([task.label(ex) for ex in train])

    teacher_reasons = Counter(reasons.values())
    report = {
        "task": cfg.run.task,
        "teacher": {r: teacher_reasons.get(r, 0) for r in REASONS}
        | {"quality_rate": round(teacher_reasons["ok"] / len(sample), 4)},
        "agreement": agreement_stats([teacher[q["id"]] for q in sample]),
        "policy": policy,
        "kept_by_source": dict(Counter(ex["source"] for ex in kept)),
        "heldout": len(heldout),
        "classes": {
            "sample": source_share,
            "kept": class_share(labels),
            "train": train_share,
            "train_counts": class_counts([task.label(ex) for ex in train]),
        },
        "balance": cfg.data.balance,
        "refused": None,
    }
    report_path = d / "data_report.json"

    def refuse(why: str) -> None:
        report["refused"] = why
        write_json(report_path, report)
        raise DataError(f"{why} (report: {shown(report_path)})")

    if not train:
        refuse(
            f"no training examples survived DISAGREEMENT={cfg.data.disagreement} "
            f"({dict(teacher_reasons)}); check the teacher outputs or use DISAGREEMENT=rationalize"
        )
    majority, share = max(train_share.items(), key=lambda kv: kv[1]) if train_share else ("", 0)
    if share > MAX_MAJORITY and not cfg.data.allow_imbalance:
        refuse(
            f"the training set would be {share:.1%} '{majority}' (the sample is "
            f"{source_share.get(majority, 0):.1%}) after DISAGREEMENT={cfg.data.disagreement} "
            f"removed {len(sample) - len(kept)} questions; this is how the seed's Phase B failed. "
            f"Use BALANCE=upsample or DISAGREEMENT=rationalize, or ALLOW_IMBALANCE=1"
        )

    # 5. Records: Track A (answer only), Track B (reasoning), preference pairs, exports.
    strategy = cfg.data.reasoning_strategy

    def track_a(ex):
        return sft_record(
            ex["id"],
            task.build_messages(ex["question"], "none"),
            build_target("none", ex["answer"], []),
            source=ex.get("source", "gold"),
        )

    def track_b(ex, steps):
        return sft_record(
            ex["id"],
            task.build_messages(ex["question"], strategy, ex.get("draft")),
            build_target(strategy, ex["answer"], steps, ex.get("decomposition")),
            source=ex.get("source", "gold"),
        )

    dev_examples = [q | {"draft": draft_of(q["id"])} for q in dev]
    out = {
        "train_baseline": [track_a(ex) for ex in train],
        "train_cot": [track_b(ex, ex["steps"]) for ex in train],
        "dev_baseline": [track_a(q) for q in dev_examples],
        "dev_cot": [track_b(q, task.rationale_steps(q)) for q in dev_examples],
        "teacher_heldout": [track_b(ex, ex["steps"]) for ex in heldout],
    }
    pairs, skipped = [], 0
    for ex, record in zip(train, out["train_cot"], strict=True):
        draft = drafts[ex["id"].split("#dup")[0]]
        if "#dup" in ex["id"] or task.is_correct(draft["parsed_answer"], ex["answer"]):
            continue
        if not draft["draft"].strip():
            skipped += 1
            continue
        pairs.append(
            preference_record(
                ex["id"],
                record["prompt"],
                record["completion"][0]["content"],
                draft["draft"],
                "teacher_over_draft",
            )
        )
    out["pairs"] = pairs
    out["sharegpt_baseline"] = [to_sharegpt(r) for r in out["train_baseline"]]
    out["sharegpt_cot"] = [to_sharegpt(r) for r in out["train_cot"]]

    try:
        tokenizer = load_tokenizer(cfg.model.model_name, cfg.model)
    except (OSError, ValueError):
        tokenizer = None
    report["tokens"] = {
        name: length_stats(token_lengths(tokenizer, out[name]), cfg.train.max_length)
        for name in ("train_baseline", "train_cot")
    }
    report["tokens"]["counted_with"] = "student tokenizer" if tokenizer else "characters / 4"
    report["pairs"] = {"written": len(pairs), "skipped_empty_draft": skipped}
    report["counts"] = {name: len(rows) for name, rows in out.items()}

    written = []
    for name, rows in out.items():
        written.append(d / f"{name}.jsonl")
        write_jsonl(written[-1], rows)
    write_json(report_path, report)
    inputs = {name: path for name, path in paths_in.items()}
    manifest = write_manifest(
        d, "datasets", cfg, inputs, written + [report_path], {"report": report}, started
    )

    t = report["teacher"]
    print(
        f"\nteacher vs gold ({len(sample)} questions): "
        + ", ".join(f"{r} {t[r]}" for r in REASONS)
        + f"; quality rate {t['quality_rate']:.1%}"
    )
    print(f"policy {policy}; kept {report['kept_by_source']}; held out {len(heldout)}")
    if task.answer_kind == "yesno":
        print(
            f"classes: sample {source_share}, kept {report['classes']['kept']}, "
            f"train {train_share} (BALANCE={cfg.data.balance})"
        )
    for name in ("train_baseline", "train_cot"):
        s = report["tokens"][name]
        print(
            f"tokens {name:<15} mean {s['mean']}, p95 {s['p95']}, max {s['max']}, "
            f"over MAX_LENGTH={cfg.train.max_length}: {s['over_max_length']}"
        )
    print("wrote " + ", ".join(f"{n} ({len(r)})" for n, r in out.items()))
    print(f"report {shown(report_path)}; manifest {shown(manifest)}")


if __name__ == "__main__":
    run_main(main)
