"""Child processes that never outlive credo: death with the parent, and limits the child holds itself.

A limit that only the parent enforces (a wall-clock timeout in ``communicate``)
is gone the moment the parent dies: killed by its own caller's timeout, by
Ctrl-C, by a crash, or cancelled by a sweep or job runner. The orphan is
re-parented to init and runs on with nothing to stop it (a sandboxed candidate
once kept a core busy for 27 minutes that way). So every child credo starts
carries its bounds with it, set before its program starts:

* death with its parent: on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. The
  kernel then kills the child however the parent ends, SIGKILL included. Right
  after the call the child compares ``getppid()`` with the parent's pid taken
  before the fork: a parent that died in between (the race prctl(2) describes)
  would otherwise never deliver the signal, so the child kills itself.
* ``RLIMIT_CPU`` (optional): the kernel sends SIGXCPU at the soft limit and
  SIGKILL at the hard one (``CPU_GRACE`` seconds later), parent or no parent.
  Core dumps are turned off with it (SIGXCPU's default action dumps core).
* ``RLIMIT_AS`` (optional): a bound on the child's address space.

How: ``bounded_command(cmd)`` prefixes ``cmd`` with a small launcher, this
file run by a fresh ``python -I -S``, that sets the bounds on itself and then
``exec``s ``cmd`` in the same process (the death signal and the rlimits survive
``exec``). It works with any API that starts a program, and it needs no
``preexec_fn``, which forces a plain ``fork`` of the whole parent: JAX warns
about that (its threads may hold locks the forked child then waits on forever),
and credo's parents run JAX. ``bounded_preexec`` offers the same bounds as a
``preexec_fn`` for callers without threads. The launcher costs ~50 ms.

Caveats:

* ``PR_SET_PDEATHSIG`` fires when the *thread* that started the child ends, not
  only the process. Start bounded children from a thread that lives as long as
  they should (the main thread, or a pool thread that outlives them).
* It is not inherited by the child's own children: each level of credo
  processes bounds the next one through this module.
* Other POSIX systems (macOS, the BSDs) have no ``PR_SET_PDEATHSIG``. There the
  child gets a session (process group) of its own, and the parent kills that
  group at interpreter exit (``atexit``) and on SIGTERM / SIGHUP
  (``kill_at_exit``); a parent killed with SIGKILL cannot run anything, so there
  only ``RLIMIT_CPU`` still bounds the orphan. Windows has neither rlimits nor
  the launcher: children are killed at interpreter exit only.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

LINUX = sys.platform.startswith("linux")
POSIX = os.name == "posix"
CPU_GRACE = 2  # seconds between the soft CPU limit (SIGXCPU) and the hard one (SIGKILL)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

if POSIX:
    import resource
else:  # pragma: no cover - Windows
    resource = None


def _load_prctl():
    """libc's ``prctl``, looked up once (a ``preexec_fn`` must not have to)."""
    if not LINUX:
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a Linux without a C library to call
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return fn


_prctl = _load_prctl()
DIES_WITH_PARENT = _prctl is not None  # False: the process-group fallback (kill_at_exit) is in use


