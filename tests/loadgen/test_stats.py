"""Pure metric math: percentiles, TPOT / ITL, throughput, error rate, SLO goodput."""

from __future__ import annotations

import numpy as np
import pytest

from deploytune.loadgen import METRIC_NAMES, RequestRecord, compute_metrics, meets_slos
from deploytune.loadgen.stats import summarize


def rec(index: int, start: float, ttft_s: float | None, gaps_s: list[float], *,
        tokens: int | None = None, prompt: int | None = None,
        error: str | None = None) -> RequestRecord:
    """A record whose first token arrives ttft_s after start, then one chunk per gap."""
    times: list[float] = []
    if ttft_s is not None:
        t = start + ttft_s
        times.append(t)
        for g in gaps_s:
            t += g
            times.append(t)
    end = times[-1] if times else start + 0.01
    return RequestRecord(index=index, start=start, end=end,
                         first_token=times[0] if times else None, token_times=times,
                         output_tokens=len(times) if tokens is None else tokens,
                         prompt_tokens=prompt, error=error,
                         error_kind=None if error is None else "http")


def test_record_properties() -> None:
    r = rec(0, 1.0, 0.1, [0.02, 0.03, 0.04])
    assert r.ok
    assert r.ttft_ms == pytest.approx(100.0)
    assert r.e2e_ms == pytest.approx(190.0)
    assert r.itl_ms == pytest.approx([20.0, 30.0, 40.0])
    assert r.tpot_ms == pytest.approx(90.0 / 3)  # (e2e - ttft) / (tokens - 1)


def test_tpot_uses_usage_token_count_and_needs_two_tokens() -> None:
    r = rec(0, 0.0, 0.1, [0.1], tokens=11)  # 2 chunks, 11 tokens per usage
    assert r.tpot_ms == pytest.approx(100.0 / 10)
    assert rec(0, 0.0, 0.1, [], tokens=1).tpot_ms is None
    assert rec(0, 0.0, None, [], tokens=0).ttft_ms is None


def test_summarize_matches_numpy_linear_percentiles() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    got = summarize(values, "x")
    for q in (50, 95, 99):
        assert got[f"x_p{q}_ms"] == pytest.approx(float(np.percentile(values, q)))
    assert got["x_mean_ms"] == pytest.approx(np.mean(values))
    assert got["x_p50_ms"] == pytest.approx(3.5)
    assert got["x_p95_ms"] == pytest.approx(8.75)  # 5 + 0.75 * (10 - 5)
    assert summarize([], "x") == {}
    assert "x_mean_ms" not in summarize([1.0], "x", mean=False)


def test_compute_metrics_of_known_records() -> None:
    records = [
        rec(0, 0.0, 0.10, [0.02, 0.02], prompt=10),  # e2e 140, tpot 20
        rec(1, 0.5, 0.20, [0.04, 0.04], prompt=20),  # e2e 280, tpot 40
        rec(2, 1.0, None, [], error="HTTP 500: boom"),
        rec(3, 1.5, 0.30, [0.06, 0.06, 0.06], prompt=30),  # e2e 480, tpot 60
    ]
    m = compute_metrics(records, duration_s=2.0)
    assert m["ttft_p50_ms"] == pytest.approx(200.0)
    assert m["ttft_mean_ms"] == pytest.approx(200.0)
    assert m["ttft_p95_ms"] == pytest.approx(float(np.percentile([100, 200, 300], 95)))
    assert m["tpot_p50_ms"] == pytest.approx(40.0)
    assert m["tpot_mean_ms"] == pytest.approx(40.0)
    assert m["itl_p50_ms"] == pytest.approx(40.0)  # pooled gaps 20,20,40,40,60,60,60
    assert m["itl_p99_ms"] == pytest.approx(60.0)
    assert m["e2e_p50_ms"] == pytest.approx(280.0)
    assert m["e2e_mean_ms"] == pytest.approx((140 + 280 + 480) / 3)
    assert m["output_tokens_per_s"] == pytest.approx((3 + 3 + 4) / 2.0)
    assert m["requests_per_s"] == pytest.approx(1.5)
    assert m["error_rate"] == pytest.approx(0.25)
    assert m["goodput"] == pytest.approx(1.5)  # no SLO: every success counts
    assert m["goodput_fraction"] == pytest.approx(0.75)
    assert (m["completed"], m["failed"], m["requests"]) == (3.0, 1.0, 4.0)
    assert m["duration_s"] == 2.0
    assert m["output_tokens_mean"] == pytest.approx(10 / 3)
    assert m["prompt_tokens_mean"] == pytest.approx(20.0)
    assert set(m) == set(METRIC_NAMES)


def test_goodput_counts_failures_and_slo_misses_as_violations() -> None:
    records = [
        rec(0, 0.0, 0.10, [0.02, 0.02]),  # ttft 100, tpot 20, e2e 140
        rec(1, 0.0, 0.20, [0.04, 0.04]),  # ttft 200, tpot 40, e2e 280
        rec(2, 0.0, 0.30, [0.06, 0.06]),  # ttft 300, tpot 60, e2e 420
        rec(3, 0.0, None, [], error="reset"),
    ]
    def good(**slos: float) -> float:
        return compute_metrics(records, 4.0, slos)["goodput_fraction"]
    assert good() == 0.75
    assert good(slo_ttft_ms=250) == 0.5
    assert good(slo_ttft_ms=250, slo_tpot_ms=30) == 0.25
    assert good(slo_e2e_ms=420) == 0.75  # the limit itself is met
    assert good(slo_e2e_ms=100) == 0.0
    m = compute_metrics(records, 4.0, {"slo_ttft_ms": 250})
    assert m["goodput"] == pytest.approx(2 / 4.0)


def test_meets_slos_edge_cases() -> None:
    no_token = rec(0, 0.0, None, [], tokens=0)
    assert meets_slos(no_token, {})
    assert not meets_slos(no_token, {"slo_ttft_ms": 1e9})  # no first token: TTFT missed
    one_token = rec(0, 0.0, 0.1, [], tokens=1)
    assert meets_slos(one_token, {"slo_tpot_ms": 0.001})  # TPOT does not apply
    assert not meets_slos(rec(0, 0.0, 0.1, [0.1], error="x"), {})
    with pytest.raises(ValueError, match="slo_ttft"):
        meets_slos(one_token, {"ttft": 1.0})


def test_no_success_means_no_latency_metrics_and_error_rate_1() -> None:
    records = [rec(i, 0.0, None, [], error="refused") for i in range(3)]
    m = compute_metrics(records, 1.0, {"slo_e2e_ms": 1000})
    assert not any(k.endswith("_ms") for k in m)
    assert "output_tokens_mean" not in m and "prompt_tokens_mean" not in m
    assert m["error_rate"] == 1.0
    assert m["goodput"] == 0.0 and m["goodput_fraction"] == 0.0
    assert (m["completed"], m["failed"]) == (0.0, 3.0)
    assert m["output_tokens_per_s"] == 0.0


def test_single_token_responses_have_no_tpot_or_itl() -> None:
    m = compute_metrics([rec(0, 0.0, 0.05, [], tokens=1)], 1.0)
    assert "ttft_p50_ms" in m and "e2e_p50_ms" in m
    assert not any(k.startswith(("tpot", "itl")) for k in m)


def test_zero_duration_does_not_divide_by_zero() -> None:
    m = compute_metrics([rec(0, 0.0, 0.0, [])], 0.0)
    assert np.isfinite(m["requests_per_s"])
