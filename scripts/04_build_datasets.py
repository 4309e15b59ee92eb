"""Stage 04: validate the teacher against gold and build the training sets of Phase A and Phase B,
so that a filtering step that skews the classes, or a train/eval format drift, cannot pass silently.

Only reads files; never calls the teacher (DISAGREEMENT=rationalize reads the STaR rationales that
stage 03 stored with each disputed answer). Its steps, in order: validate the teacher's answers,
apply the disagreement policy, hold out part of the teacher data, balance the classes, build the
records, export them and report.

Reads data/RUN/sample_train.jsonl, dev.jsonl, student_drafts.jsonl, teacher_outputs.jsonl.
Writes train_phaseA.jsonl (Phase A, answer only), train_phaseB.jsonl (Phase B, reasoning),
dev_phaseA.jsonl, dev_phaseB.jsonl, pairs.jsonl, sharegpt_phaseA.jsonl, sharegpt_phaseB.jsonl,
teacher_heldout.jsonl (with each question and its gold answer, which stage 09 grades against),
data_report.json: into data/RUN/, or data/RUN/DATASETS_SUBDIR/ (make sweep: one set per strategy).
"""

import random
from collections import Counter

from common.config import load_config, shown
from common.data.records import preference_record, sft_record, to_sharegpt
from common.data.sampling import class_counts, rebalance, stratified_indices
from common.data.tasks import get_task
from common.data.validation import REASONS, agreement_stats, class_share, length_stats, reason
from common.errors import DataError, run_main
from common.jsonl import read_jsonl, write_json, write_jsonl
from common.models.loading import load_tokenizer
from common.outputs import staged_outputs
from common.stage import stage_run

MAX_MAJORITY = 0.60
INPUTS = ("sample_train", "dev", "student_drafts", "teacher_outputs")


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


def read_inputs(cfg, paths: dict) -> tuple[list[dict], list[dict], dict, dict]:
    sample = read_jsonl(paths["sample_train"], made_by="sample")
    dev = read_jsonl(paths["dev"], made_by="sample")
    drafts = by_id(read_jsonl(paths["student_drafts"], made_by="drafts"))
    teacher = by_id(read_jsonl(paths["teacher_outputs"], made_by="teacher"))
    check_ids(sample, teacher, paths["teacher_outputs"], "teacher")
    check_ids(sample + dev, drafts, paths["student_drafts"], "drafts")
    return sample, dev, drafts, teacher


def taught(task, ex: dict, reply: dict, source: str) -> dict:
    """An example with the teacher's reasoning steps; for code also the teacher's own program,
    which its tests passed (a gold-corrected one keeps the canonical solution)."""
    program = (
        {"program": reply["answer"]} if task.answer_kind == "code" and source != "gold_corrected" else {}
    )
    return ex | {"steps": task.steps_from_teacher(reply["text"]), "source": source} | program


def validate(task, examples: dict, teacher: dict) -> tuple[dict, list[dict]]:
    """Step 1: each teacher answer against gold; the examples whose answer is right, with its steps."""
    # A code task runs the teacher's programs against their tests, in parallel, once.
    task.check_many([teacher[i]["answer"] for i in examples], [teacher[i]["gold"] for i in examples])
    reasons = {i: reason(task, teacher[i]) for i in examples}
    kept = [taught(task, examples[i], teacher[i], "teacher") for i in examples if reasons[i] == "ok"]
    return reasons, kept


def apply_disagreement(cfg, task, examples: dict, reasons: dict, teacher: dict) -> tuple[list[dict], dict]:
    """Step 2: the DISAGREEMENT policy for wrong or unparseable answers: drop them, keep the
    reasoning with the gold answer, or keep stage 03's accepted STaR rationale (Zelikman et al.
    2022, arXiv:2203.14465)."""
    disputed = [examples[i] for i in examples if reasons[i] in ("wrong", "unparseable")]
    policy = {"disagreement": cfg.data.disagreement, "disputed": len(disputed)}
    if cfg.data.disagreement == "gold":
        policy["gold_corrected"] = len(disputed)
        return [taught(task, ex, teacher[ex["id"]], "gold_corrected") for ex in disputed], policy
    if cfg.data.disagreement != "rationalize" or not disputed:
        return [], policy
    missing = [ex["id"] for ex in disputed if "rationalization" not in teacher[ex["id"]]]
    if missing:
        raise DataError(
            f"{len(missing)} disputed teacher answers have no rationalization (e.g. "
            f"{', '.join(missing[:3])}); run `make teacher DISAGREEMENT=rationalize` first"
        )
    results = {ex["id"]: teacher[ex["id"]]["rationalization"] for ex in disputed}
    accepted = [ex for ex in disputed if results[ex["id"]].get("accepted")]
    policy |= {
        "rationalized": len(accepted),
        "leaky_rejected": sum(bool(r.get("leaky")) for r in results.values()),
        "still_wrong": len(disputed) - len(accepted),
    }
    return [taught(task, ex, results[ex["id"]], "rationalized") for ex in accepted], policy


