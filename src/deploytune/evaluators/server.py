"""Evaluate a configuration of an OpenAI-compatible LLM server: start it, load it, stop it.

One trial of :class:`ServerEvaluator`:

1. **start**: the server's argv template (the command evaluator's rules: argv lists only, never
   a shell; ``{port}`` is the trial's port) runs under the per-trial supervisor
   (:mod:`deploytune.evaluators.launcher`) that sets the memory cap and owns every process the
   server starts (workers, engine cores, daemons), as the leader of its own process group
   (:class:`~deploytune.evaluators.process_group.ProcessGroup`): none outlives the trial or the
   tuner. Its stdout and stderr are read continuously into a bounded tail, and every line is
   matched against the metric patterns, so numbers the server prints at start-up or on failure
   (vLLM: ``Available KV cache memory``, ``estimated maximum model length is N``) become
   metrics even of a crash (:mod:`deploytune.evaluators.server_watch`);
2. **wait until healthy**: the health URL is polled until it answers 200. A server that exits
   first is a crash with its log tail, classified by :data:`SERVER_RULES` (start-up OOM,
   invalid argument, unsupported configuration, port in use = transient); one that never gets
   healthy within ``startup_timeout_s`` is a ``timeout``. Healthy is the fidelity rung ``boot``
   (its report: ``startup_s``, ``memory_mb`` and the pattern metrics, such as the KV cache);
3. **load**: the built-in load generator (:mod:`deploytune.loadgen`) drives the server and
   streams interim percentiles to the tuner's monitor, so early abort works; the first interim
   report (after ``report_every`` requests) ends the rung ``short``, where the tuner may stop a
   run that is unlikely to end as the best feasible one (:mod:`deploytune.promotion`); a server
   that dies during the load is a crash (with the partial metrics), and a load in which every
   request failed is a ``runtime_error`` rather than a fast score;
4. **stop**: the process group's one stop policy: ``SIGTERM`` to every process of the server, a
   grace period (``stop_timeout_s``), ``SIGKILL``; then the evaluator waits until no process of
   it is left (its memory is released when the last one exits), the port accepts a new
   listener, and an optional ``release_check`` command (e.g. an ``nvidia-smi`` query comparing
   used memory with a baseline) exits 0. Only then does the next trial start. When the trial's
   wall-clock limit passes, the same stop runs at once with a zero grace.

Metrics of a trial: the load generator's (``ttft_p95_ms``, ``tpot_p95_ms``, ``goodput``,
``output_tokens_per_s``, ...), ``startup_s`` (seconds until healthy), ``memory_mb`` (peak
resident memory of the server: the sum over its processes of their high-water marks, sampled)
and the pattern metrics.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deploytune.evaluators.base import AbortTrial, Evaluation, Evaluator, Monitor
from deploytune.evaluators.launcher import launcher_argv, memory_limit_bytes
from deploytune.evaluators.limits import describe_limits, positive_limit
from deploytune.evaluators.process_group import ProcessGroup, process_group_members
from deploytune.evaluators.server_network import HEALTH_PROBE_S, free_port, healthy, port_is_free
from deploytune.evaluators.server_settings import (
    PORT_PLACEHOLDER,
    SERVER_METRIC_PATTERNS,
    SERVER_RULES,
    ServerSettings,
    classify_server_log,
)
from deploytune.evaluators.server_watch import MemorySampler, ServerLog
from deploytune.evaluators.templates import (
    ArgvTemplate,
    Template,
    check_placeholders,
    config_json_of,
)
from deploytune.outcome import CrashKind

if TYPE_CHECKING:
    from deploytune.loadgen import LoadSpec
    from deploytune.space import Space

__all__ = [
    "PORT_PLACEHOLDER",
    "SERVER_METRIC_PATTERNS",
    "SERVER_RULES",
    "ServerEvaluator",
    "ServerSettings",
    "free_port",
    "port_is_free",
    "process_group_members",
]

_HEALTH_POLL_S = 0.2
_RELEASE_CHECK_TIMEOUT_S = 10.0


class _Failure(Exception):
    """A trial that ended as a crash: message and the evaluator's own kind."""

    def __init__(self, message: str, kind: CrashKind | None):
        super().__init__(message)
        self.message = message
        self.kind = kind


