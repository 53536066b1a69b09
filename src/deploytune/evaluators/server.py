"""Evaluate a configuration of an OpenAI-compatible LLM server: start it, load it, stop it.

One trial of :class:`ServerEvaluator`:

1. **start**: the server's argv template (the command evaluator's rules: argv lists only, never
   a shell; ``{port}`` is the trial's port) runs under the per-trial supervisor
   (:mod:`deploytune.evaluators.process`) that sets the memory cap and owns every process the
   server starts (workers, engine cores, daemons), as the leader of its own process group: none
   outlives the trial or the tuner. Its stdout and stderr
   are read continuously into a bounded tail, and every line is matched against the metric
   patterns, so numbers the server prints at start-up or on failure (vLLM: ``Available KV
   cache memory``, ``estimated maximum model length is N``) become metrics even of a crash;
2. **wait until healthy**: the health URL is polled until it answers 200. A server that exits
   first is a crash with its log tail, classified by :data:`SERVER_RULES` (start-up OOM,
   invalid argument, unsupported configuration, port in use = transient); one that never gets
   healthy within ``startup_timeout_s`` is a ``timeout``;
3. **load**: the built-in load generator (:mod:`deploytune.loadgen`) drives the server and
   streams interim percentiles to the tuner's monitor, so early abort works; a server that dies
   during the load is a crash (with the partial metrics), and a load in which every request
   failed is a ``runtime_error`` rather than a fast score;
4. **stop**: ``SIGTERM`` to every process of the server, a grace period, ``SIGKILL``; then the
   evaluator waits until no process of it is left (its memory is released when the last one
   exits), the port accepts a new listener, and an optional ``release_check`` command (e.g. an
   ``nvidia-smi`` query comparing used memory with a baseline) exits 0. Only then does the next
   trial start.

Metrics of a trial: the load generator's (``ttft_p95_ms``, ``tpot_p95_ms``, ``goodput``,
``output_tokens_per_s``, ...), ``startup_s`` (seconds until healthy), ``memory_mb`` (peak
resident memory of the server: the sum over its processes of their high-water marks, sampled)
and the pattern metrics.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deploytune.evaluators._child import to_jsonable
from deploytune.evaluators._supervisor import KILL_WAIT_S
from deploytune.evaluators.base import AbortTrial, Evaluation, Evaluator, Monitor
from deploytune.evaluators.classify import Rule
from deploytune.evaluators.command import CommandEvaluator
from deploytune.evaluators.lifetime import trial_processes
from deploytune.evaluators.process import (
    kill_group,
    launcher_argv,
    memory_limit_bytes,
    stop_supervised,
)
from deploytune.evaluators.templates import Template, check_placeholders
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

PORT_PLACEHOLDER = "port"
"""The placeholder of the trial's port in the argv, the environment and the URLs."""

SERVER_RULES: tuple[Rule, ...] = (
    Rule(r"[Aa]ddress already in use|[Ee]rrno 98\b|port \d+ is (already )?in use",
         CrashKind.TRANSIENT),
    Rule(r"less than desired GPU memory utilization", CrashKind.TRANSIENT),
    Rule(r"CUDA out of memory|OutOfMemoryError|[Oo]ut of memory", CrashKind.OOM),
    Rule(r"No available memory for the cache blocks", CrashKind.OOM),
    Rule(r"estimated maximum model length is|larger than the available KV cache memory",
         CrashKind.OOM),
    Rule(r"[Ff]ailed to allocate|[Cc]annot allocate memory|std::bad_alloc|MemoryError",
         CrashKind.OOM),
    Rule(r"error: (argument|unrecognized arguments)|invalid choice|invalid int value|"
         r"invalid float value", CrashKind.INVALID_CONFIG),
    Rule(r"must be divisible by|is smaller than max_model_len|must be (greater|less) than",
         CrashKind.INVALID_CONFIG),
    Rule(r"[Nn]ot supported|[Uu]nsupported|NotImplementedError|Failed to create llama_context",
         CrashKind.INVALID_CONFIG),
    Rule(r"ValueError|pydantic.*validation error", CrashKind.INVALID_CONFIG),
)
"""How a server that died at start-up is classified, first match wins (after the user's own
rules): port in use and vLLM's free-memory snapshot failure (usually the previous trial's memory
not yet released) are ``transient``; allocation failures, vLLM's "no cache blocks" and
"estimated maximum model length" are ``oom`` (they are monotone in the memory knobs);
argument errors, divisibility and ordering checks, unsupported combinations and validation
errors are ``invalid_config`` (deterministic: learn the rule). A death during the load test
is classified by the same rules, falling back to ``runtime_error``."""

