"""JSONL artifacts: atomic whole-file writes, flushed appends, reads that name file:line, and
file hashes."""

from __future__ import annotations

import hashlib
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
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{lineno}: byte {raw[err.start]:#04x} is not UTF-8; save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}:{lineno}: invalid JSON ({err.msg}); fix or delete that line"
                ) from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


class JsonlAppender:
    """An append-only JSONL artifact keyed by `id` that a SIGKILL cannot corrupt.

    Each row is one os.write() of one complete line on an O_APPEND descriptor, so a killed run
    leaves whole lines only; a torn tail (power loss) is cut off when the file is reopened.
    """

    def __init__(self, path: Path, key: str = "id"):
        self.path, self.key = Path(path), key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self.rows: dict[str, dict] = {}
        if self.path.exists():
            for row in read_jsonl(self.path):
                self.rows[str(row[key])] = row
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def __contains__(self, key: str) -> bool:
        return str(key) in self.rows

    def append(self, row: dict) -> None:
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        written = os.write(self._fd, line)
        while written < len(line):  # only on a full disk or similar; keep the line whole
            written += os.write(self._fd, line[written:])
        self.rows[str(row[self.key])] = row

    def retain(self, keep) -> int:
        """Atomically rewrite the file with only the rows where keep(row); return rows dropped."""
        kept = {k: r for k, r in self.rows.items() if keep(r)}
        dropped = len(self.rows) - len(kept)
        if dropped:
            os.close(self._fd)
            write_jsonl(self.path, kept.values())
            self.rows = kept
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return dropped

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
