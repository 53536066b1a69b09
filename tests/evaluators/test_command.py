"""Tests of CommandEvaluator: real commands, the scripts in tests/evaluators/scripts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from deploytune.evaluators.base import Monitor
from deploytune.evaluators.classify import Rule, classify
from deploytune.evaluators.command import CommandEvaluator
from deploytune.outcome import CrashKind
from deploytune.setting_error import SettingError
from deploytune.space import Space
from tests.evaluators.targets import read_pid, wait_dead

SCRIPTS = Path(__file__).parent / "scripts"
PY = sys.executable

SPACE = Space.from_dict({
    "backend": {"type": "categorical", "choices": ["eager", "compile"]},
    "batch_size": {"type": "int", "low": 1, "high": 64},
    "lr": {"type": "float", "low": 1e-6, "high": 1.0, "log": True},
    "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager"]}},
})


def cmd(name: str, *args: Any, **kw: Any) -> CommandEvaluator:
    kw.setdefault("timeout_s", 10)
    return CommandEvaluator([PY, str(SCRIPTS / name), *args], **kw)


def run(ev: CommandEvaluator, config: dict[str, Any] | None = None,
        monitor: Monitor | None = None) -> Any:
    return ev.evaluate(dict(config or {}), monitor or Monitor())


NASTY = ["a b", "it's \"quoted\"", "x; rm -rf /tmp/nothing", "$(echo pwned)", "`id`",
         "line1\nline2", "{not a placeholder}", "", "*", "--flag=$HOME"]


@pytest.mark.parametrize("value", NASTY)
def test_values_reach_the_program_verbatim_as_one_argument(value: str) -> None:
    ev = cmd("echo_argv.py", "--name", "{name}", "x={name}", "{{literal}}")
    got = run(ev, {"name": value}).metrics
    assert got["argv"] == ["--name", value, f"x={value}", "{literal}"]


def test_value_formatting_groups_and_inactive_parameters(tmp_path: Path) -> None:
    ev = cmd("echo_argv.py", "--bs={batch_size}", "--lr", "{lr}", ["--threads", "{threads}"],
             "{threads}", "--flag={flag}", "--none={maybe}", "--fmt={lr:.2e}", "{config_json}",
             env={"DT_BACKEND": "{backend}", "DT_THREADS": "{threads}", "DT_FIXED": "1"})
    config = {"backend": "compile", "batch_size": 16, "lr": 0.1, "flag": True, "maybe": None}
    got = run(ev, config).metrics
    assert got["argv"] == ["--bs=16", "--lr", "0.1", "--flag=true", "--fmt=1.00e-01",
                           json.dumps(config)]
    assert got["env"] == {"DT_BACKEND": "compile", "DT_FIXED": "1"}
    config = {"backend": "eager", "batch_size": 1, "lr": 1e-05, "threads": 4, "flag": False,
              "maybe": "m"}
    got = run(ev, config).metrics
    assert got["argv"][:7] == ["--bs=1", "--lr", "1e-05", "--threads", "4", "4",
                               "--flag=false"]
    assert float(got["argv"][2]) == 1e-05  # floats round-trip
    assert got["env"]["DT_THREADS"] == "4"


def test_render_is_public_and_floats_round_trip() -> None:
    ev = CommandEvaluator(["prog", "{x}"])
    for x in (0.1, 1 / 3, 1e-300, 123456789.125, math.inf):
        argv, _, _ = ev.render({"x": x})
        assert float(argv[1]) == x


def test_template_errors() -> None:
    with pytest.raises(ValueError, match="never a shell line"):
        CommandEvaluator("python bench.py")  # type: ignore[arg-type]
    with pytest.raises(SettingError, match="argv\\[0\\]: must be the program") as info:
        CommandEvaluator([["python"], "x"])
    assert info.value.path == ("argv", 0)
    with pytest.raises(ValueError, match="literal braces"):
        CommandEvaluator(["prog", "{unclosed"])
    with pytest.raises(ValueError, match="empty placeholder"):
        CommandEvaluator(["prog", "{}"])
    with pytest.raises(ValueError, match=r"""is not a placeholder .*'\{\{"x": 1\}\}'"""):
        CommandEvaluator(["/bin/echo", '{"x": 1}'])
    with pytest.raises(ValueError, match="argv\\[1\\]: must be a string or a non-empty list"):
        CommandEvaluator(["prog", 3])  # type: ignore[list-item]
    with pytest.raises(SettingError, match="literal braces") as info:
        CommandEvaluator(["prog", ["--t", "{t"]])
    assert info.value.path == ("argv", 1, 1) and str(info.value).startswith("argv[1][1]: ")


def test_check_space_names_the_unknown_placeholder() -> None:
    ev = CommandEvaluator(["prog", "--bs={batch_size}", ["--t", "{threds}"]])
    with pytest.raises(ValueError) as info:
        ev.check_space(SPACE)
    text = str(info.value)
    assert text.startswith("argv[2][1]: unknown placeholder {threds} (did you mean "
                           "'threads'?)")
    assert "(backend, batch_size, lr, threads)" in text
    CommandEvaluator(["prog", "{batch_size}", "{config_json}"],
                     env={"X": "{lr}"}).check_space(SPACE)
    with pytest.raises(SettingError, match=r"^env\['CUDA'\]: unknown placeholder \{gpu\}") \
            as info:
        CommandEvaluator(["prog"], env={"CUDA": "{gpu}"}).check_space(SPACE)
    assert info.value.path == ("env", "CUDA")


def test_check_finds_the_program(tmp_path: Path) -> None:
    CommandEvaluator(["python3", "-c", "pass"]).check()
    CommandEvaluator([PY]).check()
    CommandEvaluator(["{program}"]).check()  # templated: cannot be checked
    with pytest.raises(SettingError, match=r"^argv\[0\]: the program 'deploytune-nope' was "
                       r"not found on PATH"):
        CommandEvaluator(["deploytune-nope"]).check()
    (tmp_path / "bench.sh").write_text("#!/bin/sh\necho '{}'\n")
    with pytest.raises(ValueError, match=r"is not executable; run 'chmod \+x ./bench.sh'"):
        CommandEvaluator(["./bench.sh"], cwd=tmp_path).check()
    with pytest.raises(ValueError, match=r"write '\./bench\.sh'"):
        CommandEvaluator(["bench.sh"], cwd=tmp_path).check()
    os.chmod(tmp_path / "bench.sh", 0o755)
    CommandEvaluator(["./bench.sh"], cwd=tmp_path).check()
    assert run(CommandEvaluator(["./bench.sh"], cwd=tmp_path)).metrics == {}
    with pytest.raises(ValueError, match="does not exist"):
        CommandEvaluator(["./missing.sh"], cwd=tmp_path).check()


def test_python_placeholder_is_the_tuners_interpreter() -> None:
    ev = CommandEvaluator(["{python}", "-c", "import sys, json; print(json.dumps("
                           "{{'exe': sys.executable, 'bs': int(sys.argv[1])}}))",
                           "{batch_size}"])
    ev.check()
    ev.check_space(SPACE)
    out = run(ev, {"batch_size": 7})
    assert out.error is None, out.error
    assert out.metrics == {"exe": sys.executable, "bs": 7}


def test_describe() -> None:
    ev = CommandEvaluator(["python", "bench.py", "--bs", "{batch_size}"], timeout_s=60,
                          memory_mb=4096)
    assert ev.describe() == "command python bench.py --bs {batch_size} (60 s, 4096 MB)"


def test_echo_json() -> None:
    ev = run(CommandEvaluator(["/bin/echo", '{{"x": 1, "y": NaN}}']))
    assert ev.error is None and ev.metrics["x"] == 1 and math.isnan(ev.metrics["y"])
    assert ev.info["exit_code"] == 0 and ev.info["argv"] == ["/bin/echo", '{"x": 1, "y": NaN}']


def test_segfault() -> None:
    ev = run(cmd("segfault.py"))
    assert ev.error == "killed by signal SIGSEGV (segmentation fault)"
    assert ev.crash_kind is CrashKind.RUNTIME_ERROR and classify(ev) is CrashKind.RUNTIME_ERROR


def test_memory_cap_gives_oom() -> None:
    ev = run(cmd("allocate.py", memory_mb=300))
    assert ev.error is not None and ev.error.startswith("exited with code 1\n")
    assert "MemoryError" in ev.error and "MemoryError" in ev.log
    assert classify(ev) is CrashKind.OOM


def test_timeout() -> None:
    start = time.monotonic()
    ev = run(cmd("sleep.py", "30", timeout_s=1))
    assert time.monotonic() - start < 3
    assert ev.error == "timed out after 1 s (process group killed)"
    assert ev.crash_kind is CrashKind.TIMEOUT
    assert classify(ev, [Rule(".*", CrashKind.TRANSIENT)]) is CrashKind.TIMEOUT
    assert "going to sleep" in ev.log
    assert wait_dead(ev.info["pid"], group=True)


def test_exit_code() -> None:
    ev = run(cmd("exit_code.py", "3"))
    assert ev.error == "exited with code 3\nfatal: the engine refused the configuration"
    assert ev.info["exit_code"] == 3
    assert classify(ev) is CrashKind.RUNTIME_ERROR
    assert "some output" in ev.log


def test_garbage_on_the_last_line() -> None:
    ev = run(cmd("garbage.py"))
    assert ev.error == ("the last line of stdout is not a JSON object: 'all done, throughput "
                        "was great'; print the metrics as one JSON object on the last line")
    assert classify(ev) is CrashKind.RUNTIME_ERROR


def test_empty_stdout_and_non_object_json() -> None:
    ev = run(CommandEvaluator(["true"]))
    assert ev.error is not None and ev.error.startswith("the command printed nothing on stdout")
    ev = run(CommandEvaluator(["/bin/echo", "[1, 2]"]))
    assert ev.error is not None and "not a JSON object: '[1, 2]'" in ev.error


def test_100_mb_of_output_keeps_a_bounded_log() -> None:
    ev = run(cmd("flood.py", "100", log_tail_bytes=8192))
    assert ev.error is None and ev.metrics == {"x": 1}
    assert ev.info["stdout_bytes"] > 100_000_000
    assert len(ev.log) < 2 * 8192 + 200
    ev = run(cmd("flood.py", "100", "nojson", log_tail_bytes=8192))
    assert ev.error is not None and ev.error.startswith("the last line of stdout is not a JSON")
    assert len(ev.log) < 2 * 8192 + 200


def test_forked_child_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    start = time.monotonic()
    ev = run(cmd("fork_child.py", str(pid_file)))
    assert ev.error is None and ev.metrics == {"x": 1}
    assert time.monotonic() - start < 3
    assert wait_dead(read_pid(pid_file))


def test_transient_failure_then_success(tmp_path: Path) -> None:
    ev = cmd("transient.py", str(tmp_path / "marker"))
    first = run(ev)
    assert first.error == "exited with code 1\nOSError: [Errno 98] Address already in use"
    assert classify(first, [Rule("Address already in use", CrashKind.TRANSIENT)]) \
        is CrashKind.TRANSIENT
    second = run(ev)
    assert second.error is None and second.metrics == {"x": 1}


def p95_above_100(partial: Mapping[str, float], step: int | None,
                  rung: str | None = None) -> str | None:
    p95 = partial.get("p95_ms", 0.0)
    return f"p95_ms = {p95:g} > 100" if p95 > 100 else None


def test_streamed_reports_abort_the_trial(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    steps: list[int | None] = []
    rungs: list[str | None] = []

    def check(partial: Mapping[str, float], step: int | None,
              rung: str | None = None) -> str | None:
        steps.append(step)
        rungs.append(rung)
        return p95_above_100(partial, step)

    monitor = Monitor(check)
    ev = run(cmd("stream.py", str(pid_file)), monitor=monitor)
    assert ev.aborted == "p95_ms = 110 > 100" and ev.error is None
    assert ev.metrics == {"p95_ms": 110.0} and steps == [0, 1, 2]
    assert rungs == [None, "short", None] and monitor.rungs == {"short": {"p95_ms": 80.0}}
    assert ev.cost_s < 3  # the script runs for 10 s
    assert wait_dead(read_pid(pid_file), group=True)


def test_reports_are_not_the_final_metrics() -> None:
    code = ("print('DEPLOYTUNE_REPORT {{\"p\": 1, \"step\": 1}}'); print('{{\"x\": 2}}'); "
            "print('DEPLOYTUNE_REPORT {{\"p\": 3}}'); print('DEPLOYTUNE_REPORT nonsense')")
    monitor = Monitor()
    ev = run(CommandEvaluator([PY, "-c", code]), monitor=monitor)
    assert ev.error is None and ev.metrics == {"x": 2}
    assert monitor.partial == {"p": 3.0} and ev.info["reports"] == 2
    assert ev.info["bad_reports"] == ["nonsense"]
    only = run(CommandEvaluator([PY, "-c", "print('DEPLOYTUNE_REPORT {{\"p\": 1}}')"]))
    assert only.error is not None and "only DEPLOYTUNE_REPORT lines" in only.error


def test_keyboard_interrupt_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def interrupt(partial: Mapping[str, float], step: int | None,
                  rung: str | None = None) -> str | None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cmd("stream.py", str(pid_file)), monitor=Monitor(interrupt))
    assert wait_dead(read_pid(pid_file), group=True)


def test_bad_alloc_then_abort_is_oom() -> None:
    ev = run(cmd("bad_alloc.py"))
    assert ev.error is not None and ev.error.startswith("killed by signal SIGABRT")
    assert "std::bad_alloc" in ev.error
    assert classify(ev) is CrashKind.OOM


def test_sigkill_not_sent_by_deploytune_is_oom() -> None:
    ev = run(cmd("sigkill_self.py"))
    assert ev.error == ("killed by SIGKILL, not sent by deploytune (most likely the kernel OOM "
                        "killer)")
    assert ev.crash_kind is CrashKind.OOM and classify(ev) is CrashKind.OOM


def test_metrics_file(tmp_path: Path) -> None:
    ev = cmd("metrics_file.py", "out-{batch_size}.json", cwd=tmp_path,
             metrics_file="out-{batch_size}.json")
    got = run(ev, {"batch_size": 4})
    assert got.error is None and got.metrics == {"from_file": 1.5}
    assert (tmp_path / "out-4.json").exists()
    skip = cmd("metrics_file.py", "out-4.json", "skip", cwd=tmp_path, metrics_file="out-4.json")
    got = run(skip)  # the stale file of the previous run is not taken, and not deleted
    assert got.error is not None and "did not write the metrics file" in got.error
    assert (tmp_path / "out-4.json").exists()


@pytest.mark.parametrize("where", ["../victim.txt", "{target}", "sub/../../victim.txt"])
def test_metrics_file_never_touches_files_outside_cwd(tmp_path: Path, where: str) -> None:
    """Issue 16: a metrics_file out of the working directory deleted the file it named."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    config = {"target": str(victim)}
    if where == "{target}":  # absolute path from a parameter value: rejected per trial
        ev = cmd("metrics_file.py", "out.json", "skip", cwd=work, metrics_file=where)
        got = run(ev, config)
        assert got.error is not None and "outside the working directory" in got.error
    else:  # a static path out of cwd: rejected when the evaluator is built
        with pytest.raises(ValueError, match=r"metrics_file: .* must be a path inside"):
            cmd("metrics_file.py", "out.json", "skip", cwd=work, metrics_file=where)
    assert victim.read_text() == "precious"


