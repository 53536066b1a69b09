"""Tests of the shared child-process runner, with real processes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from deploytune.evaluators.base import AbortTrial
from deploytune.evaluators.process import (
    LAUNCHER_SRC,
    ChildStartError,
    is_supervised,
    launcher_argv,
    memory_limit_bytes,
    run_child,
    signal_description,
)
from deploytune.outcome import CrashKind
from tests.evaluators.targets import group_alive, pid_alive, read_pid, wait_dead

SCRIPTS = Path(__file__).parent / "scripts"
PY = sys.executable


def script(name: str, *args: str) -> list[str]:
    return launcher_argv([PY, str(SCRIPTS / name), *args])


def test_signal_description() -> None:
    assert signal_description(signal.SIGSEGV) == "SIGSEGV (segmentation fault)"
    assert signal_description(signal.SIGABRT).startswith("SIGABRT (")
    assert signal_description(77) == "signal 77"


def test_memory_limit_bytes() -> None:
    assert memory_limit_bytes(None) == 0
    assert memory_limit_bytes(300) == 300 * 1024 * 1024


def test_launcher_argv_shape() -> None:
    argv = launcher_argv(["prog", "a b"], 1024)
    assert argv == [PY, "-I", "-S", "-c", LAUNCHER_SRC, "1024", str(os.getpid()), "1", "--",
                    "prog", "a b"]
    assert is_supervised(argv) and not is_supervised(["prog", "a b"])
    assert launcher_argv(["prog"], grace_s=0.25)[7] == "0.25"


def test_exit_code_and_stderr_lines() -> None:
    run = run_child(script("exit_code.py", "3"), timeout_s=10)
    assert run.returncode == 3 and run.exit_code == 3 and run.signal_number is None
    failure = run.failure()
    assert failure is not None
    error, kind = failure
    assert error.splitlines() == ["exited with code 3",
                                  "fatal: the engine refused the configuration"]
    assert kind is None
    info = run.info()
    assert info["exit_code"] == 3 and info["signal"] is None and not info["timed_out"]
    assert info["pid"] == run.pid and info["stdout_bytes"] == len(b"some output\n")
    assert run.log() == ("--- stdout (tail) ---\nsome output\n--- stderr (tail) ---\n"
                         "fatal: the engine refused the configuration\n")


def test_success_has_no_failure() -> None:
    run = run_child(launcher_argv(["/bin/echo", '{"x": 1}']), timeout_s=10)
    assert run.returncode == 0 and run.failure() is None
    assert run.stdout == b'{"x": 1}\n'


def test_segfault_names_the_signal() -> None:
    run = run_child(script("segfault.py"), timeout_s=10)
    assert run.signal_number == signal.SIGSEGV
    assert run.failure() == ("killed by signal SIGSEGV (segmentation fault)",
                             CrashKind.RUNTIME_ERROR)
    assert run.info()["signal"] == "SIGSEGV"


def test_sigkill_not_sent_by_the_runner_is_oom() -> None:
    run = run_child(script("sigkill_self.py"), timeout_s=10)
    failure = run.failure()
    assert failure is not None
    assert failure[0] == ("killed by SIGKILL, not sent by deploytune (most likely the kernel "
                          "OOM killer)")
    assert failure[1] is CrashKind.OOM


def test_timeout_kills_the_group() -> None:
    start = time.monotonic()
    run = run_child(script("sleep.py", "30"), timeout_s=1)
    assert time.monotonic() - start < 3
    assert run.timed_out and run.killed
    assert run.failure() == ("timed out after 1 s (process group killed)", CrashKind.TIMEOUT)
    assert 1 <= run.cost_s < 3
    assert run.stdout == b"going to sleep\n"
    assert wait_dead(run.pid, group=True)


def test_timeout_escalates_to_sigkill_after_the_grace() -> None:
    start = time.monotonic()
    run = run_child(script("ignore_term.py"), timeout_s=0.5, term_grace_s=0.3)
    assert 0.8 <= time.monotonic() - start < 3
    assert run.timed_out and run.signal_number == signal.SIGKILL
    failure = run.failure()
    assert failure is not None and failure[1] is CrashKind.TIMEOUT  # our SIGKILL is no OOM


def test_memory_cap_through_the_launcher() -> None:
    argv = launcher_argv([PY, str(SCRIPTS / "allocate.py")], memory_limit_bytes(300))
    run = run_child(argv, timeout_s=20)
    assert run.exit_code == 1
    assert b"MemoryError" in run.stderr


def test_unknown_program_exits_127() -> None:
    run = run_child(launcher_argv(["deploytune-no-such-program"]), timeout_s=10)
    assert run.exit_code == 127
    assert b"cannot run 'deploytune-no-such-program'" in run.stderr


def test_missing_cwd_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(ChildStartError, match="cannot start"):
        run_child(launcher_argv(["true"]), cwd=tmp_path / "missing")


def test_output_tail_is_bounded() -> None:
    run = run_child(script("flood.py", "100"), timeout_s=20, log_tail_bytes=4096)
    assert run.returncode == 0
    assert run.stdout_bytes > 100_000_000
    assert len(run.stdout) == 4096 and run.stdout.endswith(b'{"x": 1}\n')
    log = run.log()
    assert len(log) < 4096 + 200
    assert log.startswith(f"--- stdout (last 4096 of {run.stdout_bytes} bytes) ---\n[...]")


def test_long_lines_are_truncated_for_the_line_callback() -> None:
    lines: list[tuple[bytes, bool]] = []
    code = "print('a' * 5000); print('short'); print('tail', end='')"
    run = run_child(launcher_argv([PY, "-c", code]), timeout_s=10, log_tail_bytes=1000,
                    on_stdout_line=lambda line, cut: lines.append((line, cut)))
    assert run.returncode == 0
    assert lines == [(b"a" * 1000, True), (b"short", False), (b"tail", False)]


def test_stdin_data_is_delivered_in_full() -> None:
    data = json.dumps({"blob": "z" * 3_000_000}).encode()
    code = "import sys, json; d = sys.stdin.buffer.read(); print(len(d))"
    run = run_child(launcher_argv([PY, "-c", code]), timeout_s=10, stdin_data=data)
    assert run.returncode == 0 and run.stdout.strip() == str(len(data)).encode()


def test_forked_child_is_killed_and_does_not_hang_the_runner(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    start = time.monotonic()
    run = run_child(script("fork_child.py", str(pid_file)), timeout_s=10)
    assert time.monotonic() - start < 3  # the grandchild holds stdout open for 60 s
    assert run.returncode == 0
    assert wait_dead(read_pid(pid_file))
    assert not group_alive(run.pid)


def test_process_outside_the_group_is_ended_with_the_trial(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    code = ("import os, subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(30)'], start_new_session=True); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))")
    start = time.monotonic()
    run = run_child(launcher_argv([PY, "-c", code]), timeout_s=10)
    daemon = read_pid(pid_file)
    try:
        assert run.returncode == 0
        assert time.monotonic() - start < 5
        assert not pid_alive(daemon)  # the supervisor ended it before it exited itself
    finally:
        if pid_alive(daemon):
            os.kill(daemon, signal.SIGKILL)


def test_abort_from_a_callback_kills_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def on_line(line: bytes, truncated: bool) -> None:
        if b'"step": 2' in line:
            raise AbortTrial("enough")

    start = time.monotonic()
    run = run_child(script("stream.py", str(pid_file)), timeout_s=20, on_stdout_line=on_line)
    assert run.aborted == "enough" and run.killed
    assert time.monotonic() - start < 3
    assert run.signal_number == signal.SIGKILL
    failure = run.failure()
    assert failure is not None and failure[1] is CrashKind.RUNTIME_ERROR
    assert wait_dead(read_pid(pid_file), group=True)


def test_keyboard_interrupt_kills_the_group_and_propagates(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def on_line(line: bytes, truncated: bool) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_child(script("stream.py", str(pid_file)), timeout_s=20, on_stdout_line=on_line)
    assert wait_dead(read_pid(pid_file), group=True)
