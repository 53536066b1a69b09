"""What the server evaluator is told and knows: its settings, crash rules and metric patterns.

:class:`ServerSettings` is the ``evaluator.server`` section (how to start and reach the server,
how long each phase may take); :data:`SERVER_RULES` classify a server that died from its log;
:data:`SERVER_METRIC_PATTERNS` are the numbers servers print that become metrics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from deploytune.evaluators.classify import Rule
from deploytune.outcome import CrashKind
from deploytune.setting_error import SettingError, finite_number, kind_of, one_line, show

__all__ = [
    "PORT_PLACEHOLDER",
    "SERVER_METRIC_PATTERNS",
    "SERVER_RULES",
    "TIMEOUT_FIELDS",
    "ServerSettings",
    "classify_server_log",
]

TIMEOUT_FIELDS = ("startup_timeout_s", "stop_timeout_s", "release_timeout_s")
"""The fields of :class:`ServerSettings` that are time limits, in seconds."""

_METRIC_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")

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


def classify_server_log(text: str) -> CrashKind | None:
    """The kind of the first of :data:`SERVER_RULES` that matches ``text``, or ``None``."""
    for rule in SERVER_RULES:
        if rule.matches(text):
            return rule.kind
    return None


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
        """Check the settings (``argv`` is checked by the evaluator that renders it).

        Raises:
            SettingError: At the field (``("port",)``, ``("metric_patterns", name)``, ...).
        """
        port = self.port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 0 < port < 65536):
            raise SettingError(("port",), f"expected a TCP port 1-65535, got {kind_of(port)}; "
                               f"leave it out to pick a free port per trial")
        for url_name in ("health_url", "base_url"):
            url = getattr(self, url_name)
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise SettingError((url_name,), f"{url!r} is not an http(s) URL; write e.g. "
                                   f"http://127.0.0.1:{{port}}/health")
        for name in TIMEOUT_FIELDS:
            _check_seconds(name, getattr(self, name))
        for name, pattern in self.metric_patterns.items():
            _check_pattern(name, pattern)


def _check_seconds(name: str, value: object) -> None:
    """Refuse a time limit ``name`` that is not a finite number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingError((name,), f"expected a number of seconds, got {kind_of(value)}; "
                           f"write e.g. {name}: 60")
    number = finite_number(value)
    if number is None or number <= 0:
        raise SettingError((name,), f"must be a finite number of seconds > 0 (got "
                           f"{show(value)}); give a positive value or remove the key")


def _check_pattern(name: object, pattern: object) -> None:
    """Refuse a metric pattern that is not a regular expression with a group, or whose
    metric name is not an identifier."""
    at = ("metric_patterns", name)
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise SettingError(at, f"metric names must be identifiers, got {kind_of(name)}")
    if not isinstance(pattern, str) or not pattern:
        raise SettingError(at, f"expected a regular expression string, got {kind_of(pattern)}")
    try:
        groups = re.compile(pattern).groups
    except (re.error, OverflowError) as exc:
        raise SettingError(at, f"{pattern!r} is not a valid regular expression "
                           f"({one_line(str(exc))}); escape ( [ . * + ? with a backslash") \
            from None
    if groups < 1:
        raise SettingError(at, f"{pattern!r} has no (group); put parentheses around the "
                           f"number, e.g. 'KV cache size: ([\\d,]+) tokens'")
