"""make clean / make clean-all: delete a run's artifacts, or (clean-all) every run's.

make clean       deletes data/RUN, checkpoints/RUN, outputs/RUN under WORK_DIR (RUN: RUN_NAME, else
                 TASK), printing each folder; nothing else.
make clean-all   lists everything under WORK_DIR's data/, checkpoints/ (the tiny model included) and
                 outputs/, and deletes it only after `y` (or with --yes, CONFIRM=1).
"""

import argparse
import shutil
import sys
from pathlib import Path

from common.config import load_config, shown
from common.errors import LooperError, run_main

TOP = ("data", "checkpoints", "outputs")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    print(f"removed {shown(path)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--all", action="store_true", help="every run and the tiny model")
    parser.add_argument("--yes", action="store_true", help="clean-all: delete without asking")
    cfg, args = load_config(parser=parser)
    base = cfg.run.base_dir
    if not args.all:
        targets = [base / top / cfg.run.name for top in TOP]
        found = [t for t in targets if t.exists()]
        for path in found:
            remove(path)
        if not found:
            print(f"nothing to clean for run {cfg.run.name} under {shown(base)}")
        return
    found = [p for top in TOP if (base / top).is_dir() for p in sorted((base / top).iterdir())]
    found = [p for p in found if p.name != ".gitkeep"]
    if not found:
        print(f"nothing to clean under {shown(base)}")
        return
    print(f"make clean-all deletes these {len(found)} entries:")
    for path in found:
        print(f"  {shown(path)}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise LooperError("clean-all: not confirmed; re-run in a terminal, or with CONFIRM=1")
        if input("delete them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return
    for path in found:
        remove(path)


if __name__ == "__main__":
    run_main(main)
