"""Metrics of a set of :class:`~deploytune.loadgen.records.RequestRecord`: latency
percentiles, throughput, error rate and SLO goodput (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from deploytune.loadgen.records import RequestRecord

__all__ = ["METRIC_NAMES", "compute_metrics", "meets_slos", "summarize"]

METRIC_NAMES = (
    "ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms", "ttft_mean_ms",
    "tpot_p50_ms", "tpot_p95_ms", "tpot_p99_ms", "tpot_mean_ms",
    "itl_p50_ms", "itl_p95_ms", "itl_p99_ms",
    "e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "e2e_mean_ms",
    "output_tokens_per_s", "requests_per_s", "error_rate", "goodput", "goodput_fraction",
    "completed", "failed", "requests", "duration_s", "output_tokens_mean",
    "prompt_tokens_mean",
)
"""Every metric :func:`compute_metrics` can return (latency ones only when measurable)."""

SLO_FIELDS = ("slo_ttft_ms", "slo_tpot_ms", "slo_e2e_ms")
"""The SLO names understood by :func:`meets_slos`."""


def summarize(values: Sequence[float], prefix: str, *, mean: bool = True) -> dict[str, float]:
    """``{prefix}_p50_ms``, ``_p95_ms``, ``_p99_ms`` (numpy linear interpolation) and, with
    ``mean``, ``{prefix}_mean_ms`` of ``values``; empty when there are none."""
    if len(values) == 0:
        return {}
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50.0, 95.0, 99.0])
    out = {f"{prefix}_p50_ms": float(p50), f"{prefix}_p95_ms": float(p95),
           f"{prefix}_p99_ms": float(p99)}
    if mean:
        out[f"{prefix}_mean_ms"] = float(arr.mean())
    return out


def meets_slos(record: RequestRecord, slos: Mapping[str, float]) -> bool:
    """Whether ``record`` succeeded and met every SLO in ``slos`` (names from
    :data:`SLO_FIELDS`).

    A failed request violates every SLO; a successful one without a first content token
    violates a TTFT SLO; a TPOT SLO does not apply to requests with fewer than two output
    tokens.
    """
    if not record.ok:
        return False
    unknown = set(slos) - set(SLO_FIELDS)
    if unknown:
        raise ValueError(f"unknown SLO name(s) {sorted(unknown)}; known: {', '.join(SLO_FIELDS)}")
    ttft_limit = slos.get("slo_ttft_ms")
    if ttft_limit is not None:
        ttft = record.ttft_ms
        if ttft is None or ttft > ttft_limit:
            return False
    tpot_limit = slos.get("slo_tpot_ms")
    if tpot_limit is not None:
        tpot = record.tpot_ms
        if tpot is not None and tpot > tpot_limit:
            return False
    e2e_limit = slos.get("slo_e2e_ms")
    return e2e_limit is None or record.e2e_ms <= e2e_limit


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return float(np.mean(vals)) if vals else None


def compute_metrics(records: Sequence[RequestRecord], duration_s: float,
                    slos: Mapping[str, float] | None = None) -> dict[str, float]:
    """The metrics of ``records`` measured over ``duration_s`` wall seconds.

    Latency percentiles are over successful requests only and are absent (not 0) when no
    request succeeded; ITL pools the gaps of every successful request. ``completed`` counts
    successful requests, ``failed`` failed ones, ``requests`` both. ``goodput`` is the number
    of requests per second that succeeded and met every SLO in ``slos`` (all successful ones
    when there is none); ``goodput_fraction`` is their share of all requests.
    """
    slos = dict(slos or {})
    ok = [r for r in records if r.ok]
    total = len(records)
    duration = max(float(duration_s), 1e-9)
    out: dict[str, float] = {}
    out.update(summarize([t for r in ok if (t := r.ttft_ms) is not None], "ttft"))
    out.update(summarize([t for r in ok if (t := r.tpot_ms) is not None], "tpot"))
    out.update(summarize([g for r in ok for g in r.itl_ms], "itl", mean=False))
    out.update(summarize([r.e2e_ms for r in ok], "e2e"))
    output_tokens = sum(r.output_tokens for r in ok)
    good = sum(1 for r in records if meets_slos(r, slos))
    out["output_tokens_per_s"] = output_tokens / duration
    out["requests_per_s"] = len(ok) / duration
    out["error_rate"] = (total - len(ok)) / total if total else 1.0
    out["goodput"] = good / duration
    out["goodput_fraction"] = good / total if total else 0.0
    out["completed"] = float(len(ok))
    out["failed"] = float(total - len(ok))
    out["requests"] = float(total)
    out["duration_s"] = float(duration_s)
    if ok:
        out["output_tokens_mean"] = output_tokens / len(ok)
    prompt_mean = _mean(r.prompt_tokens for r in ok if r.prompt_tokens is not None)
    if prompt_mean is not None:
        out["prompt_tokens_mean"] = prompt_mean
    return out
