"""No child process outlives credo (issue 22): death with the parent, and RLIMIT_CPU the child holds itself.

The parents here are real processes (``python -c`` running a check, ``python -m
credo.cli qllm generate``) killed with SIGKILL or SIGINT at several moments;
their children are found by a marker: a directory on the parent's
``PYTHONPATH``, which the sandbox worker inherits through its environment (and
which a forked child that has not yet called ``exec`` carries too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from credo import proc

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A candidate that passes the whitelist and then loops for ~10^14 steps of plain integer arithmetic
# (no memory growth, so only a time limit can stop it); it runs when the worker traces it.
LOOPING = (
    "def tfcaf(agent_qs, state):\n"
    "    x = 0\n"
    "    for i in range(10000000):\n"
    "        for j in range(10000000):\n"
    "            x = x + 1\n"
    "    return agent_qs.sum(-1)\n"
)
WALL_LIMIT = 120  # the parent's own limit in these tests: far beyond any test, so only a kill ends them
GONE_WITHIN = 5.0  # seconds a child may take to die after its parent


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(state, ppid, CPU seconds) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _marked(marker: str, exclude: int) -> dict[int, str]:
    """{pid: cmdline} of the live (not zombie) processes whose environment holds ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (exclude, os.getpid()):
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        st = _stat(int(entry.name))
        if st is not None and st[0] != "Z":  # an orphan killed but not yet reaped is dead
            found[int(entry.name)] = cmdline
    return found


def _wait_for(predicate, within: float, step: float = 0.05):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


@pytest.fixture
def marker(tmp_path):
    """A directory whose path marks every process of one test; kills whatever is left of them."""
    path = tmp_path / f"marker-{uuid.uuid4().hex}"
    path.mkdir()
    yield str(path)
    for pid in _marked(str(path), exclude=-1):
        try:
            os.kill(pid, signal.SIGKILL)  # the test failed: do not leave the looper running
        except ProcessLookupError:
            pass


def _default_sigint() -> None:
    # pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored across exec:
    # without this the parents would shrug off the SIGINT these tests send (a shell would not).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], marker: str, **kw) -> subprocess.Popen:
    kw.setdefault("preexec_fn", _default_sigint)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [marker, env.get("PYTHONPATH", "")] if p)
    env.pop("OPENAI_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kw,
    )


def _kill_at(parent: subprocess.Popen, marker: str, moment: str, sig: int) -> dict:
    """Waits for ``moment`` (see the parametrisations), sends ``sig`` to the parent alone and reaps it;
    returns what it saw of the worker."""
    seen = {}
    if moment == "parent starting":
        time.sleep(0.3)
    elif moment == "parent importing JAX":
        time.sleep(1.0)
    else:
        workers = _wait_for(lambda: _marked(marker, exclude=parent.pid), within=90)
        assert workers, "the parent never started a worker"
        assert parent.poll() is None, "the parent ended on its own"
        if moment == "in the candidate's loop":
            worker = lambda: [p for p, c in _marked(marker, parent.pid).items() if "credo.qllm.checks" in c]  # noqa: E731
            pids = _wait_for(worker, within=90)
            assert pids, "the worker never started"
            # JAX's import costs ~1-2 s of CPU; 3.5 s of CPU means the worker is deep in the loop
            busy = _wait_for(lambda: (_stat(pids[0]) or ("", 0, 0.0))[2] >= 3.5, within=90, step=0.2)
            assert busy, "the worker never got busy"
            seen["limits"] = Path(f"/proc/{pids[0]}/limits").read_text()
    _signal_until_gone(parent, sig)
    return seen


def _signal_until_gone(parent: subprocess.Popen, sig: int):
    """Sends ``sig`` until the parent is gone, as a user presses Ctrl-C again: a KeyboardInterrupt that
    lands in a garbage-collector callback (JAX has one, run during its import) is printed and lost."""
    for _ in range(10):
        parent.send_signal(sig)
        try:
            parent.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue
    raise AssertionError(f"the parent survived ten {signal.Signals(sig).name}s")


def _assert_nothing_survives(marker: str, parent: subprocess.Popen):
    left = _wait_for(lambda: not _marked(marker, exclude=parent.pid), within=GONE_WITHIN)
    survivors = _marked(marker, exclude=parent.pid)
    assert left and not survivors, f"alive {GONE_WITHIN:g} s after the parent: {survivors}"


MOMENTS = ["parent starting", "parent importing JAX", "worker just started", "in the candidate's loop"]
SIGNALS = [pytest.param(signal.SIGKILL, id="SIGKILL"), pytest.param(signal.SIGINT, id="SIGINT")]


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_check_never_outlives_its_parent(marker, moment, sig):
    script = textwrap.dedent(
        f"""
        from credo.qllm.checks import check_tfcaf
        print(check_tfcaf({LOOPING!r}, 2, 4, time_limit={WALL_LIMIT}).format())
        """
    )
    parent = _start(["-c", script], marker)
    try:
        seen = _kill_at(parent, marker, moment, sig)
        _assert_nothing_survives(marker, parent)
    finally:
        parent.kill()
    if moment == "in the candidate's loop":  # and the worker carried its own CPU bound
        from credo.qllm.checks import CPU_MARGIN

        row = next(r for r in seen["limits"].splitlines() if r.startswith("Max cpu time"))
        soft, hard = row.split()[3:5]
        assert (int(soft), int(hard)) == (WALL_LIMIT + CPU_MARGIN, WALL_LIMIT + CPU_MARGIN + proc.CPU_GRACE)


