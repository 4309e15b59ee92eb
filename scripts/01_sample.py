"""Stage 01: sample TRAIN_SAMPLES training questions and a disjoint dev split; copy the test split.

Reads a hub id or a local file (DATASET_PATH, TEST_PATH; a generated set for arith/compare).
Writes data/RUN/sample_train.jsonl, dev.jsonl, test.jsonl and sample.manifest.json.
"""

import random
import time

from common.config import load_config, print_config, shown
from common.data.sampling import class_counts, stratified_indices
from common.data.tasks import get_task
from common.errors import DataError, run_main
from common.jsonl import write_jsonl
from common.manifest import write_manifest


def dedupe(rows: list[dict]) -> tuple[list[dict], int]:
    seen, out = set(), []
    for row in rows:
        if row["id"] not in seen:
            seen.add(row["id"])
            out.append(row)
    return out, len(rows) - len(out)


def main() -> None:
    started = time.time()
    cfg, _ = load_config()
    print_config(cfg, "01 sample")
    task = get_task(cfg.run.task)
    train_source, test_source = task.sources(cfg.data.dataset_path, cfg.data.test_path)
    print(f"train source: {train_source or '<generated>'}")
    print(f"test source:  {test_source or '<generated>'}")

    # Load everything and validate before writing anything.
    pool, dup_train = dedupe(task.load_split("train", train_source))
    test, dup_test = dedupe(task.load_split("test", test_source))
    test_ids = {row["id"] for row in test}
    test_questions = {row["question"] for row in test}
    clean = [r for r in pool if r["id"] not in test_ids and r["question"] not in test_questions]
    leaked, pool = len(pool) - len(clean), clean

    wanted = cfg.data.train_samples + cfg.data.dev_samples
    if wanted > len(pool):
        raise DataError(
            f"TRAIN_SAMPLES={cfg.data.train_samples} + DEV_SAMPLES={cfg.data.dev_samples} = {wanted}, but "
            f"{train_source or 'the generated pool'} has only {len(pool)} usable training "
            f"examples; lower TRAIN_SAMPLES or DEV_SAMPLES"
        )

    # Train first, then dev from what is left: both keep the pool's label ratio.
    rng = random.Random(cfg.run.random_seed)
    labels = [task.label(r) for r in pool]
    train_idx = stratified_indices(labels, cfg.data.train_samples, rng)
    taken = set(train_idx)
    rest = [i for i in range(len(pool)) if i not in taken]
    dev_idx = [rest[i] for i in stratified_indices([labels[i] for i in rest], cfg.data.dev_samples, rng)]
    train = [pool[i] for i in train_idx]
    dev = [pool[i] for i in dev_idx]

    out = cfg.run.data_dir
    paths = [out / "sample_train.jsonl", out / "dev.jsonl", out / "test.jsonl"]
    for path, rows in zip(paths, (train, dev, test), strict=True):
        write_jsonl(path, rows)
    stats = {
        "pool": len(pool),
        "duplicates_dropped": {"train": dup_train, "test": dup_test},
        "train_rows_also_in_test_dropped": leaked,
        "counts": {"train": len(train), "dev": len(dev), "test": len(test)},
        "labels": {
            "pool": class_counts(labels),
            "train": class_counts([task.label(r) for r in train]),
            "dev": class_counts([task.label(r) for r in dev]),
            "test": class_counts([task.label(r) for r in test]),
        },
    }
    inputs = {"train": train_source or "<generated>", "test": test_source or "<generated>"}
    manifest = write_manifest(out, "sample", cfg, inputs, paths, {"stats": stats}, started)

    print(f"pool {len(pool)} (dropped {dup_train} duplicates, {leaked} also in test)")
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        dist = class_counts([task.label(r) for r in rows])
        print(f"  {name:<5} {len(rows):>6} rows  {dist if dist else ''}")
    print(f"wrote {', '.join(shown(p) for p in paths)}; manifest {shown(manifest)}")


if __name__ == "__main__":
    run_main(main)
