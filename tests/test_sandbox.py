"""The code sandbox: honest programs get the right verdict; each attack, written as the candidate
function a model would return, ends `fail` or `timeout` and leaves everything outside unchanged."""

import os
import signal
import socket
import textwrap
import time

import pytest

from common.code import sandbox
from common.code.sandbox import OUTCOMES, Verdict, namespace_prefix, run_many, run_tests

ADD = "def add(a, b):\n    return a + b\n"
CHECK_ADD = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
UNITTEST_ADD = textwrap.dedent(
    """
    import unittest

    class TestCases(unittest.TestCase):
        def test_small(self):
            self.assertEqual(add(1, 2), 3)

        def test_negative(self):
            self.assertEqual(add(-1, 1), 0)

    result = unittest.TextTestRunner(verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(TestCases)
    )
    assert result.wasSuccessful(), result.failures + result.errors
    """
)


def attack(body: str, tests: str = "f()\n", **kwargs) -> Verdict:
    """Run `body` (source of a function f, dedented) against `tests`; assert it did not pass."""
    verdict = run_tests(textwrap.dedent(body), tests, **kwargs)
    assert verdict.outcome in ("fail", "timeout"), verdict
    return verdict


@pytest.fixture(params=["namespaces", "audit hook only"])
def isolation(request, monkeypatch):
    """Run an attack both ways: in the namespaces where the kernel allows them, and with the audit
    hook and process group alone (the fallback elsewhere)."""
    if request.param == "namespaces":
        if not namespace_prefix():
            pytest.skip("this kernel does not allow user namespaces")
    else:
        monkeypatch.setattr(sandbox, "namespace_prefix", lambda: ())
    return request.param


# --- honest programs ---------------------------------------------------------------------------


def test_correct_program_passes():
    verdict = run_tests(ADD, CHECK_ADD)
    assert verdict == Verdict("pass", "", verdict.seconds)
    assert 0 < verdict.seconds < 5


def test_wrong_program_fails_with_the_assertion():
    verdict = run_tests("def add(a, b):\n    return a - b\n", CHECK_ADD)
    assert verdict.outcome == "fail"
    assert verdict.message == "AssertionError (tests line 1)"
    verdict = run_tests(ADD, "assert add(2, 2) == 5, 'two and two'\n")
    assert verdict.message == "AssertionError: two and two (tests line 1)"


def test_syntax_error_needs_no_child():
    verdict = run_tests("def add(a, b)\n    return a + b\n", CHECK_ADD)
    assert verdict.outcome == "syntax_error"
    assert "line 1" in verdict.message
    assert verdict.seconds < 0.05


def test_top_level_exception_is_error_and_exceptions_in_tests_are_fail():
    verdict = run_tests("x = undefined_name\n" + ADD, CHECK_ADD)
    assert verdict.outcome == "error"
    assert verdict.message == "NameError: name 'undefined_name' is not defined (program line 1)"
    verdict = run_tests("def add(a, b):\n    return a + c\n", CHECK_ADD)
    assert verdict.outcome == "fail"
    assert verdict.message == "NameError: name 'c' is not defined (program line 2, tests line 1)"


def test_unittest_tests():
    assert run_tests(ADD, UNITTEST_ADD).outcome == "pass"
    verdict = run_tests("def add(a, b):\n    return a * b\n", UNITTEST_ADD)
    assert verdict.outcome == "fail"
    assert "AssertionError" in verdict.message and "test_small" in verdict.message


def test_stdlib_and_site_packages_are_importable():
    program = textwrap.dedent(
        """
        import asyncio, collections, json, logging, re, tempfile, typing
        import numpy as np
        import pandas as pd  # imports ctypes, whose dangerous parts stay refused

        Point = collections.namedtuple("Point", "x y")

        async def double(x):
            return 2 * x

        def f():
            logging.getLogger("x").warning("logging works")
            with tempfile.NamedTemporaryFile("w", delete=False) as file:  # TMPDIR is the sandbox
                json.dump({"a": 1}, file)
            with open(file.name) as again:
                assert json.load(again) == {"a": 1}
            return int(np.arange(4).sum()) + asyncio.run(double(Point(1, 2).y)) + len(pd.DataFrame()) * 7
        """
    )
    verdict = run_tests(program, "assert f() == 10\n")
    assert verdict.outcome == "pass", verdict


def test_outcomes_and_verdict_are_as_documented():
    assert OUTCOMES == ("pass", "fail", "timeout", "error", "syntax_error")
    with pytest.raises(AttributeError):
        run_tests(ADD, CHECK_ADD).outcome = "pass"  # frozen