def test_the_cpu_limit_alone_stops_a_looping_check_worker(monkeypatch):
    """RLIMIT_CPU at 4 s of CPU, the wall clock at 60 s: the worker's own bound ends the check."""
    from credo.qllm import checks

    monkeypatch.setattr(checks, "CPU_MARGIN", 4 - 60)
    t0 = time.monotonic()
    report = checks.check_tfcaf(LOOPING, 2, 4, time_limit=60)
    assert time.monotonic() - t0 < 55
    assert report.checks[-1].name == "time limit", report.format()
    assert "more than 4 s of CPU time (stuck in 'traces with jax'" in report.reason


@pytest.mark.parametrize("sig", SIGNALS)
def test_qllm_generate_cancelled_mid_candidate_leaves_no_process(marker, tmp_path, sig):
    from fake_openai import FakeOpenAI

    def reply(body):
        if "reviewer" in body["messages"][0]["content"]:
            return ["CHOICE: 1\nADVICE: none."]
        return [f"```python\n{LOOPING}```"] * body.get("n", 1)

    with FakeOpenAI(reply) as server:
        args = ["-m", "credo.cli", "qllm", "generate", "matrix:climbing", "--backend", "openai"]
        args += ["--model", "fake", "--base-url", server.url, "--gamma", "1", "--no-cache"]
        args += ["--candidates", "1", "--rounds", "1", "--retries", "0", "--out", str(tmp_path / "t.json")]
        parent = _start(args, marker)
        try:
            seen = _kill_at(parent, marker, "in the candidate's loop", sig)
            _assert_nothing_survives(marker, parent)
        finally:
            parent.kill()
        assert "Max cpu time" in seen["limits"] and server.requests  # it was mid-candidate


# --- credo.proc on its own (no JAX: fast) ----------------------------------------------------


LOOP_FOREVER = [sys.executable, "-c", "while True: pass"]


def test_the_cpu_limit_alone_stops_a_looping_child():
    t0 = time.monotonic()
    child = proc.popen_bounded(LOOP_FOREVER, cpu_seconds=1)
    try:
        child.wait(timeout=30)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGXCPU, child.returncode
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_bounded_child_dies_with_its_parent(marker, sig):
    script = "import sys; from credo.proc import popen_bounded; popen_bounded(sys.argv[1:]).wait()"
    parent = _start(["-c", script, *LOOP_FOREVER], marker)
    try:
        assert _wait_for(lambda: _marked(marker, exclude=parent.pid), within=30)
        _signal_until_gone(parent, sig)
        _assert_nothing_survives(marker, parent)
    finally:
        parent.kill()


@pytest.mark.skipif(not proc.DIES_WITH_PARENT, reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", ["launcher", "preexec_fn"])
def test_a_child_whose_parent_died_before_the_signal_was_armed_kills_itself(how):
    """The race of prctl(2): the parent gone before PR_SET_PDEATHSIG (here: a parent pid that is not ours)."""
    not_our_parent = str(os.getpid() + 1_000_000)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    if how == "launcher":
        argv = proc.bounded_command(sleeper)
        argv[argv.index("--") - 4] = not_our_parent
        child = subprocess.Popen(argv)
    else:
        child = subprocess.Popen(sleeper, preexec_fn=proc.bounded_preexec(_parent=int(not_our_parent)))
    try:
        child.wait(timeout=10)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL


def test_popen_bounded_takes_ordinary_popen_arguments(tmp_path):
    log = tmp_path / "out.log"
    show = "import json, os; print(json.dumps([os.getpid(), os.getcwd(), dict(os.environ)]))"
    env = {"X": "42", "PATH": os.environ["PATH"]}  # no LC_CTYPE: the launcher must not add one
    with open(log, "w") as f:
        child = proc.popen_bounded(
            [sys.executable, "-c", show], memory_bytes=1 << 30, stdout=f, env=env, cwd=tmp_path
        )
        assert child.wait(timeout=30) == 0
    pid, cwd, child_env = json.loads(log.read_text())
    assert pid == child.pid and cwd == str(tmp_path)  # the launcher exec'd the program in place
    assert {k: v for k, v in child_env.items() if k != "LC_CTYPE"} == env
    assert child_env.get("LC_CTYPE") in (None, "C.UTF-8")  # the program's own Python may coerce it
    assert child.args == [sys.executable, "-c", show]
    shell = proc.run_bounded("echo $X", shell=True, env=env, capture_output=True, text=True)
    assert shell.stdout == "42\n"
    with pytest.raises(TypeError, match="preexec_fn"):
        proc.popen_bounded(["true"], preexec_fn=lambda: None)
    with pytest.raises(FileNotFoundError):
        proc.popen_bounded(["no-such-program-credo"])


def test_run_bounded_kills_its_child_on_a_timeout():
    sleeper = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    with pytest.raises(subprocess.TimeoutExpired) as timeout:
        proc.run_bounded([sys.executable, "-c", sleeper], timeout=3, capture_output=True, text=True)
    assert _stat(int(timeout.value.output)) is None  # killed and reaped
    done = proc.run_bounded([sys.executable, "-c", "print('ok')"], capture_output=True, text=True, check=True)
    assert done.stdout == "ok\n"