SERVER_METRIC_PATTERNS: dict[str, str] = {
    "kv_cache_gib": r"Available KV cache memory:\s*([\d.]+)\s*GiB",
    "kv_cache_tokens": r"GPU KV cache size:\s*([\d,]+)\s*tokens",
    "max_concurrency": r"Maximum concurrency for [\d,]+ tokens per request:\s*([\d.]+)x",
    "estimated_max_model_len": r"estimated maximum model length is\s*(\d+)",
    "kv_cache_mib": r"(?:KV self size|llama_kv_cache[\w:]*: .*size)\s*=\s*([\d.]+)\s*MiB",
    "compute_buffer_mib": r"CPU compute buffer size\s*=\s*([\d.]+)\s*MiB",
}
"""Numbers servers print, parsed into metrics when no ``metric_patterns`` are given: vLLM's KV
cache memory, capacity and concurrency (also printed before its max-model-length failure),
and llama.cpp's KV cache and compute buffer sizes."""

_HEALTH_POLL_S = 0.2
_RSS_POLL_S = 0.25
_LOG_LINES = 400
_LINE_BYTES = 4096  # the head kept of a longer line of the server's output
_DISCARD_BYTES = 1 << 16  # the piece size in which the rest of a long line is dropped
_HEALTH_PROBE_S = 2.0  # the longest one health probe may take, all of it together


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a new listener could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def process_group_members(pgid: int) -> list[int]:
    """The pids of the live (not zombie) processes of process group ``pgid`` (Linux ``/proc``)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        names = os.listdir("/proc")
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
                out.append(int(name))
    return out


def _high_water_kib(pid: int) -> int:
    """``VmHWM`` (peak resident set) of ``pid`` in KiB; 0 when gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass(frozen=True)
class ServerSettings:
    """How to run and reach the server (the ``evaluator.server`` section).

    Attributes:
        argv: The argv template that starts the server (strings and groups, see
            :mod:`deploytune.evaluators.command`); ``{port}`` is the trial's port.
        port: A fixed port, or ``None`` to pick a free one for each trial.
        health_url: Polled until it answers 200 (template with ``{port}``).
        base_url: Where the load generator sends requests (template with ``{port}``).
        startup_timeout_s: Seconds the server has to become healthy.
        stop_timeout_s: Seconds between ``SIGTERM`` and ``SIGKILL`` to the group.
        release_timeout_s: Seconds to wait, after the stop, for the group to be gone, the port
            free and ``release_check`` to pass.
        release_check: An optional argv run until it exits 0 after the stop (e.g. a script
            that compares GPU memory in use with a baseline).
        metric_patterns: Metric name -> regular expression with one group holding a number,
            searched in every line the server prints; the last match wins.
    """

    argv: tuple[str | tuple[str, ...], ...]
    port: int | None = None
    health_url: str = "http://127.0.0.1:{port}/health"
    base_url: str = "http://127.0.0.1:{port}"
    startup_timeout_s: float = 300.0
    stop_timeout_s: float = 15.0
    release_timeout_s: float = 30.0
    release_check: tuple[str, ...] | None = None
    metric_patterns: Mapping[str, str] = field(
        default_factory=lambda: dict(SERVER_METRIC_PATTERNS))

    def __post_init__(self) -> None:
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            raise ValueError(f"evaluator.server.port: {self.port!r} is not a TCP port; give "
                             f"1-65535, or leave it out to pick a free port per trial")
        for name in ("startup_timeout_s", "stop_timeout_s", "release_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"evaluator.server.{name}: must be a positive number of "
                                 f"seconds, got {value!r}")
        for url_name in ("health_url", "base_url"):
            url = getattr(self, url_name)
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"evaluator.server.{url_name}: {url!r} is not an http(s) URL; "
                                 f"write e.g. http://127.0.0.1:{{port}}/health")
        for name, pattern in self.metric_patterns.items():
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"evaluator.server.metric_patterns.{name}: {pattern!r} is not "
                                 f"a valid regular expression ({exc})") from None
            if compiled.groups < 1:
                raise ValueError(f"evaluator.server.metric_patterns.{name}: {pattern!r} needs "
                                 f"one (group) around the number, e.g. "
                                 f"'KV cache size: ([\\d,]+) tokens'")


