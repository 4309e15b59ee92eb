# TEMPORARY dev stand-in (not committed): replaced by the sandbox branch.
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    outcome: str
    message: str
    seconds: float


def run_tests(program, tests, timeout_s=10.0, memory_mb=1024):
    t = time.perf_counter()
    try:
        compile(program, "<p>", "exec")
    except SyntaxError as e:
        return Verdict("syntax_error", str(e), 0.0)
    with tempfile.TemporaryDirectory() as d:
        code = program + "\n" + tests + "\nprint('__OK__')\n"
        try:
            r = subprocess.run(
                [sys.executable, "-I", "-c", code],
                cwd=d,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env={},
            )
        except subprocess.TimeoutExpired:
            return Verdict("timeout", "", time.perf_counter() - t)
    ok = r.stdout.strip().endswith("__OK__")
    return Verdict("pass" if ok else "fail", "" if ok else r.stderr[-300:], time.perf_counter() - t)


def run_many(jobs, timeout_s=10.0, memory_mb=1024, workers=None, desc=None):
    with ThreadPoolExecutor(workers or 2) as ex:
        return list(ex.map(lambda j: run_tests(*j, timeout_s, memory_mb), jobs))