def test_tests_that_do_not_compile_are_the_callers_bug():
    with pytest.raises(ValueError, match="the tests do not compile"):
        run_tests(ADD, "assert add(1, 2) ==\n")


def test_run_many_keeps_order_and_runs_in_parallel():
    slow = "import time\ndef add(a, b):\n    time.sleep(1)\n    return a + b\n"
    once = "assert add(1, 2) == 3\n"
    jobs = [(slow, once), (ADD, "assert add(1, 1) == 3\n"), (slow, once), ("def add(:\n", "")]
    started = time.perf_counter()
    verdicts = run_many(jobs, workers=2, desc="sandbox test")
    assert time.perf_counter() - started < 3.5
    assert [v.outcome for v in verdicts] == ["pass", "fail", "pass", "syntax_error"]
    slept = [(slow, once)] * 4
    started = time.perf_counter()
    assert [v.outcome for v in run_many(slept, workers=2)] == ["pass"] * 4
    assert time.perf_counter() - started < 3.5


def test_sandbox_directory_is_removed(monkeypatch):
    made = []
    real_mkdtemp = sandbox.tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", recording_mkdtemp)
    locked = textwrap.dedent(
        """
        import os
        os.makedirs("deep/er")
        open("deep/er/file", "w").write("x")
        os.chmod("deep/er", 0)
        os.chmod("deep", 0)
        def f():
            while True:
                pass
        """
    )
    assert run_tests(locked, "f()\n", timeout_s=1).outcome == "timeout"
    assert run_tests(ADD, CHECK_ADD).outcome == "pass"
    assert len(made) == 2
    assert not any(os.path.exists(path) for path in made)


# --- attacks -----------------------------------------------------------------------------------


def test_infinite_loop_times_out_near_the_limit():
    verdict = attack(
        """
        def f():
            while True:
                pass
        """,
        timeout_s=1.5,
    )
    assert verdict.outcome == "timeout"
    assert verdict.message == "killed by the wall-clock limit (1.5 s)"
    assert 1.5 <= verdict.seconds < 2.5


def test_memory_hog():
    verdict = attack(
        """
        def f():
            return len(bytearray(4 * 2**30))
        """,
        "assert f() > 0\n",
    )
    assert verdict.message.startswith("MemoryError")
    attack(
        """
        def f():
            grow = []
            while True:
                grow.append(bytearray(10**7))
        """,
        memory_mb=256,
    )


def test_fork_bomb_and_subprocesses(isolation):
    for body in (
        """
        import os
        def f():
            for _ in range(50):
                os.fork()
        """,
        """
        import subprocess
        def f():
            subprocess.run(["true"])
        """,
        """
        import os
        def f():
            os.system("true")
        """,
        """
        import _posixsubprocess
        def f():
            _posixsubprocess.fork_exec(*[None] * 23)
        """,
        """
        import multiprocessing
        def f():
            multiprocessing.Process(target=print).start()
        """,
    ):
        verdict = attack(body)
        assert "not allowed" in verdict.message, verdict


def test_writing_outside_the_sandbox(tmp_path):
    victim, new = tmp_path / "victim.txt", tmp_path / "new.txt"
    victim.write_text("original")
    os.symlink(victim, tmp_path / "link")
    for write in (
        f"open({str(new)!r}, 'w').write('x')",
        f"open({str(victim)!r}, 'a').write('x')",
        f"os.close(os.open({str(victim)!r}, os.O_WRONLY | os.O_TRUNC))",
        f"pathlib.Path({str(victim)!r}).write_text('x')",
        f"os.symlink({str(victim)!r}, 'here'); open('here', 'w').write('x')",
        f"open({str(tmp_path / 'link')!r}, 'w').write('x')",
        f"os.chdir({str(tmp_path)!r}); open('new.txt', 'w').write('x')",
        f"os.link({str(victim)!r}, 'hard'); open('hard', 'w').write('x')",
        "open('../escape.txt', 'w').write('x')",
        "os.mknod('disk', 0o60600, os.makedev(8, 0)); open('disk', 'rb').read(1)",
        # a str subclass whose methods lie about where it points
        "S = type('S', (str,), {'split': lambda self, sep=None: (os.getcwd() + '/x').split(sep)}); "
        f"open(S({str(new)!r}), 'w').write('x')",
    ):
        attack(f"import os, pathlib\ndef f():\n    {write}\n")
    assert victim.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "victim.txt"]


