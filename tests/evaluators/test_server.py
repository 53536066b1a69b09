"""The server evaluator against a real local HTTP server that misbehaves on purpose.

``tests/fake_openai_server.py`` is a real OpenAI-compatible server (aiohttp) run as a real
subprocess; its ``--mode`` makes it healthy, never healthy, die at start-up or in the middle of
the load, return errors or stream slowly. Every test checks that nothing is left behind: the
process group is gone and the port is free again.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import deploytune
from deploytune.evaluators.base import Monitor
from deploytune.evaluators.server import (
    ServerEvaluator,
    ServerSettings,
    free_port,
    port_is_free,
    process_group_members,
)
from deploytune.loadgen import LoadSpec
from deploytune.outcome import CrashKind
from deploytune.setting_error import SettingError
from deploytune.spec import load_spec

FAKE = str(Path(__file__).resolve().parents[1] / "fake_openai_server.py")


def _evaluator(*args: str, load: LoadSpec | None = None, **settings: Any) -> ServerEvaluator:
    argv = (sys.executable, FAKE, "--port", "{port}", *args)
    kw: dict[str, Any] = {"startup_timeout_s": 20.0, "release_timeout_s": 10.0}
    kw.update(settings)
    timeout_s = kw.pop("timeout_s", None)
    return ServerEvaluator(ServerSettings(argv, **kw),
                           load or LoadSpec(requests=6, concurrency=2, max_tokens=8),
                           timeout_s=timeout_s)


def _assert_released(evaluation: deploytune.evaluators.base.Evaluation) -> None:
    pid = evaluation.info["pid"]
    assert process_group_members(pid) == []
    assert port_is_free(evaluation.info["port"])
    assert "release" not in evaluation.info, evaluation.info


def test_healthy_server_is_load_tested_and_stopped() -> None:
    ev = _evaluator("--mode", "ok", "--ttft-ms", "20", "--token-delay-ms", "5")
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.error is None, evaluation.error
    m = evaluation.metrics
    assert m["completed"] == 6 and m["error_rate"] == 0
    assert m["ttft_p50_ms"] >= 15
    assert m["output_tokens_per_s"] > 0
    assert m["startup_s"] > 0
    assert m["memory_mb"] > 10  # a Python process with aiohttp loaded
    _assert_released(evaluation)


@pytest.mark.slow
def test_server_that_never_gets_healthy_is_a_timeout() -> None:
    ev = _evaluator("--mode", "never-healthy", startup_timeout_s=2.0)
    t0 = time.monotonic()
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.TIMEOUT
    assert "did not become healthy within 2 s" in (evaluation.error or "")
    assert time.monotonic() - t0 < 15
    _assert_released(evaluation)


@pytest.mark.parametrize(("message", "kind"), [
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", CrashKind.OOM),
    ("ValueError: To serve at least one request with the models's max seq len (32768), "
     "(4.00 GiB KV cache is needed, which is larger than the available KV cache memory "
     "(1.10 GiB). Based on the available memory, the estimated maximum model length is 9008.",
     CrashKind.OOM),
    ("error: argument --n_ctx: invalid int value: 'abc'", CrashKind.INVALID_CONFIG),
    ("ValueError: Failed to create llama_context", CrashKind.INVALID_CONFIG),
    ("OSError: [Errno 98] Address already in use", CrashKind.TRANSIENT),
    ("Segmentation fault in a custom kernel", CrashKind.RUNTIME_ERROR),
])
@pytest.mark.slow
def test_start_up_crash_is_classified_from_the_log(message: str, kind: CrashKind) -> None:
    ev = _evaluator("--mode", "crash-on-start", "--crash-message", message, "--exit-code", "1")
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is kind
    assert "exited with code 1 before it became healthy" in (evaluation.error or "")
    assert message[:30] in evaluation.log
    _assert_released(evaluation)


def test_numbers_printed_before_a_crash_become_metrics() -> None:
    message = ("Available KV cache memory: 1.10 GiB ... the estimated maximum model length "
               "is 9008. Try increasing gpu_memory_utilization")
    ev = _evaluator("--mode", "crash-on-start", "--crash-message", message, "--exit-code", "1")
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.OOM
    assert evaluation.metrics["estimated_max_model_len"] == 9008
    assert evaluation.metrics["kv_cache_gib"] == pytest.approx(1.10)


def test_user_metric_patterns_read_start_up_lines() -> None:
    ev = _evaluator("--mode", "ok", "--print-startup-line", "slots: 7 ready, kv=123.5 MiB",
                    metric_patterns={"slots": r"slots: (\d+)", "kv_mib": r"kv=([\d.]+) MiB"})
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.error is None
    assert evaluation.metrics["slots"] == 7
    assert evaluation.metrics["kv_mib"] == 123.5


def test_server_dying_mid_load_is_a_crash_with_partial_metrics() -> None:
    ev = _evaluator("--mode", "die-mid-load", "--die-after", "3",
                    load=LoadSpec(requests=12, concurrency=1, max_tokens=4))
    t0 = time.monotonic()
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.RUNTIME_ERROR
    assert "during the load test" in (evaluation.error or "")
    assert evaluation.metrics.get("startup_s", 0) > 0
    assert evaluation.info.get("exit_code") == 3
    assert time.monotonic() - t0 < 60
    _assert_released(evaluation)


def test_request_errors_count_and_all_failing_is_a_crash() -> None:
    some = _evaluator("--mode", "errors", "--error-every", "2",
                      load=LoadSpec(requests=8, concurrency=1, max_tokens=4))
    evaluation = some.evaluate({}, Monitor())
    assert evaluation.error is None
    assert evaluation.metrics["error_rate"] == pytest.approx(0.5)
    every = _evaluator("--mode", "errors", "--error-every", "1",
                       load=LoadSpec(requests=4, concurrency=1, max_tokens=4))
    evaluation = every.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.RUNTIME_ERROR
    assert "every request of the load test failed" in (evaluation.error or "")
    _assert_released(evaluation)


def test_slow_stream_is_aborted_early_by_the_monitor() -> None:
    ev = _evaluator("--mode", "slow-stream", "--token-delay-ms", "150",
                    load=LoadSpec(requests=40, concurrency=1, max_tokens=6, report_every=1))

    rungs: list[str | None] = []

    def check(partial: Mapping[str, float], step: int | None,
              rung: str | None = None) -> str | None:
        rungs.append(rung)
        return "too slow" if partial.get("tpot_p95_ms", 0) > 50 else None

    t0 = time.monotonic()
    monitor = Monitor(check)
    evaluation = ev.evaluate({}, monitor)
    assert evaluation.aborted == "too slow"
    # healthy ends the rung "boot", the first interim report the rung "short"
    assert rungs[:2] == ["boot", "short"] and set(rungs[2:]) <= {None}
    assert "startup_s" in monitor.rungs["boot"] and "tpot_p95_ms" in monitor.rungs["short"]
    assert evaluation.error is None
    assert evaluation.metrics["tpot_p95_ms"] > 50
    assert time.monotonic() - t0 < 30  # 40 requests x 6 tokens x 150 ms would take 36 s
    _assert_released(evaluation)


@pytest.mark.slow
def test_trial_time_limit_kills_the_server_mid_load() -> None:
    ev = _evaluator("--mode", "slow-stream", "--token-delay-ms", "200", timeout_s=4.0,
                    load=LoadSpec(requests=50, concurrency=1, max_tokens=8))
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.TIMEOUT
    assert "timed out after 4 s" in (evaluation.error or "")
    _assert_released(evaluation)


def test_fixed_port_held_by_someone_else_is_transient() -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        ev = _evaluator("--mode", "ok", port=port, release_timeout_s=1.0)
        evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.TRANSIENT
    assert f"port {port} is in use" in (evaluation.error or "")


def test_children_of_the_server_are_killed_with_it() -> None:
    ev = _evaluator("--mode", "ok", "--spawn-child")
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.error is None
    _assert_released(evaluation)


def test_settings_reject_bad_values() -> None:
    with pytest.raises(SettingError, match=r"^port: expected a TCP port 1-65535") as info:
        ServerSettings(("x",), port=70000)
    assert info.value.path == ("port",)
    with pytest.raises(ValueError, match="startup_timeout_s"):
        ServerSettings(("x",), startup_timeout_s=0)
    with pytest.raises(SettingError, match="has no \\(group\\)") as info:
        ServerSettings(("x",), metric_patterns={"kv": "KV size"})
    assert info.value.path == ("metric_patterns", "kv")
    with pytest.raises(ValueError, match="health_url"):
        ServerSettings(("x",), health_url="localhost:8000/health")


@pytest.mark.slow
def test_tuning_run_through_a_spec(tmp_path: Path) -> None:
    """A tuner run on a YAML spec: the token delay is the knob, one value is a start-up crash."""
    spec_text = f"""
