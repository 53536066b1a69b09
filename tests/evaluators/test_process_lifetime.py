"""No process of a trial outlives the trial or the tuner: real processes, no mocks.

The trials fork a worker and a daemon (double fork + ``setsid``: another session, re-parented
away from the trial), sometimes one that ignores ``SIGTERM``. Processes are found by scanning
``/proc``: by pid, or by a unique token in their environment (``DT_LIFETIME``), which every
process a tuner starts inherits; zombies count as dead.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deploytune.evaluators.base import AbortTrial, Monitor
from deploytune.evaluators.command import CommandEvaluator
from deploytune.evaluators.isolated import IsolatedEvaluator
from deploytune.evaluators.lifetime import kill_leftovers, marked_processes, trial_processes
from deploytune.evaluators.process import launcher_argv, memory_limit_bytes, run_child
from deploytune.evaluators.server import ServerEvaluator, ServerSettings, free_port
from deploytune.loadgen import LoadSpec
from tests.evaluators.targets import REPO_ROOT, pid_alive

PY = sys.executable
HERE = Path(__file__).resolve().parent
TREE = str(HERE / "lifetime_targets.py")
TUNER = str(HERE / "scripts" / "tiny_tuner.py")
SERVER = str(HERE / "scripts" / "server_with_workers.py")
FAKE = str(REPO_ROOT / "tests" / "fake_openai_server.py")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def _pids(path: Path, timeout_s: float = 10.0) -> list[int]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.01)
    raise AssertionError(f"{path} was never written")


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _marked(tokens: set[str]) -> list[tuple[int, str, str]]:
    """Live processes whose environment holds DT_LIFETIME=<one of tokens>: (pid, token,
    command line)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        st = _stat(int(name))
        if st is None or st[0] in ("Z", "X"):
            continue
        for item in env:
            if item.startswith(b"DT_LIFETIME="):
                token = item[len(b"DT_LIFETIME="):].decode()
                if token in tokens:
                    out.append((int(name), token, cmdline.replace(b"\0", b" ")[:100].decode()))
    return out


def _settle(tokens: set[str], timeout_s: float) -> list[tuple[int, str, str]]:
    end = time.monotonic() + timeout_s
    while True:
        left = _marked(tokens)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------- one trial's end
@pytest.mark.parametrize("stubborn", [0, 1])
def test_command_trial_leaves_no_process(tmp_path: Path, stubborn: int) -> None:
    pid_file = tmp_path / "pids"
    ev = CommandEvaluator([PY, TREE, str(pid_file), "0.05", str(stubborn)])
    start = time.monotonic()
    evaluation = ev.evaluate({}, Monitor())
    pids = _pids(pid_file)
    try:
        assert evaluation.error is None, evaluation.error
        assert evaluation.metrics == {"x": 1}
        # checked at once: the supervisor exits only when none is left
        assert [p for p in pids if pid_alive(p)] == []
        # a daemon that ignores SIGTERM costs the grace (1 s), then SIGKILL
        assert time.monotonic() - start < (4.0 if stubborn else 3.0)
    finally:
        _kill_all(pids)


def test_isolated_trial_leaves_no_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    ev = IsolatedEvaluator("tests.evaluators.lifetime_targets:tree", sys_path=[REPO_ROOT])
    evaluation = ev.evaluate({"pid_file": str(pid_file), "stubborn": 1}, Monitor())
    pids = _pids(pid_file)
    try:
        assert evaluation.error is None, evaluation.error
        assert evaluation.metrics == {"x": 1}
        assert [p for p in pids if pid_alive(p)] == []
    finally:
        _kill_all(pids)


def test_timeout_ends_the_daemons_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    run = run_child(launcher_argv([PY, TREE, str(pid_file), "30", "1"]), timeout_s=1.0,
                    term_grace_s=0.3)
    pids = _pids(pid_file)
    try:
        assert run.timed_out
        assert [p for p in pids if pid_alive(p)] == []
    finally:
        _kill_all(pids)


def test_abort_ends_the_daemons_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"

    def on_line(line: bytes, truncated: bool) -> None:
        raise AbortTrial("enough")

    code = ("import runpy, sys, time; sys.argv = [sys.argv[0], sys.argv[1], '0', '1']; "
            f"runpy.run_path({TREE!r}, run_name='__main__'); time.sleep(30)")
    start = time.monotonic()
    run = run_child(launcher_argv([PY, "-c", code, str(pid_file)]), timeout_s=20,
                    on_stdout_line=on_line)
    pids = _pids(pid_file)
    try:
        assert run.aborted == "enough" and run.signal_number == signal.SIGKILL
        assert time.monotonic() - start < 5
        assert [p for p in pids if pid_alive(p)] == []
    finally:
        _kill_all(pids)


