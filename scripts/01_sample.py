"""Stage 01: sample TRAIN_SAMPLES training questions and a disjoint dev split; copy the test split.

Reads a hub id or a local file (DATASET_PATH, TEST_PATH; a generated set for arith/compare).
Writes data/RUN/sample_train.jsonl, dev.jsonl, test.jsonl and sample.manifest.json.
"""

import random

from common.config import load_config, shown
from common.data.sampling import class_counts, stratified_indices
from common.data.tasks import get_task
from common.errors import DataError, run_main
from common.jsonl import write_jsonl
from common.outputs import staged_outputs
from common.stage import stage_run


def dedupe(rows: list[dict], source: str = "the data") -> tuple[list[dict], int]:
    """Drop rows repeating an earlier row's id and question. An id shared by two different
    questions is an error naming both rows (dropping one would silently lose data)."""
    seen: dict[str, int] = {}
    out = []
    for i, row in enumerate(rows):
        first = seen.get(row["id"])
        if first is None:
            seen[row["id"]] = i
            out.append(row)
        elif rows[first]["question"] != row["question"]:
            raise DataError(
                f"{source}: rows {first + 1} and {i + 1} share id {row['id']!r} but ask different "
                f"questions ({rows[first]['question'][:50]!r} vs {row['question'][:50]!r}); "
                f"give every question its own id"
            )
    return out, len(rows) - len(out)


def load_pool(task, train_source, test_source) -> tuple[list[dict], list[dict], dict]:
    """The deduplicated training pool, less any row also in the test split, and the test split."""
    pool, dup_train = dedupe(task.load_split("train", train_source), str(train_source or "the train split"))
    test, dup_test = dedupe(task.load_split("test", test_source), str(test_source or "the test split"))
    test_ids = {row["id"] for row in test}
    test_questions = {row["question"] for row in test}
    clean = [r for r in pool if r["id"] not in test_ids and r["question"] not in test_questions]
    dropped = {"duplicates_dropped": {"train": dup_train, "test": dup_test}}
    return clean, test, dropped | {"train_rows_also_in_test_dropped": len(pool) - len(clean)}


def check_size(cfg, pool: list[dict], train_source) -> None:
    wanted = cfg.data.train_samples + cfg.data.dev_samples
    if wanted > len(pool):
        raise DataError(
            f"TRAIN_SAMPLES={cfg.data.train_samples} + DEV_SAMPLES={cfg.data.dev_samples} = {wanted}, but "
            f"{train_source or 'the generated pool'} has only {len(pool)} usable training "
            f"examples; lower TRAIN_SAMPLES or DEV_SAMPLES"
        )


def split_train_dev(cfg, task, pool: list[dict]) -> tuple[list[dict], list[dict]]:
    """Train first, then dev from what is left: both keep the pool's label ratio."""
    rng = random.Random(cfg.run.random_seed)
    labels = [task.label(r) for r in pool]
    train_idx = stratified_indices(labels, cfg.data.train_samples, rng)
    taken = set(train_idx)
    rest = [i for i in range(len(pool)) if i not in taken]
    dev_idx = [rest[i] for i in stratified_indices([labels[i] for i in rest], cfg.data.dev_samples, rng)]
    return [pool[i] for i in train_idx], [pool[i] for i in dev_idx]


def print_summary(task, pool: list[dict], dropped: dict, splits: dict[str, list[dict]]) -> None:
    print(
        f"pool {len(pool)} (dropped {dropped['duplicates_dropped']['train']} duplicates, "
        f"{dropped['train_rows_also_in_test_dropped']} also in test)"
    )
    for name, rows in splits.items():
        dist = class_counts([task.label(r) for r in rows])
        print(f"  {name:<5} {len(rows):>6} rows  {dist if dist else ''}")


def main() -> None:
    cfg, _ = load_config()
    task = get_task(cfg.run.task)
    train_source, test_source = task.sources(cfg.data.dataset_path, cfg.data.test_path)
    inputs = {"train": train_source or "<generated>", "test": test_source or "<generated>"}
    with stage_run(cfg, "sample", "01 sample", cfg.run.data_dir, inputs) as run:
        print(f"train source: {train_source or '<generated>'}")
        print(f"test source:  {test_source or '<generated>'}")
        # Load everything and validate before writing anything.
        pool, test, dropped = load_pool(task, train_source, test_source)
        check_size(cfg, pool, train_source)
        train, dev = split_train_dev(cfg, task, pool)

        splits = {"train": train, "dev": dev, "test": test}
        names = ["sample_train.jsonl", "dev.jsonl", "test.jsonl"]
        with staged_outputs(cfg.run.data_dir, "sample") as staging:  # all three files or none
            for name, rows in zip(names, splits.values(), strict=True):
                write_jsonl(staging.path(name), rows)
        paths = [cfg.run.data_dir / name for name in names]
        run.outputs(*paths)
        run.extra["stats"] = {
            "pool": len(pool),
            **dropped,
            "counts": {name: len(rows) for name, rows in splits.items()},
            "labels": {"pool": class_counts([task.label(r) for r in pool])}
            | {name: class_counts([task.label(r) for r in rows]) for name, rows in splits.items()},
        }
        print_summary(task, pool, dropped, splits)
        print(f"wrote {', '.join(shown(p) for p in paths)}")


if __name__ == "__main__":
    run_main(main)