space:
  delay_ms: {{type: categorical, choices: [2, 30]}}
  mode: {{type: categorical, choices: [ok, crash-on-start]}}
objective: {{metric: output_tokens_per_s, direction: maximize}}
constraints: ["ttft_p95_ms <= 5000"]
evaluator:
  server:
    argv: ["{{python}}", {FAKE!r}, --port, "{{port}}", --mode, "{{mode}}",
           --token-delay-ms, "{{delay_ms}}", --crash-message, "CUDA out of memory"]
    startup_timeout_s: 20
  load: {{requests: 4, concurrency: 2, max_tokens: 6}}
budget: 6
seed: 3
"""
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text)
    spec = load_spec(path)
    evaluator = spec.build_evaluator()
    assert isinstance(evaluator, ServerEvaluator)
    try:
        result = deploytune.optimize(
            evaluator, spec.space, objective=spec.objective.metric,
            direction=spec.objective.direction, constraints=spec.constraints,
            budget=spec.budget_trials, sampler="random", seed=spec.seed)
    finally:
        evaluator.close()
    assert len(result.trials) == 6
    crashed = [t for t in result.trials if t.status.value == "crashed"]
    assert crashed, "mode crash-on-start was never sampled in 6 random trials"
    assert all(t.crash_kind is CrashKind.OOM for t in crashed)
    best = result.best_trial
    assert best is not None and best.config["mode"] == "ok"


# ------------------------------------------------------------------ hostile servers (issue 16)

def _status_kib(name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def _peak_rss_growth_mb() -> Iterator[list[float]]:
    """Yields a list that receives, at the end of the block, how far this process's resident
    memory rose above its level at the start (MiB): the peak of ``VmRSS`` sampled every 5 ms
    and, where ``/proc/self/clear_refs`` lets the peak be reset, ``VmHWM``."""
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        hwm_valid = True
    except OSError:
        hwm_valid = False
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _status_kib("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    growth: list[float] = []
    try:
        yield growth
    finally:
        stop.set()
        sampler.join()
        top = max(peak[0], _status_kib("VmRSS"), _status_kib("VmHWM") if hwm_valid else 0)
        growth.append((top - before) / 1024.0)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


class _Trickle(socketserver.BaseRequestHandler):
    """Answers any connection with an HTTP status line and a header, one byte per 0.5 s (at
    most 30 s), and stops when the client goes away."""

    stop: threading.Event

    def handle(self) -> None:
        self.request.settimeout(1.0)
        with contextlib.suppress(OSError):
            self.request.recv(4096)  # the request
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 44:
            if self.stop.wait(0.5):
                return
            try:
                self.request.sendall(bytes([byte]))
            except OSError:
                return


@contextlib.contextmanager
def _http_listener(handler: type[socketserver.BaseRequestHandler]) -> Iterator[str]:
    """A threaded stdlib server on 127.0.0.1 with ``handler``; yields its ``/health`` URL."""
    stop = threading.Event()
    bound = type("Handler", (handler,), {"stop": stop})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), bound)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_health_answer_trickling_a_byte_at_a_time_cannot_outlast_the_startup_timeout() -> None:
    with _http_listener(_Trickle) as health_url:
        ev = _evaluator("--mode", "ok", health_url=health_url, startup_timeout_s=2.0)
        t0 = time.monotonic()
        evaluation = ev.evaluate({}, Monitor())
        elapsed = time.monotonic() - t0
    assert evaluation.crash_kind is CrashKind.TIMEOUT
    assert "did not become healthy within 2 s" in (evaluation.error or "")
    assert elapsed < 12  # the trickle alone would hold a per-read timeout for 30 s
    _assert_released(evaluation)


def test_time_limit_during_start_up_is_a_timeout_not_a_crash() -> None:
    ev = _evaluator("--mode", "ok", "--startup-delay-s", "60", timeout_s=1.0)
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.TIMEOUT, evaluation.error
    assert "timed out after 1 s during start-up" in (evaluation.error or "")
    _assert_released(evaluation)


def test_time_limit_hit_as_the_load_starts_is_a_timeout_not_a_crash(tmp_path: Path) -> None:
    """The health URL (a separate listener) answers 200 only once the trial's time limit has
    killed the server, so the load generator finds nothing listening."""
    pid_file = tmp_path / "server.pid"

    class AfterDeath(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = pid_file.read_text() if pid_file.exists() else ""
                if text and not _alive(int(text)):
                    break
                time.sleep(0.02)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with _http_listener(AfterDeath) as health_url:
        ev = _evaluator("--mode", "ok", "--startup-delay-s", "60", "--pid-file", str(pid_file),
                        health_url=health_url, timeout_s=1.0)
        evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.TIMEOUT, evaluation.error
    assert "timed out after 1 s" in (evaluation.error or "")
    _assert_released(evaluation)


@pytest.mark.slow
def test_a_huge_log_line_is_cut_and_the_tuner_does_not_hold_it() -> None:
    ev = _evaluator("--mode", "ok", "--log-line-mb", "200",
                    metric_patterns={"head": r"LONGLINE (\d+)", "after": r"long line: (\d+)"},
                    load=LoadSpec(requests=2, concurrency=1, max_tokens=4))
    with _peak_rss_growth_mb() as growth:
        evaluation = ev.evaluate({}, Monitor())
    assert growth[0] < 150, f"the tuner grew by {growth[0]:.0f} MiB for a 200 MiB log line"
    assert evaluation.error is None, evaluation.error
    assert evaluation.metrics["head"] == 7  # the head of the long line was kept
    assert evaluation.metrics["after"] == 8  # and the lines after it were read
    _assert_released(evaluation)


def test_a_stream_without_newlines_is_an_error_and_the_tuner_does_not_hold_it() -> None:
    ev = _evaluator("--mode", "sse-garbage", "--garbage-mb", "300", timeout_s=30.0,
                    load=LoadSpec(requests=4, concurrency=2, max_tokens=8,
                                  request_timeout_s=8.0))
    with _peak_rss_growth_mb() as growth:
        evaluation = ev.evaluate({}, Monitor())
    assert evaluation.crash_kind is CrashKind.RUNTIME_ERROR
    assert "every request of the load test failed" in (evaluation.error or "")
    assert "stream line longer than 1048576 bytes" in (evaluation.error or "")
    assert growth[0] < 150, f"the tuner grew by {growth[0]:.0f} MiB"
    _assert_released(evaluation)


# ------------------------------------------------------------------------------- the stop

IGNORING_TERM = ("import runpy, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                 "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def test_server_ignoring_sigterm_is_killed_after_the_stop_grace() -> None:
    argv = (sys.executable, "-c", IGNORING_TERM, FAKE, "--port", "{port}", "--mode", "ok")
    ev = ServerEvaluator(ServerSettings(argv, startup_timeout_s=20.0, release_timeout_s=10.0,
                                        stop_timeout_s=1.0),
                         LoadSpec(requests=2, concurrency=1, max_tokens=4))
    evaluation = ev.evaluate({}, Monitor())
    assert evaluation.error is None, evaluation.error
    assert evaluation.info["stop"] == "SIGKILL after SIGTERM was ignored"
    assert 1.0 <= evaluation.info["release_s"] < 8.0
    _assert_released(evaluation)


def test_release_check_must_pass_before_the_trial_ends() -> None:
    passing = _evaluator("--mode", "ok", release_check=(sys.executable, "-c", "pass"))
    evaluation = passing.evaluate({}, Monitor())
    assert evaluation.error is None, evaluation.error
    _assert_released(evaluation)
    failing = _evaluator("--mode", "ok", release_timeout_s=1.0,
                         release_check=(sys.executable, "-c", "raise SystemExit(1)"))
    evaluation = failing.evaluate({}, Monitor())
    assert evaluation.error is None, evaluation.error
    assert evaluation.info["release"] == "not released in time"
    assert 1.0 <= evaluation.info["release_s"] < 8.0
    missing = _evaluator("--mode", "ok", release_timeout_s=0.5,
                         release_check=("/nonexistent/release-check",))
    assert missing.evaluate({}, Monitor()).info["release"] == "not released in time"