@pytest.mark.parametrize(("code", "returncode"), [
    ("import sys; sys.exit(5)", 5),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
    ("import os, signal; os.kill(os.getpid(), signal.SIGUSR1)", -signal.SIGUSR1),
    ("import os, resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.abort()",
     -signal.SIGABRT),
])
def test_the_commands_end_passes_through_the_supervisor(code: str, returncode: int) -> None:
    run = run_child(launcher_argv([PY, "-c", code]), timeout_s=10)
    assert run.returncode == returncode and not run.killed


def test_memory_cap_and_signals_are_the_commands_not_the_supervisors() -> None:
    code = ("import os; me = open('/proc/self/limits').read(); "
            "sup = open(f'/proc/{os.getppid()}/limits').read(); "
            "print([l for l in me.splitlines() if 'address space' in l][0]); "
            "print([l for l in sup.splitlines() if 'address space' in l][0])")
    cap = memory_limit_bytes(512)
    run = run_child(launcher_argv([PY, "-c", code], cap), timeout_s=10)
    assert run.returncode == 0, run.stderr
    mine, supervisor = run.stdout.decode().splitlines()
    assert mine.split()[3:5] == [str(cap), str(cap)]
    assert supervisor.split()[3:5] == ["unlimited", "unlimited"]
    # not Python (which ignores SIGPIPE itself): grep reads its own signal masks
    run = run_child(launcher_argv(["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]),
                    timeout_s=10)
    masks = dict(line.split(":") for line in run.stdout.decode().splitlines())
    # the supervisor's blocked signals stay its own; what this test process itself blocks
    # (pytest-xdist's worker blocks signal 32) is inherited as by any child
    own = dict(line.split(":") for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith(("SigBlk", "SigIgn")))
    assert int(masks["SigBlk"], 16) & ~int(own["SigBlk"], 16) == 0
    ignored = int(masks["SigIgn"], 16)
    python_ignores = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
    assert ignored & python_ignores == 0  # Python's ignored SIGPIPE and SIGXFSZ are reset
    assert ignored & ~int(own["SigIgn"], 16) == 0  # and nothing else is added


# --------------------------------------------------------------------- the tuner is killed
def _start_tuner(mode: str, token: str, ready: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DT_LIFETIME": token, "DT_READY": str(ready)}
    return subprocess.Popen([PY, TUNER, mode, *extra], cwd=REPO_ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, f"the tuner exited with {proc.returncode}"
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.005)


@pytest.mark.slow
def test_tuner_killed_30_times_leaves_no_process(tmp_path: Path) -> None:
    """``deploytune.optimize`` in a subprocess, SIGKILLed at a random moment of its trials
    (command and isolated evaluators, 30 kills, three tuners at a time): nothing it started
    is alive a moment later."""
    rng = random.Random(16)
    delays = [rng.uniform(0.0, 0.6) for _ in range(30)]
    run_id = uuid.uuid4().hex[:8]

    def one(i: int) -> str:
        token = f"{run_id}-{i}"
        ready = tmp_path / f"ready{i}"
        proc = _start_tuner("command" if i % 2 else "isolated", token, ready)
        try:
            _wait_for(ready, proc)  # a trial is running: its processes exist
            time.sleep(delays[i])
        finally:
            proc.kill()
            proc.wait()
        return token

    start = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        tokens = set(pool.map(one, range(30)))
    left = _settle(tokens, timeout_s=6.0)
    try:
        assert left == [], f"{len(left)} processes outlived their killed tuner: {left[:5]}"
    finally:
        _kill_all([pid for pid, _, _ in left])
    assert time.monotonic() - start < 90


@pytest.mark.slow
def test_supervisors_end_with_the_tuner_even_between_trials(tmp_path: Path) -> None:
    """A tuner killed while it starts trials back to back (no sleep in the trial) leaves
    nothing either: kills land in the supervisor's start and exit too."""
    token = f"{uuid.uuid4().hex[:8]}-fast"
    ready = tmp_path / "ready"
    env = {**os.environ, "DT_LIFETIME": token}
    code = ("import sys; sys.path.insert(0, 'src'); "
            "from deploytune.evaluators.base import Monitor; "
            "from deploytune.evaluators.command import CommandEvaluator; "
            f"ev = CommandEvaluator([sys.executable, {TREE!r}, '-', '0', '0']); "
            f"open({str(ready)!r}, 'w').close(); "
            "[ev.evaluate({}, Monitor()) for _ in range(10000)]")
    proc = subprocess.Popen([PY, "-c", code], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(ready, proc)
    time.sleep(1.5)  # about 15-30 trials
    proc.kill()
    proc.wait()
    left = _settle({token}, timeout_s=6.0)
    _kill_all([pid for pid, _, _ in left])
    assert left == []


# ----------------------------------------------------------------------------- servers
def _server(pid_file: Path, **settings: Any) -> ServerEvaluator:
    argv = (PY, SERVER, str(pid_file), "{port}", FAKE, "--port", "{port}")
    kw: dict[str, Any] = {"startup_timeout_s": 20.0, "release_timeout_s": 5.0,
                          "stop_timeout_s": 2.0}
    kw.update(settings)
    return ServerEvaluator(ServerSettings(argv, **kw),
                           LoadSpec(requests=4, concurrency=2, max_tokens=4))


def test_server_workers_end_with_the_trial_and_free_a_fixed_port(tmp_path: Path) -> None:
    """The server leaves a worker and a daemon that grabs the port once the server let it go:
    both die with the trial, so the next trial on the same fixed port starts (a survivor
    would make it fail as transient: port in use)."""
    port = free_port()
    for i in range(2):
        pid_file = tmp_path / f"pids{i}"
        evaluation = _server(pid_file, port=port).evaluate({}, Monitor())
        pids = _pids(pid_file)
        try:
            assert evaluation.error is None, evaluation.error
            assert evaluation.metrics["completed"] == 4
            assert [p for p in pids if pid_alive(p)] == []
            assert "release" not in evaluation.info, evaluation.info
        finally:
            _kill_all(pids)


@pytest.mark.slow
def test_server_workers_end_when_the_tuner_is_killed(tmp_path: Path) -> None:
    token = f"{uuid.uuid4().hex[:8]}-server"
    pid_file = tmp_path / "pids"
    proc = _start_tuner("server", token, tmp_path / "unused", str(pid_file))
    try:
        _wait_for(pid_file, proc)
        pids = _pids(pid_file)
        time.sleep(1.0)  # starting, or healthy and under load
        assert all(pid_alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()
    left = _settle({token}, timeout_s=6.0)
    _kill_all([pid for pid, _, _ in left] + pids)
    assert left == []


def test_trial_processes_are_the_supervisors_descendants(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    proc = subprocess.Popen(launcher_argv([PY, TREE, str(pid_file), "30", "0"]),
                            process_group=0, stdout=subprocess.DEVNULL)
    try:
        pids = _pids(pid_file)
        found = trial_processes(proc.pid)
        assert set(pids) <= set(found) and proc.pid not in found
        assert len(found) == 3  # the command, its worker, the daemon (in another session)
    finally:
        proc.send_signal(signal.SIGUSR1)  # the supervisor's kill request
        assert proc.wait(10) == -signal.SIGKILL
    assert [p for p in found if pid_alive(p)] == []


# ------------------------------------------------------------------ fallback at resume
def _owner(pid: int) -> dict[str, Any]:
    text = Path(f"/proc/{pid}/stat").read_text()
    start = text[text.rindex(")") + 2:].split()[19]
    return {"host": socket.gethostname(), "pid": pid, "start": start}


def test_kill_leftovers_after_the_supervisor_was_killed_too(tmp_path: Path) -> None:
    """When the supervisor itself dies with the tuner (SIGKILL to both), the daemons survive;
    kill_leftovers(worker identity of the tuner) finds them by their mark and ends them."""
    token = f"{uuid.uuid4().hex[:8]}-fallback"
    ready = tmp_path / "ready"
    proc = _start_tuner("command-slow", token, ready)  # trials of 2-3 s: caught mid-trial
    try:
        _wait_for(ready, proc)
        owner = _owner(proc.pid)
        assert kill_leftovers(owner) == []  # that tuner is alive: nothing is touched
        for _ in range(100):  # freeze the tuner while a trial runs, then kill its supervisor
            proc.send_signal(signal.SIGSTOP)
            supervisors = [int(n) for n in os.listdir("/proc") if n.isdigit()
                           and (_stat(int(n)) or ("", 0))[1] == proc.pid]
            if supervisors:
                break
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        assert supervisors
        for pid in supervisors:
            os.kill(pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.3)
    survivors = _marked({token})
    try:
        assert survivors, "expected the daemons to outlive a SIGKILLed supervisor"
        assert {pid for pid, _, _ in marked_processes()} >= {pid for pid, _, _ in survivors}
        killed = kill_leftovers(owner, grace_s=0.5)
        assert {pid for pid, _, _ in survivors} <= set(killed)
        assert _settle({token}, timeout_s=3.0) == []
    finally:
        _kill_all([pid for pid, _, _ in survivors])
