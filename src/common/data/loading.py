"""Load a dataset split from a hub id or a local jsonl/json/parquet file through `datasets`.

`datasets` reports a corrupt line as a byte position; on failure we re-read the file to name
the exact line, so the user gets file:line and a fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.errors import DataError

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass
class Source:
    """Rows of one split plus how to point at row i in the user's file."""

    name: str
    rows: list[dict]
    lines: list[int] | None = None  # jsonl: the 1-based line of each row

    def where(self, i: int) -> str:
        if self.lines is not None:
            return f"{self.name}:{self.lines[i]}"
        return f"{self.name}: row {i + 1}"


def resolve_local(source: str, split: str) -> Path:
    """A file is used as is; a folder must hold <split>.{jsonl,json,parquet}."""
    path = Path(source)
    if path.is_dir():
        for suffix in LOCAL_FORMATS:
            if (path / f"{split}{suffix}").is_file():
                return path / f"{split}{suffix}"
        raise DataError(f"{path}/ has no {split}.jsonl, {split}.json or {split}.parquet")
    if not path.is_file():
        raise DataError(f"{path} does not exist; check DATASET_PATH / TEST_PATH")
    if path.suffix not in LOCAL_FORMATS:
        raise DataError(f"{path}: unsupported format {path.suffix!r}; use .jsonl, .json or .parquet")
    return path


def _diagnose_json(path: Path) -> str:
    """Find the first bad line of a JSON/JSONL file, as a message that names it."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        return f"{path} is empty; regenerate it or point at the right file"
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            return f"{path}:{err.lineno}: invalid JSON ({err.msg}); fix that line"
        return f"{path}: could not be read as a dataset"
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            return f"{path}:{lineno}: invalid JSON ({err.msg}); fix or delete that line"
        if not isinstance(obj, dict):
            return f"{path}:{lineno}: expected a JSON object per line"
    return f"{path}: rows have inconsistent types; check the columns of each line"


def _row_lines(path: Path) -> list[int] | None:
    if path.suffix == ".json" and path.read_text(encoding="utf-8").lstrip().startswith("["):
        return None
    with open(path, encoding="utf-8") as f:
        return [n for n, line in enumerate(f, 1) if line.strip()]


def load_local(path: Path) -> Source:
    import datasets

    datasets.disable_progress_bars()
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; regenerate it or point at the right file")
    if LOCAL_FORMATS[path.suffix] in ("json", "csv"):
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            raise DataError(
                f"{path}:{line}: byte {data[err.start]:#04x} is not UTF-8; save the file as UTF-8"
            ) from None
    try:
        ds = datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
    except Exception as err:  # datasets raises many types here; all mean "unreadable file"
        if LOCAL_FORMATS[path.suffix] == "json":
            raise DataError(_diagnose_json(path)) from None
        raise DataError(f"{path}: cannot be read ({str(err)[:200]})") from None
    if len(ds) == 0:
        raise DataError(f"{path} has no rows; regenerate it or point at the right file")
    lines = _row_lines(path) if LOCAL_FORMATS[path.suffix] == "json" else None
    return Source(str(path), ds.to_list(), lines)


def load_hub(hub_id: str, config_name: str | None, split: str) -> Source:
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(hub_id, config_name, split=split)
    except ConnectionError as err:
        raise DataError(
            f"cannot reach the Hugging Face hub for {hub_id} ({type(err).__name__}); download "
            f"it where you have a network and set DATASET_PATH/TEST_PATH to the local files"
        ) from None
    except ValueError as err:  # an unknown split or config
        raise DataError(f"{hub_id}: {str(err)[:200]}") from None
    return Source(f"{hub_id}[{split}]", ds.to_list())


def load_source(source: str, split: str, config_name: str | None = None) -> Source:
    """Rows of `split` from a local file/folder or a hub id."""
    if Path(source).exists() or Path(source).suffix in LOCAL_FORMATS:
        return load_local(resolve_local(source, split))
    return load_hub(source, config_name, split)


def sibling_test_file(train_path: str) -> Path | None:
    """For a local train file, the test file beside it (test.* or, for StrategyQA, dev.*)."""
    path = Path(train_path)
    if not path.is_file():
        return None
    for stem in ("test", "dev"):
        for suffix in LOCAL_FORMATS:
            candidate = path.with_name(stem + suffix)
            if candidate.is_file() and candidate != path:
                return candidate
    return None