def hold_out(cfg, task, kept: list[dict], rng) -> tuple[list[dict], list[dict]]:
    """Step 3: a stratified held-out split of the teacher data (HELDOUT_FRACTION), never trained on."""
    labels = [task.label(ex) for ex in kept]
    n_heldout = round(cfg.data.heldout_fraction * len(kept))
    held_idx = set(stratified_indices(labels, n_heldout, rng)) if kept else set()
    heldout = [ex for i, ex in enumerate(kept) if i in held_idx]
    return [ex for i, ex in enumerate(kept) if i not in held_idx], heldout


def balance(cfg, task, train: list[dict], source_share: dict, rng) -> list[dict]:
    """Step 4: for yes/no tasks, BALANCE the training set back to the sample's class ratio."""
    if task.answer_kind != "yesno":
        return train
    return rebalance(train, [task.label(ex) for ex in train], source_share, cfg.data.balance, rng)


def data_report(cfg, task, sample, teacher, reasons, policy, kept, heldout, train) -> dict:
    teacher_reasons = Counter(reasons.values())
    return {
        "task": cfg.run.task,
        "teacher": {r: teacher_reasons.get(r, 0) for r in REASONS}
        | {"quality_rate": round(teacher_reasons["ok"] / len(sample), 4)},
        "agreement": agreement_stats([teacher[q["id"]] for q in sample]),
        "policy": policy,
        "kept_by_source": dict(Counter(ex["source"] for ex in kept)),
        "heldout": len(heldout),
        "classes": {
            "sample": class_share([task.label(q) for q in sample]),
            "kept": class_share([task.label(ex) for ex in kept]),
            "train": class_share([task.label(ex) for ex in train]),
            "train_counts": class_counts([task.label(ex) for ex in train]),
        },
        "balance": cfg.data.balance,
        "refused": None,
    }


def refuse_if_unusable(cfg, report: dict, report_path, reasons: dict, n_train: int, n_removed: int) -> None:
    """Stop when nothing survived, or one class would dominate training, writing the report
    (with the reason) to `report_path`, outside the output set."""
    classes = report["classes"]

    def refuse(why: str) -> None:
        report["refused"] = why
        write_json(report_path, report)
        raise DataError(f"{why} (report: {shown(report_path)})")

    if not n_train:
        refuse(
            f"no training examples survived DISAGREEMENT={cfg.data.disagreement} "
            f"({dict(Counter(reasons.values()))}); check the teacher outputs or use DISAGREEMENT=rationalize"
        )
    majority, share = max(classes["train"].items(), key=lambda kv: kv[1]) if classes["train"] else ("", 0)
    if share > MAX_MAJORITY and not cfg.data.allow_imbalance:
        refuse(
            f"the training set would be {share:.1%} '{majority}' (the sample is "
            f"{classes['sample'].get(majority, 0):.1%}) after DISAGREEMENT={cfg.data.disagreement} "
            f"removed {n_removed} questions; trained on a class-skewed set, Phase B learns to "
            f"answer the majority class. "
            f"Use BALANCE=upsample or DISAGREEMENT=rationalize, or ALLOW_IMBALANCE=1"
        )


def build_records(cfg, task, train, heldout, dev_examples, drafts) -> tuple[dict[str, list[dict]], int]:
    """Step 5: Phase A records (answer only), Phase B records (reasoning), the teacher-over-draft
    preference pairs, and the ShareGPT exports."""
    strategy = cfg.data.reasoning_strategy

    def phase_a(ex):
        return sft_record(
            ex["id"],
            task.build_messages(ex["question"], "none"),
            task.target("none", ex, []),
            source=ex.get("source", "gold"),
        )

    def phase_b(ex, steps):
        return sft_record(
            ex["id"],
            task.build_messages(ex["question"], strategy, ex.get("draft")),
            task.target(strategy, ex, steps),
            source=ex.get("source", "gold"),
        )

    out = {
        "train_phaseA": [phase_a(ex) for ex in train],
        "train_phaseB": [phase_b(ex, ex["steps"]) for ex in train],
        "dev_phaseA": [phase_a(q) for q in dev_examples],
        "dev_phaseB": [phase_b(q, task.rationale_steps(q)) for q in dev_examples],
        # Stage 09 asks these again in each checkpoint's own format and grades the answers, so
        # each row keeps its question, gold answer and draft beside the Phase B record.
        "teacher_heldout": [
            phase_b(ex, ex["steps"])
            | {"question": ex["question"], "answer": ex["answer"], "draft": ex.get("draft")}
            for ex in heldout
        ],
    }
    out["pairs"], skipped = teacher_over_draft_pairs(task, train, out["train_phaseB"], drafts)
    out["sharegpt_phaseA"] = [to_sharegpt(r) for r in out["train_phaseA"]]
    out["sharegpt_phaseB"] = [to_sharegpt(r) for r in out["train_phaseB"]]
    return out, skipped


