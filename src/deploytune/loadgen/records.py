"""What one request measured (:class:`RequestRecord`) and what a run returns
(:class:`LoadResult`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from deploytune.loadgen.spec import LoadSpec

__all__ = ["ERROR_KINDS", "LoadResult", "RequestRecord"]

ERROR_KINDS = ("http", "stream", "connection", "incomplete", "timeout")
"""Values of :attr:`RequestRecord.error_kind`: an HTTP status other than 200, an ``error``
object in the stream, a refused or reset connection, a stream that ended without ``[DONE]`` or
a ``finish_reason``, the request timeout."""


@dataclass
class RequestRecord:
    """The timeline of one request; times are seconds since the measured run started.

    Attributes:
        index: The request's number in the run (0-based, in issue order).
        start: When the request was sent.
        end: When its stream ended (or it failed).
        first_token: When the first content token arrived (``None``: none did).
        token_times: When each content chunk arrived, the first included.
        output_tokens: ``usage.completion_tokens`` when the server sent usage, else the number
            of content chunks; a claim is never below the chunks received nor above the
            request's ``max_tokens`` (:func:`deploytune.loadgen.client.output_token_count`).
        prompt_tokens: ``usage.prompt_tokens`` when the server sent it.
        error: Why the request failed (``None``: it succeeded).
        error_kind: One of :data:`ERROR_KINDS` when it failed.
        scheduled: Open loop: its Poisson arrival time (it may start later when the in-flight
            cap is reached); ``None`` in a closed loop.
    """

    index: int
    start: float
    end: float = 0.0
    first_token: float | None = None
    token_times: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int | None = None
    error: str | None = None
    error_kind: str | None = None
    scheduled: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None

    @property
    def ttft_ms(self) -> float | None:
        """Time to first token in ms (``None``: no content token arrived)."""
        if self.first_token is None:
            return None
        return (self.first_token - self.start) * 1000.0

    @property
    def e2e_ms(self) -> float:
        """End-to-end latency in ms."""
        return (self.end - self.start) * 1000.0

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first, ``(e2e - ttft) / (output_tokens - 1)``, in ms
        (``None`` with fewer than two output tokens)."""
        if self.first_token is None or self.output_tokens < 2:
            return None
        return (self.end - self.first_token) * 1000.0 / (self.output_tokens - 1)

    @property
    def itl_ms(self) -> list[float]:
        """Gaps between consecutive content chunks, in ms."""
        t = self.token_times
        return [(b - a) * 1000.0 for a, b in pairwise(t)]

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (JSON-serialisable)."""
        return asdict(self)


@dataclass
class LoadResult:
    """The records of one measured run and the metrics computed from them.

    Attributes:
        records: One per measured request, in issue order (warm-up requests excluded).
        duration_s: Wall seconds from the first measured request to the end of the last.
        spec: The spec the run followed (its SLOs judge goodput).
        model: The ``model`` field that was sent.
    """

    records: list[RequestRecord]
    duration_s: float
    spec: LoadSpec
    model: str

    def metrics(self) -> dict[str, float]:
        """The run's metrics (see :func:`deploytune.loadgen.stats.compute_metrics`)."""
        from deploytune.loadgen.stats import compute_metrics

        return compute_metrics(self.records, self.duration_s, self.spec.slos)

    @property
    def failed(self) -> list[RequestRecord]:
        """The failed requests."""
        return [r for r in self.records if not r.ok]

    def error_counts(self) -> dict[str, int]:
        """How many requests failed with each :data:`ERROR_KINDS` kind."""
        return dict(Counter(r.error_kind or "unknown" for r in self.records if not r.ok))

    def first_error(self) -> str | None:
        """The first failed request's error message, or ``None``."""
        return next((r.error for r in self.records if r.error is not None), None)
