"""The project's error types and the one-line error report every script ends with."""

from __future__ import annotations

import sys
from collections.abc import Callable


class LooperError(Exception):
    """An error the user can fix; printed as one line, never as a traceback."""

    exit_code = 1


class ConfigError(LooperError):
    """A bad configuration value: raised before any work starts."""

    exit_code = 2


class DataError(LooperError):
    """Bad or missing input data; the message names the file and line."""

    exit_code = 1


class StaleError(DataError):
    """A finished stage no longer matches the configuration or its recorded outputs."""


class BudgetReached(LooperError):
    """MAX_COST_USD was reached; everything finished so far is kept."""

    exit_code = 3


def run_main(main: Callable[[], None]) -> None:
    """Run a script's main(); turn a LooperError into one line on stderr and its exit code."""
    try:
        main()
    except LooperError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept; re-run to continue", file=sys.stderr)
        sys.exit(130)
