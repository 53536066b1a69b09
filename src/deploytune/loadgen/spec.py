"""What load to generate: :class:`LoadSpec`, validated when built."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["ENDPOINTS", "PROMPT_SUFFIXES", "LoadSpec", "LoadSpecError"]

ENDPOINTS = ("chat", "completions")
"""Accepted values of :attr:`LoadSpec.endpoint`."""
PROMPT_SUFFIXES = (".txt", ".jsonl")
"""File suffixes accepted for a user prompt file."""
DEFAULT_REQUESTS = 16
"""Requests sent when neither ``requests`` nor ``duration_s`` is given."""


class LoadSpecError(ValueError):
    """An invalid :class:`LoadSpec` field.

    Attributes:
        field: The offending field's name (``"requests"``, ``"rate"``, ...), so a command line
            can name its own option instead.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class LoadSpec:
    """How much load to send to an OpenAI-compatible server, and how to judge it.

    Give at most one of ``requests`` (a fixed number of measured requests) and ``duration_s``
    (keep issuing requests for that many seconds); with neither, 16 requests are sent. Give
    ``rate`` for an open loop (Poisson arrivals at that many requests per second, the first at
    time 0), where ``concurrency``, if given, caps the requests in flight; without ``rate`` the
    loop is closed: ``concurrency`` requests (default 1) are kept in flight.

    Attributes:
        requests: Measured requests to send (``None`` in duration mode).
        duration_s: Seconds during which new requests are issued (``None`` in request mode).
        concurrency: Closed loop: requests in flight. Open loop: cap on requests in flight
            (``None``: uncapped).
        rate: Open-loop arrival rate in requests per second (``None``: closed loop).
        prompts: ``"builtin"`` (the built-in prompt set) or the path of a ``.txt`` file (one
            prompt per line) or a ``.jsonl`` file (``{"prompt": ...}`` per line).
        max_tokens: ``max_tokens`` of every request.
        endpoint: ``"chat"`` (``/v1/chat/completions``) or ``"completions"``
            (``/v1/completions``).
        model: The ``model`` field sent; ``None`` asks ``GET /v1/models`` once and uses the
            first id (``"default"`` when the server does not say).
        seed: Seeds the prompt order and the Poisson arrivals.
        slo_ttft_ms: Per-request time-to-first-token SLO for goodput (``None``: no SLO).
        slo_tpot_ms: Per-request time-per-output-token SLO for goodput.
        slo_e2e_ms: Per-request end-to-end latency SLO for goodput.
        request_timeout_s: A request taking longer fails with a timeout.
        warmup_requests: Requests sent first and not measured.
        report_every: Interim metrics are reported after every this many finished requests.
        temperature: Sampling temperature sent.
        ignore_eos: Send ``"ignore_eos": true`` (llama.cpp and vLLM then always generate
            ``max_tokens`` tokens).
    """

    requests: int | None = None
    duration_s: float | None = None
    concurrency: int | None = None
    rate: float | None = None
    prompts: str = "builtin"
    max_tokens: int = 64
    endpoint: str = "chat"
    model: str | None = None
    seed: int = 0
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    slo_e2e_ms: float | None = None
    request_timeout_s: float = 120.0
    warmup_requests: int = 0
    report_every: int = 4
    temperature: float = 0.0
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        """Validate every field and fill in the defaults that depend on the mode."""
        if self.requests is not None and self.duration_s is not None:
            raise LoadSpecError("requests", "give either a request count or duration_s, not "
                                            "both (drop one of them)")
        if self.requests is not None:
            self._positive_int("requests")
        if self.duration_s is not None:
            self._positive_number("duration_s")
        if self.requests is None and self.duration_s is None:
            object.__setattr__(self, "requests", DEFAULT_REQUESTS)
        if self.rate is not None:
            self._positive_number("rate")
        if self.concurrency is not None:
            self._positive_int("concurrency")
        elif self.rate is None:
            object.__setattr__(self, "concurrency", 1)
        if not isinstance(self.prompts, str) or not self.prompts.strip():
            raise LoadSpecError("prompts", f"expected 'builtin' or the path of a .txt or .jsonl "
                                           f"file, got {self.prompts!r}")
        if self.prompts != "builtin" and Path(self.prompts).suffix.lower() not in PROMPT_SUFFIXES:
            raise LoadSpecError("prompts", f"{self.prompts!r}: expected a .txt file (one prompt "
                                           f"per line) or a .jsonl file ({{\"prompt\": ...}} per "
                                           f"line), or 'builtin'")
        self._positive_int("max_tokens")
        if self.endpoint not in ENDPOINTS:
            raise LoadSpecError("endpoint", f"expected 'chat' or 'completions', got "
                                            f"{self.endpoint!r}")
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise LoadSpecError("model", f"expected a model name or None (ask the server), "
                                         f"got {self.model!r}")
        if not _is_int(self.seed):
            raise LoadSpecError("seed", f"expected an integer, got {self.seed!r}")
        for name in ("slo_ttft_ms", "slo_tpot_ms", "slo_e2e_ms"):
            if getattr(self, name) is not None:
                self._positive_number(name, hint="or None for no SLO")
        self._positive_number("request_timeout_s")
        if not _is_int(self.warmup_requests) or self.warmup_requests < 0:
            raise LoadSpecError("warmup_requests", f"expected an integer >= 0, got "
                                                   f"{self.warmup_requests!r}")
        self._positive_int("report_every")
        if not _is_number(self.temperature) or self.temperature < 0:
            raise LoadSpecError("temperature", f"expected a number >= 0, got "
                                               f"{self.temperature!r}")
        if not isinstance(self.ignore_eos, bool):
            raise LoadSpecError("ignore_eos", f"expected true or false, got "
                                              f"{self.ignore_eos!r}")

    def _positive_int(self, name: str) -> None:
        value = getattr(self, name)
        if not _is_int(value) or value < 1:
            raise LoadSpecError(name, f"expected an integer >= 1, got {value!r}")

    def _positive_number(self, name: str, hint: str = "") -> None:
        value = getattr(self, name)
        if not _is_number(value) or value <= 0:
            extra = f" ({hint})" if hint else ""
            raise LoadSpecError(name, f"expected a number > 0{extra}, got {value!r}")

    @property
    def open_loop(self) -> bool:
        """Whether requests arrive at ``rate`` (open loop) rather than back to back."""
        return self.rate is not None

    @property
    def slos(self) -> dict[str, float]:
        """The SLOs given, by field name (``slo_ttft_ms``, ...)."""
        out: dict[str, float] = {}
        for name in ("slo_ttft_ms", "slo_tpot_ms", "slo_e2e_ms"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (accepted back by :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadSpec:
        """Build a spec from a mapping of field names; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise LoadSpecError("load", f"expected a mapping of LoadSpec fields, got "
                                        f"{type(data).__name__}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise LoadSpecError(str(key), f"unknown load option {key!r}; known: "
                                              f"{', '.join(known)}")
        return cls(**dict(data))