class _ServerLog:
    """Reads the server's merged output: a bounded tail and the pattern metrics."""

    def __init__(self, stream: Any, patterns: Mapping[str, str]):
        self._stream = stream
        self._patterns = {name: re.compile(p) for name, p in patterns.items()}
        self.lines: deque[str] = deque(maxlen=_LOG_LINES)
        self.metrics: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="server-log", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            # at most _LINE_BYTES of a line are ever held: the head of a longer line is kept
            # and the rest is read and dropped in bounded pieces until its newline
            raw = self._stream.readline(_LINE_BYTES)
            if not raw:
                break
            if not raw.endswith(b"\n"):
                while piece := self._stream.readline(_DISCARD_BYTES):
                    if piece.endswith(b"\n"):
                        break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._lock:
                self.lines.append(line)
                for name, pattern in self._patterns.items():
                    m = pattern.search(line)
                    if m is None:
                        continue
                    with contextlib.suppress(ValueError, IndexError):
                        self.metrics[name] = float(m.group(1).replace(",", ""))

    def join(self, timeout_s: float) -> None:
        """Wait (bounded) until the stream is drained."""
        self._thread.join(timeout_s)

    def tail(self, n: int = _LOG_LINES) -> str:
        """The last ``n`` lines."""
        with self._lock:
            return "\n".join(list(self.lines)[-n:])

    def pattern_metrics(self) -> dict[str, float]:
        """The numbers parsed so far."""
        with self._lock:
            return dict(self.metrics)


class _MemorySampler:
    """Samples the peak resident memory of the server's processes (the descendants of its
    supervisor ``pgid``, whatever group they moved to) until stopped."""

    def __init__(self, pgid: int):
        self._pgid = pgid
        self._peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(_RSS_POLL_S)

    def sample(self) -> None:
        """Record the high-water mark of every live member now."""
        for pid in trial_processes(self._pgid):
            hwm = _high_water_kib(pid)
            if hwm > self._peaks.get(pid, 0):
                self._peaks[pid] = hwm

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(2.0)

    @property
    def peak_mb(self) -> float:
        """Sum over the server's processes of their peak resident memory, MiB."""
        return sum(self._peaks.values()) / 1024.0


class _Failure(Exception):
    """A trial that ended as a crash: message and the evaluator's own kind."""

    def __init__(self, message: str, kind: CrashKind | None):
        super().__init__(message)
        self.message = message
        self.kind = kind


