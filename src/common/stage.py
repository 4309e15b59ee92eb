"""The run record of one stage: it prints the config header, times the stage, and writes the stage's
manifest (config, commit, package versions, input and output hashes) when the stage succeeds.

    with stage_run(cfg, "sample", "01 sample", cfg.run.data_dir, inputs={"train": src}) as run:
        ...
        run.outputs(*paths)
        run.extra["stats"] = stats

A stage that fails (an exception leaves the block) or that calls run.discard() writes no
manifest, so a manifest always describes finished outputs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.config import Config, print_config, shown
from common.fingerprint import STAGE_KEYS, fingerprint
from common.manifest import write_manifest
from common.outputs import cleanup


class StageRun:
    """What one stage read and wrote; stage_run() turns it into <out_dir>/<stage>.manifest.json."""

    def __init__(self, cfg: Config, stage: str, out_dir: Path, inputs: dict[str, str | Path] | None = None):
        self.cfg, self.stage, self.out_dir = cfg, stage, Path(out_dir)
        self.inputs: dict[str, str | Path] = dict(inputs or {})
        self.written: list[Path] = []
        self.extra: dict = {}
        self.started = time.time()
        self.manifest: Path | None = None
        self.record = True

    def input(self, name: str, source: str | Path) -> None:
        """One more input (a file or folder is hashed; a hub id is recorded as is)."""
        self.inputs[name] = source

    def outputs(self, *paths: Path) -> None:
        """Outputs to hash into the manifest, in order; missing files are left out."""
        self.written += [Path(p) for p in paths]

    def discard(self) -> None:
        """Finish without a manifest (a dry run writes nothing)."""
        self.record = False

    @property
    def seconds(self) -> float:
        return time.time() - self.started

    def write(self) -> Path:
        outputs = [p for p in self.written if p.is_file()]
        if self.stage in STAGE_KEYS:  # what decides whether it is reused: common.fingerprint
            self.extra["fingerprint"] = fingerprint(self.cfg, self.stage, self.inputs)
        self.manifest = write_manifest(
            self.out_dir, self.stage, self.cfg, self.inputs, outputs, self.extra, self.started
        )
        return self.manifest


@contextmanager
def stage_run(
    cfg: Config,
    stage: str,
    title: str,
    out_dir: Path,
    inputs: dict[str, str | Path] | None = None,
    manifest: bool = True,
) -> Iterator[StageRun]:
    """Print the config header for `title`, run the block, then write the manifest (success only).

    manifest=False: the block writes its own (the training stages: common.train.setup.finish writes
    train.manifest.json with the metrics, from the main process only, using run.started)."""
    print_config(cfg, title)
    cleanup(out_dir)  # what a killed run left: staging folders, hidden .tmp-PID files
    run = StageRun(cfg, stage, out_dir, inputs)
    run.record = manifest
    yield run
    if run.record:
        run.write()
        print(f"{stage}: {run.seconds:.1f}s; manifest {shown(run.manifest)}")
    else:
        print(f"{stage}: {run.seconds:.1f}s")
