"""Tests of IsolatedEvaluator: real child processes running tests.evaluators.targets."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from deploytune.evaluators import isolated as isolated_module
from deploytune.evaluators.base import Monitor
from deploytune.evaluators.classify import Rule, classify
from deploytune.evaluators.isolated import IsolatedEvaluator
from deploytune.outcome import CrashKind
from deploytune.setting_error import SettingError
from tests.evaluators import targets
from tests.evaluators.targets import REPO_ROOT, read_pid, wait_dead


def make(name: str, tmp_path: Path, **kw: Any) -> IsolatedEvaluator:
    kw.setdefault("timeout_s", 10)
    return IsolatedEvaluator(f"tests.evaluators.targets:{name}", cwd=tmp_path,
                             sys_path=[str(REPO_ROOT)], **kw)


def p95_above_100(partial: Mapping[str, float], step: int | None,
                  rung: str | None = None) -> str | None:
    p95 = partial.get("p95_ms", 0.0)
    return f"p95_ms = {p95:g} > 100" if p95 > 100 else None


def test_success_with_prints_reports_nan_and_inf(tmp_path: Path) -> None:
    monitor = Monitor()
    ev = make("ok", tmp_path).evaluate({"x": 21}, monitor)
    assert ev.error is None and ev.aborted is None
    assert ev.metrics["x"] == 42 and ev.metrics["name"] == "ok"
    assert math.isnan(ev.metrics["nan"]) and ev.metrics["inf"] == math.inf
    assert monitor.reports == 1 and monitor.partial == {"p95_ms": 10.0}
    assert "hello on stdout" in ev.log and "hello on stderr" in ev.log
    assert ev.info["exit_code"] == 0 and ev.cost_s > 0


def test_function_object_target_and_describe(tmp_path: Path) -> None:
    ev = IsolatedEvaluator(targets.trivial, timeout_s=5, memory_mb=512, cwd=tmp_path)
    assert ev.target == "tests.evaluators.targets:trivial"
    assert str(REPO_ROOT) in ev.sys_path  # found again from the module's file
    assert ev.describe() == "python tests.evaluators.targets:trivial (isolated, 5 s, 512 MB)"
    assert ev.evaluate({}, Monitor()).metrics == {"x": 1}


def test_unimportable_function_objects_are_rejected() -> None:
    def nested(config: dict[str, Any]) -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError, match=r"lambda.*module level"):
        IsolatedEvaluator(lambda c: {})
    with pytest.raises(ValueError, match=r"inside a function.*module level"):
        IsolatedEvaluator(nested)
    nested.__module__ = "__main__"
    nested.__qualname__ = "nested"
    with pytest.raises(ValueError, match=r"__main__.*module level"):
        IsolatedEvaluator(nested)
    with pytest.raises(ValueError, match=r"'package\.module:function'"):
        IsolatedEvaluator("examples/toy.py")
    with pytest.raises(SettingError, match=r"^timeout_s: must be a positive number") as info:
        IsolatedEvaluator("a:b", timeout_s=0)
    assert info.value.path == ("timeout_s",)


def test_the_child_does_not_import_optuna(tmp_path: Path) -> None:
    ev = make("modules", tmp_path, env={"DT_TEST": "from env"})
    got = ev.evaluate({"big": "x" * 200_000, "n": 1}, Monitor()).metrics
    assert got["optuna"] is False and got["numpy"] is False
    assert got["config"] == {"big": "x" * 200_000, "n": 1}  # through stdin, not argv
    assert got["cwd"] == str(tmp_path) and got["env"] == "from env"
    assert got["sys_path"][:2] == [str(REPO_ROOT), str(tmp_path)]


def test_check(tmp_path: Path) -> None:
    make("ok", tmp_path).check()
    with pytest.raises(SettingError, match=r"^target: cannot import "
                       r"'no_such_module:f': ModuleNotFoundError: .*; make sure") as info:
        IsolatedEvaluator("no_such_module:f", cwd=tmp_path).check()
    assert info.value.path == ("target",)
    with pytest.raises(ValueError, match=r"'tests.evaluators.targets:missing': AttributeError"
                       r".*defines 'missing' at module level"):
        make("missing", tmp_path).check()
    with pytest.raises(ValueError, match="is a int, not a function"):
        make("NOT_CALLABLE", tmp_path).check()
    with pytest.raises(ValueError, match="cannot start"):
        make("ok", tmp_path, python=str(tmp_path / "no-python")).check()


def test_import_error_at_evaluation(tmp_path: Path) -> None:
    ev = IsolatedEvaluator("no_such_module:f", cwd=tmp_path).evaluate({}, Monitor())
    assert ev.error is not None and ev.error.startswith("cannot import 'no_such_module:f'")


def test_segfault(tmp_path: Path) -> None:
    ev = make("segfault", tmp_path).evaluate({}, Monitor())
    assert ev.error is not None
    assert ev.error.startswith("killed by signal SIGSEGV (segmentation fault)")
    assert ev.crash_kind is CrashKind.RUNTIME_ERROR and ev.info["signal"] == "SIGSEGV"
    assert "Fatal Python error: Segmentation fault" in ev.log  # faulthandler's stack


def test_memory_cap_gives_oom(tmp_path: Path) -> None:
    ev = make("allocate", tmp_path, memory_mb=300).evaluate({}, Monitor())
    assert ev.error is not None and ev.error.startswith("MemoryError")
    assert ev.crash_kind is CrashKind.OOM and ev.info["exception"] == "MemoryError"
    assert classify(ev) is CrashKind.OOM
    assert "MemoryError" in ev.log and "MemoryError" in ev.info["traceback"]


def test_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    ev = make("sleep", tmp_path, timeout_s=1).evaluate({"seconds": 30}, Monitor())
    assert time.monotonic() - start < 3
    assert ev.error == "timed out after 1 s (process group killed)"
    assert ev.crash_kind is CrashKind.TIMEOUT and classify(ev) is CrashKind.TIMEOUT
    assert ev.info["timed_out"] is True and "going to sleep" in ev.log
    assert wait_dead(ev.info["pid"], group=True)


def test_exit_code_without_result(tmp_path: Path) -> None:
    ev = make("exit_code", tmp_path).evaluate({}, Monitor())
    assert ev.error == "exited with code 3\nfatal: the engine refused the configuration"
    assert classify(ev) is CrashKind.RUNTIME_ERROR


def test_sys_exit_and_non_dict_results_are_errors(tmp_path: Path) -> None:
    ev = make("sys_exit", tmp_path).evaluate({}, Monitor())
    assert ev.error == "SystemExit: 3"
    ev = make("not_a_dict", tmp_path).evaluate({}, Monitor())
    assert ev.error == "the evaluation function returned list, expected a dict of metrics"
    assert classify(ev) is CrashKind.RUNTIME_ERROR


def test_exception_classes_keep_their_kind(tmp_path: Path) -> None:
    ev = make("invalid", tmp_path).evaluate({}, Monitor())
    assert ev.error == "InvalidConfig: int8 is not supported with this backend"
    assert ev.crash_kind is CrashKind.INVALID_CONFIG


def test_sigkill_not_sent_by_deploytune_is_oom(tmp_path: Path) -> None:
    ev = make("sigkill_self", tmp_path).evaluate({}, Monitor())
    assert ev.error is not None and ev.error.startswith("killed by SIGKILL, not sent by")
    assert ev.crash_kind is CrashKind.OOM


def test_bad_alloc_then_abort_is_oom(tmp_path: Path) -> None:
    ev = make("bad_alloc", tmp_path).evaluate({}, Monitor())
    assert ev.error is not None and ev.error.startswith("killed by signal SIGABRT")
    assert ev.crash_kind is CrashKind.RUNTIME_ERROR
    assert "std::bad_alloc" in ev.log
    assert classify(ev) is CrashKind.OOM


def test_100_mb_of_output_keeps_a_bounded_log(tmp_path: Path) -> None:
    ev = make("flood", tmp_path, log_tail_bytes=8192).evaluate({"mb": 100}, Monitor())
    assert ev.error is None and ev.metrics == {"x": 1}
    assert ev.info["stdout_bytes"] == 100_000_000
    assert len(ev.log) < 2 * 8192 + 200


def test_forked_child_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    start = time.monotonic()
    ev = make("fork_child", tmp_path).evaluate({"pid_file": str(pid_file)}, Monitor())
    assert ev.error is None and ev.metrics == {"x": 1}
    assert time.monotonic() - start < 3
    assert wait_dead(read_pid(pid_file))


def test_transient_failure_then_success(tmp_path: Path) -> None:
    ev = make("transient", tmp_path)
    config = {"marker": str(tmp_path / "marker")}
    first = ev.evaluate(config, Monitor())
    assert first.error == "OSError: [Errno 98] Address already in use"
    rules = [Rule("Address already in use", CrashKind.TRANSIENT)]
    assert classify(first, rules) is CrashKind.TRANSIENT
    assert classify(first) is CrashKind.RUNTIME_ERROR
    second = ev.evaluate(config, Monitor())
    assert second.error is None and second.metrics == {"x": 1}


def test_streamed_reports_abort_the_trial(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    monitor = Monitor(p95_above_100)
    ev = make("stream", tmp_path).evaluate({"pid_file": str(pid_file)}, monitor)
    assert ev.aborted == "p95_ms = 110 > 100"
    assert ev.error is None and ev.metrics == {"p95_ms": 110.0}
    assert monitor.rungs == {"short": {"p95_ms": 80.0}} and monitor.rung == "short"
    assert ev.cost_s < 3  # the function runs for 10 s
    assert wait_dead(read_pid(pid_file), group=True)


def test_keyboard_interrupt_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def interrupt(partial: Mapping[str, float], step: int | None,
                  rung: str | None = None) -> str | None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make("stream", tmp_path).evaluate({"pid_file": str(pid_file)}, Monitor(interrupt))
    assert wait_dead(read_pid(pid_file), group=True)


def test_child_hanging_after_its_result_is_killed_but_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolated_module, "RESULT_LINGER_S", 0.3)
    ev = make("linger", tmp_path).evaluate({}, Monitor())
    assert ev.error is None and ev.metrics == {"x": 1}
    assert ev.info["killed_after_result"] is True
    assert ev.info["signal"] == signal.SIGKILL.name
    assert ev.cost_s < 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_a_killed_tuner_takes_the_child_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = ("from deploytune.evaluators.base import Monitor\n"
            "from deploytune.evaluators.isolated import IsolatedEvaluator\n"
            f"IsolatedEvaluator('tests.evaluators.targets:pid_sleep', timeout_s=30, "
            f"sys_path=[{str(REPO_ROOT)!r}]).evaluate({{'pid_file': {str(pid_file)!r}}}, "
            f"Monitor())\n")
    tuner = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
    try:
        child = read_pid(pid_file, timeout_s=10)
    finally:
        tuner.kill()  # SIGKILL: no finally block of the tuner runs
        tuner.wait()
    assert wait_dead(child)