def test_deleting_outside_the_sandbox(tmp_path):
    victim = tmp_path / "keep" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("original")
    for delete in (
        f"os.remove({str(victim)!r})",
        f"os.rename({str(victim)!r}, 'mine.txt')",
        f"shutil.rmtree({str(victim.parent)!r})",
        f"shutil.move({str(victim)!r}, 'mine.txt')",
        f"os.chmod({str(victim)!r}, 0)",
        f"pathlib.Path({str(victim)!r}).unlink()",
    ):
        attack(f"import os, pathlib, shutil\ndef f():\n    {delete}\n")
    assert victim.read_text() == "original"
    assert oct(victim.stat().st_mode)[-3:] != "000"


def test_reading_secrets(tmp_path, monkeypatch, isolation):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-sandbox-test")
    secret = tmp_path / ".env"
    secret.write_text("OPENAI_API_KEY=sk-secret-sandbox-test\n")
    verdict = attack(
        f"""
        import os

        def f():
            found = os.environ.get("OPENAI_API_KEY", "") + repr(dict(os.environ))
            for source in [{str(secret)!r}, f"/proc/{{os.getppid()}}/environ", "/proc/1/environ", "/proc/kcore"]:
                try:
                    found += open(source, errors="replace").read()
                except OSError:
                    pass
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        found += open(f"/proc/{{pid}}/environ", errors="replace").read()
                    except OSError:
                        pass
            assert "sk-secret" in found, "no key"
        """
    )
    assert verdict.message == "AssertionError: no key (program line 17, tests line 1)"
    assert "sk-secret" not in verdict.message


def test_network(isolation):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        for connect in (
            f"socket.create_connection(('127.0.0.1', {port}), timeout=1)",
            f"urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=1)",
            "socket.getaddrinfo('example.com', 80)",
            f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))",
        ):
            attack(f"import socket, urllib.request\ndef f():\n    {connect}\n")
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_no_network_interface_but_loopback():
    if not namespace_prefix():
        pytest.skip("this kernel does not allow user namespaces")
    program = "import socket\ndef f():\n    return [name for _, name in socket.if_nameindex()]\n"
    assert run_tests(program, "assert f() == ['lo'], f()\n").outcome == "pass"


def test_signalling_the_parent(isolation):
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.append(True))
    try:
        me = os.getpid()
        for send in (
            f"os.kill({me}, signal.SIGUSR1)",
            f"os.killpg(os.getpgid({me}), signal.SIGUSR1)",
            "os.kill(os.getppid(), signal.SIGKILL)",
            "os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
            f"os.kill({me}, signal.SIGKILL)",
            f"signal.pidfd_send_signal(os.pidfd_open({me}), signal.SIGKILL)",
        ):
            attack(f"import os, signal\ndef f():\n    {send}\n")
        time.sleep(0.1)
        assert received == []
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize(
    "body",
    [
        "import sys\nsys.exit(0)\ndef f():\n    return 3\n",
        "import os\nos._exit(0)\ndef f():\n    return 3\n",
        "import sys\ndef f():\n    sys.exit(0)\n",
        "import os\ndef f():\n    os._exit(0)\n",
        "def f():\n    raise SystemExit\n",
        "import signal\ndef f():\n    signal.raise_signal(signal.SIGKILL)\n",
        "import threading, os\nthreading.Timer(0.05, os._exit, (0,)).start()\ndef f():\n    import time\n    time.sleep(1)\n    return 3\n",
    ],
)
def test_exiting_early(body):
    attack(body, "assert f() == 3\n")


@pytest.mark.parametrize(
    "body",
    [
        # print a pass and leave
        "import os\ndef f():\n    print('passed')\n    print('pass', flush=True)\n    os._exit(0)\n",
        # guess at the verdict pipe: every file descriptor, hex tokens like a nonce
        """
        import os, secrets
        def f():
            for fd in range(1, 256):
                for _ in range(3):
                    try:
                        os.write(fd, secrets.token_hex(16).encode() + b"\\n")
                    except OSError:
                        pass
            return 4
        """,
        # assert can no longer fail?
        "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\ndef f():\n    return 4\n",
        "import builtins\nbuiltins.abs = lambda x: 0\ndef f():\n    return 4\n",
        "__builtins__ = {'abs': lambda x: 0}\ndef f():\n    return 4\n",
        # the same while the tests run, after the check that follows the program
        "import builtins\ndef f():\n    builtins.abs = lambda x: 0\n    return 4\n",
    ],
)
def test_faking_a_pass(body):
    attack(body, "x = f()\nassert abs(x - 3) < 1e-9\n")