def teacher_over_draft_pairs(task, train, records, drafts) -> tuple[list[dict], int]:
    """The teacher's reasoning over the student's draft where the draft's answer was wrong; an empty
    draft makes no pair. Returns the pairs and the number skipped for an empty draft."""
    pairs, skipped = [], 0
    for ex, record in zip(train, records, strict=True):
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
    return pairs, skipped


def token_lengths(tokenizer, records: list[dict]) -> list[int]:
    if tokenizer is None:  # no tokenizer here: about four characters a token
        return [sum(len(t["content"]) for t in r["prompt"] + r["completion"]) // 4 for r in records]
    return [
        len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], return_dict=True)["input_ids"])
        for r in records
    ]


def add_lengths(cfg, report: dict, out: dict, skipped: int) -> None:
    try:
        tokenizer = load_tokenizer(cfg.model.model_name, cfg.model)
    except (OSError, ValueError):
        tokenizer = None
    report["tokens"] = {
        name: length_stats(token_lengths(tokenizer, out[name]), cfg.train.max_length)
        for name in ("train_phaseA", "train_phaseB")
    }
    report["tokens"]["counted_with"] = "student tokenizer" if tokenizer else "characters / 4"
    report["pairs"] = {"written": len(out["pairs"]), "skipped_empty_draft": skipped}
    report["counts"] = {name: len(rows) for name, rows in out.items()}


def export(data_dir, out: dict, report: dict, report_path) -> list:
    """Step 6: every file at once, after every check passed: written beside the old set and swapped
    in whole, so a kill leaves the old set or the new one, never a mix."""
    names = [f"{name}.jsonl" for name in out] + [report_path.name]
    with staged_outputs(data_dir, "datasets") as staging:
        for name, rows in out.items():
            write_jsonl(staging.path(f"{name}.jsonl"), rows)
        write_json(staging.path(report_path.name), report)
    return [data_dir / name for name in names]


def print_report(cfg, task, report: dict, out: dict, n_sample: int) -> None:
    t, classes = report["teacher"], report["classes"]
    print(
        f"\nteacher vs gold ({n_sample} questions): "
        + ", ".join(f"{r} {t[r]}" for r in REASONS)
        + f"; quality rate {t['quality_rate']:.1%}"
    )
    print(f"policy {report['policy']}; kept {report['kept_by_source']}; held out {report['heldout']}")
    if task.answer_kind == "yesno":
        print(
            f"classes: sample {classes['sample']}, kept {classes['kept']}, "
            f"train {classes['train']} (BALANCE={cfg.data.balance})"
        )
    for name in ("train_phaseA", "train_phaseB"):
        s = report["tokens"][name]
        print(
            f"tokens {name:<15} mean {s['mean']}, p95 {s['p95']}, max {s['max']}, "
            f"over MAX_LENGTH={cfg.train.max_length}: {s['over_max_length']}"
        )
    print("wrote " + ", ".join(f"{n} ({len(r)})" for n, r in out.items()))


def main() -> None:
    cfg, _ = load_config()
    task = get_task(cfg.run.task)
    d, out_dir = cfg.run.data_dir, cfg.run.datasets_dir
    paths = {name: d / f"{name}.jsonl" for name in INPUTS}
    with stage_run(cfg, "datasets", "04 build datasets", out_dir, paths) as run:
        sample, dev, drafts, teacher = read_inputs(cfg, paths)

        def with_draft(q: dict) -> dict:
            return q | {"draft": drafts[q["id"]]["draft"] if cfg.teacher.with_draft else None}

        examples = {q["id"]: with_draft(q) for q in sample}
        reasons, kept = validate(task, examples, teacher)
        rescued, policy = apply_disagreement(cfg, task, examples, reasons, teacher)
        kept += rescued
        rng = random.Random(cfg.run.random_seed)
        train, heldout = hold_out(cfg, task, kept, rng)
        train = balance(cfg, task, train, class_share([task.label(q) for q in sample]), rng)

        report = data_report(cfg, task, sample, teacher, reasons, policy, kept, heldout, train)
        report_path = out_dir / "data_report.json"
        # A refusal's report stands beside the previous set, never in it.
        refused_path = out_dir / "data_report.refused.json"
        refused_path.unlink(missing_ok=True)
        refuse_if_unusable(cfg, report, refused_path, reasons, len(train), len(sample) - len(kept))
        out, skipped = build_records(cfg, task, train, heldout, [with_draft(q) for q in dev], drafts)
        add_lengths(cfg, report, out, skipped)
        run.outputs(*export(out_dir, out, report, report_path))
        run.extra["report"] = report
        print_report(cfg, task, report, out, len(sample))
        print(f"report {shown(report_path)}")


if __name__ == "__main__":
    run_main(main)
