#!/usr/bin/env bash
# The image's entrypoint: run one make target, e.g. `docker run ... looper:4060 phaseA TASK=gsm8k`.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-help}"
shift || true
if ! make -s targets | grep -qx -- "$target"; then
  echo "entrypoint: unknown target '$target'; one of: $(make -s targets | tr '\n' ' ')" >&2
  exit 2
fi
exec make --no-print-directory "$target" "$@"
