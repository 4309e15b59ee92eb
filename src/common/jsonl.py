"""JSONL artifacts: atomic whole-file writes, flushed appends, and reads that name file:line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common.errors import DataError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write all rows to `path` atomically; a crash leaves the previous file (or none)."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_jsonl(path: Path, made_by: str | None = None) -> list[dict]:
    """Read a JSONL artifact. Errors name file:line; a missing file names the make target."""
    path = Path(path)
    if not path.is_file():
        hint = f"; run `make {made_by}` first" if made_by else ""
        raise DataError(f"{path} does not exist{hint}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}:{lineno}: invalid JSON ({err.msg}); fix or delete that line"
                ) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}"
                )
            rows.append(row)
    return rows
