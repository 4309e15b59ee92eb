"""All-or-nothing output sets: a stage writes every file into a staging folder beside its outputs and
swaps the set in only when all of it is written.

    with staged_outputs(cfg.run.data_dir, "sample") as out:
        write_jsonl(out.path("test.jsonl"), rows)    # written under .staging-sample-PID/
    # here every file is in place; stage_run then writes the manifest last

The swap is a journal: the staging folder gets a `.complete` list of its files, the old manifest is
removed, then each file is renamed into place. A kill before `.complete` leaves the old set (the
staging folder is removed on the next run); a kill after it is finished on the next run (roll
forward), so a reader sees the old set or the new one, never a mix. `cleanup()` also removes the
hidden `.NAME.tmp-PID` files that atomic_path leaves when killed. A phase's checkpoint folder is
swapped whole instead (swap_dir).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.config import shown

COMPLETE = ".complete"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str) -> int | None:
    """The PID at the end of `.staging-STAGE-PID`, `.NAME.tmp-PID` or `NAME.tmp-PID`."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _roll_forward(staging: Path, out_dir: Path) -> None:
    names = [n for n in (staging / COMPLETE).read_text().splitlines() if n]
    for name in names:
        src = staging / name
        if src.exists():
            os.replace(src, out_dir / name)
    shutil.rmtree(staging, ignore_errors=True)


def cleanup(out_dir: Path) -> list[str]:
    """Finish or remove what a killed run left in `out_dir`; return (and print) what was done."""
    out_dir = Path(out_dir)
    done: list[str] = []
    if not out_dir.is_dir():
        return done
    entries = [e for e in sorted(out_dir.iterdir()) if (pid := _owner(e.name)) and not _pid_alive(pid)]
    for entry in entries:  # a folder renamed aside by swap_dir: put back if its successor never arrived
        if ".old-" in entry.name and entry.is_dir():
            target = out_dir / entry.name.split(".old-")[0]
            if target.exists():
                shutil.rmtree(entry, ignore_errors=True)
                done.append(f"removed the leftover {shown(entry)} of a killed run")
            else:
                os.replace(entry, target)
                done.append(f"restored {shown(target)} from {shown(entry)}, left by a killed save")
    for entry in entries:
        if not entry.exists() or ".old-" in entry.name:
            continue
        if entry.name.startswith(".staging-") and entry.is_dir():
            if (entry / COMPLETE).is_file():
                _roll_forward(entry, out_dir)
                done.append(f"finished the interrupted swap of {shown(entry)}")
            else:
                shutil.rmtree(entry, ignore_errors=True)
                done.append(f"removed the leftover {shown(entry)} of a killed run")
        elif ".tmp-" in entry.name:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            done.append(f"removed the leftover {shown(entry)} of a killed run")
    for line in done:
        print(line)
    return done


class Staging:
    def __init__(self, out_dir: Path, folder: Path):
        self.out_dir, self.folder = out_dir, folder

    def path(self, name: str) -> Path:
        """Where to write the output `name` (a file name in out_dir) until the set is complete."""
        return self.folder / name

    def final(self, name: str) -> Path:
        return self.out_dir / name


@contextmanager
def staged_outputs(out_dir: Path, stage: str) -> Iterator[Staging]:
    """A staging folder for one stage's output set; swapped in only if the block succeeds."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cleanup(out_dir)
    folder = out_dir / f".staging-{stage}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        yield Staging(out_dir, folder)
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
        journal = folder / f"{COMPLETE}.tmp"
        journal.write_text("".join(n + "\n" for n in names))
        os.fsync(os.open(journal, os.O_RDONLY))
        os.replace(journal, folder / COMPLETE)  # from here on the new set wins
        (out_dir / f"{stage}.manifest.json").unlink(missing_ok=True)
        _roll_forward(folder, out_dir)
    finally:
        if folder.exists() and not (folder / COMPLETE).exists():
            shutil.rmtree(folder, ignore_errors=True)


def swap_dir(new: Path, target: Path) -> None:
    """Put the complete folder `new` at `target`: the old one is renamed aside, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f"{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