def _limits(cpu_seconds: float | None, memory_bytes: int | None) -> list:
    """The (resource, (soft, hard)) pairs to set; whole CPU seconds, rounded up."""
    out = []
    if cpu_seconds is not None:
        cpu = max(1, -int(-cpu_seconds // 1))
        out += [(resource.RLIMIT_CPU, (cpu, cpu + CPU_GRACE)), (resource.RLIMIT_CORE, (0, 0))]
    if memory_bytes is not None:
        out.append((resource.RLIMIT_AS, (int(memory_bytes), int(memory_bytes))))
    return out


def _arm(parent: int, limits: list) -> None:
    """In the child, before its program starts: die with ``parent`` (or lead a new session), set ``limits``.

    Only system calls through functions resolved beforehand: as a ``preexec_fn``
    this runs in a forked copy of a parent that may have other threads.
    """
    if _prctl is not None:
        if _prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0) != 0:  # 9: SIGKILL
            raise OSError("prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the death signal was armed
            os.kill(os.getpid(), 9)
    else:
        os.setsid()  # a group of its own, for kill_at_exit to kill whole
    for which, value in limits:
        resource.setrlimit(which, value)


def bounded_command(
    cmd: Sequence[str],
    *,
    cpu_seconds: float | None = None,
    memory_bytes: int | None = None,
    env: dict | None = None,
) -> list[str]:
    """``cmd`` behind the launcher: the argv of a process that runs ``cmd`` bounded (POSIX).

    It dies with the calling process (Linux; see the module docstring
    elsewhere), ``cpu_seconds`` sets ``RLIMIT_CPU`` (SIGXCPU at that many CPU
    seconds, SIGKILL ``CPU_GRACE`` s later), ``memory_bytes`` sets
    ``RLIMIT_AS``. Start it from the process that built it (it records this
    pid as the parent to check for), with any API: ``subprocess``, ``asyncio``,
    a job runner's. ``cmd[0]`` is looked up on the ``PATH`` the child gets.
    ``env``: the environment the child will be given, if not this one's.
    """
    if not POSIX:  # pragma: no cover
        raise OSError("bounded_command needs a POSIX system; use popen_bounded")
    cmd = [os.fspath(c) for c in cmd]
    if not cmd:
        raise ValueError("bounded_command needs a command")
    drop_lc = "0" if "LC_CTYPE" in (os.environ if env is None else env) else "1"  # see _launch
    opt = lambda x: "-" if x is None else str(x)  # noqa: E731
    launcher = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
    return [*launcher, str(os.getpid()), opt(cpu_seconds), opt(memory_bytes), drop_lc, "--", *cmd]


def _launch(argv: list[str]) -> None:
    """The launcher (``python -I -S proc.py PARENT CPU MEMORY DROP_LC_CTYPE -- CMD...``): arm, then exec."""
    parent, cpu, memory, drop_lc, sep, *cmd = argv
    if sep != "--" or not cmd:
        sys.exit("usage: proc.py PARENT CPU MEMORY DROP_LC_CTYPE -- CMD...")
    num = lambda x, kind: None if x == "-" else kind(x)  # noqa: E731
    _arm(int(parent), _limits(num(cpu, float), num(memory, int)))
    if drop_lc == "1":
        # Python set LC_CTYPE=C.UTF-8 at start-up (PEP 538: a C locale is coerced, -I or not);
        # the program gets the environment it was given
        os.environ.pop("LC_CTYPE", None)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as err:
        print(f"credo.proc: cannot run {cmd[0]!r}: {err}", file=sys.stderr)
        os._exit(127)


def bounded_preexec(
    *, cpu_seconds: float | None = None, memory_bytes: int | None = None, _parent: int | None = None
) -> Callable[[], None]:
    """The same bounds as a ``subprocess.Popen(..., preexec_fn=...)`` function.

    Only for parents without threads: ``preexec_fn`` forks the whole parent
    (JAX warns about it, see the module docstring); prefer ``bounded_command``
    or ``popen_bounded``. Elsewhere than Linux, call ``kill_at_exit`` on the
    ``Popen``. Make it in the process that starts the child.
    """
    if not POSIX:  # pragma: no cover - Windows has no preexec_fn
        raise OSError("bounded_preexec needs a POSIX system; use popen_bounded")
    parent = os.getpid() if _parent is None else _parent
    limits = _limits(cpu_seconds, memory_bytes)  # built here, so the child only makes system calls
    return lambda: _arm(parent, limits)


def popen_bounded(
    cmd: Sequence[str] | str,
    *,
    cpu_seconds: float | None = None,
    memory_bytes: int | None = None,
    **popen_kwargs,
) -> subprocess.Popen:
    """``subprocess.Popen(cmd, **popen_kwargs)`` whose child never outlives this process.

    ``cpu_seconds`` / ``memory_bytes``: ``RLIMIT_CPU`` / ``RLIMIT_AS`` of the
    child, which hold even if this process dies. Everything else (``stdin``,
    ``stdout``, ``stderr``, ``env``, ``cwd``, ``text``, ``shell`` ...) means
    what it means to ``Popen``, except ``executable``, ``preexec_fn`` and
    ``start_new_session``, which are refused. ``proc.pid`` is the program's pid
    (the launcher ``exec``s it in place).
    """
    for taken in ("executable", "preexec_fn", "start_new_session", "process_group"):
        if taken in popen_kwargs:
            raise TypeError(f"popen_bounded does not take {taken}")
    if not POSIX:  # pragma: no cover - Windows: no rlimits, killed at exit only
        return kill_at_exit(subprocess.Popen(cmd, **popen_kwargs))
    single = isinstance(cmd, str | bytes | os.PathLike)
    if popen_kwargs.pop("shell", False):  # Popen's meaning: the first item is the script
        cmd = ["/bin/sh", "-c", *([cmd] if single else cmd)]
    elif single:
        cmd = [cmd]
    cmd = [os.fspath(c) for c in cmd]
    env = popen_kwargs.get("env")
    # a missing program fails here, as it would in Popen, not as the launcher's exit status 127
    # (a path with a directory is left to the launcher: it may be relative to cwd=)
    path = (os.environ if env is None else env).get("PATH", os.defpath)
    if cmd and not os.path.dirname(cmd[0]) and shutil.which(cmd[0], path=path) is None:
        raise FileNotFoundError(2, "No such file or directory", cmd[0])
    argv = bounded_command(cmd, cpu_seconds=cpu_seconds, memory_bytes=memory_bytes, env=env)
    proc = subprocess.Popen(argv, **popen_kwargs)
    proc.args = cmd  # what the caller asked for, in errors and CompletedProcess
    return proc if DIES_WITH_PARENT else kill_at_exit(proc)


def run_bounded(
    cmd: Sequence[str] | str,
    *,
    cpu_seconds: float | None = None,
    memory_bytes: int | None = None,
    input=None,
    timeout: float | None = None,
    check: bool = False,
    capture_output: bool = False,
    **popen_kwargs,
) -> subprocess.CompletedProcess:
    """``subprocess.run`` through ``popen_bounded``: on any exception while waiting (a timeout,
    KeyboardInterrupt, a job runner's cancellation) the child is killed before it propagates."""
    if capture_output:
        popen_kwargs["stdout"] = popen_kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        popen_kwargs["stdin"] = subprocess.PIPE
    with popen_bounded(cmd, cpu_seconds=cpu_seconds, memory_bytes=memory_bytes, **popen_kwargs) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            exc.output, exc.stderr = proc.communicate()
            raise
        except BaseException:
            proc.kill()  # Popen.__exit__ then reaps it
            raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        done.check_returncode()
    return done


# --- the fallback without PR_SET_PDEATHSIG: kill at exit ------------------------------------

_live: dict[int, subprocess.Popen] = {}
_lock = threading.Lock()
_hooked = False


def kill_at_exit(proc: subprocess.Popen) -> subprocess.Popen:
    """Registers ``proc`` to be killed (its whole process group if it leads one) when this
    interpreter exits or receives SIGTERM / SIGHUP; returns ``proc``.

    Only needed where ``DIES_WITH_PARENT`` is False (``popen_bounded`` calls it
    there); harmless elsewhere. The signal handlers are installed only where
    the signal still has its default action (to die), from the main thread.
    """
    global _hooked
    with _lock:
        for pid in [pid for pid, p in _live.items() if p.poll() is not None]:
            del _live[pid]  # finished ones: the table stays as small as the live children
        _live[proc.pid] = proc
        if not _hooked:
            _hooked = True
            atexit.register(_kill_live)
            if threading.current_thread() is threading.main_thread():
                for name in ("SIGTERM", "SIGHUP"):
                    sig = getattr(signal, name, None)
                    if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
                        signal.signal(sig, _die_killing_children)
    return proc


def _kill_live() -> None:
    with _lock:
        procs = list(_live.values())
        _live.clear()
    for proc in procs:
        if proc.poll() is not None:
            continue
        try:
            if POSIX and os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass


def _die_killing_children(signum, frame) -> None:
    _kill_live()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


if __name__ == "__main__":
    _launch(sys.argv[1:])