def _render_url(template: Template, values: Mapping[str, Any]) -> str:
    """A URL template for one configuration (and its port).

    Raises:
        ValueError: A value cannot be formatted, or the URL refers to an inactive parameter.
    """
    text = template.render(values, lambda: json.dumps(dict(values), default=to_jsonable))
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
        self._command = CommandEvaluator(settings.argv, env=env, cwd=cwd, timeout_s=timeout_s,
                                         memory_mb=memory_mb)
        # the URLs are templates too, checked and rendered by the command's template engine
        self._urls = (Template(settings.health_url, "argv[1]"),
                      Template(settings.base_url, "argv[2]"))
        self.cwd = self._command.cwd
        self.timeout_s = self._command.timeout_s
        self.memory_mb = self._command.memory_mb

    # ---------------------------------------------------------------------------- checking
    def check(self) -> None:
        """Verify that the server's program can be found."""
        self._command.check()

    def check_space(self, space: Space) -> None:
        """Verify that every placeholder names a parameter of ``space`` or is ``{port}``."""
        self._command.check_space(space, extra=(PORT_PLACEHOLDER,))
        check_placeholders(self._urls, space, extra=(PORT_PLACEHOLDER,))

    def describe(self) -> str:
        """``server llama_cpp.server ... (start-up 120 s) + load 16 requests``."""
        line = self._command.describe().removeprefix("command ")
        return f"server {line}, start-up <= {self.settings.startup_timeout_s:g} s"

    # ---------------------------------------------------------------------------- running
    def evaluate(self, config: dict[str, Any], monitor: Monitor) -> Evaluation:
        """Start, load and stop the server for ``config``; see the module docstring."""
        start = time.monotonic()
        port = self.settings.port if self.settings.port is not None else free_port()
        values = {**config, PORT_PLACEHOLDER: port}
        try:
            argv, env, _ = self._command.render(values)
            health_url, base_url = (_render_url(t, values) for t in self._urls)
        except ValueError as exc:
            return Evaluation(error=f"cannot build the server's command: {exc}",
                              crash_kind=CrashKind.INVALID_CONFIG, cost_s=0.0)
        if not self._wait_port(port):
            return Evaluation(error=f"port {port} is in use by another process (still in use "
                              f"after {self.settings.release_timeout_s:g} s)",
                              crash_kind=CrashKind.TRANSIENT, cost_s=time.monotonic() - start)
        full_env = {**os.environ, **env}
        try:
            proc = subprocess.Popen(
                launcher_argv(argv, memory_limit_bytes(self.memory_mb),
                              grace_s=self.settings.stop_timeout_s), env=full_env,
                cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, process_group=0)
        except OSError as exc:
            return Evaluation(error=f"cannot start the server {argv[0]!r}: {exc}",
                              crash_kind=CrashKind.RUNTIME_ERROR,
                              cost_s=time.monotonic() - start)
        log = _ServerLog(proc.stdout, self.settings.metric_patterns)
        memory = _MemorySampler(proc.pid)
        watchdog = _Watchdog(proc, self.timeout_s)
        metrics: dict[str, Any] = {}
        info: dict[str, Any] = {"port": port, "pid": proc.pid}
        try:
            startup_s = self._wait_healthy(proc, health_url, start, watchdog)
            metrics["startup_s"] = startup_s
            memory.sample()
            monitor.report({"startup_s": startup_s, "memory_mb": memory.peak_mb,
                            **log.pattern_metrics()}, step=0)
            metrics.update(self._drive_load(proc, base_url, monitor, memory, log, watchdog))
        except AbortTrial as exc:
            return self._finish(proc, log, memory, {**metrics, **monitor.partial}, info,
                                start, aborted=exc.reason)
        except _Failure as failure:
            return self._finish(proc, log, memory, {**metrics, **monitor.partial}, info,
                                start, failure=failure)
        except BaseException:
            self._stop(proc, info)
            memory.stop()
            raise
        finally:
            watchdog.cancel()
        return self._finish(proc, log, memory, metrics, info, start)

    def _wait_port(self, port: int) -> bool:
        deadline = time.monotonic() + self.settings.release_timeout_s
        while not port_is_free(port):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def _wait_healthy(self, proc: subprocess.Popen[bytes], health_url: str, start: float,
                      watchdog: _Watchdog) -> float:
        deadline = start + self.settings.startup_timeout_s
        while True:
            rc = proc.poll()
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
            if _healthy(health_url, min(_HEALTH_PROBE_S, remaining)):
                return time.monotonic() - start
            time.sleep(max(0.0, min(_HEALTH_POLL_S, deadline - time.monotonic())))

    def _drive_load(self, proc: subprocess.Popen[bytes], base_url: str, monitor: Monitor,
                    memory: _MemorySampler, log: _ServerLog,
                    watchdog: _Watchdog) -> dict[str, float]:
        from deploytune.loadgen import run_load_sync

        def on_interim(partial: dict[str, float]) -> None:
            memory.sample()
            monitor.report({**partial, **log.pattern_metrics(), "memory_mb": memory.peak_mb},
                           step=int(partial.get("completed", 0)))

        try:
            result = run_load_sync(base_url, self.load, on_interim=on_interim)
        except AbortTrial:
            raise
        except Exception as exc:  # the server vanished before the first request, ...
            rc = proc.poll()
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
        rc = proc.poll()
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

    def _finish(self, proc: subprocess.Popen[bytes], log: _ServerLog, memory: _MemorySampler,
                metrics: dict[str, Any], info: dict[str, Any], start: float, *,
                aborted: str | None = None, failure: _Failure | None = None) -> Evaluation:
        memory.sample()
        exit_code = proc.poll()
        self._stop(proc, info)
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
            kind = _classify_text(tail) or CrashKind.RUNTIME_ERROR
        last = [ln for ln in tail.splitlines() if ln.strip()][-5:]
        message = "\n".join([failure.message, *last]) if last else failure.message
        if exit_code is not None:
            info["exit_code"] = exit_code
        return Evaluation(out, error=message, crash_kind=kind, log=tail, cost_s=cost, info=info)

    def _stop(self, proc: subprocess.Popen[bytes], info: dict[str, Any]) -> None:
        """Stop the server's processes and wait until its memory and port are released.

        The supervisor sends ``SIGTERM`` to every process of the server (whatever group or
        session it moved to) and, when asked after ``stop_timeout_s``, ``SIGKILL``; it exits
        only when none is left.
        """
        began = time.monotonic()
        pgid = proc.pid
        stop_supervised(proc, kill=False)
        try:
            proc.wait(self.settings.stop_timeout_s)
        except subprocess.TimeoutExpired:
            info["stop"] = "SIGKILL after SIGTERM was ignored"
        stop_supervised(proc, kill=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0 + KILL_WAIT_S)
        if proc.returncode is None:  # a supervisor that does not answer: its group, itself too
            kill_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + self.settings.release_timeout_s
        port = int(info["port"])
        released = False
        while time.monotonic() < deadline:
            if not process_group_members(pgid) and port_is_free(port) and self._released():
                released = True
                break
            kill_group(pgid, signal.SIGKILL)
            time.sleep(0.1)
        info["release_s"] = round(time.monotonic() - began, 3)
        if not released:
            info["release"] = "not released in time"
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()

    def _released(self) -> bool:
        if self.settings.release_check is None:
            return True
        try:
            return subprocess.run(list(self.settings.release_check), cwd=self.cwd,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  timeout=10, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


def _healthy(url: str, timeout_s: float = _HEALTH_PROBE_S) -> bool:
    """Whether ``GET url`` answers 200 within ``timeout_s`` seconds, all of it together.

    A per-operation socket timeout would not do: a server answering one byte a second never
    trips it. The probe runs in a daemon thread; when ``timeout_s`` has passed its socket is
    shut down, which ends a blocked read at once, and the probe counts as failed. No proxy is
    used (the server is the tuner's own, as for the load generator); https verifies the
    certificate as ``urllib`` does.
    """
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False
    if timeout_s <= 0 or not parts.hostname or parts.scheme not in ("http", "https"):
        return False
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    probe = _HealthProbe(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                         parts.scheme == "https", target, timeout_s)
    return probe.run()


class _HealthProbe:
    """One health request that can be abandoned at a deadline (see :func:`_healthy`)."""

    def __init__(self, host: str, port: int, tls: bool, target: str, timeout_s: float):
        self._host = host
        self._port = port
        self._tls = tls
        self._target = target
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._abandoned = False
        self._ok = False
        self._done = threading.Event()

    def run(self) -> bool:
        """Probe; ``False`` when it failed or did not finish within its time."""
        threading.Thread(target=self._probe, name="server-health", daemon=True).start()
        if self._done.wait(self._timeout_s):
            return self._ok
        with self._lock:
            self._abandoned = True
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    # the plain socket's shutdown, also under TLS: it wakes the reader
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        return False

    def _hold(self, sock: socket.socket) -> bool:
        """Make ``sock`` the one to shut down on abandon; ``False`` if already abandoned."""
        with self._lock:
            if self._abandoned:
                return False
            self._sock = sock
            return True

    def _probe(self) -> None:
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout_s)
            if not self._hold(sock):
                return
            if self._tls:
                sock = ssl.create_default_context().wrap_socket(
                    sock, server_hostname=self._host, do_handshake_on_connect=False)
                if not self._hold(sock):
                    return
                sock.do_handshake()
            conn = http.client.HTTPConnection(self._host, self._port)
            conn.sock = sock  # http.client reads at most 100 header lines of 64 KiB each
            conn.request("GET", self._target, headers={"Connection": "close"})
            response = conn.getresponse()
            self._ok = response.status == 200
        except Exception:  # any failure (refused, reset, TLS, garbage): not healthy yet
            self._ok = False
        finally:
            with self._lock:
                self._sock = None
                if sock is not None:
                    sock.close()
            self._done.set()


def _classify_text(text: str) -> CrashKind | None:
    for rule in SERVER_RULES:
        if rule.matches(text):
            return rule.kind
    return None


class _Watchdog:
    """Kills the server's processes when a trial's wall-clock limit passes."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout_s: float | None):
        self.fired = False
        self._timer: threading.Timer | None = None
        if timeout_s is not None:
            self._timer = threading.Timer(timeout_s, self._fire, args=(proc,))
            self._timer.daemon = True
            self._timer.start()

    def _fire(self, proc: subprocess.Popen[bytes]) -> None:
        self.fired = True
        stop_supervised(proc, kill=True)

    def cancel(self) -> None:
        """Disarm."""
        if self._timer is not None:
            self._timer.cancel()