def test_metrics_file_link_out_of_cwd_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text('{"from_file": 99}')
    work = tmp_path / "work"
    work.mkdir()
    (work / "out.json").symlink_to(victim)
    got = run(cmd("metrics_file.py", "out.json", "skip", cwd=work, metrics_file="out.json"))
    assert got.error is not None and "outside the working directory" in got.error
    assert victim.read_text() == '{"from_file": 99}'


def test_unknown_program_and_missing_cwd(tmp_path: Path) -> None:
    ev = run(CommandEvaluator(["deploytune-nope"]))
    assert ev.error is not None and ev.error.startswith("exited with code 127\n")
    assert "cannot run 'deploytune-nope'" in ev.error
    ev = run(CommandEvaluator(["true"], cwd=tmp_path / "missing"))
    assert ev.error is not None and ev.error.startswith("cannot start")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_a_killed_tuner_takes_the_command_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = ("import sys\n"
            "from deploytune.evaluators.base import Monitor\n"
            "from deploytune.evaluators.command import CommandEvaluator\n"
            f"CommandEvaluator([sys.executable, {str(SCRIPTS / 'pid_sleep.py')!r}, "
            f"{str(pid_file)!r}], timeout_s=30).evaluate({{}}, Monitor())\n")
    tuner = subprocess.Popen([PY, "-c", code])
    try:
        child = read_pid(pid_file, timeout_s=10)
    finally:
        tuner.kill()  # SIGKILL: no finally block of the tuner runs
        tuner.wait()
    assert wait_dead(child)
