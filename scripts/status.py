"""`make status`: one line per stage for the current configuration, in pipeline order: done, stale
(what changed), damaged (which output) or missing. Reads manifests and hashes files; loads no model.
"""

from common.config import load_config, shown
from common.errors import run_main
from common.fingerprint import PIPELINE, check, manifest_path


def main() -> None:
    cfg, _ = load_config()
    print(f"status of run {cfg.run.name} (task {cfg.run.task}, hw {cfg.run.hw}):")
    for stage in PIPELINE:
        state, details = check(cfg, stage)
        where = shown(manifest_path(cfg, stage).parent)
        why = f": {'; '.join(details)}" if details else ""
        print(f"  {stage:<9} {state:<8} {where}{why}")


if __name__ == "__main__":
    run_main(main)