def test_a_right_answer_with_junk_on_the_verdict_pipe_does_not_pass():
    junk = "import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'x')\n    except OSError:\n        pass\n"
    attack(junk + ADD, CHECK_ADD)


def test_patching_unittest():
    wrong = "def add(a, b):\n    return a * b\n"
    for patch in (
        "import unittest\nunittest.TestCase.assertEqual = lambda *args: None\n",
        "import unittest\nunittest.TestResult.wasSuccessful = lambda self: True\n",
        "import unittest, types\nunittest.TestCase = type('TestCase', (), {'assertEqual': lambda *a: None})\n",
        "import sys, unittest\nsys.modules['unittest'] = type(sys)('unittest')\n",
        "m = __import__('unit' + 'test')\nm.TestCase.assertEqual = lambda *args: None\n",
    ):
        verdict = attack(patch + wrong, UNITTEST_ADD)
        assert verdict.message.startswith("the program "), verdict


def test_finding_the_nonce():
    """Walk every frame, closure, generator and (refused) gc object for anything nonce-like, write
    each candidate to every descriptor, then leave as if done."""
    attack(
        """
        import gc, os, re, sys, types

        def looks_like_nonce(value):
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("latin-1")
            return isinstance(value, str) and re.fullmatch("[0-9a-f]{32}\\n?", value) is not None

        def values(frame):
            seen = []
            while frame is not None:
                for scope in (frame.f_locals, frame.f_globals):
                    for value in list(scope.values()):
                        seen.append(value)
                        if isinstance(value, types.FunctionType):
                            seen += [cell.cell_contents for cell in value.__closure__ or ()]
                        if isinstance(value, types.GeneratorType):
                            try:
                                seen += list(value.gi_frame.f_locals.values())
                            except Exception:
                                pass
                frame = frame.f_back
            return seen

        def f():
            found = values(sys._getframe())
            try:
                found += gc.get_objects()
            except Exception:
                pass
            try:
                found += gc.get_referents(*[v for v in found if isinstance(v, types.GeneratorType)])
            except Exception:
                pass
            try:
                os.fork()
            except Exception as err:  # the audit hook's own frame, through the traceback
                tb = err.__traceback__
                while tb is not None:
                    found += values(tb.tb_frame)
                    tb = tb.tb_next
            candidates = {
                bytes(v) if isinstance(v, (bytes, bytearray)) else v.encode() for v in found if looks_like_nonce(v)
            }
            for candidate in candidates:
                for fd in range(3, 256):
                    try:
                        os.write(fd, candidate.strip() + b"\\n")
                    except OSError:
                        pass
            os._exit(0)
        """
    )


def test_running_the_tests_itself_in_a_friendlier_namespace():
    attack(
        """
        import os, sys, types

        def f():
            frame = sys._getframe()
            while frame is not None:
                tests = [v for v in frame.f_locals.values() if isinstance(v, types.CodeType)]
                if tests and tests[0].co_filename == "<tests>":
                    exec(tests[0], {"f": lambda: 3, "__builtins__": __builtins__})
                    os._exit(0)
                frame = frame.f_back
            return 4
        """,
        "assert f() == 3\n",
    )


def test_tracing_ctypes_and_subinterpreters():
    for body in (
        # jump over the failing assertion with a trace function
        """
        import sys
        def f():
            def tracer(frame, event, arg):
                if frame.f_code.co_filename == "<tests>" and event == "line" and frame.f_lineno == 1:
                    frame.f_lineno = 2
                return tracer
            sys.settrace(tracer)
            sys._getframe(1).f_trace = tracer
            return 4
        """,
        "import ctypes\ndef f():\n    ctypes.CDLL('libc.so.6').system(b'true')\n    return 3\n",
        "import ctypes\ndef f():\n    ctypes.pythonapi.Py_IncRef\n    return 3\n",
        "import ctypes\ndef f():\n    ctypes.CDLL(None).system(b'true')\n    return 3\n",
        "import ctypes\ndef f():\n    return ctypes.c_long.from_address(id(3)).value\n",
        "def f():\n    import _xxsubinterpreters\n    _xxsubinterpreters.create()\n    return 3\n",
    ):
        verdict = attack(body, "assert f() == 3\n")
        assert "not allowed" in verdict.message or "not available" in verdict.message, verdict