def _render_url(template: Template, values: Mapping[str, Any],
                config_json: Callable[[], str]) -> str:
    """A URL template for one configuration (and its port).

    Raises:
        ValueError: A value cannot be formatted, or the URL refers to an inactive parameter.
    """
    text = template.render(values, config_json)
    if text is None:
        raise ValueError(f"{template.where} {template.text!r} refers to a parameter that is "
                         f"inactive in this configuration")
    return text


class ServerEvaluator(Evaluator):
    """Start an OpenAI-compatible server per trial, load-test it, stop it (module docstring).

    Args:
        settings: How to start and reach the server.
        load: The load to drive (requests, concurrency or rate, prompts, SLOs, ...).
        env: Environment variables (templates) added to the tuner's for the server.
        cwd: The server's working folder (default: the tuner's).
        timeout_s: Wall-clock limit of a whole trial (start, load and stop); ``None``: start-up
            is bounded by ``startup_timeout_s`` and the load by its own request timeout.
        memory_mb: Address-space cap of the server (``RLIMIT_AS``, MiB); leave it unset for CUDA
            servers, which reserve far more virtual memory than they use.

    Attributes:
        command: The server's argv and environment templates
            (:class:`~deploytune.evaluators.templates.ArgvTemplate`); ``render`` them with the
            trial's port among the values.

    Raises:
        SettingError: An invalid argument, at its path (``("argv", 0)``, ``("env", name)``,
            ``("health_url",)``, ...).

    Example:
        >>> evaluator = ServerEvaluator(
        ...     ServerSettings(("{python}", "-m", "llama_cpp.server", "--model", "m.gguf",
        ...                     "--n_threads", "{n_threads}", "--port", "{port}"),
        ...                    health_url="http://127.0.0.1:{port}/v1/models"),
        ...     LoadSpec(requests=8, concurrency=2, max_tokens=32))
    """

    def __init__(self, settings: ServerSettings, load: LoadSpec, *,
                 env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None,
                 timeout_s: float | None = None, memory_mb: float | None = None):
        self.settings = settings
        self.load = load
        self.command = ArgvTemplate(settings.argv, env)
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.timeout_s = positive_limit("timeout_s", timeout_s)
        self.memory_mb = positive_limit("memory_mb", memory_mb)
        # the URLs are templates too, checked and rendered by the same engine
        self._urls = (Template(settings.health_url, "health_url", ("health_url",)),
                      Template(settings.base_url, "base_url", ("base_url",)))

    # ---------------------------------------------------------------------------- checking
    def check(self) -> None:
        """Verify that the server's program can be found (see
        :meth:`~deploytune.evaluators.templates.ArgvTemplate.check_program`)."""
        self.command.check_program(self.cwd)

    def check_space(self, space: Space) -> None:
        """Verify that every placeholder names a parameter of ``space`` or is ``{port}``."""
        check_placeholders(self.command.templates(), space, extra=(PORT_PLACEHOLDER,))
        check_placeholders(self._urls, space, extra=(PORT_PLACEHOLDER,))

    def describe(self) -> str:
        """``server llama_cpp.server ... (start-up 120 s) + load 16 requests``."""
        limits = describe_limits(self.timeout_s, self.memory_mb)
        return (f"server {self.command.line()} ({limits}), start-up <= "
                f"{self.settings.startup_timeout_s:g} s")

    # ---------------------------------------------------------------------------- running
    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Start, load and stop the server for ``config``; see the module docstring."""
        start = time.monotonic()
        port = self.settings.port if self.settings.port is not None else free_port()
        values = {**config, PORT_PLACEHOLDER: port}
        try:
            config_json = config_json_of(values)
            argv, env = self.command.render(values, config_json)
            health_url, base_url = (_render_url(t, values, config_json) for t in self._urls)
        except ValueError as exc:
            return Evaluation(error=f"cannot build the server's command: {exc}",
                              crash_kind=CrashKind.INVALID_CONFIG, cost_s=0.0)
        if not self._wait_port(port):
            return Evaluation(error=f"port {port} is in use by another process (still in use "
                              f"after {self.settings.release_timeout_s:g} s)",
                              crash_kind=CrashKind.TRANSIENT, cost_s=time.monotonic() - start)
        try:
            group = ProcessGroup.start(
                launcher_argv(argv, memory_limit_bytes(self.memory_mb),
                              grace_s=self.settings.stop_timeout_s), supervised=True,
                env={**os.environ, **env}, cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as exc:
            return Evaluation(error=f"cannot start the server {argv[0]!r}: {exc}",
                              crash_kind=CrashKind.RUNTIME_ERROR,
                              cost_s=time.monotonic() - start)
        return self._run(group, health_url, base_url, monitor, start,
                         {"port": port, "pid": group.pid})

    def _run(self, group: ProcessGroup, health_url: str, base_url: str, monitor: Monitor,
             start: float, info: dict[str, Any]) -> Evaluation:
        """Steps 2 to 4 of the module docstring for the started server ``group``."""
        assert group.proc.stdout is not None
        log = ServerLog(group.proc.stdout, self.settings.metric_patterns)
        memory = MemorySampler(group.pid)
        watchdog = _Watchdog(group, self.timeout_s)
        metrics: dict[str, Any] = {}
        try:
            startup_s = self._wait_healthy(group, health_url, start, watchdog)
            metrics["startup_s"] = startup_s
            memory.sample()
            monitor.report({"startup_s": startup_s, "memory_mb": memory.peak_mb,
                            **log.pattern_metrics()}, step=0, rung="boot")
            metrics.update(self._drive_load(group, base_url, monitor, memory, log, watchdog))
        except AbortTrial as exc:
            return self._finish(group, log, memory, {**metrics, **monitor.partial}, info,
                                start, aborted=exc.reason)
        except _Failure as failure:
            return self._finish(group, log, memory, {**metrics, **monitor.partial}, info,
                                start, failure=failure)
        except BaseException:
            self._stop(group, info)
            memory.stop()
            raise
        finally:
            watchdog.cancel()
        return self._finish(group, log, memory, metrics, info, start)

    def _wait_port(self, port: int) -> bool:
        deadline = time.monotonic() + self.settings.release_timeout_s
        while not port_is_free(port):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def _wait_healthy(self, group: ProcessGroup, health_url: str, start: float,
                      watchdog: _Watchdog) -> float:
        deadline = start + self.settings.startup_timeout_s
        while True:
            rc = group.proc.poll()
            # the watchdog is asked after the exit: it sets `fired` before it kills, so a
            # server killed by the trial's time limit is a timeout, not a crash
            if watchdog.fired:
                raise _Failure(f"timed out after {self.timeout_s:g} s during start-up",
                               CrashKind.TIMEOUT)
            if rc is not None:
                raise _Failure(f"the server exited with code {rc} before it became healthy",
                               None)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failure(f"the server did not become healthy within "
                               f"{self.settings.startup_timeout_s:g} s ({health_url})",
                               CrashKind.TIMEOUT)
            # one probe, all of it (connect, TLS, status line, headers) within the time left
            if healthy(health_url, min(HEALTH_PROBE_S, remaining)):
                return time.monotonic() - start
            time.sleep(max(0.0, min(_HEALTH_POLL_S, deadline - time.monotonic())))

    def _drive_load(self, group: ProcessGroup, base_url: str, monitor: Monitor,
                    memory: MemorySampler, log: ServerLog,
                    watchdog: _Watchdog) -> dict[str, float]:
        from deploytune.loadgen import run_load_sync

        def on_interim(partial: dict[str, float]) -> None:
            memory.sample()
            monitor.report({**partial, **log.pattern_metrics(), "memory_mb": memory.peak_mb},
                           step=int(partial.get("completed", 0)),
                           rung=None if "short" in monitor.rungs else "short")

        try:
            result = run_load_sync(base_url, self.load, on_interim=on_interim)
        except AbortTrial:
            raise
        except Exception as exc:  # the server vanished before the first request, ...
            rc = group.proc.poll()
            if watchdog.fired:  # asked after the exit, as in _wait_healthy
                raise _Failure(f"timed out after {self.timeout_s:g} s during the load test "
                               f"({type(exc).__name__}: {exc})", CrashKind.TIMEOUT) from None
            if rc is not None:
                raise _Failure(f"the server exited with code {rc} during the load test", None) \
                    from None
            raise _Failure(f"the load test failed: {type(exc).__name__}: {exc}",
                           CrashKind.RUNTIME_ERROR) from None
        load_metrics = result.metrics()
        monitor.partial.update(load_metrics)  # kept as the partial metrics of a failure below
        rc = group.proc.poll()
        if watchdog.fired:
            raise _Failure(f"timed out after {self.timeout_s:g} s during the load test",
                           CrashKind.TIMEOUT)
        if rc is not None:
            raise _Failure(f"the server exited with code {rc} during the load test "
                           f"({int(load_metrics.get('completed', 0))} requests had completed)",
                           None)
        if load_metrics.get("error_rate", 0.0) >= 1.0:
            first = result.first_error() or "unknown error"
            raise _Failure(f"every request of the load test failed (first error: {first})",
                           CrashKind.RUNTIME_ERROR)
        return load_metrics

    def _finish(self, group: ProcessGroup, log: ServerLog, memory: MemorySampler,
                metrics: dict[str, Any], info: dict[str, Any], start: float, *,
                aborted: str | None = None, failure: _Failure | None = None) -> Evaluation:
        memory.sample()
        exit_code = group.proc.poll()
        self._stop(group, info)
        memory.stop()
        log.join(2.0)
        out = {**metrics, **log.pattern_metrics()}
        if memory.peak_mb > 0:
            out["memory_mb"] = memory.peak_mb
        tail = log.tail()
        cost = time.monotonic() - start
        if failure is None:
            return Evaluation(out, aborted=aborted, log=tail if aborted else "", cost_s=cost,
                              info=info)
        kind = failure.kind
        if kind is None:
            kind = classify_server_log(tail) or CrashKind.RUNTIME_ERROR
        last = [ln for ln in tail.splitlines() if ln.strip()][-5:]
        message = "\n".join([failure.message, *last]) if last else failure.message
        if exit_code is not None:
            info["exit_code"] = exit_code
        return Evaluation(out, error=message, crash_kind=kind, log=tail, cost_s=cost, info=info)

    def _stop(self, group: ProcessGroup, info: dict[str, Any]) -> None:
        """Stop the server's processes and wait until its memory and port are released.

        The process group's stop: the supervisor sends ``SIGTERM`` to every process of the
        server (whatever group or session it moved to) and, when asked after
        ``stop_timeout_s``, ``SIGKILL``; it exits only when none is left.
        """
        began = time.monotonic()
        if not group.stop(self.settings.stop_timeout_s):
            info["stop"] = "SIGKILL after SIGTERM was ignored"
        deadline = time.monotonic() + self.settings.release_timeout_s
        port = int(info["port"])
        released = False
        while time.monotonic() < deadline:
            if not group.members() and port_is_free(port) and self._released():
                released = True
                break
            group.kill_group()
            time.sleep(0.1)
        info["release_s"] = round(time.monotonic() - began, 3)
        if not released:
            info["release"] = "not released in time"
        if group.proc.stdout is not None:
            with contextlib.suppress(OSError):
                group.proc.stdout.close()

    def _released(self) -> bool:
        if self.settings.release_check is None:
            return True
        return _check_passes(self.settings.release_check, self.cwd)


def _check_passes(argv: Sequence[str], cwd: str | None) -> bool:
    """Whether the command ``argv`` exits 0 within :data:`_RELEASE_CHECK_TIMEOUT_S`; one that
    cannot start fails, one that takes longer is killed (its whole group) and fails."""
    try:
        group = ProcessGroup.start(argv, supervised=False, cwd=cwd,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return False
    try:
        return group.proc.wait(_RELEASE_CHECK_TIMEOUT_S) == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        group.stop(0.0)  # nothing is sent to a check that has exited


class _Watchdog:
    """Stops the server at once (the process group's stop with a zero grace) when a trial's
    wall-clock limit passes."""

    def __init__(self, group: ProcessGroup, timeout_s: float | None):
        self.fired = False
        self._timer: threading.Timer | None = None
        if timeout_s is not None:
            self._timer = threading.Timer(timeout_s, self._fire, args=(group,))
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, group: ProcessGroup) -> None:
        self.fired = True  # before the kill: the server's end reads as the timeout it is
        group.stop(0.0)

    def cancel(self) -> None:
        """Disarm."""
        if self._timer is not None:
            self._timer.cancel()
